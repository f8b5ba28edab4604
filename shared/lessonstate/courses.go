package lessonstate

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
)

// What detection needs to stay cheap as the catalog grows: every course
// document in one listing (one read each, the only read an unchanged course
// costs), blind course writes, and a course's active lesson ids page by page
// with their fields left out (Select), so removals are found from ids alone
// and memory does not grow with the course.

// CourseRun is what one detection run did with one course: the run record
// and the detector's answer list one per course.
type CourseRun struct {
	CourseID string `firestore:"courseId" json:"courseId"`
	// Outcome is "walked" (every module and page read and recorded),
	// "partial" (some module or page could not be read or used: what was
	// read is recorded, nothing is removed, and the next run walks the
	// course again in full), "failed" (its modules could not be listed:
	// nothing changed), "abandoned" (the run's time ran out during the
	// walk: the next run walks it again) or "inactive" (not on sale: not
	// walked, lessons kept).
	Outcome string `firestore:"outcome" json:"outcome"`
	// Changed is set when the course's structure differed from the stored
	// fingerprint, so its lessons were recorded one by one.
	Changed    bool `firestore:"changed,omitempty" json:"changed,omitempty"`
	Modules    int  `firestore:"modules,omitempty" json:"modules,omitempty"`
	Lessons    int  `firestore:"lessons,omitempty" json:"lessons,omitempty"`
	NotLessons int  `firestore:"notLessons,omitempty" json:"notLessons,omitempty"`
	// Problems name what made the course partial or failed: each skipped
	// module or page (with its position and raw value), each lesson that
	// could not be recorded. Warnings name what was recorded anyway but
	// deserves a look (a page without a name). MoreProblems counts those
	// left out to keep the run document small; the logs have every one.
	Problems     []string `firestore:"problems,omitempty" json:"problems,omitempty"`
	Warnings     []string `firestore:"warnings,omitempty" json:"warnings,omitempty"`
	MoreProblems int      `firestore:"moreProblems,omitempty" json:"moreProblems,omitempty"`
}

// Courses returns every course document, in id order.
func (s *Store) Courses(ctx context.Context) ([]Course, error) {
	it := s.client.Collection(CollCourses).OrderBy(firestore.DocumentID, firestore.Asc).Documents(ctx)
	defer it.Stop()
	var out []Course
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list courses: %w", err)
		}
		var c Course
		if err := snap.DataTo(&c); err != nil {
			return nil, fmt.Errorf("list courses: decode %s: %w", snap.Ref.ID, err)
		}
		c.ID = snap.Ref.ID
		out = append(out, c)
	}
}

// SetCourse writes a course document as given, without reading it first:
// the caller already knows it differs from what is stored.
func (s *Store) SetCourse(ctx context.Context, c Course) error {
	if c.ID == "" {
		return fmt.Errorf("set course %q: empty id", c.Name)
	}
	if _, err := s.client.Collection(CollCourses).Doc(c.ID).Set(ctx, c); err != nil {
		return fmt.Errorf("set course %s: %w", c.ID, err)
	}
	return nil
}

// ActiveLessonIDPage returns up to limit ids of a course's lessons that are
// not removed, in id order, starting after the id after ("" for the first
// page). Only the ids are read (Select with no fields), and each page is its
// own query, so a caller walking a course of any size holds one page at a
// time, and may mark lessons removed between pages. The equality filters
// and the order by document id need no composite index.
func (s *Store) ActiveLessonIDPage(ctx context.Context, courseID, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list active lessons of course %s: limit %d is not positive", courseID, limit)
	}
	q := s.client.Collection(CollLessons).
		Where("courseId", "==", courseID).
		Where("removed", "==", false).
		Select().
		OrderBy(firestore.DocumentID, firestore.Asc).
		Limit(limit)
	if after != "" {
		q = q.StartAfter(s.lessonRef(after))
	}
	snaps, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list active lessons of course %s after %q: %w", courseID, after, err)
	}
	ids := make([]string, 0, len(snaps))
	for _, snap := range snaps {
		ids = append(ids, snap.Ref.ID)
	}
	return ids, nil
}
