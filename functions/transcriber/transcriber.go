// Package transcriber is the HTTP Cloud Function the lesson-pipeline
// workflow calls to transcribe a lesson version (private: only the
// workflow's service account may invoke it). It decodes the workflow's
// request (shared/workflowcall), runs the transcribe stage
// (shared/transcribe) and answers with the status the workflow's retry
// policy reads: 200 with the answer, 400 for a request that is wrong, 422
// for a failure already recorded and announced, 503 for one worth a retry.
//
// It needs ffmpeg and ffprobe (the google-24-full base image) and checks for
// them at start-up.
package transcriber

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/coursekb/pipeline/shared/audio"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/tracing"
	"github.com/coursekb/pipeline/shared/transcribe"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Transcriber"

func init() {
	functions.HTTP(EntryPoint, setup.HTTPEntry(instance, "transcriber", lessonstate.StageTranscribe))
}

// instance is built on the first request and kept; a failed start-up is
// retried by the next request (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

// Handler answers the workflow's calls.
type Handler struct {
	stage *transcribe.Stage
	log   *slog.Logger
}

// New returns a handler around a transcribe stage.
func New(stage *transcribe.Stage, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("transcriber", map[string]any{"stage": stage, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{stage: stage, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (transcribe.Config), after checking that ffmpeg and ffprobe are there and
// that both buckets can be reached: a wrong image, bucket or grant shows at
// start-up, not in the middle of a lesson.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "transcriber", transcribe.LoadConfig, func(c transcribe.Config) config.Common { return c.Common }, fromEnv)
}

func fromEnv(ctx context.Context, env *setup.Env, cfg transcribe.Config) (*Handler, error) {
	if err := audio.CheckTools(ctx); err != nil {
		return nil, fmt.Errorf("transcriber: %w", err)
	}
	if err := env.CheckBuckets(ctx, cfg.RawBucket, cfg.ArtifactsBucket); err != nil {
		return nil, fmt.Errorf("transcriber: %w", err)
	}
	x, err := audio.New(env.Storage, audio.Options{SegmentSeconds: cfg.Segment()})
	if err != nil {
		return nil, fmt.Errorf("transcriber: %w", err)
	}
	sp, err := transcribe.DialSpeech(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("transcriber: %w", err)
	}
	stage, err := transcribe.New(transcribe.Deps{
		Config: cfg, Store: env.Store, Announcer: env.Relay, Storage: env.Storage,
		Audio: x, Speech: sp, Outcome: env.Outcome,
	})
	if err == nil {
		var h *Handler
		if h, err = New(stage, env.Log); err == nil {
			return h, nil
		}
	}
	sp.Close()
	return nil, err
}

// ServeHTTP answers one call of the workflow.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := logging.WithLogger(r.Context(), h.log)
	ctx = tracing.Extract(ctx, map[string]string{"traceparent": r.Header.Get("traceparent"), "tracestate": r.Header.Get("tracestate")})
	ctx, span := tracing.Start(ctx, "transcribe")
	defer span.End()
	req, err := workflowcall.Decode(r, workflowcall.ActionStart, workflowcall.ActionPoll, workflowcall.ActionFail)
	if err != nil {
		h.log.WarnContext(ctx, "request refused", "error", err.Error(), logging.KeyStage, lessonstate.StageTranscribe,
			logging.KeyLessonID, req.LessonID, logging.KeyVersion, req.Version)
		workflowcall.Write(w, workflowcall.Response{}, err)
		return
	}
	resp, err := h.stage.Handle(ctx, req)
	if err != nil {
		span.RecordError(err)
		if !failure.IsPermanent(err) {
			// Permanent failures were logged where they were recorded.
			logging.Lesson(h.log, req.LessonID, req.Version, lessonstate.StageTranscribe).WarnContext(ctx,
				"answering 503: the workflow retries", "action", req.Action, "error", err.Error())
		}
	}
	workflowcall.Write(w, resp, err)
}
