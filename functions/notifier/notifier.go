// Package notifier is the Cloud Function fed by lesson-events and by every
// dead-letter topic: it decodes the Pub/Sub CloudEvent and hands it to
// shared/notify, which sends a run's digest when the run has settled, an
// alert for a lesson that failed for good, and an alarm for a dead letter,
// each once, over Slack and e-mail (or into the log).
package notifier

import (
	"context"
	"log/slog"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/notify"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/tracing"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Notifier"

func init() {
	functions.CloudEvent(EntryPoint, setup.CloudEventEntry(instance, "notifier", notify.Stage))
}

// instance is built on the first event and kept; a failed start-up is
// retried by the next event (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

// Handler decodes notifier events and runs the notifier.
type Handler struct {
	notifier *notify.Notifier
	log      *slog.Logger
}

// New returns a handler around a notifier.
func New(n *notify.Notifier, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("notifier", map[string]any{"notifier": n, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{notifier: n, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (config.Notifier). A configuration problem fails the start-up, naming
// every bad variable.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "notifier", setup.Load[config.Notifier]("notifier"),
		func(c config.Notifier) config.Common { return c.Common },
		func(_ context.Context, env *setup.Env, cfg config.Notifier) (*Handler, error) {
			return FromEnv(env, cfg)
		})
}

// FromEnv builds the handler on an environment already set up; tests use
// it with their own logger and clock-free defaults.
func FromEnv(env *setup.Env, cfg config.Notifier) (*Handler, error) {
	senders, err := notify.SendersFromConfig(cfg, env.Log, nil)
	if err != nil {
		return nil, err
	}
	records, err := notify.NewRecords(env.Firestore, nil)
	if err != nil {
		return nil, err
	}
	n, err := notify.New(notify.DepsFromConfig(cfg, notify.Deps{
		Store: env.Store, Records: records, Senders: senders, Log: env.Log, Outcome: env.Outcome,
	}))
	if err != nil {
		return nil, err
	}
	env.Log.Info("notifier ready", "channels", n.Channels(), logging.KeyStage, notify.Stage)
	return New(n, env.Log)
}

// Handle processes one messagePublished CloudEvent. An event that can never
// be used (not Pub/Sub, not a lesson event, an unknown kind) is logged and
// acknowledged; a dead letter is always used, whatever its data. Only
// failures a redelivery may fix return an error.
func (h *Handler) Handle(ctx context.Context, ce event.Event) error {
	ctx = logging.WithLogger(ctx, h.log)
	in, err := notify.Decode(ce)
	ctx = tracing.Extract(ctx, in.Attributes)
	ctx, span := tracing.Start(ctx, "notify")
	defer span.End()
	if err != nil {
		h.log.ErrorContext(ctx, "rejected event; acknowledged, nothing sent",
			"error", err.Error(), "eventId", ce.ID(), "source", ce.Source(), logging.KeyStage, notify.Stage)
		return nil
	}
	if err := h.notifier.Handle(ctx, in); err != nil {
		span.RecordError(err)
		if failure.IsPermanent(err) {
			h.log.ErrorContext(ctx, "notification failed for good; acknowledged",
				"error", err.Error(), "eventId", ce.ID(), logging.KeyStage, notify.Stage)
			return nil
		}
		return err
	}
	return nil
}
