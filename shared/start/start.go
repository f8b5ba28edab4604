// Package start is the process step's trigger (DESIGN.md section 2): when a
// lesson version's video lands in the raw bucket (or the sweeper re-drives a
// version whose start was lost), it claims the version's process step and
// starts one execution of the lesson-pipeline workflow, which runs transcribe
// ∥ analyze and joins them.
//
// One execution per version, whatever the deliveries: the claim lets one
// caller at a time start, and before starting it asks the Executions API for
// an execution already carrying the version's labels — so a starter that
// crashed after starting one, before recording it, is followed by one that
// finds and adopts it instead of starting a second.
package start

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	executions "cloud.google.com/go/workflows/executions/apiv1"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/api/iterator"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/tracing"
)

// OutExecution is the output key of the process step naming its execution.
const OutExecution = "execution"

// Execution labels: label values allow lower-case letters, digits, '_' and
// '-' only, so the lesson id (mixed case) is carried as a hash.
const (
	LabelLesson  = "lesson"
	LabelVersion = "version"
	LabelAttempt = "attempt"
)

// Deps are the starter's collaborators and settings.
type Deps struct {
	Store      *lessonstate.Store
	Executions *executions.Client
	Announcer  interface {
		Event(ctx context.Context, lessonID string, ev events.LessonEvent) error
	}
	// Workflow is projects/P/locations/L/workflows/lesson-pipeline.
	Workflow  string
	RawBucket string
	// StartLease holds the process step while an execution is being
	// started; ProcessLease once it runs: the longest an execution may take
	// (transcription polling included). The sweeper re-drives after it.
	StartLease, ProcessLease time.Duration
	Outcome                  func(context.Context) (context.Context, context.CancelFunc)
	Log                      *slog.Logger
}

// Starter starts lesson-pipeline executions.
type Starter struct{ Deps }

// New returns a Starter, or an error naming what is missing.
func New(d Deps) (*Starter, error) {
	if err := setup.Missing("start", map[string]any{
		"store": d.Store, "executions": d.Executions, "announcer": d.Announcer, "outcome": d.Outcome, "logger": d.Log,
	}); err != nil {
		return nil, err
	}
	if d.Workflow == "" || d.RawBucket == "" || d.StartLease <= 0 || d.ProcessLease <= 0 {
		return nil, fmt.Errorf("start: workflow %q, raw bucket %q and both leases must be set", d.Workflow, d.RawBucket)
	}
	return &Starter{d}, nil
}

// sourcePattern is the name of a source video the downloader writes
// (download.ObjectName).
var sourcePattern = regexp.MustCompile(`^lessons/([A-Za-z0-9_-]{1,128})/v([1-9][0-9]{0,8})/source\.[a-z0-9]{1,5}$`)

// Own reports which lesson version a finalized object starts, or why the
// starter does not own it: another bucket, derived audio, an ingest master,
// anything the downloader did not write.
func (s *Starter) Own(obj events.StorageObject) (events.LessonEvent, string) {
	if obj.Bucket != s.RawBucket {
		return events.LessonEvent{}, fmt.Sprintf("object of bucket %s, not the raw bucket", obj.Bucket)
	}
	m := sourcePattern.FindStringSubmatch(obj.Name)
	if m == nil {
		return events.LessonEvent{}, "not a lesson's source video"
	}
	v, _ := strconv.Atoi(m[2])
	if obj.Metadata[events.AttrLessonID] != m[1] || obj.Metadata[events.AttrVersion] != m[2] {
		return events.LessonEvent{}, "its metadata does not name the lesson version its name does"
	}
	return events.LessonEvent{LessonID: m[1], Version: v, CourseID: obj.Metadata["courseId"]}, ""
}

// Start claims the version's process step and makes sure one execution runs
// it. It returns nil when the event must be acknowledged and an error when a
// redelivery may succeed.
func (s *Starter) Start(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(s.Log, ev.LessonID, ev.Version, lessonstate.StepProcess)
	claim, err := s.Store.Claim(ctx, ev.LessonID, lessonstate.StepProcess, ev.Version, s.StartLease)
	if errors.Is(err, lessonstate.ErrNotFound) {
		log.ErrorContext(ctx, "event names an unknown lesson; acknowledged, nothing started")
		return nil
	}
	if err != nil {
		return fmt.Errorf("start lesson %s v%d: %w", ev.LessonID, ev.Version, err)
	}
	if claim.Outcome != lessonstate.Claimed {
		log.InfoContext(ctx, "nothing to start", "claim", claim.Outcome.String(), "execution", claim.Stage.Outputs[OutExecution])
		return nil
	}
	if ev.CourseID == "" {
		ev.CourseID = claim.Lesson.CourseID
	}
	if ev.RunID == "" {
		ev.RunID = claim.Lesson.LastRunID
	}
	name, adopted, err := s.execution(ctx, ev, claim.Stage.Attempts)

	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if err != nil {
		return s.fail(octx, log, ev, claim, err)
	}
	if _, err := s.Store.Note(octx, ev.LessonID, lessonstate.StepProcess, ev.Version, claim.Token,
		map[string]string{OutExecution: name}, s.ProcessLease); err != nil {
		if errors.Is(err, lessonstate.ErrLeaseLost) {
			log.WarnContext(ctx, "start lease lost; the execution runs, the new owner adopts it", "execution", name)
			return nil
		}
		// The execution runs; the next starter finds it by its labels.
		return fmt.Errorf("start lesson %s v%d: record execution %s: %w", ev.LessonID, ev.Version, name, err)
	}
	log.InfoContext(ctx, "lesson-pipeline running", "execution", name, "adopted", adopted, "attempt", claim.Stage.Attempts)
	return nil
}

// execution finds the version's running execution, or starts one.
func (s *Starter) execution(ctx context.Context, ev events.LessonEvent, attempt int) (name string, adopted bool, err error) {
	if name, err := s.running(ctx, ev); err != nil || name != "" {
		return name, name != "", err
	}
	arg := map[string]any{"lessonId": ev.LessonID, "version": ev.Version, "courseId": ev.CourseID, "runId": ev.RunID}
	trace := map[string]string{}
	tracing.Inject(ctx, trace)
	if tp := trace[events.AttrTraceparent]; tp != "" {
		arg["traceparent"] = tp
	}
	b, err := json.Marshal(arg)
	if err != nil {
		return "", false, fmt.Errorf("encode execution argument: %w", err)
	}
	labels := Labels(ev.LessonID, ev.Version)
	labels[LabelAttempt] = strconv.Itoa(attempt)
	ex, err := s.Executions.CreateExecution(ctx, &executionspb.CreateExecutionRequest{
		Parent:    s.Workflow,
		Execution: &executionspb.Execution{Argument: string(b), Labels: labels},
	})
	if err != nil {
		return "", false, apiError("start execution", err)
	}
	return ex.GetName(), false, nil
}

// running returns the name of an execution of the version still at work
// (queued or active), or "".
func (s *Starter) running(ctx context.Context, ev events.LessonEvent) (string, error) {
	labels := Labels(ev.LessonID, ev.Version)
	it := s.Executions.ListExecutions(ctx, &executionspb.ListExecutionsRequest{
		Parent: s.Workflow,
		Filter: fmt.Sprintf(`labels.%s="%s" AND labels.%s="%s"`, LabelLesson, labels[LabelLesson], LabelVersion, labels[LabelVersion]),
	})
	for {
		ex, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return "", nil
		}
		if err != nil {
			return "", apiError("look for the version's execution", err)
		}
		switch ex.GetState() {
		case executionspb.Execution_ACTIVE, executionspb.Execution_QUEUED:
			return ex.GetName(), nil
		}
	}
}

// Labels are the execution labels naming a lesson version.
func Labels(lessonID string, version int) map[string]string {
	sum := sha256.Sum256([]byte(lessonID))
	return map[string]string{LabelLesson: hex.EncodeToString(sum[:])[:40], LabelVersion: strconv.Itoa(version)}
}

// fail records a failed start; a retryable one is retried by the
// redelivery (or the sweeper), a permanent one fails the lesson.
func (s *Starter) fail(ctx context.Context, log *slog.Logger, ev events.LessonEvent, claim lessonstate.Claim, cause error) error {
	f, err := s.Store.Fail(ctx, ev.LessonID, lessonstate.StepProcess, ev.Version, claim.Token, cause.Error(), !failure.IsPermanent(cause))
	switch {
	case errors.Is(err, lessonstate.ErrLeaseLost):
		return nil
	case err != nil:
		return fmt.Errorf("start lesson %s v%d: record failure %q: %w", ev.LessonID, ev.Version, cause, err)
	case f.State != lessonstate.StateFailed:
		log.WarnContext(ctx, "lesson-pipeline not started; will retry", "error", cause.Error())
		return fmt.Errorf("start lesson %s v%d: %w", ev.LessonID, ev.Version, cause)
	}
	log.ErrorContext(ctx, "lesson-pipeline cannot start", "error", cause.Error())
	if err := s.Announcer.Event(ctx, ev.LessonID, *f.Announce); err != nil {
		log.WarnContext(ctx, "failure announcement left in the outbox", "error", err.Error())
	}
	return nil
}
