package detect

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// The run record is the run's honest answer: per course what happened and
// why, the run's own errors once each, and one outcome a person, Cloud
// Scheduler and an alert can each act on.

// FinishedMessage is the message of the one line a run logs when it ends,
// with its outcome, counts and durationSeconds. The alert on partial runs
// is a log-based metric on it: jsonPayload.message = FinishedMessage and
// jsonPayload.outcome = "partial" or "failed". Keep both stable.
const FinishedMessage = "detection run finished"

// Run outcomes (lessonstate.Run.Outcome).
const (
	// OutcomeComplete: the sweep reached the end of the product list, every
	// course was walked completely and nothing went wrong.
	OutcomeComplete = "complete"
	// OutcomeBudget: the run used its time budget with nothing wrong so far;
	// the next run resumes the sweep at the cursor.
	OutcomeBudget = "budget"
	// OutcomePartial: something could not be taken in — a course partial or
	// failed, a product skipped, an event left unpublished — while the rest
	// was recorded. The next run tries again whatever was missed.
	OutcomePartial = "partial"
	// OutcomeFailed: nothing could be walked — the product list could not be
	// read, or every course due failed.
	OutcomeFailed = "failed"
)

// Course outcomes (lessonstate.CourseRun.Outcome).
const (
	CourseWalked    = "walked"
	CoursePartial   = "partial"
	CourseFailed    = "failed"
	CourseAbandoned = "abandoned"
	CourseInactive  = "inactive"
	// CourseVanished: the course left the product list or the catalog and
	// this run removed its lessons.
	CourseVanished = "vanished"
)

// Limits that keep a run document well under Firestore's 1 MiB. Whatever
// goes past them is counted in the record and logged in full.
const (
	maxRunErrors   = 200
	maxRunAwaiting = 2000
	maxRunCourses  = 1000
	maxRunProblems = 300 // problems and warnings, over all courses
)

// finalSaveTimeout bounds the run record's last write, which is made even
// when the run's context is already done.
const finalSaveTimeout = 15 * time.Second

// run is the state of one Run call. Lessons of a course are recorded
// concurrently, so what they touch is guarded by mu.
type run struct {
	d        *Detector
	log      *slog.Logger
	start    time.Time
	deadline time.Time // zero: no budget
	// stored are the course documents read at the start, by id; nil when
	// they could not be read.
	stored map[string]lessonstate.Course
	// listErr is the product list's failure when it read nothing.
	listErr error

	mu            sync.Mutex
	rec           lessonstate.Run
	droppedErrors int
	problemsKept  int
	// trouble is set by any error or problem of the run's own: the
	// outcome is then partial at best.
	trouble bool
	// failedTransient stays true while every failed course failed for
	// reasons a retry may fix.
	failedTransient bool
	// held names lessons whose outbox holds an entry this run could not
	// publish: their later entries stay queued behind it, so that the next
	// run publishes them in order. holdAll holds every lesson (the outbox
	// could not be read at start).
	held    map[string]bool
	holdAll bool
}

func newRun(d *Detector, id string, start time.Time) *run {
	return &run{
		d: d, log: d.log.With("runId", id), start: start,
		rec:             lessonstate.Run{ID: id, StartedAt: start},
		held:            map[string]bool{},
		failedTransient: true,
	}
}

// runError records a failure of the run's own (not of one course) and logs
// it, once. err is the cause, nil when there is none to classify.
func (r *run) runError(ctx context.Context, err error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.ErrorContext(ctx, msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trouble = true
	if len(r.rec.Errors) >= maxRunErrors {
		r.droppedErrors++
		return
	}
	r.rec.Errors = append(r.rec.Errors, msg)
}

// runProblem records something of the run's own that was not taken in.
func (r *run) runProblem(ctx context.Context, format string, args ...any) {
	r.runError(ctx, nil, format, args...)
}

// keepProblem reports whether one more course problem fits the record.
func (r *run) keepProblem() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.problemsKept >= maxRunProblems {
		return false
	}
	r.problemsKept++
	return true
}

// count changes the run's tallies.
func (r *run) count(f func(*lessonstate.Counts)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.rec.Counts)
}

// notLesson counts a published page whose type is not a lesson type.
func (r *run) notLesson(pageType string) {
	if pageType == "" {
		pageType = "(none)"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.Counts.NotLessons++
	if r.rec.NotLessonTypes == nil {
		r.rec.NotLessonTypes = map[string]int{}
	}
	r.rec.NotLessonTypes[pageType]++
}

// observed counts what a lesson of a walked course says about its media.
func (r *run) observed(l lessonstate.Lesson) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch l.MediaStatus {
	case lessonstate.MediaAwaiting:
		r.rec.Counts.AwaitingMedia++
		if len(r.rec.AwaitingMedia) < maxRunAwaiting {
			r.rec.AwaitingMedia = append(r.rec.AwaitingMedia, l.ID)
		}
	case lessonstate.MediaNone:
		r.rec.Counts.NoMedia++
	}
}

// courseDone adds a course's report to the run.
func (r *run) courseDone(ctx context.Context, rep *courseReport) {
	rec := rep.rec
	level := slog.LevelDebug
	if rec.Outcome != CourseWalked && rec.Outcome != CourseInactive {
		level = slog.LevelInfo
	}
	r.log.Log(ctx, level, "course "+rec.Outcome, "courseId", rec.CourseID, "outcome", rec.Outcome,
		"changed", rec.Changed, "modules", rec.Modules, "lessons", rec.Lessons, "notLessons", rec.NotLessons,
		"problems", len(rec.Problems)+rec.MoreProblems)
	transient := rep.transient()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch rec.Outcome {
	case CourseWalked:
		r.rec.Counts.CoursesWalked++
	case CoursePartial:
		r.rec.Counts.CoursesPartial++
	case CourseFailed:
		r.rec.Counts.CoursesFailed++
		r.failedTransient = r.failedTransient && transient
	}
	if len(r.rec.Courses) >= maxRunCourses {
		r.rec.MoreCourses++
		return
	}
	r.rec.Courses = append(r.rec.Courses, rec)
}

// outcome decides how the run ended, and whether a failure is transient.
// r.mu is held.
func (r *run) outcome(cursor string) (string, bool) {
	c := r.rec.Counts
	switch {
	case r.listErr != nil:
		return OutcomeFailed, !failure.IsPermanent(r.listErr)
	case c.CoursesFailed > 0 && c.CoursesWalked == 0 && c.CoursesPartial == 0:
		return OutcomeFailed, r.failedTransient
	case r.trouble || c.CoursesPartial > 0 || c.CoursesFailed > 0:
		return OutcomePartial, false
	case cursor != "":
		return OutcomeBudget, false
	}
	return OutcomeComplete, false
}

// finish decides the outcome, logs the run's one closing line and saves the
// record. The save is made even when ctx is done.
func (r *run) finish(ctx context.Context, cursor string) error {
	r.mu.Lock()
	r.rec.Cursor = cursor
	r.rec.FinishedAt = r.d.now()
	r.rec.Outcome, r.rec.Transient = r.outcome(cursor)
	r.rec.Complete = r.rec.Outcome == OutcomeComplete
	if r.droppedErrors > 0 {
		r.rec.Errors = append(r.rec.Errors, fmt.Sprintf("%d more errors not listed (see the logs)", r.droppedErrors))
	}
	rec := r.rec
	r.mu.Unlock()

	// This line is what the partial-run alert counts (FinishedMessage).
	level := slog.LevelInfo
	switch rec.Outcome {
	case OutcomePartial:
		level = slog.LevelWarn
	case OutcomeFailed:
		level = slog.LevelError
	}
	c := rec.Counts
	r.log.Log(ctx, level, FinishedMessage,
		"outcome", rec.Outcome, "transient", rec.Transient, "complete", rec.Complete, "cursor", cursor,
		"coursesWalked", c.CoursesWalked, "coursesPartial", c.CoursesPartial, "coursesFailed", c.CoursesFailed,
		"new", c.New, "changed", c.Changed, "removed", c.Removed, "unchanged", c.Unchanged,
		"awaitingMedia", c.AwaitingMedia, "noMedia", c.NoMedia, "notLessons", c.NotLessons,
		"skippedModules", c.SkippedModules, "skippedPages", c.SkippedPages,
		"errors", len(rec.Errors), "durationSeconds", seconds(rec.FinishedAt.Sub(rec.StartedAt)))

	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSaveTimeout)
	defer cancel()
	if err := r.d.store.SaveRun(saveCtx, rec); err != nil {
		return fmt.Errorf("save run %s: %w", rec.ID, err)
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

// seconds is how durations are logged in the detect stage: a number of
// seconds (millisecond precision) under a key ending in "Seconds", which
// Cloud Logging shows and filters as a number. slog would write a
// time.Duration as raw nanoseconds.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// courseReport builds a course's CourseRun: its problems are logged as they
// are found and kept in the run record within the run's budget.
type courseReport struct {
	r *run

	// mu guards rec and causes: a changed course's lessons are recorded
	// by several goroutines.
	mu  sync.Mutex
	rec lessonstate.CourseRun
	// causes are the errors behind the problems, when there are some: a
	// course that failed only for transient reasons may pass on a retry.
	causes []error
}

func (r *run) newCourseReport(courseID string) *courseReport {
	return &courseReport{r: r, rec: lessonstate.CourseRun{CourseID: courseID}}
}

// problem names something the course's walk could not take in.
func (c *courseReport) problem(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.r.log.WarnContext(ctx, "course problem: "+msg, "courseId", c.rec.CourseID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r.keepProblem() {
		c.rec.Problems = append(c.rec.Problems, msg)
	} else {
		c.rec.MoreProblems++
	}
}

// warning names something recorded anyway that deserves a look.
func (c *courseReport) warning(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.r.log.WarnContext(ctx, "course warning: "+msg, "courseId", c.rec.CourseID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r.keepProblem() {
		c.rec.Warnings = append(c.rec.Warnings, msg)
	} else {
		c.rec.MoreProblems++
	}
}

// cause keeps an error behind a problem.
func (c *courseReport) cause(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.causes = append(c.causes, err)
}

// transient reports whether every cause kept may pass on a retry: none is
// marked permanent. A course with no cause kept has none that could.
func (c *courseReport) transient() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.causes) == 0 {
		return false
	}
	for _, err := range c.causes {
		if failure.IsPermanent(err) {
			return false
		}
	}
	return true
}
