package detect

import (
	"context"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Every event the store queues is published right after the write that
// queued it, through the relay, and acknowledged once out. What a crash or
// a Pub/Sub failure leaves queued is published by the next run's flush,
// first thing, in order per lesson.

// flushOutbox publishes what earlier runs left in outboxes.
func (r *run) flushOutbox(ctx context.Context) {
	pending, err := r.d.store.PendingOutbox(ctx)
	if err != nil {
		r.runError(ctx, err, "read pending outboxes (this run's events are left in outboxes for the next run): %v", err)
		r.mu.Lock()
		r.holdAll = true
		r.mu.Unlock()
		return
	}
	for _, l := range pending {
		if len(l.Outbox) == 0 {
			continue
		}
		r.log.InfoContext(ctx, "publishing an earlier run's outbox", "lessonId", l.ID, "events", len(l.Outbox))
		r.publish(ctx, l.ID, l.Outbox)
	}
}

// publish publishes a lesson's outbox entries in order and acknowledges the
// ones that went out. After a failure the lesson is held: what it queues
// later in this run stays behind the unpublished entry, in order, for the
// next run.
func (r *run) publish(ctx context.Context, id string, entries []lessonstate.Outbox) {
	r.mu.Lock()
	held := r.holdAll || r.held[id]
	r.mu.Unlock()
	if held {
		r.log.WarnContext(ctx, "event left in the outbox behind an unpublished one", "lessonId", id)
		return
	}
	if _, err := r.d.relay.Publish(ctx, id, entries); err != nil {
		r.runError(ctx, err, "%v (the next run publishes it)", err)
		r.mu.Lock()
		r.held[id] = true
		r.mu.Unlock()
	}
}

// publishEvent publishes the event the store just queued for a lesson.
func (r *run) publishEvent(ctx context.Context, id string, ev events.LessonEvent) {
	o, err := lessonstate.OutboxEntry(ev)
	if err != nil {
		r.runError(ctx, err, "lesson %s: %v (left in the outbox)", id, err)
		return
	}
	r.publish(ctx, id, []lessonstate.Outbox{o})
}
