// Package replayer is the Cloud Function fed by the lesson-replay topic: an
// operator's `gcloud pubsub topics publish lesson-replay
// --message='{"lessonId":"..","from":"transcribe"}'` re-runs that lesson from
// that stage (shared/replay).
package replayer

import (
	"context"
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
	functions.CloudEvent(EntryPoint, setup.CloudEventEntry(instance, "replayer", stage))
}

var instance = setup.NewInstance(NewFromEnv)

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
	return setup.Build(ctx, "replayer", setup.Load[config.Common]("replayer"),
		func(c config.Common) config.Common { return c }, fromEnv)
}

func fromEnv(_ context.Context, env *setup.Env, _ config.Common) (*Handler, error) {
	r, err := replay.New(env.Store, env.Relay, env.Log)
	if err != nil {
		return nil, err
	}
	return New(r, env.Log)
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
