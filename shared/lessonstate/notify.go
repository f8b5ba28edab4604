package lessonstate

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
)

// What the notifier reads (shared/notify): the lessons a detection run
// changed, found by the run id detection leaves on each lesson it writes
// (lastRunId), and a few lessons by id. Both are reads the automatic
// single-field indexes serve: no composite index is needed.

// EachLessonOfRun calls each, in lesson id order, with every lesson whose
// lastRunId is runID — the lessons that run created, changed, brought back
// or removed — and stops early when each returns false. Stopping early saves
// the reads of the lessons not yet streamed, which is what a caller looking
// for the first lesson still in flight wants.
//
// It is one equality filter on lastRunId (ordered by document id, which any
// single-field index includes), so Firestore serves it without a composite
// index.
func (s *Store) EachLessonOfRun(ctx context.Context, runID string, each func(Lesson) bool) error {
	if runID == "" {
		return errors.New("lessons of run: empty run id")
	}
	it := s.client.Collection(CollLessons).
		Where("lastRunId", "==", runID).
		OrderBy(firestore.DocumentID, firestore.Asc).
		Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lessons of run %s: %w", runID, err)
		}
		l, err := decodeLesson(snap)
		if err != nil {
			return fmt.Errorf("lessons of run %s: %w", runID, err)
		}
		if !each(l) {
			return nil
		}
	}
}

// LessonsByID returns the lessons named by ids that exist, in the order of
// ids; ids with no document are left out. It is one batched read.
func (s *Store) LessonsByID(ctx context.Context, ids []string) ([]Lesson, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = s.lessonRef(id)
	}
	snaps, err := s.client.GetAll(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read %d lessons by id: %w", len(ids), err)
	}
	out := make([]Lesson, 0, len(snaps))
	for _, snap := range snaps {
		if !snap.Exists() {
			continue
		}
		l, err := decodeLesson(snap)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}
