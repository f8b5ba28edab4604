// Package sweep re-drives stalled work (DESIGN.md section 4). Pub/Sub
// delivers at least once, and a delivery that finds a stage busy under a live
// lease is acknowledged; if the lease's owner then dies, or a step's event is
// lost, nothing would ever send that work again. The sweeper, on its own
// schedule, finds with one indexed query every lesson whose check time has
// come (a lease that ended, a pending step that waited too long), re-emits the
// step's event through the lesson's outbox, and fails for good what is out of
// attempts. It also publishes whatever earlier writes left in outboxes.
//
// It is idempotent, bounded per run (Batch), and safe to run concurrently
// with itself: each lesson is decided in a Firestore transaction that first
// checks the lesson is still due.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
)

// Store is what the sweeper reads and writes of the lesson store.
type Store interface {
	DueForSweep(ctx context.Context, limit int) ([]string, error)
	Sweep(ctx context.Context, id string) (*lessonstate.Swept, error)
}

// Relay publishes what a sweep queued, and what earlier writes left queued.
type Relay interface {
	Publish(ctx context.Context, lessonID string, entries []lessonstate.Outbox) (int, error)
	Flush(ctx context.Context, grace time.Duration) (int, []error)
}

// Sweeper runs sweeps.
type Sweeper struct {
	store Store
	relay Relay
	batch int
	grace time.Duration
	log   *slog.Logger
}

// OutboxGrace is how long an outbox entry is left to the writer that queued
// it before a sweep publishes it instead.
const OutboxGrace = time.Minute

// New returns a Sweeper looking at no more than batch lessons a run.
func New(store Store, relay Relay, batch int, log *slog.Logger) (*Sweeper, error) {
	if err := setup.Missing("sweep", map[string]any{"store": store, "relay": relay, "logger": log}); err != nil {
		return nil, err
	}
	if batch <= 0 {
		return nil, fmt.Errorf("sweep: batch %d must be positive", batch)
	}
	return &Sweeper{store: store, relay: relay, batch: batch, grace: OutboxGrace, log: log}, nil
}

// Report is what one sweep did.
type Report struct {
	// Flushed counts outbox entries earlier writes had left unpublished.
	Flushed int `json:"flushed"`
	// Due counts the lessons the query found; Redriven, Failed and
	// Rescheduled what was done to them (the rest had moved on).
	Due         int `json:"due"`
	Redriven    int `json:"redriven"`
	Failed      int `json:"failed"`
	Rescheduled int `json:"rescheduled"`
	// More says the batch was full: more may be due, the next run goes on.
	More bool `json:"more"`
	// Actions lists what was done, a line per lesson.
	Actions []Action `json:"actions,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

// Action is what the sweep did to one lesson.
type Action struct {
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
	Step     string `json:"step"`
	Action   string `json:"action"`
	Reason   string `json:"reason"`
}

// Run sweeps once. It returns an error only when it could not even look
// (the query failed); failures on single lessons are in the report.
func (s *Sweeper) Run(ctx context.Context) (Report, error) {
	var r Report
	n, errs := s.relay.Flush(ctx, s.grace)
	r.Flushed = n
	for _, err := range errs {
		r.Errors = append(r.Errors, err.Error())
	}
	ids, err := s.store.DueForSweep(ctx, s.batch)
	if err != nil {
		return r, err
	}
	r.Due, r.More = len(ids), len(ids) == s.batch
	for _, id := range ids {
		if ctx.Err() != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("stopped before lesson %s: %v", id, ctx.Err()))
			break
		}
		if err := s.one(ctx, id, &r); err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	s.log.InfoContext(ctx, "sweep finished", logging.KeyStage, "sweep", "due", r.Due, "redriven", r.Redriven,
		"failed", r.Failed, "rescheduled", r.Rescheduled, "flushed", r.Flushed, "more", r.More, "errors", len(r.Errors))
	return r, nil
}

func (s *Sweeper) one(ctx context.Context, id string, r *Report) error {
	sw, err := s.store.Sweep(ctx, id)
	if err != nil || sw == nil {
		return err
	}
	log := logging.Lesson(s.log, sw.LessonID, sw.Version, sw.Step)
	r.Actions = append(r.Actions, Action{LessonID: sw.LessonID, Version: sw.Version, Step: sw.Step, Action: sw.Action, Reason: sw.Reason})
	switch sw.Action {
	case lessonstate.SweepRescheduled:
		r.Rescheduled++
		log.InfoContext(ctx, "sweep: lesson not stuck; check rescheduled", "reason", sw.Reason)
		return nil
	case lessonstate.SweepFailed:
		r.Failed++
		log.ErrorContext(ctx, "sweep: stage failed for good", "reason", sw.Reason)
	default:
		r.Redriven++
		log.WarnContext(ctx, "sweep: stage re-driven", "reason", sw.Reason)
	}
	if sw.Entry == nil {
		return nil
	}
	if _, err := s.relay.Publish(ctx, sw.LessonID, []lessonstate.Outbox{*sw.Entry}); err != nil {
		// Queued with the decision: the next sweep's flush sends it.
		return errors.Join(fmt.Errorf("lesson %s: %s queued, not yet published", sw.LessonID, sw.Action), err)
	}
	return nil
}
