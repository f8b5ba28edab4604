package lessonstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/events"
)

// What the sweeper did to a lesson.
const (
	// SweepRedriven: the step's event was queued again (lease expired, or
	// it waited pending too long).
	SweepRedriven = "redriven"
	// SweepFailed: the step was out of attempts or re-drives and is failed
	// with its last reason; the failure is queued for announcement.
	SweepFailed = "failed"
	// SweepRescheduled: nothing was stuck after all (a lease still live);
	// the next check was moved to the right time.
	SweepRescheduled = "rescheduled"
)

// Swept is what the sweeper did to one lesson.
type Swept struct {
	LessonID string
	Version  int
	Step     string
	Action   string
	// Reason says why (the lease that expired, the wait, the last error).
	Reason string
	// Entry is the outbox entry queued in the same write (the re-driven
	// event, or the failure announcement); the caller relays it.
	Entry *Outbox
}

// DueForSweep returns the ids of at most limit lessons whose next check time
// has come, oldest first. It reads nothing but the ids: one query on the
// single field nextCheckAt, which Firestore indexes without configuration.
func (s *Store) DueForSweep(ctx context.Context, limit int) ([]string, error) {
	q := s.client.Collection(CollLessons).
		Where("nextCheckAt", "<=", s.now()).
		OrderBy("nextCheckAt", firestore.Asc).
		Limit(limit).
		Select()
	snaps, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list lessons due for a sweep: %w", err)
	}
	ids := make([]string, 0, len(snaps))
	for _, snap := range snaps {
		ids = append(ids, snap.Ref.ID)
	}
	return ids, nil
}

// Sweep looks at one lesson the query found due, in a transaction: a step
// whose lease expired, or that waited pending past the wait, has its event
// queued again in the lesson's outbox (counting a re-drive); a step out of
// attempts or re-drives is failed with its last reason and the failure
// queued for announcement. It returns nil when there was nothing to do: the
// lesson moved on since the query (another sweeper, or the work itself), so
// concurrent sweeps of one lesson act once.
func (s *Store) Sweep(ctx context.Context, id string) (*Swept, error) {
	ref := s.lessonRef(id)
	var out *Swept
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = nil
		l, err := txLesson(tx, ref)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		now := s.now()
		if l.NextCheckAt.IsZero() || l.NextCheckAt.After(now) {
			return nil // not due any more
		}
		step, rec, ok := l.Due()
		if !ok {
			// Nothing in flight: the check time is stale.
			return tx.Update(ref, []firestore.Update{s.nextCheckUpdate(l, now)})
		}
		sw := &Swept{LessonID: id, Version: l.Version, Step: step}
		switch {
		case rec.State == StateRunning && rec.LeaseUntil.After(now):
			sw.Action = SweepRescheduled
			sw.Reason = fmt.Sprintf("lease of attempt %d live until %s", rec.Attempts, rec.LeaseUntil.UTC().Format(time.RFC3339))
			out = sw
			return tx.Update(ref, []firestore.Update{s.nextCheckUpdate(l, now)})
		case rec.State == StateRunning:
			sw.Reason = fmt.Sprintf("attempt %d did not finish within its lease", rec.Attempts)
			if rec.Error != "" {
				sw.Reason += " (last error: " + rec.Error + ")"
			}
			if rec.Attempts >= s.maxAttempts {
				sw.Action = SweepFailed
				sw.Reason = fmt.Sprintf("%s: out of attempts (%d of %d)", sw.Reason, rec.Attempts, s.maxAttempts)
			}
		case rec.NotBefore.After(now):
			sw.Action = SweepRescheduled
			sw.Reason = fmt.Sprintf("attempt %d failed for now; the next waits until %s", rec.Attempts, rec.NotBefore.UTC().Format(time.RFC3339))
			out = sw
			return tx.Update(ref, []firestore.Update{s.nextCheckUpdate(l, now)})
		case !rec.NotBefore.IsZero():
			// Its backoff is over: the retry is due, not a lost event.
			sw.Reason = fmt.Sprintf("attempt %d failed for now (%s); retrying after the backoff", rec.Attempts, rec.Error)
		default: // pending: its event was sent and nobody took it in time
			sw.Reason = fmt.Sprintf("waited pending with no worker since %s", l.NextCheckAt.Add(-s.pendingAfter).UTC().Format(time.RFC3339))
			if rec.Error != "" {
				sw.Reason += " (last error: " + rec.Error + ")"
			}
			if rec.Redrives >= s.maxAttempts {
				sw.Action = SweepFailed
				sw.Reason = fmt.Sprintf("%s: re-sent %d times, never taken", sw.Reason, rec.Redrives)
			}
		}
		var e events.LessonEvent
		if sw.Action == SweepFailed {
			rec = failRecord(rec, sw.Reason, false, now)
			e = l.failedEvent(step, sw.Reason)
		} else {
			sw.Action = SweepRedriven
			rec.State = StatePending
			rec.Token = ""
			rec.LeaseUntil = time.Time{}
			rec.Version = l.Version
			if rec.NotBefore.IsZero() {
				// A retry after its backoff is the stage's own doing,
				// bounded by its attempts; Redrives bounds lost events.
				rec.Redrives++
			}
			rec.NotBefore = time.Time{}
			rec.Error = sw.Reason
			e = events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: l.LastRunID, From: step}
		}
		entry, err := OutboxEntry(e)
		if err != nil {
			return err
		}
		sw.Entry = &entry
		l.setRecord(step, rec)
		if err := s.txQueueOutbox(tx, ref, []Outbox{entry}, now); err != nil {
			return err
		}
		out = sw
		return s.writeRecords(tx, ref, l, now, step)
	})
	if err != nil {
		return nil, fmt.Errorf("sweep lesson %s: %w", id, err)
	}
	return out, nil
}
