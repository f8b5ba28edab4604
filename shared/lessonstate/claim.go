package lessonstate

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// Claim tries to take stage of lesson lessonID for the event's version, for
// lease. It follows DESIGN.md section 4: the outcome says whether the caller
// now owns the stage (Claimed) or must acknowledge and stop (AlreadyDone,
// AlreadyFailed, Busy, Stale, Skipped). ErrNotFound means the lesson does not
// exist; ErrVersionAhead means the event is newer than the document (retry).
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
			// name, a partial upload) let this attempt resume.
			rec.Outputs = c.Stage.Outputs
		}
		if err := writeStage(tx, ref, stage, rec, now); err != nil {
			return err
		}
		c.Outcome = Claimed
		c.Token = rec.Token
		c.Stage = rec
		if c.Lesson.Stages == nil {
			c.Lesson.Stages = map[string]Stage{}
		}
		c.Lesson.Stages[stage] = rec
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
func (s *Store) Complete(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string) error {
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
		return writeStage(tx, ref, stage, rec, now)
	})
	if err != nil {
		return fmt.Errorf("complete %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return nil
}

// Fail records a failed attempt. A retryable failure with attempts left puts
// the stage back to pending, so the redelivery of the message claims it at
// once; otherwise the stage is failed for this version, with reason. It
// returns the state written (StatePending or StateFailed).
func (s *Store) Fail(ctx context.Context, lessonID, stage string, version int, token, reason string, retryable bool) (string, error) {
	ref := s.lessonRef(lessonID)
	var state string
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
		rec.Error = reason
		rec.LeaseUntil = time.Time{}
		if retryable && rec.Attempts < s.maxAttempts {
			// The token goes with the lease: nobody holds a pending stage.
			rec.State = StatePending
			rec.Token = ""
		} else {
			rec.State = StateFailed
			rec.FinishedAt = now
		}
		state = rec.State
		return writeStage(tx, ref, stage, rec, now)
	})
	if err != nil {
		return "", fmt.Errorf("fail %s of lesson %s v%d: %w", stage, lessonID, version, err)
	}
	return state, nil
}

// holds reports whether token still owns rec for version.
func holds(rec Stage, version int, token string) error {
	if token == "" || rec.Token != token || rec.Version != version || rec.State != StateRunning {
		return ErrLeaseLost
	}
	return nil
}

// writeStage replaces one stage record. The record is written whole, so its
// zero fields (omitempty) disappear: that is how they are cleared.
func writeStage(tx *firestore.Transaction, ref *firestore.DocumentRef, stage string, rec Stage, now time.Time) error {
	return tx.Update(ref, []firestore.Update{
		{FieldPath: firestore.FieldPath{"stages", stage}, Value: rec},
		{Path: "updatedAt", Value: now},
	})
}
