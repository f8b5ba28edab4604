// Package replayer is the Cloud Function fed by the lesson-replay topic: an
// operator's `gcloud pubsub topics publish lesson-replay
// --message='{"lessonId":"..","from":"transcribe"}'` re-runs that lesson from
// that stage (shared/replay).
package replayer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/replay"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/tracing"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Replayer"

// stage names the replayer in logs.
const stage = "replay"

func init() {
	functions.CloudEvent(EntryPoint, entry)
}

var instance = setup.NewInstance(NewFromEnv)

func entry(ctx context.Context, ce event.Event) error {
	h, err := instance.Get(ctx)
	if err != nil {
		logging.Default().ErrorContext(ctx, "replayer cannot start", "error", err.Error(), logging.KeyStage, stage)
		return err
	}
	return h.Handle(ctx, ce)
}

// Handler decodes lesson-replay messages.
type Handler struct {
	replayer *replay.Replayer
	log      *slog.Logger
}

// New returns a handler.
func New(r *replay.Replayer, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("replayer", map[string]any{"replayer": r, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{replayer: r, log: log}, nil
}

// NewFromEnv builds the handler from the environment (config.Common).
func NewFromEnv(ctx context.Context) (*Handler, error) {
	var cfg config.Common
	if err := config.Load(&cfg); err != nil {
		return nil, fmt.Errorf("replayer: %w", err)
	}
	env, err := setup.New(ctx, "replayer", cfg, setup.Options{})
	if err != nil {
		return nil, err
	}
	r, err := replay.New(env.Store, env.Relay, env.Log)
	if err == nil {
		var h *Handler
		if h, err = New(r, env.Log); err == nil {
			return h, nil
		}
	}
	env.Close()
	return nil, err
}

// Handle replays one lesson. A message that can never be replayed is logged
// with the reason and acknowledged.
func (h *Handler) Handle(ctx context.Context, ce event.Event) error {
	ctx = logging.WithLogger(ctx, h.log)
	m, err := events.DecodePubSub(ce)
	var req replay.Request
	if err == nil {
		req, err = replay.Parse(m.Message.Data)
	}
	ctx = tracing.Extract(ctx, m.Message.Attributes)
	ctx, span := tracing.Start(ctx, stage)
	defer span.End()
	if err == nil {
		err = h.replayer.Replay(ctx, req)
	}
	switch {
	case err == nil:
		return nil
	case failure.IsPermanent(err), events.IsInvalid(err):
		h.log.ErrorContext(ctx, "replay refused; acknowledged", "error", err.Error(), "eventId", ce.ID(),
			logging.KeyStage, stage, logging.KeyLessonID, req.LessonID)
		return nil
	}
	span.RecordError(err)
	return err
}
