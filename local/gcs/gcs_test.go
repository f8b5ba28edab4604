package gcs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/coursekb/pipeline/local/emulators"
)

func write(t *testing.T, s *Server, bucket, name, body string, md map[string]string) {
	t.Helper()
	c := s.Client()
	defer c.Close()
	w := c.Bucket(bucket).Object(name).NewWriter(context.Background())
	w.Metadata = md
	w.ContentType = "video/mp4"
	w.Write([]byte(body))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, s *Server, bucket, name string) string {
	t.Helper()
	c := s.Client()
	defer c.Close()
	r, err := c.Bucket(bucket).Object(name).NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// begin starts a resumable session with the JSON API's protocol and returns
// its URL.
func begin(t *testing.T, s *Server, name, query, resource string) string {
	t.Helper()
	resp, err := http.Post(s.URL()+"/upload/storage/v1/b/raw/o?uploadType=resumable&name="+name+query, "application/json", strings.NewReader(resource))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("begin %s: %s", name, resp.Status)
	}
	return resp.Header.Get("Location")
}

// put sends one request of a session and returns its status.
func put(t *testing.T, session, rng string, body []byte, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, session, bytes.NewReader(body))
	req.Header.Set("Content-Range", rng)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func pattern(n, k int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * k)
	}
	return b
}

func absent(t *testing.T, s *Server, name string) {
	t.Helper()
	c := s.Client()
	defer c.Close()
	if _, err := c.Bucket("raw").Object(name).Attrs(context.Background()); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("%s: want no object, got %v", name, err)
	}
}

func TestFilesystemRootOutlivesTheServer(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := Start(Options{Root: root, Buckets: []string{"raw", "artifacts"}})
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, "raw", "lessons/l1/v1/source.mp4", "video", map[string]string{"lessonId": "l1"})
	s.Stop()

	s, err = Start(Options{Root: root, Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if got := read(t, s, "raw", "lessons/l1/v1/source.mp4"); got != "video" {
		t.Errorf("after restart: %q", got)
	}
	if s.Host() == "" || s.URL() != "http://"+s.Host() {
		t.Errorf("URL %q, Host %q", s.URL(), s.Host())
	}
}

func TestFinalizePublishesNotification(t *testing.T) {
	emulators.ForTest(t, emulators.PubSub) // sets PUBSUB_EMULATOR_HOST
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	project := emulators.ProjectID("gcs")
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	topic := "projects/" + project + "/topics/raw-finalized"
	sub := "projects/" + project + "/subscriptions/raw-finalized-test"
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		t.Fatal(err)
	}

	s, err := Start(Options{
		Root: t.TempDir(), Buckets: []string{"raw", "artifacts"},
		NotifyProjectID: project, NotifyTopic: "raw-finalized", NotifyBucket: "raw",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	write(t, s, "artifacts", "not-notified.json", "{}", nil)
	write(t, s, "raw", "lessons/l1/v2/source.mp4", "0123456789", map[string]string{"lessonId": "l1", "version": "2"})

	var got []*pubsub.Message
	rctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	err = ps.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got = append(got, m)
		stop()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("no notification within 30s")
	}
	m := got[0]
	for k, want := range map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "raw", "objectId": "lessons/l1/v2/source.mp4", "payloadFormat": "JSON_API_V1"} {
		if m.Attributes[k] != want {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, m.Attributes[k], want, m.Attributes)
		}
	}
	// The data is the object resource, numbers as strings, as Cloud Storage sends it.
	var obj struct {
		Name       string            `json:"name"`
		Bucket     string            `json:"bucket"`
		Size       string            `json:"size"`
		Generation string            `json:"generation"`
		MD5Hash    string            `json:"md5Hash"`
		Metadata   map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(m.Data, &obj); err != nil {
		t.Fatalf("data %s: %v", m.Data, err)
	}
	if obj.Name != "lessons/l1/v2/source.mp4" || obj.Bucket != "raw" || obj.Size != "10" || obj.Generation == "" ||
		obj.MD5Hash == "" || obj.Metadata["version"] != "2" {
		t.Errorf("object resource %s", m.Data)
	}
}

func TestNotifyOptionsGoTogether(t *testing.T) {
	t.Parallel()
	if _, err := Start(Options{NotifyTopic: "t"}); err == nil {
		t.Error("a topic without a project was accepted")
	}
}

func TestResumableUploadsStreamThroughTheFront(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c := s.Client()
	defer c.Close()
	ctx := context.Background()
	body := make([]byte, 5<<20+123)
	for i := range body {
		body[i] = byte(i * 7)
	}
	obj := c.Bucket("raw").Object("big.mp4")
	w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = 1 << 20
	w.Metadata = map[string]string{"lessonId": "l9"}
	w.Write(body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if a := w.Attrs(); a.Size != int64(len(body)) || a.Metadata["lessonId"] != "l9" || a.Generation == 0 || len(a.MD5) != 16 {
		t.Errorf("attrs %+v", a)
	}
	if got := read(t, s, "raw", "big.mp4"); got != string(body) {
		t.Errorf("stored %d bytes differ", len(got))
	}

	// The precondition is honoured at the end of a multi-chunk upload.
	w = obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = 1 << 20
	w.Write(body)
	var ge *googleapi.Error
	if err := w.Close(); !errors.As(err, &ge) || ge.Code != 412 {
		t.Errorf("second upload with DoesNotExist: %v", err)
	}

	// Declared checksums: Cloud Storage refuses to finalize on a mismatch.
	for _, tc := range []struct {
		name string
		set  func(*storage.Writer)
		ok   bool
	}{
		{"md5-right.mp4", func(w *storage.Writer) { w.MD5 = md5Of(body) }, true},
		{"md5-wrong.mp4", func(w *storage.Writer) { w.MD5 = md5Of(body[1:]) }, false},
		{"crc-wrong.mp4", func(w *storage.Writer) { w.SendCRC32C, w.CRC32C = true, 1 }, false},
	} {
		w := c.Bucket("raw").Object(tc.name).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
		w.ChunkSize = 1 << 20
		tc.set(w)
		w.Write(body)
		err := w.Close()
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if got := read(t, s, "raw", tc.name); got != string(body) {
				t.Errorf("%s: stored %d bytes differ", tc.name, len(got))
			}
			continue
		}
		if !errors.As(err, &ge) || ge.Code != http.StatusBadRequest {
			t.Errorf("%s: want 400, got %v", tc.name, err)
		}
		absent(t, s, tc.name)
	}

	// A cancelled upload stores nothing.
	cctx, cancel := context.WithCancel(ctx)
	w = c.Bucket("raw").Object("cancelled.mp4").NewWriter(cctx)
	w.ChunkSize = 1 << 20
	w.Write(body[:3<<20])
	cancel()
	w.Close()
	absent(t, s, "cancelled.mp4")
}

func md5Of(b []byte) []byte {
	h := md5.Sum(b)
	return h[:]
}

// The front holds the last bytes back until the end is known: uploads whose
// last request brings no bytes, or that are smaller than what is held back,
// or end just past a read's worth, arrive whole; a declared checksum that
// does not match stores nothing.
func TestResumableUploadEnds(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	body := pattern(3<<20, 13)
	for _, tc := range []struct {
		name  string
		parts []int // request sizes; the last request declares the total
	}{
		{"empty-end.bin", []int{1 << 20, 1 << 20, 1 << 20, 0}},
		{"tiny.bin", []int{5, 5}},
		{"one.bin", []int{100}},
		{"nothing.bin", []int{0}},
		{"tail.bin", []int{tailSize - 1, 1, 1}},
		{"segment.bin", []int{segSize, 0}},
		{"segment-and-one.bin", []int{segSize + 1}},
		{"segments.bin", []int{2*segSize - tailSize/2, tailSize, 0}},
	} {
		session := begin(t, s, tc.name, "", "{}")
		total := 0
		for _, n := range tc.parts {
			total += n
		}
		off := 0
		for i, n := range tc.parts {
			tot, want := "*", 308
			if i == len(tc.parts)-1 {
				tot, want = strconv.Itoa(total), 200
			}
			rng := fmt.Sprintf("bytes %d-%d/%s", off, off+n-1, tot)
			if n == 0 {
				rng = "bytes */" + tot
			}
			if got := put(t, session, rng, body[off:off+n]); got != want {
				t.Fatalf("%s: request %d: status %d", tc.name, i, got)
			}
			off += n
		}
		if got := read(t, s, "raw", tc.name); got != string(body[:total]) {
			t.Errorf("%s: stored %d bytes, want %d", tc.name, len(got), total)
		}
	}

	const mib = 1 << 20
	sum := base64.StdEncoding.EncodeToString(md5Of(body[:2*mib]))
	crc := encodeCRC(crc32.Checksum(body[:2*mib], castagnoli))
	for _, tc := range []struct {
		name, resource, xGoogHash string
		want                      int
	}{
		{"bad-md5.bin", `{"md5Hash":"AAAAAAAAAAAAAAAAAAAAAA=="}`, "", http.StatusBadRequest},
		{"bad-crc.bin", `{"crc32c":"AAAAAA=="}`, "", http.StatusBadRequest},
		{"bad-crc-header.bin", `{}`, "crc32c=AAAAAA==", http.StatusBadRequest},
		{"md5-header-undeclared.bin", `{}`, "crc32c=" + crc + ",md5=" + sum, http.StatusNotImplemented},
		{"both-right.bin", `{"md5Hash":"` + sum + `"}`, "crc32c=" + crc + ",md5=" + sum, http.StatusOK},
	} {
		session := begin(t, s, tc.name, "", tc.resource)
		if got := put(t, session, "bytes 0-1048575/*", body[:mib]); got != 308 {
			t.Fatalf("%s: first chunk: status %d", tc.name, got)
		}
		if got := put(t, session, "bytes 1048576-2097151/2097152", body[mib:2*mib], "X-Goog-Hash", tc.xGoogHash); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
		if tc.want == http.StatusOK {
			if got := read(t, s, "raw", tc.name); got != string(body[:2*mib]) {
				t.Errorf("%s: stored %d bytes differ", tc.name, len(got))
			}
		} else {
			absent(t, s, tc.name)
		}
		if got := put(t, session, "bytes */*", nil); got != http.StatusNotFound {
			t.Errorf("%s: session still answers after its end: %d", tc.name, got)
		}
	}
}

// A chunk sent again from an earlier byte (its answer was lost) counts only
// its new bytes.
func TestResumableUploadChunkSentAgain(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	body := pattern(2<<20, 11)
	session := begin(t, s, "again.bin", "", "{}")
	if got := put(t, session, "bytes 0-1048575/*", body[:1<<20]); got != 308 {
		t.Fatalf("first chunk: %d", got)
	}
	if got := put(t, session, "bytes 524288-2097151/2097152", body[512<<10:]); got != 200 {
		t.Fatalf("chunk sent again: %d", got)
	}
	if got := read(t, s, "raw", "again.bin"); got != string(body) {
		t.Errorf("stored %d bytes differ", len(got))
	}
}

// Two sessions that both may only create the object: the first to finish
// wins, the other gets 412 and stores nothing, though both passed the check
// when they began.
func TestConcurrentSessionsOneWins(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	a, b := pattern(2<<20, 3), pattern(2<<20, 5)
	sa := begin(t, s, "race.bin", "&ifGenerationMatch=0", "{}")
	sb := begin(t, s, "race.bin", "&ifGenerationMatch=0", "{}")
	if got := put(t, sa, "bytes 0-1048575/*", a[:1<<20]); got != 308 {
		t.Fatalf("a, first chunk: %d", got)
	}
	if got := put(t, sb, "bytes 0-1048575/*", b[:1<<20]); got != 308 {
		t.Fatalf("b, first chunk: %d", got)
	}
	if got := put(t, sa, "bytes 1048576-2097151/2097152", a[1<<20:]); got != 200 {
		t.Fatalf("a, last chunk: %d", got)
	}
	if got := put(t, sb, "bytes 1048576-2097151/2097152", b[1<<20:]); got != http.StatusPreconditionFailed {
		t.Errorf("b, last chunk: %d, want 412", got)
	}
	if got := read(t, s, "raw", "race.bin"); got != string(a) {
		t.Errorf("stored bytes are not the winner's")
	}
}

// A session idle for streamIdle releases the backend (other writes go on) and
// still finishes whole, from what it kept.
func TestResumableUploadAfterIdle(t *testing.T) {
	defer func(d time.Duration) { streamIdle = d }(streamIdle)
	streamIdle = 50 * time.Millisecond
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	body := pattern(2<<20+7, 5)
	session := begin(t, s, "slow.bin", "", "{}")
	if got := put(t, session, "bytes 0-1048575/*", body[:1<<20]); got != 308 {
		t.Fatalf("first chunk: %d", got)
	}
	// The session's store holds the backend until it is cut off for keeping
	// this write waiting while its client sends nothing.
	write(t, s, "raw", "other.bin", "other", nil)
	if got := put(t, session, fmt.Sprintf("bytes 1048576-%d/%d", len(body)-1, len(body)), body[1<<20:]); got != 200 {
		t.Fatalf("last chunk: %d", got)
	}
	if got := read(t, s, "raw", "slow.bin"); got != string(body) {
		t.Errorf("stored %d bytes differ", len(got))
	}
	if n := s.up.restarts.Load(); n != 1 {
		t.Errorf("%d sessions stored again from memory, want 1", n)
	}
}

// A session whose client pauses keeps its store as long as nobody else
// wants the backend: it finishes without storing anything again.
func TestResumableUploadPausesAlone(t *testing.T) {
	defer func(d time.Duration) { streamIdle = d }(streamIdle)
	streamIdle = time.Nanosecond // every pause is long
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	body := pattern(3<<20, 17)
	session := begin(t, s, "alone.bin", "", "{}")
	for off := 0; off < len(body); off += 1 << 20 {
		tot, want := "*", 308
		if off+1<<20 == len(body) {
			tot, want = strconv.Itoa(len(body)), 200
		}
		if got := put(t, session, fmt.Sprintf("bytes %d-%d/%s", off, off+1<<20-1, tot), body[off:off+1<<20]); got != want {
			t.Fatalf("chunk at %d: %d", off, got)
		}
	}
	if n := s.up.restarts.Load(); n != 0 {
		t.Errorf("%d sessions stored again from memory, want 0", n)
	}
	if got := read(t, s, "raw", "alone.bin"); got != string(body) {
		t.Errorf("stored %d bytes differ", len(got))
	}
}

// One client writing two objects by turns, each write waiting for the
// server to take it (maxAhead small): the second session's store waits for
// the first's, whose client waits for the second's... until the first idles
// and is cut off. Both objects arrive whole.
func TestInterleavedUploads(t *testing.T) {
	defer func(d time.Duration, n int64) { streamIdle, maxAhead = d, n }(streamIdle, maxAhead)
	streamIdle, maxAhead = 50*time.Millisecond, 512<<10
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c := s.Client()
	defer c.Close()
	ctx := context.Background()
	bodies := [][]byte{pattern(4<<20+1, 7), pattern(4<<20+2, 9)}
	var ws []*storage.Writer
	for i := range bodies {
		w := c.Bucket("raw").Object(fmt.Sprintf("turn-%d.bin", i)).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
		w.ChunkSize = 256 << 10
		w.MD5 = md5Of(bodies[i])
		ws = append(ws, w)
	}
	for off := 0; off < len(bodies[1]); off += 256 << 10 {
		for i, w := range ws {
			if off < len(bodies[i]) {
				if _, err := w.Write(bodies[i][off:min(off+256<<10, len(bodies[i]))]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	for i := range bodies {
		if got := read(t, s, "raw", fmt.Sprintf("turn-%d.bin", i)); got != string(bodies[i]) {
			t.Errorf("turn-%d.bin: stored %d bytes differ", i, len(got))
		}
	}
	if s.up.restarts.Load() == 0 {
		t.Error("no session was cut off: the test did not wait where it meant to")
	}
}
