package replayer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/replay"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

func replayEvent(t *testing.T, body string) event.Event {
	t.Helper()
	ce := event.New()
	ce.SetID("m-1")
	ce.SetType(events.TypePubSubPublished)
	ce.SetSource("//pubsub.googleapis.com/projects/p/topics/lesson-replay")
	if err := ce.SetData("application/json", map[string]any{"message": map[string]any{"data": []byte(body), "messageId": "m-1"}}); err != nil {
		t.Fatal(err)
	}
	return ce
}

// What an operator publishes on lesson-replay: a good request resets the
// lesson from that stage and re-emits its event; a bad one is refused with
// the reason, acknowledged, and changes nothing.
func TestReplayerHandlesOperatorsMessages(t *testing.T) {
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("replayer")
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	topic := "projects/" + project + "/topics/" + events.TopicLessonEnriched
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/tap", Topic: topic}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := logging.New(&logs, "info", project)
	store := lessonstate.New(fs)
	pub := events.NewPublisher(ps)
	defer pub.Close()
	rl, _ := relay.New(store, pub, log)
	r, _ := replay.New(store, rl, log)
	h, err := New(r, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.ApplyDetected(ctx, "L1", lessonstate.Observed{RunID: "run-1", Lesson: lessonstate.Lesson{
		CourseID: "c1", Title: "Intro", Type: "CONTENT", HasMedia: true, MediaStatus: lessonstate.MediaReady, Fingerprint: "f",
		Media: &lessonstate.Media{Kind: "url", Ref: "L1", Ext: "mp4", Fingerprint: "m"},
	}}); err != nil {
		t.Fatal(err)
	}

	for body, says := range map[string]string{
		`{"lessonId":"L1"}`:                     "is not one of",
		`not json`:                              "not {",
		`{"lessonId":"../x","from":"sync"}`:     "not a page id",
		`{"lessonId":"nobody","from":"enrich"}`: "lesson not found",
	} {
		if err := h.Handle(ctx, replayEvent(t, body)); err != nil {
			t.Errorf("%s: %v, want acknowledged", body, err)
		}
		if !strings.Contains(logs.String(), says) {
			t.Errorf("%s: no log says %q", body, says)
		}
	}

	if err := h.Handle(ctx, replayEvent(t, `{"lessonId":"L1","from":"sync"}`)); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got events.LessonEvent
	_ = ps.Subscriber("tap").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		_ = json.Unmarshal(m.Data, &got)
		m.Ack()
		cancel()
	})
	if got.LessonID != "L1" || got.From != lessonstate.StageSync || got.Version != 1 {
		t.Fatalf("re-emitted %+v, want L1 v1 from sync on %s", got, events.TopicLessonEnriched)
	}
}
