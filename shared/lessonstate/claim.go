package lessonstate

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/events"
)

// Claim tries to take stage of lesson lessonID for the event's version, for
// lease. It follows DESIGN.md section 4: the outcome says whether the caller
// now owns the stage (Claimed) or must acknowledge and stop (AlreadyDone,
// AlreadyFailed, Busy, Stale, Skipped). ErrNotFound means the lesson does not
// exist; ErrVersionAhead means the event is newer than the document (retry).
//
// Acknowledging a Busy delivery is safe because the lease ends: if its owner
// dies, the sweeper re-emits the stage's event after the lease.
func (s *Store) Claim(ctx context.Context, lessonID, stage string, version int, lease time.Duration) (Claim, error) {
	if !validStage(stage) {
		return Claim{}, fmt.Errorf("claim %s of lesson %s v%d: unknown stage", stage, lessonID, version)
	}
	ref := s.lessonRef(lessonID)
	var c Claim
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		c = Claim{}
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		now := s.now()
		c.Lesson = l
		c.Stage = l.Stages[stage]
		rec := c.Stage
		switch {
		case l.Removed || version < l.Version:
			c.Outcome = Stale
			return nil
		case version > l.Version:
			return fmt.Errorf("%w (document at v%d)", ErrVersionAhead, l.Version)
		case rec.Version > version:
			// Records never run ahead of their lesson; if one does, the
			// event is not the newest word on this stage.
			c.Outcome = Stale
			return nil
		case rec.Version == version && rec.State == StateSkipped:
			c.Outcome = Skipped
			return nil
		case rec.Version == version && rec.State == StateDone:
			c.Outcome = AlreadyDone
			return nil
		case rec.Version == version && rec.State == StateFailed:
			c.Outcome = AlreadyFailed
			return nil
		case rec.Version == version && rec.State == StateRunning && rec.LeaseUntil.After(now):
			c.Outcome = Busy
			return nil
		case rec.Version == version && rec.State == StatePending && rec.NotBefore.After(now):
			// Backing off after a failure: the sweeper sends the event
			// again when the wait is over.
			c.Outcome = Busy
			return nil
		}
		attempts := 1
		if rec.Version == version {
			attempts = rec.Attempts + 1
		}
		rec = Stage{
			State:      StateRunning,
			Version:    version,
			Attempts:   attempts,
			Token:      s.token(),
			LeaseUntil: now.Add(lease),
			StartedAt:  now,
		}
		if c.Stage.Version == version {
			// Outputs an earlier attempt of this version left (an operation
			// name, a partial upload) let this attempt resume; its re-drive
			// count keeps bounding work that is never claimed.
			rec.Outputs = c.Stage.Outputs
			rec.Redrives = c.Stage.Redrives
		}
		l.setRecord(stage, rec)
		if err := s.writeRecords(tx, ref, l, now, stage); err != nil {
			return err
		}
		c.Outcome = Claimed
		c.Token = rec.Token
		c.Stage = rec
		c.Lesson = l
		return nil
	})
	if err != nil {
		return Claim{}, fmt.Errorf("claim %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return c, nil
}

// Complete records the stage as done with its outputs. The caller must still
// hold the claim (same token and version), else ErrLeaseLost. Completing
// twice with the same token is harmless: the second call changes nothing.
//
// Completing a branch of the process step (transcribe, analyze) when the
// other branch is finished too completes the process step: the join is
// recorded where both branches' records are.
func (s *Store) Complete(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string) error {
	return s.CompleteWithUsage(ctx, lessonID, stage, version, token, outputs, nil)
}

// CompleteWithUsage is Complete that also adds usage to the lesson's cost
// ledger (Lesson.Usage, by meter, as RecordUsage does) in the same write. The
// usage is added only by the call that completes the stage: a repeated
// Complete, or one that lost the claim (ErrLeaseLost), adds nothing, so a
// retry after a lost reply does not count the paid calls twice.
func (s *Store) CompleteWithUsage(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string, usage map[string]float64) error {
	if !validStage(stage) {
		return fmt.Errorf("complete %s of lesson %s v%d: unknown stage", stage, lessonID, version)
	}
	ref := s.lessonRef(lessonID)
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		rec := l.Stages[stage]
		if rec.State == StateDone && rec.Token == token && rec.Version == version && token != "" {
			return nil // a repeated Complete after a lost reply
		}
		if err := holds(rec, version, token); err != nil {
			return err
		}
		now := s.now()
		rec.State = StateDone
		rec.FinishedAt = now
		rec.LeaseUntil = time.Time{}
		rec.Error = ""
		rec.Outputs = outputs
		l.setRecord(stage, rec)
		written := []string{stage}
		if isProcessBranch(stage) && l.joinProcess(version, now) {
			written = append(written, StepProcess)
		}
		return s.writeRecordsWithUsage(tx, ref, l, now, usage, written...)
	})
	if err != nil {
		return fmt.Errorf("complete %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return nil
}

// joinProcess marks the process step done when both of its branches are
// finished at version, and reports whether it changed the record.
func (l *Lesson) joinProcess(version int, now time.Time) bool {
	for _, st := range processBranches {
		if !finished(l.Stages[st], version) {
			return false
		}
	}
	p := l.Stages[StepProcess]
	if p.Version != version || p.State == StateDone {
		return false
	}
	p.State = StateDone
	p.FinishedAt = now
	p.LeaseUntil = time.Time{}
	p.Token = ""
	p.Error = ""
	l.setRecord(StepProcess, p)
	return true
}

// Failure is what Fail recorded.
type Failure struct {
	// State is StatePending (a retryable failure with attempts left: the
	// redelivery, or the sweeper, tries again) or StateFailed.
	State string
	// Announce is the failed event queued in the lesson's outbox when the
	// stage failed for good; the caller publishes it (relay) so that it is
	// announced once. Nil otherwise.
	Announce *events.LessonEvent
}

// Fail records a failed attempt. A retryable failure with attempts left puts
// the stage back to pending, so the redelivery of the message claims it at
// once; otherwise the stage is failed for this version, with reason, and a
// failed event is queued in the lesson's outbox in the same write.
//
// A branch of the process step failing for good fails the process step
// with it; failing retryably puts the process step back to pending too, so
// the sweeper starts a new workflow execution after the pending wait.
func (s *Store) Fail(ctx context.Context, lessonID, stage string, version int, token, reason string, retryable bool) (Failure, error) {
	if !validStage(stage) {
		return Failure{}, fmt.Errorf("fail %s of lesson %s v%d: unknown stage", stage, lessonID, version)
	}
	ref := s.lessonRef(lessonID)
	var f Failure
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		f = Failure{}
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		rec := l.Stages[stage]
		if err := holds(rec, version, token); err != nil {
			return err
		}
		now := s.now()
		rec = failRecord(rec, reason, retryable && rec.Attempts < s.maxAttempts, now)
		// The next attempt waits out a backoff. A process branch is
		// retried by a new execution of the process step, which waits
		// instead: the branch itself must take the new execution's call.
		retryAt := time.Time{}
		if rec.State == StatePending {
			if d := s.backoff(rec.Attempts); d > 0 {
				retryAt = now.Add(d)
			}
			if !isProcessBranch(stage) {
				rec.NotBefore = retryAt
			}
		}
		l.setRecord(stage, rec)
		written := []string{stage}
		if isProcessBranch(stage) {
			// The process step follows its branch: back to pending for a
			// new execution, or failed with it. A pending process step
			// (an earlier attempt of this branch failed retryably and the
			// sweeper has not re-driven it yet) must fail too when the
			// branch fails for good: re-driven, it would start an
			// execution whose branch answers "failed already", and stay
			// running, unwatched, until its long lease ends.
			p := l.Stages[StepProcess]
			if p.Version == version && (p.State == StateRunning || (p.State == StatePending && rec.State == StateFailed)) {
				p = failRecord(p, stage+": "+reason, rec.State == StatePending, now)
				if p.State == StatePending {
					p.NotBefore = retryAt
				}
				l.setRecord(StepProcess, p)
				written = append(written, StepProcess)
			}
		}
		f.State = rec.State
		if rec.State == StateFailed {
			e := l.failedEvent(stage, reason)
			if err := l.queue(e); err != nil {
				return err
			}
			f.Announce = &e
		}
		if err := s.writeRecords(tx, ref, l, now, written...); err != nil {
			return err
		}
		return s.txQueueOutbox(tx, ref, l.Outbox, now)
	})
	if err != nil {
		return Failure{}, fmt.Errorf("fail %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return f, nil
}

// failRecord is rec after a failed attempt: back to pending (nobody holds a
// pending stage, so the token goes with the lease) or failed.
func failRecord(rec Stage, reason string, pending bool, now time.Time) Stage {
	rec.Error = reason
	rec.LeaseUntil = time.Time{}
	if pending {
		rec.State = StatePending
		rec.Token = ""
	} else {
		rec.State = StateFailed
		rec.FinishedAt = now
	}
	return rec
}

// failedEvent is the lesson-events message announcing that stage failed for
// good at the lesson's version.
func (l Lesson) failedEvent(stage, reason string) events.LessonEvent {
	return events.LessonEvent{
		LessonID: l.ID, Version: l.Version, CourseID: l.CourseID, RunID: l.LastRunID,
		From: stage, Kind: events.KindFailed, Reason: reason,
	}
}

// holds reports whether token still owns rec for version.
func holds(rec Stage, version int, token string) error {
	if token == "" || rec.Token != token || rec.Version != version || rec.State != StateRunning {
		return ErrLeaseLost
	}
	return nil
}

// setRecord replaces one record in the lesson held in memory.
func (l *Lesson) setRecord(name string, rec Stage) {
	if l.Stages == nil {
		l.Stages = map[string]Stage{}
	}
	l.Stages[name] = rec
}

// writeRecords writes the named stage records of l (each whole, so zero
// fields, omitted, are cleared), its update time, and when the sweeper must
// look at it next, computed from l as it now stands. Only those fields are
// written: what other stages recorded in the document stays as it is.
func (s *Store) writeRecords(tx *firestore.Transaction, ref *firestore.DocumentRef, l Lesson, now time.Time, names ...string) error {
	return s.writeRecordsWithUsage(tx, ref, l, now, nil, names...)
}

// writeRecordsWithUsage is writeRecords that also adds usage to the cost
// ledger, in the same update of the lesson document.
func (s *Store) writeRecordsWithUsage(tx *firestore.Transaction, ref *firestore.DocumentRef, l Lesson, now time.Time, usage map[string]float64, names ...string) error {
	ups := make([]firestore.Update, 0, len(names)+2+len(usage))
	for _, name := range names {
		ups = append(ups, firestore.Update{FieldPath: firestore.FieldPath{"stages", name}, Value: l.Stages[name]})
	}
	ups = append(ups,
		firestore.Update{Path: "updatedAt", Value: now},
		s.nextCheckUpdate(l, now),
	)
	ups = append(ups, usageUpdates(usage)...)
	return tx.Update(ref, ups)
}

// nextCheckUpdate is the write of l's nextCheckAt: a time, or its removal
// when nothing is in flight (so the sweeper's query no longer sees it).
func (s *Store) nextCheckUpdate(l Lesson, now time.Time) firestore.Update {
	next := nextCheck(l, now, s.pendingAfter)
	if next.IsZero() {
		return firestore.Update{Path: "nextCheckAt", Value: firestore.Delete}
	}
	return firestore.Update{Path: "nextCheckAt", Value: next}
}

// Skip records the stage as skipped for version with the reason (analysis
// switched off, say): for the pipeline a skipped stage is finished, so the
// process join and the next step go on. The caller must hold the claim.
func (s *Store) Skip(ctx context.Context, lessonID, stage string, version int, token, reason string) error {
	ref := s.lessonRef(lessonID)
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		rec := l.Stages[stage]
		if rec.State == StateSkipped && rec.Version == version && rec.Token == token {
			return nil
		}
		if err := holds(rec, version, token); err != nil {
			return err
		}
		now := s.now()
		rec.State = StateSkipped
		rec.FinishedAt = now
		rec.LeaseUntil = time.Time{}
		rec.Error = reason
		l.setRecord(stage, rec)
		written := []string{stage}
		if isProcessBranch(stage) && l.joinProcess(version, now) {
			written = append(written, StepProcess)
		}
		return s.writeRecords(tx, ref, l, now, written...)
	})
	if err != nil {
		return fmt.Errorf("skip %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return nil
}

// Note records outputs of work in progress (an operation name, a workflow
// execution) on a stage the caller holds, merged into what is there, and
// extends its lease to lease from now when lease is positive: a step that
// has handed its work to something slower (a workflow execution, a
// long-running recognition) holds the stage as long as that may take.
func (s *Store) Note(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string, lease time.Duration) (Stage, error) {
	return s.NoteWithUsage(ctx, lessonID, stage, version, token, outputs, lease, nil)
}

// NoteWithUsage is Note that also adds usage, what the work noted paid for,
// to the lesson's cost ledger in the same write: the progress and its cost
// are recorded together or not at all. A call that lost the claim
// (ErrLeaseLost) adds nothing.
func (s *Store) NoteWithUsage(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string, lease time.Duration, usage map[string]float64) (Stage, error) {
	ref := s.lessonRef(lessonID)
	var out Stage
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		rec := l.Stages[stage]
		if err := holds(rec, version, token); err != nil {
			return err
		}
		now := s.now()
		if rec.Outputs == nil {
			rec.Outputs = map[string]string{}
		}
		for k, v := range outputs {
			rec.Outputs[k] = v
		}
		if lease > 0 {
			rec.LeaseUntil = now.Add(lease)
		}
		l.setRecord(stage, rec)
		out = rec
		return s.writeRecordsWithUsage(tx, ref, l, now, usage, stage)
	})
	if err != nil {
		return Stage{}, fmt.Errorf("note %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return out, nil
}
