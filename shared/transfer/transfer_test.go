package transfer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/mediahost"
	"github.com/coursekb/pipeline/shared/failure"
)

type env struct {
	st    *storage.Client
	gcs   *gcs.Server
	host  *mediahost.Host
	media string // media host base URL
}

// setup starts a local Cloud Storage and a media host, both over real HTTP.
func setup(t *testing.T) env {
	t.Helper()
	s, err := gcs.Start(gcs.Options{Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	h, err := mediahost.New("")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := h.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	st := s.Client()
	t.Cleanup(func() { st.Close() })
	return env{st: st, gcs: s, host: h, media: ms.URL()}
}

func (e env) exists(t *testing.T, object string) bool {
	t.Helper()
	_, err := e.st.Bucket("raw").Object(object).Attrs(context.Background())
	if errors.Is(err, storage.ErrObjectNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func synthetic(n int64) []byte {
	b := make([]byte, n)
	mediahost.Synthetic{}.ReadAt(b, 0)
	return b
}

var meta = map[string]string{"lessonId": "RE4zW6m6el", "version": "3"}

func TestFromURLLandsWithMetadataAndContent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		chunk int
		size  int64
	}{
		{"one chunk", 0, 1<<20 + 17},
		{"several resumable chunks", 256 << 10, 3<<20/4*3 + 5}, // 2.25 MiB in 256 KiB chunks
		{"single request", -1, 1<<20 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			c := New(e.st, nil, Options{ChunkSize: tc.chunk, MaxBytes: 10 << 20})
			want := synthetic(tc.size)
			sum := md5.Sum(want)
			src := Source{URL: fmt.Sprintf("%s/synthetic/%d.mov?X-Goog-Signature=secret", e.media, tc.size), Size: tc.size, MD5: hex.EncodeToString(sum[:])}
			res, err := c.FromURL(context.Background(), src, Dest{Bucket: "raw", Object: "lessons/l/v3/source.mov", Metadata: meta})
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != tc.size || res.MD5 != src.MD5 || res.Reused || res.Generation == 0 ||
				res.CRC32C != crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli)) || res.ContentType != "video/quicktime" {
				t.Errorf("result %+v", res)
			}
			obj := e.st.Bucket("raw").Object("lessons/l/v3/source.mov")
			a, err := obj.Attrs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if a.Metadata["lessonId"] != "RE4zW6m6el" || a.Metadata["version"] != "3" || a.ContentType != "video/quicktime" {
				t.Errorf("attrs metadata %v, content type %q", a.Metadata, a.ContentType)
			}
			r, err := obj.NewReader(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if string(got) != string(want) {
				t.Errorf("stored %d bytes differ from the %d served", len(got), len(want))
			}
		})
	}
}

func TestFromURLFailures(t *testing.T) {
	t.Parallel()
	const n = 600_000
	for _, tc := range []struct {
		name      string
		path      string
		src       Source
		opts      Options
		permanent bool
		says      string
	}{
		{"length differs from the manifest", "/synthetic/600000", Source{Size: n + 1}, Options{}, true,
			"media source says 600001 bytes, server sends 600000"},
		{"checksum differs", "/synthetic/600000", Source{Size: n, MD5: strings.Repeat("ab", 16)}, Options{}, true,
			"media source says MD5 abababababababababababababababab, but Cloud Storage found the downloaded bytes differ"},
		{"checksum differs across resumable chunks", "/synthetic/600000", Source{Size: n, MD5: strings.Repeat("cd", 16)}, Options{ChunkSize: 256 << 10}, true,
			"media source says MD5 cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd, but Cloud Storage found the downloaded bytes differ"},
		{"declared length over the limit", "/synthetic/600000", Source{}, Options{MaxBytes: n - 1}, true,
			"server sends 600000 bytes, over the 599999-byte limit"},
		{"manifest size over the limit", "/synthetic/600000", Source{Size: n}, Options{MaxBytes: n - 1}, true,
			"media source says 600000 bytes, over the 599999-byte limit"},
		{"undeclared body over the limit mid-stream", "/chunked/3000000", Source{}, Options{MaxBytes: 1 << 20, ChunkSize: 256 << 10}, true,
			"body passed the 1048576-byte limit"},
		{"short body", "/short/900000/400000", Source{}, Options{ChunkSize: 256 << 10}, false,
			"body cut short after 400000 of 900000 bytes"},
		{"undeclared body shorter than the manifest", "/chunked/500000", Source{Size: n}, Options{}, true,
			"media source says 600000 bytes, server sent 500000"},
		{"not found", "/status/404", Source{}, Options{}, true, "media host answered 404 Not Found"},
		{"gone", "/status/410", Source{}, Options{}, true, "410 Gone"},
		{"forbidden (expired signature)", "/status/403", Source{}, Options{}, true, "media host refused the link: media host answered 403 Forbidden"},
		{"body stalls", "/stall/300000", Source{}, Options{ReadIdleTimeout: 200 * time.Millisecond}, false, "media host sent nothing for 200ms after 300000 bytes"},
		{"server error", "/status/503", Source{}, Options{}, false, "503 Service Unavailable"},
		{"rate limited", "/status/429", Source{}, Options{}, false, "429 Too Many Requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			src := tc.src
			src.URL = e.media + tc.path + "?X-Goog-Signature=topsecret"
			_, err := New(e.st, nil, tc.opts).FromURL(context.Background(), src, Dest{Bucket: "raw", Object: "o.mp4", Metadata: meta})
			if err == nil {
				t.Fatal("no error")
			}
			if refused := tc.path == "/status/403" || tc.path == "/status/410"; errors.Is(err, ErrLinkRefused) != refused {
				t.Errorf("link refused = %v for %s: %v", errors.Is(err, ErrLinkRefused), tc.path, err)
			}
			if failure.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v: %v", failure.IsPermanent(err), tc.permanent, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error leaks the URL's signature: %v", err)
			}
			if e.exists(t, "o.mp4") {
				t.Error("an object was finalized despite the failure")
			}
		})
	}
}

func TestFromURLRetryAfterUploadReusesObject(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := New(e.st, nil, Options{})
	src := Source{URL: e.media + "/synthetic/300000", Size: 300000, MD5: mediahost.SyntheticMD5(300000)}
	dst := Dest{Bucket: "raw", Object: "lessons/l/v3/source.mp4", Metadata: meta}
	first, err := c.FromURL(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.FromURL(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Reused || second.Generation != first.Generation || second.MD5 != first.MD5 || second.Size != first.Size {
		t.Errorf("second %+v, first %+v", second, first)
	}
	if hits := e.host.Hits("/synthetic/300000"); hits != 1 {
		t.Errorf("media host hit %d times, want 1", hits)
	}

	// Same object name, other media (another version's metadata): replaced.
	other := Dest{Bucket: "raw", Object: dst.Object, Metadata: map[string]string{"lessonId": "RE4zW6m6el", "version": "4"}}
	third, err := c.FromURL(context.Background(), Source{URL: e.media + "/synthetic/1000"}, other)
	if err != nil {
		t.Fatal(err)
	}
	if third.Reused || third.Size != 1000 || third.Generation == first.Generation {
		t.Errorf("stale object not replaced: %+v", third)
	}
}

func TestFromObjectCopiesServerSide(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	master := "ingest/1117869/2z7ramxejw/RE4zW6m6el.mov"
	body := synthetic(200_000)
	w := e.st.Bucket("raw").Object(master).NewWriter(ctx)
	w.ContentType = "video/quicktime"
	w.Write(body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	c := New(e.st, nil, Options{MaxBytes: 1 << 20})
	dst := Dest{Bucket: "raw", Object: "lessons/RE4zW6m6el/v3/source.mov", Metadata: meta}

	if _, err := c.FromObject(ctx, "raw", master, dst, Source{Size: 200_001}); !failure.IsPermanent(err) ||
		!strings.Contains(fmt.Sprint(err), "media source says 200001 bytes, master file has 200000") {
		t.Errorf("size mismatch: %v", err)
	}
	if _, err := c.FromObject(ctx, "raw", master, dst, Source{MD5: strings.Repeat("0", 32)}); !failure.IsPermanent(err) {
		t.Errorf("MD5 mismatch: %v", err)
	}
	if _, err := c.FromObject(ctx, "raw", "ingest/nope.mp4", dst, Source{}); !failure.IsPermanent(err) {
		t.Errorf("missing master: %v", err)
	}
	if _, err := New(e.st, nil, Options{MaxBytes: 1000}).FromObject(ctx, "raw", master, dst, Source{}); !failure.IsPermanent(err) {
		t.Errorf("over the limit: %v", err)
	}
	if e.exists(t, dst.Object) {
		t.Fatal("failed copies left an object")
	}

	res, err := c.FromObject(ctx, "raw", master, dst, Source{Size: 200_000, MD5: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused || res.Size != 200_000 || res.MD5 != hex.EncodeToString(sum[:]) || res.ContentType != "video/quicktime" {
		t.Errorf("result %+v", res)
	}
	a, err := e.st.Bucket("raw").Object(dst.Object).Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Metadata["lessonId"] != "RE4zW6m6el" || a.Metadata["version"] != "3" {
		t.Errorf("metadata %v", a.Metadata)
	}
	again, err := c.FromObject(ctx, "raw", master, dst, Source{})
	if err != nil || !again.Reused || again.Generation != res.Generation {
		t.Errorf("second copy: %+v, %v", again, err)
	}
}

func TestExt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, ctype, want string }{
		{"https://cdn.example/v/lesson.MOV?sig=x.mp3", "", "mov"},
		{"https://cdn.example/v/lesson.webm", "video/mp4", "webm"},
		{"https://cdn.example/v/stream", "video/webm; codecs=vp9", "webm"},
		{"https://cdn.example/v/lesson.exe", "application/octet-stream", "mp4"},
		{"https://cdn.example/v/lesson.mp4/../../x.sh", "", "mp4"},
		{"gs://raw/ingest/1/m/p.mkv", "", "mkv"},
		{"%%%", "", "mp4"},
	} {
		if got := Ext(tc.url, tc.ctype); got != tc.want {
			t.Errorf("Ext(%q, %q) = %q, want %q", tc.url, tc.ctype, got, tc.want)
		}
	}
}

func TestStatusErrorKeepsBodySnippet(t *testing.T) {
	t.Parallel()
	resp := &http.Response{StatusCode: 404, Status: "404 Not Found", Body: io.NopCloser(strings.NewReader("no such video"))}
	if err := statusError(resp); !failure.IsPermanent(err) || !strings.Contains(err.Error(), "no such video") {
		t.Errorf("%v", err)
	}
}

// A host that refuses for now (429 or 5xx) is asked again within the
// attempt, waiting what its Retry-After says: a short refusal does not cost
// the stage one of its attempts. A refusal for good is asked once, and one
// that lasts is asked RequestTries times before the attempt fails.
func TestFromURLWaitsOutShortRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var mu sync.Mutex
	refusals := 2
	asked := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		refuse := refusals > 0
		refusals--
		mu.Unlock()
		if refuse {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		e.host.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := New(e.st, nil, Options{RetryBaseDelay: 10 * time.Millisecond})
	started := time.Now()
	res, err := c.FromURL(t.Context(), Source{URL: srv.URL + "/synthetic/300000", Size: 300000}, Dest{Bucket: "raw", Object: "a.mp4", Metadata: meta})
	if err != nil || res.Size != 300000 {
		t.Fatalf("after two 429s: %+v, %v; want the video", res, err)
	}
	if asked != 3 {
		t.Errorf("asked %d times, want 3", asked)
	}
	if waited := time.Since(started); waited < 2*time.Second {
		t.Errorf("done in %s: the two Retry-After: 1 were not waited out", waited)
	}

	for _, tc := range []struct {
		path      string
		tries     int
		permanent bool
	}{
		{"/status/404", 1, true},
		{"/status/503", 3, false},
	} {
		c := New(e.st, nil, Options{RequestTries: 3, RetryBaseDelay: 10 * time.Millisecond})
		_, err := c.FromURL(t.Context(), Source{URL: e.media + tc.path}, Dest{Bucket: "raw", Object: "b.mp4", Metadata: meta})
		if err == nil || failure.IsPermanent(err) != tc.permanent {
			t.Errorf("%s: %v, want permanent=%v", tc.path, err, tc.permanent)
		}
		if got := e.host.Hits(tc.path); got != tc.tries {
			t.Errorf("%s asked %d times, want %d", tc.path, got, tc.tries)
		}
	}
}
