// Package detect is the pipeline's first stage (DESIGN.md section 1, step 1):
// it walks the producer's courses on Hotmart (products, Club modules, pages),
// describes every published page of a lesson type as a lesson, resolves its
// media from the producer's media source, and records what changed in the
// lesson store. The store puts one event per new, changed or removed lesson
// in the lesson's outbox, in the same write; the detector then publishes the
// outbox and acknowledges it. Every run first publishes what earlier runs
// left in outboxes, so a crash between a write and its publication loses
// nothing.
//
// Failures are isolated at the smallest unit (walk.go): a page that cannot
// be decoded or used is skipped and named, a module that cannot be read is
// skipped and named while its siblings are walked, and a course that cannot
// be walked completely keeps its lessons as they are (nothing is removed on
// the strength of a partial walk) and is walked again in full by the next
// run. The run record and the detector's answer say, per course, what
// happened (run.go).
//
// Cost does not grow with what did not change (record.go): a course whose
// structure fingerprint matches the stored one costs its one course read and
// no lesson read or write; removals are found from lesson ids alone, page by
// page. Memory holds one course's lessons at a time, never the catalog's.
//
// A run has a time budget. Products are walked in ascending id order; a run
// that runs out of budget is saved with a cursor, and the next run resumes
// the sweep there. Lessons that vanished from a course are removed as soon as
// that course's walk completes; courses that vanished from the product list
// or the catalog are removed only at the end of a sweep that read the whole
// product list (vanished.go).
package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/relay"
)

// Hotmart reads the producer's course structure. Each list call returns the
// elements it could decode and names those it could not (hotmart.Skipped).
type Hotmart interface {
	// Products lists every product of the producer, all pages of results.
	// On error it returns the products read before the failure with it.
	Products(ctx context.Context) ([]hotmart.Product, []hotmart.Skipped, error)
	// Modules lists the Club modules of the course served at subdomain.
	Modules(ctx context.Context, subdomain string) ([]hotmart.Module, []hotmart.Skipped, error)
	// Pages lists a module's pages.
	Pages(ctx context.Context, productID int64, moduleID string) ([]hotmart.Page, []hotmart.Skipped, error)
}

// MediaResolver finds a page's media in the producer's media source. It
// returns nil and no error when the source has no media for the page yet.
type MediaResolver interface {
	Resolve(ctx context.Context, productID int64, moduleID, pageID string) (*lessonstate.Media, error)
}

// Store is the lesson state the detector reads and writes
// (lessonstate.Store).
type Store interface {
	// ApplyDetected records an observed lesson. When it is new, changed or
	// back, the store bumps its version and puts the event to publish in the
	// lesson's outbox in the same write; an unchanged lesson is not written.
	ApplyDetected(ctx context.Context, id string, obs lessonstate.Observed) (lessonstate.Change, *events.LessonEvent, error)
	// MarkRemoved marks a lesson removed and puts the removal event in its
	// outbox.
	MarkRemoved(ctx context.Context, id, runID string) (*events.LessonEvent, error)
	// ActiveLessonIDPage lists up to limit ids of a course's lessons that
	// are not removed, in id order, after the id after.
	ActiveLessonIDPage(ctx context.Context, courseID, after string, limit int) ([]string, error)
	// Courses lists every course document.
	Courses(ctx context.Context) ([]lessonstate.Course, error)
	// SetCourse writes a course document.
	SetCourse(ctx context.Context, c lessonstate.Course) error
	// PendingOutbox lists the lessons whose outbox holds unpublished events.
	PendingOutbox(ctx context.Context) ([]lessonstate.Lesson, error)
	// AckOutbox clears the published entries from a lesson's outbox.
	AckOutbox(ctx context.Context, id string, published []lessonstate.Outbox) error
	// SaveRun writes a run record.
	SaveRun(ctx context.Context, r lessonstate.Run) error
	// LatestRun returns the most recently started run, if any.
	LatestRun(ctx context.Context) (lessonstate.Run, bool, error)
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

// DefaultLessonTypes are the Hotmart page types that are lessons: content
// pages and webinars carry what a student learns. Advertisements and quizzes
// do not: they are counted and reported, never recorded.
var DefaultLessonTypes = []string{"CONTENT", "WEBINAR"}

// pageTypePattern is what a Hotmart page type looks like.
var pageTypePattern = regexp.MustCompile(`^[A-Z][A-Z_]*$`)

// Option configures a Detector.
type Option func(*Detector) error

// WithLessonTypes sets the page types that become lessons (default
// DefaultLessonTypes), compared without regard to case.
func WithLessonTypes(types ...string) Option {
	return func(d *Detector) error {
		set := map[string]bool{}
		var bad []string
		for _, t := range types {
			t = strings.ToUpper(strings.TrimSpace(t))
			if !pageTypePattern.MatchString(t) {
				bad = append(bad, fmt.Sprintf("%q", t))
				continue
			}
			set[t] = true
		}
		switch {
		case len(bad) > 0:
			return fmt.Errorf("lesson page types %s are not Hotmart page types (CONTENT, WEBINAR, QUIZ, ADVERTISEMENT, ...)", strings.Join(bad, ", "))
		case len(set) == 0:
			return errors.New("no lesson page type given: no page would become a lesson")
		}
		d.lessonTypes = set
		return nil
	}
}

// Detector walks the catalog's courses and records what changed.
type Detector struct {
	hotmart     Hotmart
	media       MediaResolver
	store       Store
	catalog     Catalog
	relay       *relay.Relay
	log         *slog.Logger
	now         func() time.Time
	lessonTypes map[string]bool
	// applyWorkers bounds the lessons of one course recorded at once.
	applyWorkers int
	// idPage is how many lesson ids one removal query reads.
	idPage int
}

// applyWorkers is how many lessons of a changed course are recorded
// concurrently: each is a Firestore transaction and, for most, a publish
// that waits for Pub/Sub's batch; one at a time a 1,000-lesson course
// would spend most of its walk waiting.
const applyWorkers = 16

// New returns a Detector, or an error naming every missing dependency and
// bad option.
func New(h Hotmart, m MediaResolver, s Store, p Publisher, cat Catalog, logger *slog.Logger, opts ...Option) (*Detector, error) {
	var problems []error
	if h == nil {
		problems = append(problems, errors.New("Hotmart client is nil"))
	}
	if m == nil {
		problems = append(problems, errors.New("media resolver is nil"))
	}
	if len(cat) == 0 {
		problems = append(problems, errors.New("course catalog is empty"))
	}
	d := &Detector{hotmart: h, media: m, store: s, catalog: cat, log: logger, now: time.Now, applyWorkers: applyWorkers, idPage: idPage}
	if err := WithLessonTypes(DefaultLessonTypes...)(d); err != nil {
		panic("detect: default lesson types: " + err.Error())
	}
	for _, o := range opts {
		if err := o(d); err != nil {
			problems = append(problems, err)
		}
	}
	rl, err := relay.New(s, p, logger)
	if err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	d.relay = rl
	return d, nil
}

// LessonTypes returns the page types that become lessons, sorted.
func (d *Detector) LessonTypes() []string {
	out := make([]string, 0, len(d.lessonTypes))
	for t := range d.lessonTypes {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Run performs one detection run and saves its record. Every failure is
// recorded where it belongs — a course's in its CourseRun, the run's own in
// Errors — and the record's Outcome says how the run ended. Run returns an
// error only when the run record could not be saved.
func (d *Detector) Run(ctx context.Context, opts RunOptions) (lessonstate.Run, error) {
	start := d.now()
	id := opts.RunID
	if id == "" {
		id = "run-" + start.UTC().Format("20060102T150405.000Z")
	}
	r := newRun(d, id, start)
	if opts.Budget > 0 {
		r.deadline = start.Add(opts.Budget)
	}

	cursor := r.resumeCursor(ctx)
	// Saved now, a record with the resume point survives a crash of this
	// run: the next one resumes where this one started.
	r.rec.Cursor = cursor
	if err := d.store.SaveRun(ctx, r.rec); err != nil {
		r.runError(ctx, err, "save run at start: %v", err)
	}

	r.flushOutbox(ctx)
	r.loadCourses(ctx)

	products, skipped, err := d.hotmart.Products(ctx)
	for _, s := range skipped {
		r.runProblem(ctx, "product list: %s", s)
	}
	listComplete := err == nil && len(skipped) == 0
	if err != nil {
		if len(products) == 0 {
			r.listErr = err
			r.runError(ctx, err, "list Hotmart products: %v (nothing walked)", err)
			return r.result(ctx, cursor)
		}
		r.runError(ctx, err, "list Hotmart products: %v (walking the %d products read; no course is removed for missing from the list)", err, len(products))
	}

	walk, present := d.plan(ctx, products, listComplete, r.log)
	done, next := r.sweep(ctx, walk, cursor)
	if done && listComplete {
		r.removeVanished(ctx, present)
	}
	return r.result(ctx, next)
}

// result finishes the run and returns its record.
func (r *run) result(ctx context.Context, cursor string) (lessonstate.Run, error) {
	err := r.finish(ctx, cursor)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec, err
}

// resumeCursor returns the product id the previous run asked this one to
// start from, or "" to start a new sweep.
func (r *run) resumeCursor(ctx context.Context) string {
	prev, found, err := r.d.store.LatestRun(ctx)
	switch {
	case err != nil:
		r.runError(ctx, err, "read latest run (starting a new sweep): %v", err)
		return ""
	case !found:
		return ""
	}
	if prev.Cursor != "" {
		r.log.InfoContext(ctx, "resuming a sweep that stopped at its time budget", "previousRunId", prev.ID, "cursor", prev.Cursor)
	}
	return prev.Cursor
}

// loadCourses reads every stored course once: their fingerprints tell an
// unchanged course from a changed one, and their ids which courses vanished.
// Without them every course is recorded lesson by lesson, which is right but
// costly, and no course is removed.
func (r *run) loadCourses(ctx context.Context) {
	courses, err := r.d.store.Courses(ctx)
	if err != nil {
		r.runError(ctx, err, "read stored courses (every course is recorded lesson by lesson; vanished courses are not checked): %v", err)
		return
	}
	r.stored = make(map[string]lessonstate.Course, len(courses))
	for _, c := range courses {
		r.stored[c.ID] = c
	}
}
