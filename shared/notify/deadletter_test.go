package notify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/notify"
)

// deadLetterOnEmulator makes the Pub/Sub emulator dead-letter a message the
// way production does — a subscription with a dead-letter policy, a
// subscriber that nacks every delivery — and returns the message as the
// dead-letter topic's subscriber receives it.
func deadLetterOnEmulator(t *testing.T, data []byte, attrs map[string]string) *pubsub.Message {
	t.Helper()
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("dlq")
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatalf("pubsub client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	name := func(kind, id string) string { return fmt.Sprintf("projects/%s/%s/%s", project, kind, id) }
	for _, topic := range []string{events.TopicLessonDiscovered, "lesson-discovered-dlq"} {
		if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name("topics", topic)}); err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	for _, sub := range []*pubsubpb.Subscription{
		{Name: name("subscriptions", "downloader-sub"), Topic: name("topics", events.TopicLessonDiscovered),
			DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{DeadLetterTopic: name("topics", "lesson-discovered-dlq"), MaxDeliveryAttempts: 5}},
		{Name: name("subscriptions", "lesson-discovered-dlq-notifier"), Topic: name("topics", "lesson-discovered-dlq")},
	} {
		if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil {
			t.Fatalf("create subscription %s: %v", sub.Name, err)
		}
	}
	pub := client.Publisher(events.TopicLessonDiscovered)
	defer pub.Stop()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs}).Get(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}

	// The downloader that never manages: nack every delivery.
	nackCtx, stopNacking := context.WithCancel(ctx)
	defer stopNacking()
	go client.Subscriber(name("subscriptions", "downloader-sub")).Receive(nackCtx, func(_ context.Context, m *pubsub.Message) { m.Nack() })

	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		dead *pubsub.Message
	)
	err = client.Subscriber(name("subscriptions", "lesson-discovered-dlq-notifier")).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		dead = m
		mu.Unlock()
		cancel()
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("receive dead letters: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if dead == nil {
		t.Fatal("no dead letter within 60 s of a subscriber nacking every delivery")
	}
	return dead
}

// A message that exhausted its subscription's deliveries alerts at once,
// naming the subscription, the delivery count and the lesson it was about,
// with the lesson's title read from the store.
func TestDeadLetterAlertsAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.putCourse()
	f.saveRun(lessonstate.Run{ID: "run-1", StartedAt: t0})
	f.detect("run-1", "Vars", "Variables", lessonstate.MediaReady, 1, 1)
	ev := events.LessonEvent{LessonID: "Vars", Version: 1, CourseID: courseID, RunID: "run-1"}
	m := deadLetterOnEmulator(t, []byte(`{"lessonId":"Vars","version":1,"courseId":"4100001","runId":"run-1"}`), ev.Attributes())

	ce := pushEvent(t, "lesson-discovered-dlq", m.ID, m.Data, m.Attributes)
	f.mustHandle(ce)
	msgs := f.slack.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d Slack messages for a dead letter, want 1 at once", len(msgs))
	}
	contains(t, "dead-letter alert", msgs[0].AllText(),
		"Dead letter on downloader-sub",
		`Pub/Sub gave up on the message about "Variables" (Vars) after 5 deliveries on downloader-sub.`,
		"*Source subscription*\ndownloader-sub", "*Deliveries*\n5", "*Lesson*\nVariables (Vars v1)",
		"*Dead-letter message*\n"+m.ID, `"lessonId":"Vars"`,
		"jsonPayload.lessonId%3D%22Vars%22",
	)
	if mails := f.smtp.Messages(); len(mails) != 1 || mails[0].Subject != "Dead letter on downloader-sub" {
		t.Errorf("e-mails %d, want the alarm", len(mails))
	}
	// The dead-letter topic redelivering it sends nothing more.
	f.mustHandle(ce)
	if n := len(f.slack.Messages()); n != 1 {
		t.Errorf("%d messages after a redelivered dead letter, want 1", n)
	}
	if rec := f.record(notify.DeadLetterKey("downloader-sub", m.ID)); rec.State != notify.StateSent || rec.LessonID != "Vars" {
		t.Errorf("record %+v", rec)
	}
}

// A dead letter's data may be anything: binary, text that is not JSON, a
// lesson event that does not validate. Each still alerts, saying what it
// can.
func TestDeadLetterOfAnyData(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	dlAttrs := func(extra map[string]string) map[string]string {
		a := map[string]string{
			notify.AttrDeadLetterSubscription: "projects/coursekb-prod/subscriptions/lesson-enriched-syncer",
			notify.AttrDeadLetterProject:      "coursekb-prod",
			notify.AttrDeadLetterDeliveries:   "15",
			notify.AttrDeadLetterPublishTime:  "2026-03-02T08:00:00Z",
		}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	cases := []struct {
		name  string
		topic string
		data  []byte
		attrs map[string]string
		wants []string
	}{
		{"binary", "lesson-enriched-syncer-dead-letter", []byte{0xff, 0x00, 0x12, 0x80}, dlAttrs(nil),
			[]string{"Pub/Sub gave up on a message after 15 deliveries on lesson-enriched-syncer.", "Data: 4 bytes, not text", "*First published*\n2026-03-02T08:00:00Z"}},
		{"text, not JSON", "lesson-enriched-syncer-dead-letter", []byte("hello <world> & co"), dlAttrs(nil),
			[]string{"```Data:\nhello &lt;world&gt; &amp; co```"}},
		{"invalid lesson event, lesson in attributes", "lesson-enriched-syncer-dead-letter", []byte(`{"lessonId":"Vars","version":0}`),
			dlAttrs(map[string]string{events.AttrLessonID: "Vars", events.AttrVersion: "0"}),
			[]string{"the message about lesson Vars", "*Lesson*\nVars"}},
		{"unsafe lesson id is not read", "lesson-enriched-syncer-dead-letter", []byte(`{"lessonId":"../x","version":1}`), dlAttrs(nil),
			[]string{"Pub/Sub gave up on a message after"}},
		{"published by hand to a dead-letter topic", "lesson-replay-dead-letter", []byte("?"), nil,
			[]string{"Dead letter on topic:lesson-replay-dead-letter", "*Deliveries*\nunknown"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.slack.Messages())
			f.mustHandle(pushEvent(t, c.topic, fmt.Sprintf("dl-%d", i), c.data, c.attrs))
			msgs := f.slack.Messages()
			if len(msgs) != before+1 {
				t.Fatalf("%d new messages, want 1", len(msgs)-before)
			}
			contains(t, "alert", msgs[len(msgs)-1].AllText(), c.wants...)
		})
	}
}

// Input that can never be used is refused by Decode as events.ErrInvalid
// (the function acknowledges it): a lesson-events message that is not a
// lesson event or has another kind, a CloudEvent that is not a Pub/Sub
// message.
func TestDecodeRefusesUnusableInput(t *testing.T) {
	ce := pushEvent(t, events.TopicLessonEvents, "m1", []byte("not json"), nil)
	if _, err := notify.Decode(ce); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("non-JSON lesson event: %v", err)
	}
	ce = lessonEvent(t, "m2", events.LessonEvent{LessonID: "A", Version: 1, Kind: "replayed"})
	if _, err := notify.Decode(ce); !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), `"replayed"`) {
		t.Errorf("unknown kind: %v", err)
	}
	ce = lessonEvent(t, "m3", events.LessonEvent{LessonID: "A", Version: 1, Kind: events.KindSynced})
	ce.SetType(events.TypeStorageFinalize)
	if _, err := notify.Decode(ce); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("storage event: %v", err)
	}
	in, err := notify.Decode(lessonEvent(t, "m4", events.LessonEvent{LessonID: "A", Version: 2, RunID: "r", Kind: events.KindRemoved}))
	if err != nil || in.Lesson == nil || in.DeadLetter != nil || in.Lesson.Version != 2 {
		t.Errorf("valid lesson event: %+v %v", in, err)
	}
}
