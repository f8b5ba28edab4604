package detect

import (
	"context"
	"fmt"
	"sync"

	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Recording a walked course costs in proportion to what changed. The
// course's structure fingerprint (every lesson's fingerprint, in walk order)
// is compared with the stored one, read once per run for every course
// (run.loadCourses): equal, and the course costs no further read and no
// write. Otherwise the course document is first marked stale (fingerprint
// ""), then every lesson is recorded (ApplyDetected writes only those that
// changed), lessons no longer seen are removed, and only then is the new
// fingerprint stored. A crash or a failure anywhere in between leaves the
// stale mark, so the next run records every lesson again instead of trusting
// a fingerprint its lessons do not match.

// idPage is how many lesson ids one removal query reads: each query is a
// round trip, and most courses fit one.
const idPage = 1000

// recordCourse records what walking a course found, and reports the course.
func (r *run) recordCourse(ctx context.Context, w *courseWalk) {
	rep := w.out
	rep.rec.Lessons = len(w.lessons)
	switch {
	case w.abandoned:
		rep.rec.Outcome = CourseAbandoned
		r.courseDone(ctx, rep)
		return
	case w.failed != nil:
		rep.rec.Outcome = CourseFailed
		r.courseDone(ctx, rep)
		return
	}
	for _, l := range w.lessons {
		r.observed(l)
	}

	fps := make([]string, len(w.lessons))
	for i, l := range w.lessons {
		fps[i] = l.Fingerprint
	}
	p := w.product
	course := lessonstate.Course{
		ID: rep.rec.CourseID, Name: p.Name, School: p.entry.School, ClubSubdomain: p.entry.Subdomain,
		Fingerprint: courseFingerprint(fps), LastRunID: r.rec.ID, LastWalkedAt: r.d.now(),
	}
	stored, known := r.stored[course.ID]
	if w.complete && known && sameCourse(stored, course) {
		r.count(func(c *lessonstate.Counts) { c.Unchanged += len(w.lessons) })
		rep.rec.Outcome = CourseWalked
		r.courseDone(ctx, rep)
		return
	}

	rep.rec.Changed = true
	stale := course
	stale.Fingerprint = ""
	if !known || !sameCourse(stored, stale) {
		if err := r.d.store.SetCourse(ctx, stale); err != nil {
			rep.cause(err)
			rep.problem(ctx, "course document cannot be marked for a full walk: %v (lessons kept as they were)", err)
			rep.rec.Outcome = CourseFailed
			r.courseDone(ctx, rep)
			return
		}
		r.remember(stale)
	}

	complete := r.applyAll(ctx, w) && w.complete
	if ctx.Err() != nil {
		rep.rec.Outcome = CourseAbandoned
		r.courseDone(ctx, rep)
		return
	}
	// A course this store never held a document of has no lessons to
	// remove: its document is written before any of its lessons. Listing
	// its ids would read back, one read each, every lesson just written.
	// (Only when the stored courses could not be read is that unknown.)
	if complete && (known || r.stored == nil) {
		complete = r.removeUnseen(ctx, w)
	}
	if complete {
		if err := r.d.store.SetCourse(ctx, course); err != nil {
			rep.cause(err)
			rep.problem(ctx, "course fingerprint cannot be saved: %v (the next run records every lesson again)", err)
			complete = false
		} else {
			r.remember(course)
		}
	}
	rep.rec.Outcome = CoursePartial
	if complete {
		rep.rec.Outcome = CourseWalked
	}
	r.courseDone(ctx, rep)
}

// sameCourse reports whether a stored course document already says what c
// says, leaving out when it was last looked at.
func sameCourse(stored, c lessonstate.Course) bool {
	return !stored.Removed && stored.Name == c.Name && stored.School == c.School &&
		stored.ClubSubdomain == c.ClubSubdomain && stored.Fingerprint == c.Fingerprint
}

// remember keeps what this run wrote for a course, for the vanished check.
func (r *run) remember(c lessonstate.Course) {
	if r.stored != nil {
		r.stored[c.ID] = c
	}
}

// applyAll records every lesson of a walked course, a few at a time. It
// reports whether every one was recorded.
func (r *run) applyAll(ctx context.Context, w *courseWalk) bool {
	var (
		mu sync.Mutex
		ok = true
		wg sync.WaitGroup
	)
	next := make(chan lessonstate.Lesson)
	for range min(r.d.applyWorkers, len(w.lessons)) {
		wg.Go(func() {
			for l := range next {
				if err := r.apply(ctx, l); err != nil {
					w.out.cause(err)
					w.out.problem(ctx, "lesson %s: record: %v (lesson kept as it was)", l.ID, err)
					mu.Lock()
					ok = false
					mu.Unlock()
				}
			}
		})
	}
	for _, l := range w.lessons {
		if ctx.Err() != nil {
			break
		}
		next <- l
	}
	close(next)
	wg.Wait()
	return ok && ctx.Err() == nil
}

// apply records an observed lesson and publishes the event it caused.
func (r *run) apply(ctx context.Context, l lessonstate.Lesson) error {
	change, ev, err := r.d.store.ApplyDetected(ctx, l.ID, lessonstate.Observed{Lesson: l, RunID: r.rec.ID})
	if err != nil {
		return err
	}
	r.count(func(c *lessonstate.Counts) {
		switch change {
		case lessonstate.Unchanged:
			c.Unchanged++
		case lessonstate.NewLesson, lessonstate.Reappeared: // a lesson back from removal counts as new
			c.New++
		case lessonstate.Changed:
			c.Changed++
		}
	})
	if change != lessonstate.Unchanged {
		r.log.InfoContext(ctx, "lesson detected", "lessonId", l.ID, "courseId", l.CourseID, "change", change.String(), "mediaStatus", l.MediaStatus)
	}
	if ev != nil {
		r.publishEvent(ctx, l.ID, *ev)
	}
	return nil
}

// removeUnseen removes the stored lessons of a completely walked course that
// the walk did not see. It reads ids only, a page at a time, and holds just
// the ids to remove. It reports whether every removal was made.
func (r *run) removeUnseen(ctx context.Context, w *courseWalk) bool {
	cid := w.out.rec.CourseID
	seen := make(map[string]bool, len(w.lessons))
	for _, l := range w.lessons {
		seen[l.ID] = true
	}
	var gone []string
	for after := ""; ; {
		ids, err := r.d.store.ActiveLessonIDPage(ctx, cid, after, r.d.idPage)
		if err != nil {
			w.out.cause(err)
			w.out.problem(ctx, "stored lessons cannot be listed: %v (removals postponed to the next run)", err)
			return false
		}
		for _, id := range ids {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
		if len(ids) < r.d.idPage {
			break
		}
		after = ids[len(ids)-1]
	}
	ok := true
	for _, id := range gone {
		if err := r.remove(ctx, id); err != nil {
			w.out.cause(err)
			w.out.problem(ctx, "lesson %s: mark removed: %v (the next run tries again)", id, err)
			ok = false
		}
	}
	return ok
}

// remove marks a lesson removed and publishes the removal.
func (r *run) remove(ctx context.Context, id string) error {
	ev, err := r.d.store.MarkRemoved(ctx, id, r.rec.ID)
	if err != nil {
		return fmt.Errorf("mark lesson %s removed: %w", id, err)
	}
	r.count(func(c *lessonstate.Counts) { c.Removed++ })
	r.log.InfoContext(ctx, "lesson removed", "lessonId", id)
	if ev != nil {
		r.publishEvent(ctx, id, *ev)
	}
	return nil
}
