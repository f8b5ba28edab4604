package lessonstate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/events"
)

// ReplayFrom lists the stages a replay may start from, in pipeline order.
var ReplayFrom = Stages

// ErrRemoved: the lesson was removed from its course; there is nothing to
// replay until it is back.
var ErrRemoved = errors.New("lesson is removed")

// replayed returns the records a replay from stage resets: that stage and
// every one after it. The process step, which runs transcribe ∥ analyze,
// goes with either branch (a branch left done answers the new execution at
// once, without a paid call); a replay from download resets everything.
func replayed(from string) []string {
	switch from {
	case StageDownload:
		return slices.Clone(records)
	case StageTranscribe, StageAnalyze:
		return []string{StepProcess, from, StageEnrich, StageSync}
	case StageEnrich:
		return []string{StageEnrich, StageSync}
	case StageSync:
		return []string{StageSync}
	}
	return nil
}

// Replay resets stage from, and the stages after it, of the lesson's current
// version to pending, and queues in the lesson's outbox the event that
// starts from there (DESIGN.md section 4). version 0 means the current one;
// another version than the current is ErrVersionStale's refusal. A record
// running under a live lease is reset too: its owner's Complete then finds
// the lease lost, and the replay's run is the one that counts.
func (s *Store) Replay(ctx context.Context, id, from string, version int) (events.LessonEvent, error) {
	names := replayed(from)
	if names == nil {
		return events.LessonEvent{}, fmt.Errorf("replay lesson %s: stage %q is not one of %v", id, from, ReplayFrom)
	}
	ref := s.lessonRef(id)
	var ev events.LessonEvent
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		switch {
		case l.Removed:
			return ErrRemoved
		case version != 0 && version != l.Version:
			return fmt.Errorf("%w: the lesson is at v%d, the replay names v%d", ErrVersionStale, l.Version, version)
		case l.MediaStatus != MediaReady:
			return fmt.Errorf("%w: its media is %s", ErrNothingToReplay, l.MediaStatus)
		}
		now := s.now()
		for _, name := range names {
			l.setRecord(name, Stage{State: StatePending, Version: l.Version})
		}
		ev = events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: l.LastRunID, From: from}
		entry, err := OutboxEntry(ev)
		if err != nil {
			return err
		}
		if err := s.txQueueOutbox(tx, ref, []Outbox{entry}, now); err != nil {
			return err
		}
		return s.writeRecords(tx, ref, l, now, names...)
	})
	if err != nil {
		return events.LessonEvent{}, fmt.Errorf("replay lesson %s from %s: %w", id, from, err)
	}
	return ev, nil
}

var (
	// ErrVersionStale: a replay names a version the lesson has moved past.
	ErrVersionStale = errors.New("replay names an old version")
	// ErrNothingToReplay: the lesson has no media, so no stage runs for it.
	ErrNothingToReplay = errors.New("nothing to replay")
)
