// Package relay publishes the events the lesson store queued in lessons'
// outboxes (lessonstate's transactional outbox) and acknowledges them once
// published. Every writer that announces something — detection, a failed
// stage, the sweeper — queues the event in the same Firestore write as the
// change, then hands it here; whatever a crash leaves unpublished is sent by
// the next Flush (the detector and the sweeper flush on every run).
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Store is the outbox side of the lesson store.
type Store interface {
	PendingOutbox(ctx context.Context) ([]lessonstate.Lesson, error)
	AckOutbox(ctx context.Context, id string, published []lessonstate.Outbox) error
}

// Publisher publishes a message body with its attributes.
type Publisher interface {
	PublishRaw(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// Relay publishes outbox entries. It is safe for concurrent use.
type Relay struct {
	store Store
	pub   Publisher
	log   *slog.Logger
}

// New returns a Relay; every dependency is required.
func New(store Store, pub Publisher, log *slog.Logger) (*Relay, error) {
	var missing []error
	if store == nil {
		missing = append(missing, errors.New("store is nil"))
	}
	if pub == nil {
		missing = append(missing, errors.New("publisher is nil"))
	}
	if log == nil {
		missing = append(missing, errors.New("logger is nil"))
	}
	if err := errors.Join(missing...); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &Relay{store: store, pub: pub, log: log}, nil
}

// Publish publishes a lesson's entries in order and acknowledges those that
// went out. It stops at the first failure so the rest keep their order: they
// stay in the outbox for the next Flush. It returns how many were published.
func (r *Relay) Publish(ctx context.Context, lessonID string, entries []lessonstate.Outbox) (int, error) {
	var (
		published []lessonstate.Outbox
		failed    error
	)
	for _, e := range entries {
		attrs, err := attributes(e.Data)
		if err != nil {
			failed = fmt.Errorf("lesson %s: outbox entry for %s is not a lesson event (left in the outbox): %w", lessonID, e.Topic, err)
			break
		}
		id, err := r.pub.PublishRaw(ctx, e.Topic, e.Data, attrs)
		if err != nil {
			failed = fmt.Errorf("lesson %s: publish to %s (left in the outbox): %w", lessonID, e.Topic, err)
			break
		}
		r.log.DebugContext(ctx, "outbox event published", "lessonId", lessonID, "topic", e.Topic, "messageId", id)
		published = append(published, e)
	}
	if len(published) > 0 {
		if err := r.store.AckOutbox(ctx, lessonID, published); err != nil {
			// Published but still queued: the next Flush sends them again,
			// and every consumer is idempotent.
			failed = errors.Join(failed, fmt.Errorf("lesson %s: acknowledge outbox: %w", lessonID, err))
		}
	}
	return len(published), failed
}

// Event publishes one event the store queued for a lesson (a failure
// announcement, a re-drive, a detection event).
func (r *Relay) Event(ctx context.Context, lessonID string, ev events.LessonEvent) error {
	o, err := lessonstate.OutboxEntry(ev)
	if err != nil {
		return fmt.Errorf("lesson %s: %w", lessonID, err)
	}
	_, err = r.Publish(ctx, lessonID, []lessonstate.Outbox{o})
	return err
}

// Flush publishes every lesson's pending outbox entries queued more than
// grace ago, and what follows them in their lesson's order. It returns how
// many entries went out and one error per lesson that kept some.
//
// The grace leaves a writer the time to relay what it just queued itself:
// a flush racing the writer would publish the same entry twice (harmless —
// every consumer is idempotent — but noisy). What is still queued after the
// grace was left by a writer that died or could not publish.
func (r *Relay) Flush(ctx context.Context, grace time.Duration) (int, []error) {
	pending, err := r.store.PendingOutbox(ctx)
	if err != nil {
		return 0, []error{fmt.Errorf("read pending outboxes: %w", err)}
	}
	var (
		n    int
		errs []error
	)
	cutoff := time.Now().Add(-grace)
	for _, l := range pending {
		if len(l.Outbox) == 0 || l.Outbox[0].QueuedAt.After(cutoff) {
			continue
		}
		r.log.InfoContext(ctx, "publishing what an earlier write left in the outbox", "lessonId", l.ID, "events", len(l.Outbox))
		k, err := r.Publish(ctx, l.ID, l.Outbox)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errs
}

// attributes are the Pub/Sub attributes of an outbox entry, read from its
// body.
func attributes(data []byte) (map[string]string, error) {
	var ev events.LessonEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev.Attributes(), nil
}
