package setup

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/tracing"
)

// Build is a function's start-up: load its configuration, make its
// environment (New), and build its handler on it; what was made is closed
// if the handler cannot be built. common picks the configuration's
// config.Common.
func Build[C, H any](ctx context.Context, service string, load func() (C, error), common func(C) config.Common,
	build func(context.Context, *Env, C) (H, error)) (H, error) {
	var zero H
	cfg, err := load()
	if err != nil {
		return zero, err
	}
	env, err := New(ctx, service, common(cfg), Options{})
	if err != nil {
		return zero, err
	}
	h, err := build(ctx, env, cfg)
	if err != nil {
		env.Close()
		return zero, err
	}
	return h, nil
}

// Load returns a loader of a configuration struct C with config.Load, for
// Build.
func Load[C any](service string) func() (C, error) {
	return func() (C, error) {
		var c C
		if err := config.Load(&c); err != nil {
			return c, fmtErr(service, err)
		}
		return c, nil
	}
}

// CloudEventEntry is the functions-framework entry of a CloudEvent function
// whose handler inst builds: a failed start-up is logged, with the stage,
// and returned, so the event is redelivered and the next one builds again.
func CloudEventEntry[H interface {
	Handle(context.Context, event.Event) error
}](inst *Instance[H], service, stage string) func(context.Context, event.Event) error {
	return func(ctx context.Context, ce event.Event) error {
		h, err := inst.Get(ctx)
		if err != nil {
			logging.Default().ErrorContext(ctx, service+" cannot start; the event will be redelivered",
				"error", err.Error(), logging.KeyStage, stage)
			return err
		}
		return h.Handle(ctx, ce)
	}
}

// HTTPEntry is the functions-framework entry of an HTTP function whose
// handler inst builds: a failed start-up answers 503 with Retry-After (the
// caller — Cloud Scheduler, the workflow — retries it) and is logged with
// the stage.
func HTTPEntry[H http.Handler](inst *Instance[H], service, stage string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		h, err := inst.Get(r.Context())
		if err != nil {
			logging.Default().ErrorContext(r.Context(), service+" cannot start", "error", err.Error(), logging.KeyStage, stage)
			w.Header().Set("Retry-After", "5")
			http.Error(w, service+" cannot start: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}
}

// HandleLessonEvent is what every function fed a lesson event over Pub/Sub
// does with a messagePublished CloudEvent: decode and validate the lesson
// event, continue the lesson's trace from the message's attributes,
// acknowledge input that can never succeed (not JSON, missing fields, an
// unsafe lesson id) with one log line naming why, and run the stage,
// returning only what a redelivery may fix.
func HandleLessonEvent(ctx context.Context, ce event.Event, log *slog.Logger, stage string,
	run func(context.Context, events.LessonEvent) error) error {
	ctx = logging.WithLogger(ctx, log)
	ev, attrs, err := events.LessonFromCloudEvent(ce)
	ctx = tracing.Extract(ctx, attrs)
	ctx, span := tracing.Start(ctx, stage)
	defer span.End()
	if err != nil {
		log.ErrorContext(ctx, "rejected event; acknowledged, nothing written",
			"error", err.Error(), "eventId", ce.ID(), logging.KeyStage, stage, logging.KeyLessonID, ev.LessonID)
		return nil
	}
	if err := run(ctx, ev); err != nil {
		span.RecordError(err)
		return err
	}
	return nil
}
