// Package analyzer is the private HTTP Cloud Function the lesson-pipeline
// workflow calls for the analyze branch: it decodes the workflow's request
// (shared/workflowcall), runs the analyze stage (shared/analyze) and
// answers with the status the workflow's retry policy reads.
package analyzer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/coursekb/pipeline/shared/analyze"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/genaiclient"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/tracing"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Analyzer"

func init() {
	functions.HTTP(EntryPoint, setup.HTTPEntry(instance, "analyzer", lessonstate.StageAnalyze))
}

// instance is built on the first request and kept; a failed start-up is
// retried by the next request (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

// Handler answers the workflow's calls.
type Handler struct {
	stage *analyze.Stage
	log   *slog.Logger
}

// New returns a handler around an analyze stage.
func New(stage *analyze.Stage, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("analyzer", map[string]any{"stage": stage, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{stage: stage, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (analyze.Config), and checks that both buckets can be reached: a wrong
// bucket or a missing grant shows at start-up.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "analyzer", analyze.LoadConfig, func(c analyze.Config) config.Common { return c.Common }, fromEnv)
}

func fromEnv(ctx context.Context, env *setup.Env, cfg analyze.Config) (*Handler, error) {
	if err := env.CheckBuckets(ctx, cfg.RawBucket, cfg.ArtifactsBucket); err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	gemini, err := genaiclient.New(ctx, cfg.Client())
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	stage, err := analyze.New(analyze.Deps{
		Store:     env.Store,
		Storage:   env.Storage,
		Gemini:    gemini,
		Announcer: env.Relay,
		Outcome:   env.Outcome,
		Settings:  cfg.Settings(),
	})
	if err != nil {
		return nil, err
	}
	env.Log.InfoContext(ctx, "analyzer ready", "model", cfg.Model, "location", cfg.Location,
		"enabled", cfg.Enabled, "windowSeconds", cfg.WindowSeconds, "fps", cfg.FPS, "local", cfg.BaseURL != "")
	return New(stage, env.Log)
}

// ServeHTTP answers one workflow call: run the stage, or record that the
// workflow gave up on it. A request that is not the contract's is a 400.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, span := tracing.Start(logging.WithLogger(r.Context(), h.log), "analyze")
	defer span.End()
	req, err := workflowcall.Decode(r, workflowcall.ActionRun, workflowcall.ActionFail)
	if err != nil {
		h.log.WarnContext(ctx, "rejected request", "error", err.Error(), logging.KeyStage, lessonstate.StageAnalyze)
		workflowcall.Write(w, workflowcall.Response{}, err)
		return
	}
	base := h.log
	if req.Execution != "" {
		base = base.With("execution", req.Execution)
	}
	// The stage adds the lesson's id, version and stage to its logger.
	ctx = logging.WithLogger(ctx, base)
	log := logging.Lesson(base, req.LessonID, req.Version, lessonstate.StageAnalyze)
	resp, err := h.stage.Handle(ctx, req)
	if err != nil {
		span.RecordError(err)
		log.InfoContext(ctx, "answering with a failure", "action", req.Action, "permanent", failure.IsPermanent(err), "error", err.Error())
	}
	workflowcall.Write(w, resp, err)
}
