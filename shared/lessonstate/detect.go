package lessonstate

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/events"
)

// Media statuses (Lesson.MediaStatus).
const (
	MediaReady    = "ready"
	MediaAwaiting = "awaiting"
	MediaNone     = "none"
)

// Observed is what one detection run saw of a lesson.
type Observed struct {
	// Lesson carries the descriptive fields the detector fills: CourseID,
	// CourseName, School, ModuleID, ModuleName, ModuleOrder, PageOrder,
	// Title, Type, HasMedia, Media, MediaStatus and Fingerprint. Its state
	// fields (Version, Stages, Outbox, ...) are ignored.
	Lesson Lesson
	RunID  string
}

// Change is what ApplyDetected found.
type Change int

const (
	// Unchanged: same fingerprint; nothing was written.
	Unchanged Change = iota
	// NewLesson: the lesson was created at version 1. (Not "New": that is
	// the Store constructor.)
	NewLesson
	// Changed: the lesson's fingerprint changed; its version was bumped.
	Changed
	// Reappeared: a removed lesson is back; its version was bumped.
	Reappeared
)

func (c Change) String() string {
	switch c {
	case Unchanged:
		return "unchanged"
	case NewLesson:
		return "new"
	case Changed:
		return "changed"
	case Reappeared:
		return "reappeared"
	}
	return "unknown"
}

// RemovedReason is the reason a removal event carries.
const RemovedReason = "page no longer in the course"

// ApplyDetected records what detection saw of lesson id, in one transaction,
// and queues in the lesson's outbox the event that must follow. It writes
// nothing for an unchanged lesson. The returned event (nil when none is due:
// unchanged, or media not ready) is also in the outbox; the caller publishes
// it and then calls AckOutbox.
//
// A new video (media fingerprint or status changed) resets every stage; a
// change of title, order or module keeps the finished media stages, moved to
// the new version, and restarts from enrich.
func (s *Store) ApplyDetected(ctx context.Context, id string, obs Observed) (Change, *events.LessonEvent, error) {
	if !events.ValidLessonID(id) {
		return Unchanged, nil, fmt.Errorf("apply detected lesson %q: not a page id", id)
	}
	ref := s.lessonRef(id)
	var (
		change Change
		ev     *events.LessonEvent
	)
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		change, ev = Unchanged, nil
		old, err := txLesson(tx, ref)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if exists && !old.Removed && old.Fingerprint == obs.Lesson.Fingerprint {
			return nil
		}
		now := s.now()
		l := describe(obs.Lesson)
		l.ID = id
		l.LastRunID = obs.RunID
		l.UpdatedAt = now
		from := StageDownload
		switch {
		case !exists:
			change = NewLesson
			l.Version = 1
			l.Stages = freshStages(l, 1)
		default:
			change = Changed
			if old.Removed {
				change = Reappeared
			}
			l.Version = old.Version + 1
			if mediaReusable(old, l) {
				from = StageEnrich
				l.Stages = freshStages(l, l.Version)
				for _, st := range MediaStages {
					rec := old.Stages[st]
					rec.Version = l.Version
					l.Stages[st] = rec
				}
			} else {
				l.Stages = freshStages(l, l.Version)
			}
		}
		if l.MediaStatus == MediaReady {
			e := events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: obs.RunID, From: from}
			if err := l.queue(e); err != nil {
				return err
			}
			ev = &e
		}
		return s.txSetLesson(tx, ref, l, now)
	})
	if err != nil {
		return Unchanged, nil, fmt.Errorf("apply detected lesson %s: %w", id, err)
	}
	return change, ev, nil
}

// MarkRemoved marks a lesson that is no longer in its course as removed and
// queues a removal event on lesson-events, at the lesson's current version.
// It returns nil and writes nothing when the lesson is already removed.
func (s *Store) MarkRemoved(ctx context.Context, id, runID string) (*events.LessonEvent, error) {
	ref := s.lessonRef(id)
	var ev *events.LessonEvent
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		ev = nil
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		if l.Removed {
			return nil
		}
		e := events.LessonEvent{
			LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: runID,
			Kind: events.KindRemoved, Reason: RemovedReason,
		}
		if err := l.queue(e); err != nil {
			return err
		}
		now := s.now()
		l.Removed = true
		l.LastRunID = runID
		l.UpdatedAt = now
		ev = &e
		return s.txSetLesson(tx, ref, l, now)
	})
	if err != nil {
		return nil, fmt.Errorf("mark lesson %s removed: %w", id, err)
	}
	return ev, nil
}

// describe keeps only the descriptive fields of an observed lesson.
func describe(o Lesson) Lesson {
	l := Lesson{
		CourseID:    o.CourseID,
		CourseName:  o.CourseName,
		School:      o.School,
		ModuleID:    o.ModuleID,
		ModuleName:  o.ModuleName,
		ModuleOrder: o.ModuleOrder,
		PageOrder:   o.PageOrder,
		Title:       o.Title,
		Type:        o.Type,
		HasMedia:    o.HasMedia,
		MediaStatus: o.MediaStatus,
		Fingerprint: o.Fingerprint,
	}
	if o.Media != nil {
		m := *o.Media
		l.Media = &m
	}
	return l
}

// mediaReusable reports whether the media work done for old still serves l:
// same media, media ready, and every media stage finished. Only then can the
// new version start at enrich; if any media stage is unfinished the lesson
// goes through download again (a partial media pipeline cannot be resumed
// from enrich).
func mediaReusable(old, l Lesson) bool {
	if old.MediaStatus != l.MediaStatus || l.MediaStatus != MediaReady || mediaFingerprint(old) != mediaFingerprint(l) {
		return false
	}
	for _, st := range MediaStages {
		if rec := old.Stages[st]; rec.State != StateDone || rec.Version != old.Version {
			return false
		}
	}
	return true
}

func mediaFingerprint(l Lesson) string {
	if l.Media == nil {
		return ""
	}
	return l.Media.Fingerprint
}

// freshStages returns every stage pending at version, the media stages
// skipped (with the reason) when the lesson has no media ready.
func freshStages(l Lesson, version int) map[string]Stage {
	stages := make(map[string]Stage, len(Stages))
	for _, st := range Stages {
		stages[st] = Stage{State: StatePending, Version: version}
	}
	if l.MediaStatus != MediaReady {
		reason := noMediaReason(l.MediaStatus)
		for _, st := range MediaStages {
			stages[st] = Stage{State: StateSkipped, Version: version, Error: reason}
		}
	}
	return stages
}

func noMediaReason(status string) string {
	switch status {
	case MediaNone, "":
		return "page has no media"
	case MediaAwaiting:
		return "media source has no file for this page yet"
	}
	return fmt.Sprintf("media status is %q, not %q", status, MediaReady)
}
