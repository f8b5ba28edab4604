package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"go.opentelemetry.io/otel/trace"

	"github.com/coursekb/pipeline/local/emulators"
)

// newTopic creates topic and a subscription to it in a fresh project on the
// emulator, and returns a client for that project.
func newTopic(t *testing.T, topic string) (*pubsub.Client, *pubsub.Subscriber) {
	t.Helper()
	emulators.ForTest(t, emulators.PubSub)
	project := emulators.ProjectID("events")
	ctx := t.Context()
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatalf("pubsub client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	tn := fmt.Sprintf("projects/%s/topics/%s", project, topic)
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: tn}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	sn := fmt.Sprintf("projects/%s/subscriptions/%s-sub", project, topic)
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sn, Topic: tn}); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return client, client.Subscriber(sn)
}

// receive acknowledges and returns n messages from sub, failing after 30 s.
func receive(t *testing.T, sub *pubsub.Subscriber, n int) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == n {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	return got
}

// a span context as a function would have it after extracting an incoming
// message's traceparent.
func spanContext() (context.Context, string) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{0xb1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc),
		"00-a102030405060708090a0b0c0d0e0f10-b102030405060708-01"
}

func TestPublishCarriesBodyAttributesAndTrace(t *testing.T) {
	client, sub := newTopic(t, TopicLessonProcessed)
	p := NewPublisher(client)
	defer p.Close()

	ctx, traceparent := spanContext()
	ev := LessonEvent{LessonID: "RE4zW6m6el", Version: 3, CourseID: "1117869", RunID: "run-1", Kind: KindSynced}
	id, err := p.Publish(ctx, TopicLessonProcessed, ev)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if id == "" {
		t.Fatal("Publish returned an empty message id")
	}

	m := receive(t, sub, 1)[0]
	if m.ID != id {
		t.Errorf("received message %s, Publish said %s", m.ID, id)
	}
	got, err := ParseLessonEvent(m.Data)
	if err != nil || got != ev {
		t.Errorf("body %s decodes to %+v (%v), want %+v", m.Data, got, err, ev)
	}
	want := map[string]string{AttrLessonID: "RE4zW6m6el", AttrVersion: "3", AttrKind: KindSynced, AttrTraceparent: traceparent}
	if len(m.Attributes) != len(want) {
		t.Errorf("attributes %v, want %v", m.Attributes, want)
	}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, m.Attributes[k], v)
		}
	}
}

func TestPublishRaw(t *testing.T) {
	client, sub := newTopic(t, TopicLessonEvents)
	p := NewPublisher(client)
	defer p.Close()
	ctx, traceparent := spanContext()

	// An outbox entry without trace context gets the relay's; one that
	// carries its own keeps it; the caller's maps are left alone.
	fresh := map[string]string{AttrLessonID: "A"}
	stored := "00-c102030405060708090a0b0c0d0e0f10-d102030405060708-01"
	kept := map[string]string{AttrLessonID: "B", AttrTraceparent: stored}
	if _, err := p.PublishRaw(ctx, TopicLessonEvents, []byte(`{"lessonId":"A","version":1}`), fresh); err != nil {
		t.Fatalf("PublishRaw: %v", err)
	}
	if _, err := p.PublishRaw(ctx, TopicLessonEvents, []byte(`{"lessonId":"B","version":1}`), kept); err != nil {
		t.Fatalf("PublishRaw: %v", err)
	}
	if len(fresh) != 1 || len(kept) != 2 || kept[AttrTraceparent] != stored {
		t.Fatalf("PublishRaw modified its argument: %v %v", fresh, kept)
	}
	byLesson := map[string]*pubsub.Message{}
	for _, m := range receive(t, sub, 2) {
		byLesson[m.Attributes[AttrLessonID]] = m
	}
	if got := byLesson["A"].Attributes[AttrTraceparent]; got != traceparent {
		t.Errorf("A: traceparent %q, want the relay's %q", got, traceparent)
	}
	if got := byLesson["B"].Attributes[AttrTraceparent]; got != stored {
		t.Errorf("B: traceparent %q, want the stored %q", got, stored)
	}
	var body map[string]any
	if err := json.Unmarshal(byLesson["A"].Data, &body); err != nil || body["lessonId"] != "A" {
		t.Errorf("A: body %s", byLesson["A"].Data)
	}
}

// Concurrent publishes share one publisher per topic; a publish to a missing
// topic reports the server's error; an invalid event is refused before it
// reaches the topic; after Close publishing fails.
func TestPublisherLifecycle(t *testing.T) {
	client, sub := newTopic(t, TopicLessonEnriched)
	p := NewPublisher(client)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := p.Publish(t.Context(), TopicLessonEnriched, LessonEvent{LessonID: fmt.Sprintf("L%d", i), Version: 1})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Publish: %v", err)
		}
	}
	if n := len(p.topics); n != 1 {
		t.Errorf("%d cached publishers for one topic", n)
	}
	receive(t, sub, 20)

	if _, err := p.Publish(t.Context(), TopicLessonEnriched, LessonEvent{LessonID: "../x", Version: 0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid event: err = %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := p.Publish(ctx, "no-such-topic", LessonEvent{LessonID: "L", Version: 1}); err == nil {
		t.Error("publish to a missing topic succeeded")
	}

	p.Close()
	if _, err := p.Publish(t.Context(), TopicLessonEnriched, LessonEvent{LessonID: "L", Version: 1}); !errors.Is(err, ErrPublisherClosed) {
		t.Errorf("after Close: err = %v, want ErrPublisherClosed", err)
	}
}
