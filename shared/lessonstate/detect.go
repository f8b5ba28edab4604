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
//
// Detection writes only its own fields (describe's, the version, the stage
// records it resets, the run id): what later stages keep in the document
// (usage, the live vector-store file) survives every rename and new video.
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
			l.Stages = freshStages(l, l.Version)
			if mediaReusable(old, l) {
				from = StageEnrich
				for _, st := range carriedStages {
					rec := old.Stages[st]
					rec.Version = l.Version
					l.Stages[st] = rec
				}
			}
		}
		if l.MediaStatus == MediaReady {
			e := events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: obs.RunID, From: from}
			if err := l.queue(e); err != nil {
				return err
			}
			ev = &e
		}
		if err := s.txQueueOutbox(tx, ref, l.Outbox, now); err != nil {
			return err
		}
		if !exists {
			l.NextCheckAt = nextCheck(l, now, s.pendingAfter)
			l.Outbox = nil
			return tx.Create(ref, l)
		}
		return tx.Update(ref, append(detectedUpdates(l), s.nextCheckUpdate(l, now)))
	})
	if err != nil {
		return Unchanged, nil, fmt.Errorf("apply detected lesson %s: %w", id, err)
	}
	return change, ev, nil
}

// detectedUpdates are the writes of every field detection owns, from l.
// Keep in step with describe: a descriptive field missing here would never
// change after the lesson's creation.
func detectedUpdates(l Lesson) []firestore.Update {
	ups := []firestore.Update{
		{Path: "courseId", Value: l.CourseID},
		{Path: "courseName", Value: l.CourseName},
		{Path: "school", Value: l.School},
		{Path: "moduleId", Value: l.ModuleID},
		{Path: "moduleName", Value: l.ModuleName},
		{Path: "moduleOrder", Value: l.ModuleOrder},
		{Path: "pageOrder", Value: l.PageOrder},
		{Path: "title", Value: l.Title},
		{Path: "type", Value: l.Type},
		{Path: "hasMedia", Value: l.HasMedia},
		{Path: "mediaStatus", Value: l.MediaStatus},
		{Path: "version", Value: l.Version},
		{Path: "fingerprint", Value: l.Fingerprint},
		{Path: "removed", Value: l.Removed},
		{Path: "lastRunId", Value: l.LastRunID},
		{Path: "updatedAt", Value: l.UpdatedAt},
	}
	if l.Media != nil {
		ups = append(ups, firestore.Update{Path: "media", Value: *l.Media})
	} else {
		ups = append(ups, firestore.Update{Path: "media", Value: firestore.Delete})
	}
	for _, name := range records {
		ups = append(ups, firestore.Update{FieldPath: firestore.FieldPath{"stages", name}, Value: l.Stages[name]})
	}
	return ups
}

// MarkRemoved marks a lesson that is no longer in its course as removed and
// queues a removal event on lesson-events, at the lesson's current version.
// It returns nil and writes nothing when the lesson is already removed. It
// marks; it erases nothing: the sync stage retires the lesson's knowledge
// file on the removal event, reading what the document still holds.
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
		ev = &e
		if err := s.txQueueOutbox(tx, ref, l.Outbox, now); err != nil {
			return err
		}
		return tx.Update(ref, []firestore.Update{
			{Path: "removed", Value: true},
			{Path: "lastRunId", Value: runID},
			{Path: "updatedAt", Value: now},
			s.nextCheckUpdate(l, now),
		})
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

// carriedStages are the records a change that keeps the media carries to the
// new version: the media stages and the process step that joined them.
var carriedStages = []string{StageDownload, StepProcess, StageTranscribe, StageAnalyze}

// mediaReusable reports whether the media work done for old still serves l:
// same media, media ready, and every media stage finished. Only then can the
// new version start at enrich; if any media stage is unfinished the lesson
// goes through download again (a partial media pipeline cannot be resumed
// from enrich).
func mediaReusable(old, l Lesson) bool {
	if old.MediaStatus != l.MediaStatus || l.MediaStatus != MediaReady || mediaFingerprint(old) != mediaFingerprint(l) {
		return false
	}
	for _, st := range carriedStages {
		if !finished(old.Stages[st], old.Version) {
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

// freshStages returns every record pending at version, or every record
// skipped (with the reason) when the lesson has no media ready: a page
// without media (a quiz) or whose media is not there yet has nothing to
// transcribe or know, and must not wait on a step the sweeper would keep
// re-sending.
func freshStages(l Lesson, version int) map[string]Stage {
	stages := make(map[string]Stage, len(records))
	for _, st := range records {
		stages[st] = Stage{State: StatePending, Version: version}
		if l.MediaStatus != MediaReady {
			stages[st] = Stage{State: StateSkipped, Version: version, Error: noMediaReason(l.MediaStatus)}
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
