package detect

import (
	"cmp"
	"context"
	"slices"

	"github.com/coursekb/pipeline/shared/lessonstate"
)

// A course that left the product list or the catalog has no walk to show
// its lessons are gone; its absence from a whole product list does. So its
// lessons are removed only at the end of a sweep that read the whole list,
// found from the course documents read at the start of the run and the ids
// of their active lessons, a page at a time: no lesson document is loaded.
// Once all are removed the course document is marked removed, and later
// sweeps pass it by.

// removeVanished removes the lessons of every stored course that is not in
// present.
func (r *run) removeVanished(ctx context.Context, present map[string]bool) {
	if r.stored == nil {
		return // the courses could not be read: already an error of the run
	}
	var gone []lessonstate.Course
	for id, c := range r.stored {
		if !present[id] && !c.Removed {
			gone = append(gone, c)
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.SortFunc(gone, func(a, b lessonstate.Course) int { return cmp.Compare(courseOf(a), courseOf(b)) })
	if len(present) == 0 {
		ids := make([]string, len(gone))
		for i, c := range gone {
			ids[i] = c.ID
		}
		r.runProblem(ctx, "refusing to remove every course: no catalog product is in the Hotmart product list (courses %v kept)", ids)
		return
	}
	for _, c := range gone {
		if ctx.Err() != nil {
			return
		}
		r.removeCourse(ctx, c)
	}
}

// removeCourse removes every active lesson of a vanished course, then marks
// the course removed.
func (r *run) removeCourse(ctx context.Context, c lessonstate.Course) {
	r.log.InfoContext(ctx, "course vanished from the product list or the catalog: removing its lessons", "courseId", c.ID)
	rep := r.newCourseReport(c.ID)
	rep.rec.Outcome = CourseVanished
	defer r.courseDone(ctx, rep)
	ok := true
	for after := ""; ; {
		ids, err := r.d.store.ActiveLessonIDPage(ctx, c.ID, after, r.d.idPage)
		if err != nil {
			r.runError(ctx, err, "vanished course %s: list its lessons: %v (the next complete sweep tries again)", c.ID, err)
			return
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			if err := r.remove(ctx, id); err != nil {
				r.runError(ctx, err, "vanished course %s: %v (the next complete sweep tries again)", c.ID, err)
				ok = false
				continue
			}
			rep.rec.Lessons++
		}
		if len(ids) < r.d.idPage {
			break
		}
		// Removed lessons drop out of the query; a failed one stays, and
		// paging after it moves on.
		after = ids[len(ids)-1]
	}
	if !ok {
		return
	}
	c.Removed, c.Fingerprint, c.LastRunID, c.LastWalkedAt = true, "", r.rec.ID, r.d.now()
	if err := r.d.store.SetCourse(ctx, c); err != nil {
		r.runError(ctx, err, "vanished course %s: mark the course removed: %v", c.ID, err)
		return
	}
	r.remember(c)
}
