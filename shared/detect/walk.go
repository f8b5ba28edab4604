package detect

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// The walk reads one course from Hotmart and describes its lessons, without
// writing anything: what to write is decided once the whole course is known
// (record.go), so a course that turns out unchanged costs no write, and one
// abandoned halfway costs nothing.
//
// Isolation is at the smallest unit. A page that cannot be decoded or used
// is skipped and named (course, module, position, raw value); a module
// whose page list cannot be read is skipped and named, and its siblings are
// walked; only a course whose module list cannot be read fails as a whole.
// Anything skipped makes the walk incomplete, and an incomplete walk never
// removes a lesson: a page it could not read may well be one of them.

// courseWalk is what walking one course found.
type courseWalk struct {
	product catalogProduct
	// lessons are the course's lessons in walk order (modules by sequence,
	// pages by order), described and fingerprinted.
	lessons []lessonstate.Lesson
	// complete: every module and every page was read and taken in.
	complete bool
	// failed is why the course could not be walked at all (its modules
	// could not be listed); abandoned, that the run's time or context ran
	// out during the walk.
	failed    error
	abandoned bool
	out       *courseReport
}

// walkCourse walks one course. Only when mayAbandon does the time budget cut
// it short (a run always walks its first course to the end).
func (r *run) walkCourse(ctx context.Context, p catalogProduct, mayAbandon bool) *courseWalk {
	cid := courseID(p.ID)
	w := &courseWalk{product: p, complete: true, out: r.newCourseReport(cid)}
	modules, skipped, err := r.d.hotmart.Modules(ctx, p.entry.Subdomain)
	if err != nil {
		if ctx.Err() != nil {
			w.abandoned = true
			return w
		}
		w.failed = err
		w.out.cause(err)
		w.out.problem(ctx, "modules of Club %q cannot be listed: %v (lessons kept as they were)", p.entry.Subdomain, err)
		return w
	}
	for _, s := range skipped {
		w.complete = false
		r.count(func(c *lessonstate.Counts) { c.SkippedModules++ })
		w.out.problem(ctx, "module at position %d of Club %q skipped (%s): %s", s.Position, p.entry.Subdomain, s.Reason, s.Raw)
	}
	slices.SortStableFunc(modules, func(a, b hotmart.Module) int {
		return cmp.Or(cmp.Compare(a.Sequence, b.Sequence), cmp.Compare(a.ID, b.ID))
	})
	w.out.rec.Modules = len(modules)

	seen := map[string]string{} // page id -> module it was first seen in
	for j, m := range modules {
		if ctx.Err() != nil || (j > 0 && mayAbandon && r.overBudget(ctx)) {
			w.abandoned = true
			return w
		}
		pages, skipped, err := r.d.hotmart.Pages(ctx, p.ID, m.ID)
		if err != nil {
			if ctx.Err() != nil {
				w.abandoned = true
				return w
			}
			w.complete = false
			w.out.cause(err)
			r.count(func(c *lessonstate.Counts) { c.SkippedModules++ })
			w.out.problem(ctx, "module %s (%q, sequence %d) skipped: its pages cannot be read: %v (its lessons kept as they were)", m.ID, m.Name, m.Sequence, err)
			continue
		}
		for _, s := range skipped {
			w.complete = false
			r.count(func(c *lessonstate.Counts) { c.SkippedPages++ })
			w.out.problem(ctx, "module %s: page at position %d skipped (%s): %s", m.ID, s.Position, s.Reason, s.Raw)
		}
		slices.SortStableFunc(pages, func(a, b hotmart.Page) int {
			return cmp.Or(cmp.Compare(a.PageOrder, b.PageOrder), cmp.Compare(a.ID, b.ID))
		})
		for _, pg := range pages {
			r.walkPage(ctx, w, m, pg, seen)
		}
	}
	if ctx.Err() != nil {
		w.abandoned = true
	}
	return w
}

// walkPage takes in one page of module m.
func (r *run) walkPage(ctx context.Context, w *courseWalk, m hotmart.Module, pg hotmart.Page, seen map[string]string) {
	if !pg.Published {
		return // an unpublished page counts as absent
	}
	if !r.d.lessonTypes[strings.ToUpper(pg.Type)] {
		r.notLesson(pg.Type)
		w.out.rec.NotLessons++
		return
	}
	if !events.ValidLessonID(pg.ID) {
		w.complete = false
		r.count(func(c *lessonstate.Counts) { c.SkippedPages++ })
		w.out.problem(ctx, "module %s: page at position %d skipped: page_id %q is not usable as a lesson id (letters, digits, '-' and '_' only)", m.ID, pg.Position, pg.ID)
		return
	}
	if first, dup := seen[pg.ID]; dup {
		w.complete = false
		r.count(func(c *lessonstate.Counts) { c.SkippedPages++ })
		w.out.problem(ctx, "module %s: page %s at position %d skipped: the course already lists it (module %s)", m.ID, pg.ID, pg.Position, first)
		return
	}
	seen[pg.ID] = m.ID
	if pg.Untitled {
		w.out.warning(ctx, "module %s: page %s at position %d has no name: recorded with an empty title", m.ID, pg.ID, pg.Position)
	}
	l, err := r.describe(ctx, w.product, m, pg)
	if err != nil {
		w.complete = false
		w.out.cause(err)
		w.out.problem(ctx, "lesson %s: resolve media: %v (lesson kept as it was)", pg.ID, err)
		return
	}
	w.lessons = append(w.lessons, l)
}

// describe builds the lesson a page stands for, media and fingerprint
// included.
func (r *run) describe(ctx context.Context, p catalogProduct, m hotmart.Module, pg hotmart.Page) (lessonstate.Lesson, error) {
	l := lessonstate.Lesson{
		ID:          pg.ID,
		CourseID:    courseID(p.ID),
		CourseName:  p.Name,
		School:      p.entry.School,
		ModuleID:    m.ID,
		ModuleName:  m.Name,
		ModuleOrder: m.Sequence,
		PageOrder:   pg.PageOrder,
		Title:       pg.Name,
		Type:        pg.Type,
		HasMedia:    pg.HasMedia,
		MediaStatus: lessonstate.MediaNone,
	}
	if pg.HasMedia {
		media, err := r.d.media.Resolve(ctx, p.ID, m.ID, pg.ID)
		if err != nil {
			return lessonstate.Lesson{}, err
		}
		if media != nil {
			l.Media, l.MediaStatus = media, lessonstate.MediaReady
		} else {
			l.MediaStatus = lessonstate.MediaAwaiting
		}
	}
	l.Fingerprint = Fingerprint(l)
	return l, nil
}
