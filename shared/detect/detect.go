// Package detect is the pipeline's first stage (DESIGN.md section 1, step 1):
// it walks the producer's courses on Hotmart (products, Club modules, pages),
// describes every published page as a lesson, resolves its media from the
// producer's media source, and records what changed in the lesson store. The
// store puts one event per new, changed or removed lesson in the lesson's
// outbox, in the same write; the detector then publishes the outbox and
// acknowledges it. Every run first publishes what earlier runs left in
// outboxes, so a crash between a write and its publication loses nothing.
//
// A run has a time budget. Products are walked in ascending id order; a run
// that runs out of budget is saved incomplete with a cursor, and the next run
// resumes the sweep there. Lessons that vanished from a course are removed as
// soon as that course's walk completes; courses that vanished from the product
// list or the catalog are removed only at the end of a complete sweep.
package detect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/relay"
)

// Hotmart reads the producer's course structure.
type Hotmart interface {
	// Products lists every product of the producer, all pages of results.
	Products(ctx context.Context) ([]hotmart.Product, error)
	// Modules lists the Club modules of the course served at subdomain.
	Modules(ctx context.Context, subdomain string) ([]hotmart.Module, error)
	// Pages lists a module's pages.
	Pages(ctx context.Context, productID int64, moduleID string) ([]hotmart.Page, error)
}

// MediaResolver finds a page's media in the producer's media source. It
// returns nil and no error when the source has no media for the page yet.
type MediaResolver interface {
	Resolve(ctx context.Context, productID int64, moduleID, pageID string) (*lessonstate.Media, error)
}

// Store is the lesson state the detector reads and writes.
type Store interface {
	// ApplyDetected records an observed lesson. When it is new, changed or
	// back, the store bumps its version and puts the event to publish in the
	// lesson's outbox in the same write; an unchanged lesson is not written.
	ApplyDetected(ctx context.Context, id string, obs lessonstate.Observed) (lessonstate.Change, *events.LessonEvent, error)
	// MarkRemoved marks a lesson removed and puts the removal event in its
	// outbox.
	MarkRemoved(ctx context.Context, id, runID string) (*events.LessonEvent, error)
	// ActiveLessonIDs lists the ids of a course's lessons that are not removed.
	ActiveLessonIDs(ctx context.Context, courseID string) ([]string, error)
	// PendingOutbox lists the lessons whose outbox holds unpublished events.
	PendingOutbox(ctx context.Context) ([]lessonstate.Lesson, error)
	// AckOutbox clears the published entries from a lesson's outbox.
	AckOutbox(ctx context.Context, id string, published []lessonstate.Outbox) error
	// PutCourse writes a course document, only when something other than
	// LastRunID and LastWalkedAt changed; it reports whether it wrote.
	PutCourse(ctx context.Context, c lessonstate.Course) (bool, error)
	// SaveRun writes a run record.
	SaveRun(ctx context.Context, r lessonstate.Run) error
	// LatestRun returns the most recently started run, if any.
	LatestRun(ctx context.Context) (lessonstate.Run, bool, error)
}

// LessonLister is implemented by a Store that can list every lesson it
// holds. The detector needs it to remove the lessons of courses that vanished
// from the product list or the catalog (it has no course to walk for them);
// with a Store that does not implement it, a complete sweep records an error
// instead.
type LessonLister interface {
	Lessons(ctx context.Context) ([]lessonstate.Lesson, error)
}

// Publisher publishes a message body with its attributes to a Pub/Sub topic
// and returns the message id.
type Publisher interface {
	PublishRaw(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error)
}

// RunOptions configure one detection run.
type RunOptions struct {
	// RunID names the run; empty means one made from the start time.
	RunID string
	// Budget is how long the run may walk products before it saves its
	// place and stops; zero or less means no limit.
	Budget time.Duration
}

// Limits that keep a run document well under Firestore's 1 MiB.
const (
	maxRunErrors   = 200
	maxRunAwaiting = 2000
)

// finalSaveTimeout bounds the run record's last write, which is made even
// when the run's context is already done.
const finalSaveTimeout = 15 * time.Second

// statusActive is the Hotmart product status of a product on sale; products
// with statusDeleted count as gone.
const (
	statusActive  = "ACTIVE"
	statusDeleted = "DELETED"
)

// Detector walks the catalog's courses and records what changed.
type Detector struct {
	hotmart Hotmart
	media   MediaResolver
	store   Store
	pub     Publisher
	catalog Catalog
	relay   *relay.Relay
	log     *slog.Logger
	now     func() time.Time
}

// New returns a Detector, or an error naming every missing dependency.
func New(h Hotmart, m MediaResolver, s Store, p Publisher, cat Catalog, logger *slog.Logger) (*Detector, error) {
	var missing []error
	if h == nil {
		missing = append(missing, errors.New("Hotmart client is nil"))
	}
	if m == nil {
		missing = append(missing, errors.New("media resolver is nil"))
	}
	if len(cat) == 0 {
		missing = append(missing, errors.New("course catalog is empty"))
	}
	if err := errors.Join(missing...); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	rl, err := relay.New(s, p, logger)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return &Detector{hotmart: h, media: m, store: s, pub: p, catalog: cat, relay: rl, log: logger, now: time.Now}, nil
}

// run is the state of one Run call.
type run struct {
	d        *Detector
	rec      lessonstate.Run
	log      *slog.Logger
	deadline time.Time // zero: no budget
	dropped  int       // errors beyond maxRunErrors
	// held names lessons whose outbox holds an entry this run could not
	// publish: their later entries stay queued behind it, so that the next
	// run publishes them in order. holdAll holds every lesson (the outbox
	// could not be read at start).
	held    map[string]bool
	holdAll bool
}

// Run performs one detection run and saves its record. It returns an error
// only when nothing useful could be done (the product list could not be read)
// or when the run record could not be saved; every other failure is recorded
// in the run's Errors and the run goes on.
func (d *Detector) Run(ctx context.Context, opts RunOptions) (lessonstate.Run, error) {
	start := d.now()
	id := opts.RunID
	if id == "" {
		id = "run-" + start.UTC().Format("20060102T150405.000Z")
	}
	r := &run{d: d, rec: lessonstate.Run{ID: id, StartedAt: start}, log: d.log.With("runId", id), held: map[string]bool{}}
	if opts.Budget > 0 {
		r.deadline = start.Add(opts.Budget)
	}

	cursor := r.resumeCursor(ctx)
	// Saved now, a record with the resume point survives a crash of this
	// run: the next one resumes where this one started.
	r.rec.Cursor = cursor
	if err := d.store.SaveRun(ctx, r.rec); err != nil {
		r.errorf(ctx, "save run at start: %v", err)
	}

	r.flushOutbox(ctx)

	products, err := d.hotmart.Products(ctx)
	if err != nil {
		err = fmt.Errorf("list Hotmart products: %w", err)
		r.errorf(ctx, "%v", err)
		if serr := r.finish(ctx, false, cursor); serr != nil {
			err = errors.Join(err, serr)
		}
		return r.rec, err
	}

	walk, present := d.plan(ctx, products, r.log)
	complete, next := r.sweep(ctx, walk, cursor)
	if complete {
		r.removeVanished(ctx, present)
	}
	err = r.finish(ctx, complete, next)
	return r.rec, err
}

// resumeCursor returns the product id the previous run asked this one to
// start from, or "" to start a new sweep.
func (r *run) resumeCursor(ctx context.Context) string {
	prev, found, err := r.d.store.LatestRun(ctx)
	switch {
	case err != nil:
		r.errorf(ctx, "read latest run (starting a new sweep): %v", err)
		return ""
	case !found || prev.Complete:
		return ""
	}
	if prev.Cursor != "" {
		r.log.InfoContext(ctx, "resuming incomplete sweep", "previousRunId", prev.ID, "cursor", prev.Cursor)
	}
	return prev.Cursor
}

// catalogProduct is a product of the catalog to walk.
type catalogProduct struct {
	hotmart.Product
	entry CatalogEntry
}

// plan picks the catalog's products from the product list, in ascending id
// order, and the set of course ids that still exist (in the list and the
// catalog, not deleted); inactive ones exist but are not walked.
func (d *Detector) plan(ctx context.Context, products []hotmart.Product, log *slog.Logger) ([]catalogProduct, map[string]bool) {
	var walk []catalogProduct
	present := map[string]bool{}
	var notInCatalog []int64
	listed := map[int64]bool{}
	for _, p := range products {
		listed[p.ID] = true
		entry, ok := d.catalog[p.ID]
		if !ok {
			notInCatalog = append(notInCatalog, p.ID)
			continue
		}
		if p.Status == statusDeleted {
			continue
		}
		present[courseID(p.ID)] = true
		walk = append(walk, catalogProduct{Product: p, entry: entry})
	}
	slices.SortFunc(walk, func(a, b catalogProduct) int { return cmp.Compare(a.ID, b.ID) })
	walk = slices.CompactFunc(walk, func(a, b catalogProduct) bool { return a.ID == b.ID })
	if len(notInCatalog) > 0 {
		slices.Sort(notInCatalog)
		log.InfoContext(ctx, "products not in the course catalog skipped", "count", len(notInCatalog), "productIds", notInCatalog)
	}
	for id := range d.catalog {
		if !listed[id] {
			log.WarnContext(ctx, "catalog product not in the Hotmart product list: its lessons are removed at the end of the sweep", "courseId", courseID(id))
		}
	}
	return walk, present
}

// sweep walks products from the cursor on. It reports whether it reached the
// end of the list and, if not, the product id the next run starts from.
func (r *run) sweep(ctx context.Context, walk []catalogProduct, cursor string) (complete bool, next string) {
	first := 0
	if cursor != "" {
		c, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil {
			r.errorf(ctx, "previous run's cursor %q is not a product id: starting a new sweep", cursor)
		} else {
			// The cursor's product may have vanished: start at the next one.
			first, _ = slices.BinarySearchFunc(walk, c, func(p catalogProduct, id int64) int { return cmp.Compare(p.ID, id) })
		}
	}
	walked := 0
	for _, p := range walk[first:] {
		if p.Status != statusActive {
			r.log.InfoContext(ctx, "inactive product skipped", "courseId", courseID(p.ID), "status", p.Status)
			continue
		}
		// The first product of a run is always walked to the end, so that
		// every run makes progress however small its budget.
		if walked > 0 && r.overBudget(ctx) {
			r.log.InfoContext(ctx, "time budget used: stopping before product", "courseId", courseID(p.ID))
			return false, courseID(p.ID)
		}
		abandoned := r.walkProduct(ctx, p, walked > 0)
		walked++
		if abandoned {
			r.log.InfoContext(ctx, "time budget used: product abandoned, the next run walks it again", "courseId", courseID(p.ID))
			return false, courseID(p.ID)
		}
	}
	return true, ""
}

// walkProduct walks one course. It reports abandoned when the budget ran out
// (only if mayAbandon) or the context ended before the walk completed. A
// failed walk is recorded, not abandoned: the sweep goes on, and the course's
// lessons are left as they are.
func (r *run) walkProduct(ctx context.Context, p catalogProduct, mayAbandon bool) (abandoned bool) {
	cid := courseID(p.ID)
	log := r.log.With("courseId", cid)
	modules, err := r.d.hotmart.Modules(ctx, p.entry.Subdomain)
	if err != nil {
		if ctx.Err() != nil {
			return true
		}
		r.errorf(ctx, "course %s: list modules of Club %q: %v (lessons kept as they were)", cid, p.entry.Subdomain, err)
		return false
	}
	slices.SortStableFunc(modules, func(a, b hotmart.Module) int {
		return cmp.Or(cmp.Compare(a.Sequence, b.Sequence), cmp.Compare(a.ID, b.ID))
	})

	seen := map[string]bool{}
	var fingerprints []string
	degraded := false // some lesson was seen but not recorded: keep the course doc as it was
	for j, m := range modules {
		if ctx.Err() != nil || (j > 0 && mayAbandon && r.overBudget(ctx)) {
			return true
		}
		pages, err := r.d.hotmart.Pages(ctx, p.ID, m.ID)
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			r.errorf(ctx, "course %s: list pages of module %s: %v (lessons kept as they were)", cid, m.ID, err)
			return false
		}
		slices.SortStableFunc(pages, func(a, b hotmart.Page) int {
			return cmp.Or(cmp.Compare(a.PageOrder, b.PageOrder), cmp.Compare(a.ID, b.ID))
		})
		for _, pg := range pages {
			if !pg.Published {
				continue // an unpublished page counts as absent
			}
			if !events.ValidLessonID(pg.ID) {
				r.errorf(ctx, "course %s: module %s: page id %q is not usable as a lesson id: page skipped", cid, m.ID, pg.ID)
				continue
			}
			if seen[pg.ID] {
				r.errorf(ctx, "course %s: page %s appears twice: second one (module %s) skipped", cid, pg.ID, m.ID)
				continue
			}
			seen[pg.ID] = true
			l, err := r.describe(ctx, p, m, pg)
			if err != nil {
				r.errorf(ctx, "lesson %s: resolve media: %v (lesson kept as it was)", pg.ID, err)
				degraded = true
				continue
			}
			if err := r.apply(ctx, l); err != nil {
				degraded = true
				continue
			}
			fingerprints = append(fingerprints, l.Fingerprint)
		}
	}
	if ctx.Err() != nil {
		return true
	}

	// The walk is complete: what the store holds and the walk did not see is
	// gone.
	active, err := r.d.store.ActiveLessonIDs(ctx, cid)
	if err != nil {
		r.errorf(ctx, "course %s: list active lessons (removals postponed): %v", cid, err)
		degraded = true
	}
	for _, id := range active {
		if !seen[id] {
			r.remove(ctx, id)
		}
	}

	if degraded {
		return false
	}
	wrote, err := r.d.store.PutCourse(ctx, lessonstate.Course{
		ID:            cid,
		Name:          p.Name,
		School:        p.entry.School,
		ClubSubdomain: p.entry.Subdomain,
		Fingerprint:   courseFingerprint(fingerprints),
		LastRunID:     r.rec.ID,
		LastWalkedAt:  r.d.now(),
	})
	if err != nil {
		r.errorf(ctx, "course %s: save course: %v", cid, err)
		return false
	}
	log.DebugContext(ctx, "course walked", "modules", len(modules), "lessons", len(fingerprints), "courseChanged", wrote)
	return false
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

// apply records an observed lesson and publishes the event it caused.
func (r *run) apply(ctx context.Context, l lessonstate.Lesson) error {
	switch l.MediaStatus {
	case lessonstate.MediaAwaiting:
		r.rec.Counts.AwaitingMedia++
		if len(r.rec.AwaitingMedia) < maxRunAwaiting {
			r.rec.AwaitingMedia = append(r.rec.AwaitingMedia, l.ID)
		}
	case lessonstate.MediaNone:
		r.rec.Counts.NoMedia++
	}
	change, ev, err := r.d.store.ApplyDetected(ctx, l.ID, lessonstate.Observed{Lesson: l, RunID: r.rec.ID})
	if err != nil {
		r.errorf(ctx, "lesson %s: record: %v", l.ID, err)
		return err
	}
	switch change {
	case lessonstate.Unchanged:
		r.rec.Counts.Unchanged++
	case lessonstate.NewLesson, lessonstate.Reappeared: // a lesson back from removal counts as new
		r.rec.Counts.New++
	case lessonstate.Changed:
		r.rec.Counts.Changed++
	}
	if change != lessonstate.Unchanged {
		r.log.InfoContext(ctx, "lesson detected", "lessonId", l.ID, "courseId", l.CourseID, "change", change.String(), "mediaStatus", l.MediaStatus)
	}
	if ev != nil {
		r.publishEvent(ctx, l.ID, *ev)
	}
	return nil
}

// remove marks a lesson removed and publishes the removal.
func (r *run) remove(ctx context.Context, id string) {
	ev, err := r.d.store.MarkRemoved(ctx, id, r.rec.ID)
	if err != nil {
		r.errorf(ctx, "lesson %s: mark removed: %v", id, err)
		return
	}
	r.rec.Counts.Removed++
	r.log.InfoContext(ctx, "lesson removed", "lessonId", id)
	if ev != nil {
		r.publishEvent(ctx, id, *ev)
	}
}

// removeVanished removes the lessons of every course that is no longer in
// the product list or the catalog. Only a complete sweep calls it.
func (r *run) removeVanished(ctx context.Context, present map[string]bool) {
	lister, ok := r.d.store.(LessonLister)
	if !ok {
		r.errorf(ctx, "vanished courses not checked: the store cannot list its lessons")
		return
	}
	lessons, err := lister.Lessons(ctx)
	if err != nil {
		r.errorf(ctx, "vanished courses not checked: list lessons: %v", err)
		return
	}
	vanished := map[string][]string{}
	for _, l := range lessons {
		if !l.Removed && !present[l.CourseID] {
			vanished[l.CourseID] = append(vanished[l.CourseID], l.ID)
		}
	}
	if len(vanished) == 0 {
		return
	}
	courses := slices.Sorted(maps.Keys(vanished))
	if len(present) == 0 {
		r.errorf(ctx, "refusing to remove every course: no catalog product is in the Hotmart product list (courses %v kept)", courses)
		return
	}
	for _, cid := range courses {
		r.log.InfoContext(ctx, "course vanished: removing its lessons", "courseId", cid, "lessons", len(vanished[cid]))
		for _, id := range vanished[cid] {
			if ctx.Err() != nil {
				return
			}
			r.remove(ctx, id)
		}
	}
}

// flushOutbox publishes what earlier runs left in outboxes.
func (r *run) flushOutbox(ctx context.Context) {
	pending, err := r.d.store.PendingOutbox(ctx)
	if err != nil {
		r.errorf(ctx, "read pending outboxes (this run's events are left in outboxes for the next run): %v", err)
		r.holdAll = true
		return
	}
	for _, l := range pending {
		if len(l.Outbox) == 0 {
			continue
		}
		r.log.InfoContext(ctx, "publishing an earlier run's outbox", "lessonId", l.ID, "events", len(l.Outbox))
		r.publish(ctx, l.ID, l.Outbox)
	}
}

// publish publishes a lesson's outbox entries in order and acknowledges the
// ones that went out. After a failure the lesson is held: what it queues
// later in this run stays behind the unpublished entry, in order, for the
// next run.
func (r *run) publish(ctx context.Context, id string, entries []lessonstate.Outbox) {
	if r.holdAll || r.held[id] {
		r.log.WarnContext(ctx, "event left in the outbox behind an unpublished one", "lessonId", id)
		return
	}
	if _, err := r.d.relay.Publish(ctx, id, entries); err != nil {
		r.errorf(ctx, "%v (the next run publishes it)", err)
		r.held[id] = true
	}
}

// publishEvent publishes the event the store just queued for a lesson.
func (r *run) publishEvent(ctx context.Context, id string, ev events.LessonEvent) {
	o, err := lessonstate.OutboxEntry(ev)
	if err != nil {
		r.errorf(ctx, "lesson %s: %v (left in the outbox)", id, err)
		return
	}
	r.publish(ctx, id, []lessonstate.Outbox{o})
}

// finish saves the run record. The save is made even when ctx is done.
func (r *run) finish(ctx context.Context, complete bool, cursor string) error {
	r.rec.Complete = complete
	r.rec.Cursor = cursor
	r.rec.FinishedAt = r.d.now()
	if r.dropped > 0 {
		r.rec.Errors = append(r.rec.Errors, fmt.Sprintf("%d more errors not listed (see the logs)", r.dropped))
	}
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSaveTimeout)
	defer cancel()
	c := r.rec.Counts
	r.log.InfoContext(ctx, "detection run finished",
		"complete", complete, "cursor", cursor, "new", c.New, "changed", c.Changed, "removed", c.Removed,
		"unchanged", c.Unchanged, "awaitingMedia", c.AwaitingMedia, "noMedia", c.NoMedia,
		"errors", len(r.rec.Errors), "duration", r.rec.FinishedAt.Sub(r.rec.StartedAt))
	if err := r.d.store.SaveRun(saveCtx, r.rec); err != nil {
		return fmt.Errorf("save run %s: %w", r.rec.ID, err)
	}
	return nil
}

// overBudget reports whether the run must stop walking.
func (r *run) overBudget(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	return !r.deadline.IsZero() && !r.d.now().Before(r.deadline)
}

// errorf records a failure in the run and logs it.
func (r *run) errorf(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.ErrorContext(ctx, msg)
	if len(r.rec.Errors) >= maxRunErrors {
		r.dropped++
		return
	}
	r.rec.Errors = append(r.rec.Errors, msg)
}

func courseID(productID int64) string { return strconv.FormatInt(productID, 10) }
