// Package analyze is the analyze stage (DESIGN.md sections 1, 4 and 5,
// "Gemini"): Gemini on Vertex AI watches a lesson's video from the raw
// bucket, by its gs:// URI, and returns what it shows — slide text, code on
// screen, diagrams, demonstrations, concepts — each with its time, as JSON
// under a response schema. The lesson-pipeline workflow calls it over HTTP
// (shared/workflowcall), in parallel with the transcribe stage.
//
// A lesson longer than one request holds is analyzed in windows, merged
// back in order into analysis.json. Every answer is checked against the
// contract; a bad one is asked again, then fails the stage with a reason
// naming the window and the fault. Each window's checked answer is stored
// as soon as it is made, so a call retried after a failure asks only for
// the windows not yet paid for. Every call's tokens go to the lesson's
// cost ledger, bad answers included: they were paid too.
package analyze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

// Announcer publishes an event the store queued in a lesson's outbox
// (relay.Relay).
type Announcer interface {
	Event(ctx context.Context, lessonID string, ev events.LessonEvent) error
}

// Deps are the stage's collaborators. The lesson store, Cloud Storage and
// genai clients are the real ones; tests point them at the emulators, the
// local Cloud Storage and the local Gemini.
type Deps struct {
	Store     *lessonstate.Store
	Storage   *storage.Client
	Gemini    *genai.Client
	Announcer Announcer
	// Outcome gives the context the final Complete, Skip or Fail is
	// written on: detached from the request's cancellation (setup.Env.Outcome).
	Outcome func(context.Context) (context.Context, context.CancelFunc)
	Settings
}

// Settings are the stage's settings (Config.Settings).
type Settings struct {
	RawBucket       string
	ArtifactsBucket string
	Enabled         bool
	Model           string
	// Window is the longest span of video one request holds, in whole
	// seconds.
	Window time.Duration
	FPS    float64
	// Resolution is the media resolution frames are asked at (empty: the
	// model's default).
	Resolution    genai.MediaResolution
	AnswerRetries int
	Lease         time.Duration
}

// Stage runs the analyze stage. It is safe for concurrent use.
type Stage struct{ Deps }

// New returns the stage, or an error naming every missing dependency or
// setting.
func New(d Deps) (*Stage, error) {
	if err := setup.Missing("analyze", map[string]any{
		"store": d.Store, "storage": d.Storage, "gemini": d.Gemini, "announcer": d.Announcer, "outcome": d.Outcome,
	}); err != nil {
		return nil, err
	}
	var errs []error
	if d.RawBucket == "" || d.ArtifactsBucket == "" {
		errs = append(errs, fmt.Errorf("raw bucket %q and artifacts bucket %q must be set", d.RawBucket, d.ArtifactsBucket))
	}
	if d.Model == "" {
		errs = append(errs, errors.New("model must be set"))
	}
	if d.Window < time.Second || d.Window%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window %s must be a positive whole number of seconds", d.Window))
	}
	if !(d.FPS > 0 && d.FPS <= maxFPS) {
		errs = append(errs, fmt.Errorf("fps %g must be in (0, %d]", d.FPS, maxFPS))
	}
	if d.AnswerRetries < 0 || d.Lease <= 0 {
		errs = append(errs, fmt.Errorf("answer retries %d must be ≥ 0 and lease %s positive", d.AnswerRetries, d.Lease))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return &Stage{d}, nil
}

// Output keys the stage records in the lesson's stage outputs.
const (
	OutURI      = "uri"      // gs:// URI of analysis.json
	OutElements = "elements" // how many visual elements it holds
	OutWindows  = "windows"  // how many windows were analyzed; while running, "k/n" done
	OutModel    = "model"    // the Gemini model
)

// Handle runs what the workflow asks: ActionRun or ActionFail. Its error
// maps to the answer's status through workflowcall.Write: permanent (422)
// when the stage is failed for good, retryable (503) otherwise.
func (s *Stage) Handle(ctx context.Context, req workflowcall.Request) (workflowcall.Response, error) {
	switch req.Action {
	case workflowcall.ActionRun:
		return s.Run(ctx, req.LessonID, req.Version)
	case workflowcall.ActionFail:
		return s.GiveUp(ctx, req.LessonID, req.Version, req.Reason, req.Transient)
	}
	return workflowcall.Response{}, &failure.Permanent{Err: &workflowcall.BadRequestError{
		Err: fmt.Errorf("the analyzer answers %q and %q, not %q", workflowcall.ActionRun, workflowcall.ActionFail, req.Action)}}
}

// Run analyzes a lesson version, or says why it need not: done already
// (with its artifact), skipped, stale, failed for good (422), or busy in
// another call (503: retry later).
func (s *Stage) Run(ctx context.Context, lessonID string, version int) (workflowcall.Response, error) {
	log := logging.Lesson(logging.FromContext(ctx), lessonID, version, lessonstate.StageAnalyze)
	claim, resp, err := s.claim(ctx, log, lessonID, version)
	if err != nil || claim == nil {
		return resp, err
	}
	if !s.Enabled {
		const reason = "video analysis is switched off by configuration (ANALYSIS_ENABLED=false)"
		octx, cancel := s.Outcome(ctx)
		defer cancel()
		if err := s.Store.Skip(octx, lessonID, lessonstate.StageAnalyze, version, claim.Token, reason); err != nil {
			return workflowcall.Response{}, failure.Retryablef("analyze lesson %s v%d: record skip: %w", lessonID, version, err)
		}
		log.InfoContext(ctx, "analysis skipped", "reason", reason)
		return workflowcall.Response{Done: true, Skipped: true, Reason: reason}, nil
	}

	log.InfoContext(ctx, "analysis started", "attempt", claim.Stage.Attempts)
	res, err := s.analyze(ctx, log, claim)

	// The outcome is written even when the request was cut off meanwhile.
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if err != nil {
		return workflowcall.Response{}, s.fail(octx, log, lessonID, version, claim, err)
	}
	outputs := map[string]string{
		OutURI:      res.uri,
		OutElements: fmt.Sprint(len(res.analysis.Elements)),
		OutWindows:  fmt.Sprint(len(res.analysis.Windows)),
		OutModel:    res.analysis.Model,
	}
	if err := s.Store.Complete(octx, lessonID, lessonstate.StageAnalyze, version, claim.Token, outputs); err != nil {
		// Our lease lapsed and another call owns the stage, or Firestore
		// failed: either way the windows and analysis.json are stored, and
		// the workflow's retry finds the stage done or finishes it for free.
		return workflowcall.Response{}, failure.Retryablef("analyze lesson %s v%d: complete: %w", lessonID, version, err)
	}
	log.InfoContext(ctx, "analysis done", "uri", res.uri, "elements", len(res.analysis.Elements),
		"windows", len(res.analysis.Windows), "asked", res.asked, "reused", res.reused)
	return workflowcall.Response{Done: true, URI: res.uri}, nil
}

// claim claims the stage. It returns the claim when the caller owns the
// stage; otherwise the answer to give, or the error to answer with.
func (s *Stage) claim(ctx context.Context, log *slog.Logger, lessonID string, version int) (*lessonstate.Claim, workflowcall.Response, error) {
	c, err := s.Store.Claim(ctx, lessonID, lessonstate.StageAnalyze, version, s.Lease)
	switch {
	case errors.Is(err, lessonstate.ErrNotFound):
		return nil, workflowcall.Response{}, failure.Permanentf("analyze lesson %s v%d: no such lesson", lessonID, version)
	case err != nil:
		return nil, workflowcall.Response{}, failure.Retryablef("analyze lesson %s v%d: %w", lessonID, version, err)
	}
	rec := c.Stage
	switch c.Outcome {
	case lessonstate.Claimed:
		return &c, workflowcall.Response{}, nil
	case lessonstate.AlreadyDone:
		log.InfoContext(ctx, "analysis already done", "uri", rec.Outputs[OutURI])
		return nil, workflowcall.Response{Done: true, URI: rec.Outputs[OutURI]}, nil
	case lessonstate.Skipped:
		return nil, workflowcall.Response{Done: true, Skipped: true, Reason: rec.Error}, nil
	case lessonstate.Stale:
		log.InfoContext(ctx, "stale call: the lesson moved on", "lessonVersion", c.Lesson.Version, "removed", c.Lesson.Removed)
		return nil, workflowcall.Response{Stale: true}, nil
	case lessonstate.AlreadyFailed:
		return nil, workflowcall.Response{}, failure.Permanentf("analyze lesson %s v%d failed earlier: %s", lessonID, version, rec.Error)
	case lessonstate.Busy:
		return nil, workflowcall.Response{}, failure.Retryablef("analyze lesson %s v%d: another call is at work on it (lease until %s)",
			lessonID, version, rec.LeaseUntil.UTC().Format(time.RFC3339))
	}
	return nil, workflowcall.Response{}, fmt.Errorf("analyze lesson %s v%d: unexpected claim outcome %s", lessonID, version, c.Outcome)
}

// fail records a failed attempt. A permanent cause, or a retryable one
// out of attempts, fails the stage for good (and the process step with
// it), announced once on lesson-events: the answer is then permanent, and
// the workflow stops. Otherwise the stage goes back to pending and the
// answer is retryable: the workflow's retry claims it again and resumes.
func (s *Stage) fail(ctx context.Context, log *slog.Logger, lessonID string, version int, claim *lessonstate.Claim, cause error) error {
	reason := cause.Error()
	f, err := s.Store.Fail(ctx, lessonID, lessonstate.StageAnalyze, version, claim.Token, reason, !failure.IsPermanent(cause))
	switch {
	case errors.Is(err, lessonstate.ErrLeaseLost):
		log.WarnContext(ctx, "analysis failed after its lease was taken over; the new owner decides", "error", reason)
		return failure.Retryablef("analyze lesson %s v%d: %w (and the lease was lost meanwhile)", lessonID, version, cause)
	case err != nil:
		// Still running under our lease: the workflow's retry finds it
		// busy until the lease ends, then resumes.
		return failure.Retryablef("analyze lesson %s v%d: record failure %q: %w", lessonID, version, reason, err)
	case f.State != lessonstate.StateFailed:
		log.WarnContext(ctx, "analysis failed; will retry", "error", reason, "attempt", claim.Stage.Attempts)
		return failure.Retryablef("analyze lesson %s v%d: %w", lessonID, version, cause)
	}
	log.ErrorContext(ctx, "analysis failed", "error", reason, "attempts", claim.Stage.Attempts)
	s.announce(ctx, log, lessonID, f.Announce)
	return failure.Permanentf("analyze lesson %s v%d failed: %s", lessonID, version, reason)
}

// announce publishes the failed event the store queued with the failure.
func (s *Stage) announce(ctx context.Context, log *slog.Logger, lessonID string, ev *events.LessonEvent) {
	if ev == nil {
		return
	}
	if err := s.Announcer.Event(ctx, lessonID, *ev); err != nil {
		// Queued in the outbox with the failure: the sweeper's next flush
		// announces it.
		log.WarnContext(ctx, "failure announcement left in the outbox", "error", err.Error())
	}
}

// GiveUp records that the workflow gave up on the stage (its calls kept
// failing, or timed out). When its calls failed in ways that may pass
// (transient: 429, 5xx, dropped connections) it costs the stage an attempt:
// with attempts left, the stage and the process step go back to pending and
// the sweeper starts a new execution; otherwise the stage is failed for good
// with reason and announced. A stage another call still holds cannot be
// failed under it: that is a retryable answer, and if the workflow stops
// asking, the sweeper re-drives the lesson when the lease ends.
func (s *Stage) GiveUp(ctx context.Context, lessonID string, version int, reason string, transient bool) (workflowcall.Response, error) {
	log := logging.Lesson(logging.FromContext(ctx), lessonID, version, lessonstate.StageAnalyze)
	if reason == "" {
		reason = "the lesson-pipeline workflow gave up on the analysis"
	}
	claim, resp, err := s.claim(ctx, log, lessonID, version)
	if claim == nil {
		if failure.IsPermanent(err) && !workflowcall.IsBadRequest(err) {
			// Failed already (or no such lesson): nothing more to record.
			log.InfoContext(ctx, "workflow gave up on a stage that has failed already", "reason", reason)
			return workflowcall.Response{Reason: err.Error()}, nil
		}
		return resp, err
	}
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	f, err := s.Store.Fail(octx, lessonID, lessonstate.StageAnalyze, version, claim.Token, reason, transient)
	if err != nil {
		return workflowcall.Response{}, failure.Retryablef("analyze lesson %s v%d: record the workflow's failure: %w", lessonID, version, err)
	}
	if f.State != lessonstate.StateFailed {
		log.WarnContext(ctx, "the workflow gave up on calls that failed for now; the sweeper starts the process step again",
			"error", reason, "attempt", claim.Stage.Attempts)
		return workflowcall.Response{Reason: reason}, nil
	}
	log.ErrorContext(ctx, "analysis failed: the workflow gave up", "error", reason)
	s.announce(octx, log, lessonID, f.Announce)
	return workflowcall.Response{Reason: reason}, nil
}
