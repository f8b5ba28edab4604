package meter

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coursekb/pipeline/local/emulators"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

// Through the proxy a real Firestore client works as against the emulator,
// and what it writes, deletes and reads is counted by collection, a
// transaction's writes once it committed; the quiet door counts nothing.
func TestFirestoreCountedAtTheDoor(t *testing.T) {
	emu := emulators.ForTest(t, emulators.Firestore)
	p, err := Start(emu.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx := context.Background()
	t.Setenv(emulators.Firestore.EnvVar(), p.Addr())
	proj := emulators.ProjectID("meter")
	fs, err := firestore.NewClient(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()

	lesson := fs.Collection("lessons").Doc("L1")
	if _, err := lesson.Set(ctx, map[string]any{"title": "uno", "at": firestore.ServerTimestamp}); err != nil {
		t.Fatal(err)
	}
	if _, err := lesson.Collection("outbox").Doc("e1").Set(ctx, map[string]any{"topic": "t"}); err != nil {
		t.Fatal(err)
	}
	if err := fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(lesson); err != nil {
			return err
		}
		return tx.Update(lesson, []firestore.Update{{Path: "title", Value: "dos"}})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := lesson.Collection("outbox").Doc("e1").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	docs, err := fs.Collection("runs").Documents(ctx).GetAll()
	if err != nil || len(docs) != 0 {
		t.Fatalf("query: %v, %d docs", err, len(docs))
	}
	if _, err := fs.Collection("lessons").Doc("nope").Get(ctx); status.Code(err) != codes.NotFound {
		t.Fatalf("get of a missing document: %v, want NotFound", err)
	}

	c := p.Counts()
	if c.Writes["lessons"] != 2 || c.Writes["lessons/outbox"] != 1 || c.Deletes["lessons/outbox"] != 1 {
		t.Errorf("writes %v deletes %v, want lessons 2, lessons/outbox 1 and 1 delete", c.Writes, c.Deletes)
	}
	if c.LessonWrites["L1"] != 4 || c.TotalWrites() != 4 {
		t.Errorf("lesson writes %v, total %d; want 4 for L1", c.LessonWrites, c.TotalWrites())
	}
	if c.Commits != 4 || c.Transactions != 1 {
		t.Errorf("%d commits, %d transactions; want 4 and 1", c.Commits, c.Transactions)
	}
	// The transaction's get, the empty query (billed one read) and the
	// missing document.
	if c.Reads["lessons"] != 2 || c.Reads["runs"] != 1 || c.Queries != 1 {
		t.Errorf("reads %v after %d queries, want lessons 2, runs 1, one query", c.Reads, c.Queries)
	}

	// The quiet door forwards and counts nothing.
	t.Setenv(emulators.Firestore.EnvVar(), p.QuietAddr())
	quiet, err := firestore.NewClient(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	before := p.Counts()
	snap, err := quiet.Collection("lessons").Doc("L1").Get(ctx)
	if err != nil || snap.Data()["title"] != "dos" {
		t.Fatalf("quiet read: %v %v", err, snap.Data())
	}
	if d := p.Counts().Sub(before); d.TotalReads() != 0 || len(d.Calls) != 0 {
		t.Errorf("the quiet door counted %+v", d)
	}
}

// Publishing and pulling through the proxy: messages and bytes by topic,
// by lesson, and the messages handed to the subscription.
func TestPubSubCountedAtTheDoor(t *testing.T) {
	emu := emulators.ForTest(t, emulators.PubSub)
	p, err := Start(emu.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx := context.Background()
	t.Setenv(emulators.PubSub.EnvVar(), p.Addr())
	proj := emulators.ProjectID("meter")
	ps, err := pubsub.NewClient(ctx, proj)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	topic := "projects/" + proj + "/topics/lesson-discovered"
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	sub := "projects/" + proj + "/subscriptions/downloader"
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		t.Fatal(err)
	}
	pub := ps.Publisher("lesson-discovered")
	for _, id := range []string{"L1", "L2", "L2"} {
		if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(`{"lessonId":"` + id + `"}`), Attributes: map[string]string{"lessonId": id}}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pub.Stop()
	got := 0
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_ = ps.Subscriber("downloader").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got++
		if got == 3 {
			cancel()
		}
	})
	c := p.Counts()
	if c.Published["lesson-discovered"] != 3 || c.LessonMessages["L2"] != 2 || c.LessonMessages["L1"] != 1 {
		t.Errorf("published %v by lesson %v, want 3 (L1 once, L2 twice)", c.Published, c.LessonMessages)
	}
	if want := int64(3*len(`{"lessonId":"L1"}`) + 3*len("lessonIdL1")); c.PublishedBytes["lesson-discovered"] != want {
		t.Errorf("%d bytes published, want %d", c.PublishedBytes["lesson-discovered"], want)
	}
	if got != 3 || c.Delivered["downloader"] != 3 {
		t.Errorf("received %d, counted %v delivered; want 3", got, c.Delivered)
	}
}

// The functions' door times requests by entry point and answers 502 when
// the functions cannot be reached.
func TestFunctionsDoorTimesRequests(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every function takes 50 ms: what the door must time.
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		if r.URL.Path == "/Broken" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	f, err := StartFunctions(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, path := range []string{"/Downloader", "/Downloader", "/Broken"} {
		resp, err := http.Post(f.URL()+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	backend.Close()
	resp, err := http.Post(f.URL()+"/Syncer", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a request to a dead process answered %s, want 502", resp.Status)
	}
	c := f.Counts()
	if c.Requests["Downloader"] != 2 || c.Seconds["Downloader"] < 0.1 || c.Failed["Broken"] != 1 || c.Failed["Syncer"] != 1 {
		t.Errorf("counts %+v: want 2 Downloader requests of >= 0.1 s, Broken and Syncer failed", c)
	}
}
