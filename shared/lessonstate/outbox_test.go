package lessonstate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
)

// Acknowledging an outbox does not touch the lesson document, so it does not
// contend with the claim the published event triggers on that document: an
// AckOutbox made while a Claim's transaction holds the lesson completes at
// once, and the claim commits on its first attempt.
func TestAckOutboxDoesNotContendWithClaim(t *testing.T) {
	var (
		s       *Store
		ob      []Outbox
		calls   int
		ackErr  error
		ackTook time.Duration
	)
	s, client, _ := newStore(t, WithTokenSource(func() string {
		// Called inside Claim's transaction, after it read the lesson.
		calls++
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		ackErr = s.AckOutbox(ctx, "L1", ob)
		ackTook = time.Since(start)
		return "token-1"
	}))
	ctx := t.Context()
	create(t, s, "L1")
	ob = outboxOf(t, s, "L1")
	if len(ob) != 1 {
		t.Fatalf("outbox %+v, want one entry", ob)
	}

	// On its own, AckOutbox leaves the lesson document as it was.
	create(t, s, "L2")
	before := updateTime(t, client, CollLessons, "L2")
	if err := s.AckOutbox(ctx, "L2", outboxOf(t, s, "L2")); err != nil {
		t.Fatal(err)
	}
	if after := updateTime(t, client, CollLessons, "L2"); !after.Equal(before) {
		t.Fatalf("AckOutbox wrote the lesson document: update time %v -> %v", before, after)
	}

	before = updateTime(t, client, CollLessons, "L1")
	c, err := s.Claim(ctx, "L1", StageDownload, 1, time.Minute)
	if err != nil || c.Outcome != Claimed || c.Token != "token-1" {
		t.Fatalf("claim: %v %q, %v", c.Outcome, c.Token, err)
	}
	t.Logf("AckOutbox inside the claim's transaction took %v", ackTook)
	if ackErr != nil {
		t.Fatalf("AckOutbox while a claim holds the lesson: %v", ackErr)
	}
	if calls != 1 {
		t.Fatalf("claim transaction ran %d times, want 1 (the acknowledgement made it retry)", calls)
	}
	if after := updateTime(t, client, CollLessons, "L1"); after.Equal(before) {
		t.Fatal("claim did not write the lesson")
	}
	if got := outboxOf(t, s, "L1"); len(got) != 0 {
		t.Fatalf("outbox after ack: %+v", got)
	}
}

// Outboxes kept in the lesson document's "outbox" array (before they moved
// to the subcollection) are neither lost nor reordered.

// An event goes to the topic that feeds its first stage; removals (and any
// other kind) to lesson-events.
func TestOutboxEntryTopic(t *testing.T) {
	for _, tc := range []struct {
		ev   events.LessonEvent
		want string
	}{
		{events.LessonEvent{LessonID: "a", Version: 1, From: StageDownload}, events.TopicLessonDiscovered},
		{events.LessonEvent{LessonID: "a", Version: 2, From: StageEnrich}, events.TopicLessonProcessed},
		{events.LessonEvent{LessonID: "a", Version: 2, Kind: events.KindRemoved}, events.TopicLessonEvents},
	} {
		o, err := OutboxEntry(tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		if o.Topic != tc.want || !strings.Contains(string(o.Data), `"lessonId":"a"`) {
			t.Errorf("%+v: entry %s %s, want topic %s", tc.ev, o.Topic, o.Data, tc.want)
		}
	}
}
