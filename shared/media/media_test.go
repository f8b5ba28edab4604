package media

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/shared/failure"
)

const manifestJSON = `{"pages":{
 "RE4zW6m6el":{"url":"https://videos.example/l1.mp4?X-Goog-Signature=aaa&X-Goog-Date=1","size":1234,"md5":"0123456789ABCDEF0123456789abcdef"},
 "p2":{"url":"https://videos.example/l2.mp4"}}}`

type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// storageEnv starts a local Cloud Storage and returns a client whose requests
// are counted.
func storageEnv(t *testing.T) (*storage.Client, *countingTransport) {
	t.Helper()
	s, err := gcs.Start(gcs.Options{Buckets: []string{"raw", "config"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	ct := &countingTransport{}
	st, err := storage.NewClient(context.Background(),
		option.WithEndpoint(s.URL()+"/storage/v1/"), option.WithoutAuthentication(),
		option.WithHTTPClient(&http.Client{Transport: ct}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, ct
}

func put(t *testing.T, st *storage.Client, bucket, name, body string) *storage.ObjectAttrs {
	t.Helper()
	w := st.Bucket(bucket).Object(name).NewWriter(context.Background())
	w.Write([]byte(body))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Attrs()
}

func TestLoadManifestFromFileHTTPAndGCS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, _ := storageEnv(t)
	put(t, st, "config", "media/manifest.json", manifestJSON)
	file := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(file, []byte(manifestJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(manifestJSON))
	}))
	t.Cleanup(srv.Close)

	for _, uri := range []string{file, "file://" + file, srv.URL + "/manifest.json", "gs://config/media/manifest.json"} {
		m, err := LoadManifest(ctx, uri, st, nil)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		e := m.Pages["RE4zW6m6el"]
		if len(m.Pages) != 2 || e.Size != 1234 || e.MD5 != "0123456789abcdef0123456789abcdef" {
			t.Errorf("%s: %+v", uri, m.Pages)
		}
	}
	for _, uri := range []string{"gs://config/nope.json", filepath.Join(t.TempDir(), "nope.json"), "gs://config"} {
		if _, err := LoadManifest(ctx, uri, st, nil); !failure.IsPermanent(err) {
			t.Errorf("%s: want a permanent error, got %v", uri, err)
		}
	}
}

func TestParseManifestReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ParseManifest([]byte(`{"pages":{"a":{"url":"ftp://x/y"},"b":{"url":"https://x/y","md5":"zz","size":-1},"c":{}}}`))
	if !failure.IsPermanent(err) {
		t.Fatalf("want permanent, got %v", err)
	}
	for _, want := range []string{"page a: url is not an http(s) URL", "page b: md5 \"zz\"", "page b: negative size", "page c: no url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if _, err := ParseManifest([]byte(`[`)); !failure.IsPermanent(err) {
		t.Errorf("bad JSON: %v", err)
	}
}

func TestResolverPrecedenceListingAndMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, ct := storageEnv(t)
	m, err := ParseManifest([]byte(manifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	master := put(t, st, "raw", "ingest/1117869/2z7ramxejw/RE4zW6m6el.mov", "master bytes")
	put(t, st, "raw", "ingest/1117869/other-module/moved.mp4", "moved lesson")
	put(t, st, "raw", "ingest/1117869/2z7ramxejw/empty.mp4", "")
	put(t, st, "raw", "ingest/11178690/m/p2.mp4", "another product with a longer id")

	r := NewResolver(m, st, "raw", "/ingest/")
	before := ct.n.Load()
	got, err := r.Resolve(ctx, 1117869, "2z7ramxejw", "RE4zW6m6el")
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Kind != KindObject || got.Ref != "gs://raw/ingest/1117869/2z7ramxejw/RE4zW6m6el.mov" || got.Ext != "mov" ||
		got.Size != int64(len("master bytes")) || got.MD5 == "" || got.Fingerprint == "" {
		t.Fatalf("ingest file should win over the manifest: %+v", got)
	}
	moved, err := r.Resolve(ctx, 1117869, "2z7ramxejw", "moved")
	if err != nil || moved == nil || moved.Ref != "gs://raw/ingest/1117869/other-module/moved.mp4" {
		t.Errorf("page under another module: %+v, %v", moved, err)
	}
	fromManifest, err := r.Resolve(ctx, 1117869, "2z7ramxejw", "p2")
	if err != nil || fromManifest == nil || fromManifest.Kind != KindURL || fromManifest.Ref != "p2" || fromManifest.Ext != "mp4" {
		t.Errorf("manifest page (named by its page id, never by its link): %+v, %v", fromManifest, err)
	}
	for _, page := range []string{"empty", "absent"} {
		if none, err := r.Resolve(ctx, 1117869, "2z7ramxejw", page); none != nil || err != nil {
			t.Errorf("%s: want nil, nil; got %+v, %v", page, none, err)
		}
	}
	if n := ct.n.Load() - before; n != 1 {
		t.Errorf("%d storage requests for one product, want 1 listing", n)
	}

	// A new upload of the master is a new generation: a new fingerprint.
	again := put(t, st, "raw", "ingest/1117869/2z7ramxejw/RE4zW6m6el.mov", "master bytes")
	if again.Generation == master.Generation {
		t.Fatalf("storage reused generation %d for a new upload", again.Generation)
	}
	fresh, err := NewResolver(m, st, "raw", "ingest").Resolve(ctx, 1117869, "2z7ramxejw", "RE4zW6m6el")
	if err != nil || fresh.Fingerprint == got.Fingerprint {
		t.Errorf("new generation kept fingerprint %s (%v)", fresh.Fingerprint, err)
	}

	// Either source alone.
	if only, err := NewResolver(m, nil, "", "").Resolve(ctx, 1117869, "2z7ramxejw", "RE4zW6m6el"); err != nil || only.Kind != KindURL {
		t.Errorf("manifest only: %+v, %v", only, err)
	}
	if only, err := NewResolver(nil, st, "raw", "ingest").Resolve(ctx, 1117869, "m", "p2"); err != nil || only != nil {
		t.Errorf("ingest only, missing page: %+v, %v", only, err)
	}
}

func TestURLFingerprint(t *testing.T) {
	t.Parallel()
	signed := func(q string) string { return "https://videos.example/l1.mp4?" + q }
	base := Entry{URL: signed("X-Goog-Signature=aaa&X-Goog-Date=1"), Size: 10, MD5: "0123456789abcdef0123456789abcdef"}
	resigned := base
	resigned.URL = signed("X-Goog-Signature=bbb&X-Goog-Date=2")
	if URLFingerprint(base) != URLFingerprint(resigned) {
		t.Error("re-signing the URL changed the fingerprint")
	}
	for name, e := range map[string]Entry{
		"size":   {URL: base.URL, Size: 11, MD5: base.MD5},
		"md5":    {URL: base.URL, Size: 10, MD5: "fedcba9876543210fedcba9876543210"},
		"path":   {URL: "https://videos.example/l1-v2.mp4", Size: 10, MD5: base.MD5},
		"no md5": {URL: base.URL, Size: 10},
	} {
		if URLFingerprint(e) == URLFingerprint(base) {
			t.Errorf("changing %s kept the fingerprint", name)
		}
	}
	// With nothing else to identify the bytes, the query counts, but not its
	// signing parameters.
	a := Entry{URL: "https://cdn.example/v?id=7&Expires=1&Signature=x&Key-Pair-Id=k"}
	b := Entry{URL: "https://cdn.example/v?Signature=y&id=7&Expires=2&Key-Pair-Id=k"}
	c := Entry{URL: "https://cdn.example/v?id=8&Expires=1&Signature=x"}
	if URLFingerprint(a) != URLFingerprint(b) {
		t.Error("signing parameters changed the fingerprint")
	}
	if URLFingerprint(a) == URLFingerprint(c) {
		t.Error("a real query parameter did not change the fingerprint")
	}
}
