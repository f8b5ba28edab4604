package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
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
