package gcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	// A cancelled upload stores nothing.
	cctx, cancel := context.WithCancel(ctx)
	w = c.Bucket("raw").Object("cancelled.mp4").NewWriter(cctx)
	w.ChunkSize = 1 << 20
	w.Write(body[:3<<20])
	cancel()
	w.Close()
	if _, err := c.Bucket("raw").Object("cancelled.mp4").Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("cancelled upload: %v", err)
	}
}

// The front holds the last bytes back until the end is known: uploads whose
// last request brings no bytes, or that are smaller than what is held back,
// arrive whole; a declared MD5 that does not match stores nothing.
func TestResumableUploadEnds(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Root: t.TempDir(), Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	put := func(session, rng string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPut, session, bytes.NewReader(body))
		req.Header.Set("Content-Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	begin := func(name, resource string) string {
		resp, err := http.Post(s.URL()+"/upload/storage/v1/b/raw/o?uploadType=resumable&name="+name, "application/json", strings.NewReader(resource))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i * 13)
	}
	for _, tc := range []struct {
		name  string
		parts []int // request sizes; the last request declares the total
	}{
		{"empty-end.bin", []int{1 << 20, 1 << 20, 1 << 20, 0}},
		{"tiny.bin", []int{5, 5}},
		{"one.bin", []int{100}},
		{"nothing.bin", []int{0}},
	} {
		session := begin(tc.name, "{}")
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
			if got := put(session, rng, body[off:off+n]); got != want {
				t.Fatalf("%s: request %d: status %d", tc.name, i, got)
			}
			off += n
		}
		if got := read(t, s, "raw", tc.name); got != string(body[:total]) {
			t.Errorf("%s: stored %d bytes, want %d", tc.name, len(got), total)
		}
	}

	session := begin("bad-md5.bin", `{"md5Hash":"AAAAAAAAAAAAAAAAAAAAAA=="}`)
	put(session, "bytes 0-1048575/*", body[:1<<20])
	if got := put(session, "bytes 1048576-2097151/2097152", body[1<<20:2<<20]); got != http.StatusBadRequest {
		t.Errorf("md5 mismatch: status %d", got)
	}
	if _, err := s.Client().Bucket("raw").Object("bad-md5.bin").Attrs(context.Background()); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("md5 mismatch stored the object: %v", err)
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
	body := make([]byte, 2<<20+7)
	for i := range body {
		body[i] = byte(i * 5)
	}
	resp, err := http.Post(s.URL()+"/upload/storage/v1/b/raw/o?uploadType=resumable&name=slow.bin", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	session := resp.Header.Get("Location")
	put := func(rng string, b []byte) int {
		req, _ := http.NewRequest(http.MethodPut, session, bytes.NewReader(b))
		req.Header.Set("Content-Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put("bytes 0-1048575/*", body[:1<<20]); got != 308 {
		t.Fatalf("first chunk: %d", got)
	}
	time.Sleep(4 * streamIdle)
	write(t, s, "raw", "other.bin", "other", nil)
	if got := put(fmt.Sprintf("bytes 1048576-%d/%d", len(body)-1, len(body)), body[1<<20:]); got != 200 {
		t.Fatalf("last chunk: %d", got)
	}
	if got := read(t, s, "raw", "slow.bin"); got != string(body) {
		t.Errorf("stored %d bytes differ", len(got))
	}
}
