package lessonstate

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"
)

// PutCourse stores a course as detection saw it. It writes only when the
// course is new or something other than LastRunID and LastWalkedAt differs
// from what is stored, and reports whether it wrote.
func (s *Store) PutCourse(ctx context.Context, c Course) (bool, error) {
	if c.ID == "" {
		return false, fmt.Errorf("put course %q: empty id", c.Name)
	}
	ref := s.client.Collection(CollCourses).Doc(c.ID)
	var changed bool
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		changed = false
		snap, err := tx.Get(ref)
		switch {
		case isNotFound(err):
		case err != nil:
			return err
		default:
			var old Course
			if err := snap.DataTo(&old); err != nil {
				return fmt.Errorf("decode stored course: %w", err)
			}
			if sameCourse(old, c) {
				return nil
			}
		}
		changed = true
		return tx.Set(ref, c)
	})
	if err != nil {
		return false, fmt.Errorf("put course %s: %w", c.ID, err)
	}
	return changed, nil
}

// sameCourse compares what a course's content is, leaving out the fields
// that only say when it was last looked at.
func sameCourse(a, b Course) bool {
	return a.Name == b.Name && a.School == b.School &&
		a.ClubSubdomain == b.ClubSubdomain && a.Fingerprint == b.Fingerprint && a.Removed == b.Removed
}

// Course returns one course, or ErrNotFound.
func (s *Store) Course(ctx context.Context, id string) (Course, error) {
	snap, err := s.client.Collection(CollCourses).Doc(id).Get(ctx)
	if isNotFound(err) {
		return Course{}, fmt.Errorf("read course %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Course{}, fmt.Errorf("read course %s: %w", id, err)
	}
	var c Course
	if err := snap.DataTo(&c); err != nil {
		return Course{}, fmt.Errorf("decode course %s: %w", id, err)
	}
	c.ID = id
	return c, nil
}

// SaveRun writes a detection run, replacing what its id held.
func (s *Store) SaveRun(ctx context.Context, r Run) error {
	if r.ID == "" {
		return fmt.Errorf("save run: empty id")
	}
	if _, err := s.client.Collection(CollRuns).Doc(r.ID).Set(ctx, r); err != nil {
		return fmt.Errorf("save run %s: %w", r.ID, err)
	}
	return nil
}

// Run returns one detection run, or ErrRunNotFound.
func (s *Store) Run(ctx context.Context, id string) (Run, error) {
	snap, err := s.client.Collection(CollRuns).Doc(id).Get(ctx)
	if isNotFound(err) {
		return Run{}, fmt.Errorf("read run %s: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	return decodeRun(snap)
}

// LatestRun returns the run that started last; false when there is none.
func (s *Store) LatestRun(ctx context.Context) (Run, bool, error) {
	snaps, err := s.client.Collection(CollRuns).OrderBy("startedAt", firestore.Desc).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return Run{}, false, fmt.Errorf("read latest run: %w", err)
	}
	if len(snaps) == 0 {
		return Run{}, false, nil
	}
	r, err := decodeRun(snaps[0])
	if err != nil {
		return Run{}, false, err
	}
	return r, true, nil
}

func decodeRun(snap *firestore.DocumentSnapshot) (Run, error) {
	var r Run
	if err := snap.DataTo(&r); err != nil {
		return Run{}, fmt.Errorf("decode run %s: %w", snap.Ref.ID, err)
	}
	r.ID = snap.Ref.ID
	return r, nil
}
