// Package starter is the Cloud Function that starts a lesson version's
// processing: Eventarc delivers the raw bucket's object-finalized events,
// and the sweeper's re-drives arrive on the lesson-downloaded topic (a
// storage trigger's subscription can carry no dead-letter policy, so a lost
// finalize is re-sent that way). Both become one call of shared/start.
package starter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	executions "cloud.google.com/go/workflows/executions/apiv1"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/start"
	"github.com/coursekb/pipeline/shared/tracing"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Starter"

func init() {
	functions.CloudEvent(EntryPoint, setup.CloudEventEntry(instance, "starter", lessonstate.StepProcess))
}

// Config is the starter's configuration.
type Config struct {
	config.Common
	RawBucket string `env:"RAW_BUCKET,required"`
	// Workflow is projects/P/locations/L/workflows/lesson-pipeline.
	Workflow string `env:"WORKFLOW,required"`
	// WorkflowsEndpoint points the Executions client at a local Workflows
	// service (host:port, plain gRPC); empty in production.
	WorkflowsEndpoint string        `env:"WORKFLOWS_ENDPOINT"`
	StartLease        time.Duration `env:"START_LEASE" envDefault:"2m"`
	// ProcessLease covers an execution's longest run, transcription polling
	// included (25h when Speech-to-Text's dynamic batching is on).
	ProcessLease time.Duration `env:"PROCESS_LEASE" envDefault:"3h"`
}

var instance = setup.NewInstance(NewFromEnv)

// Handler decodes the starter's two kinds of event.
type Handler struct {
	starter *start.Starter
	log     *slog.Logger
}

// New returns a handler.
func New(s *start.Starter, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("starter", map[string]any{"starter": s, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{starter: s, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "starter", setup.Load[Config]("starter"), func(c Config) config.Common { return c.Common }, fromEnv)
}

func fromEnv(ctx context.Context, env *setup.Env, cfg Config) (*Handler, error) {
	var opts []option.ClientOption
	if cfg.WorkflowsEndpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.WorkflowsEndpoint), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	ex, err := executions.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("starter: workflow executions client: %w", err)
	}
	s, err := start.New(start.Deps{
		Store: env.Store, Executions: ex, Announcer: env.Relay, Workflow: cfg.Workflow, RawBucket: cfg.RawBucket,
		StartLease: cfg.StartLease, ProcessLease: cfg.ProcessLease, Outcome: env.Outcome, Log: env.Log,
	})
	if err != nil {
		ex.Close()
		return nil, err
	}
	return New(s, env.Log)
}

// Handle processes one event: an object finalized in the raw bucket, or a
// lesson-downloaded message. What the starter does not own, and input that
// can never succeed, is logged and acknowledged.
func (h *Handler) Handle(ctx context.Context, ce event.Event) error {
	ctx = logging.WithLogger(ctx, h.log)
	var (
		ev    events.LessonEvent
		attrs map[string]string
		err   error
	)
	switch ce.Type() {
	case events.TypeStorageFinalize:
		var obj events.StorageObject
		if err := json.Unmarshal(ce.Data(), &obj); err != nil {
			h.log.ErrorContext(ctx, "rejected event: data is not a Cloud Storage object; acknowledged",
				"error", err.Error(), "eventId", ce.ID(), logging.KeyStage, lessonstate.StepProcess)
			return nil
		}
		var why string
		if ev, why = h.starter.Own(obj); why != "" {
			h.log.InfoContext(ctx, "object ignored: "+why, "object", "gs://"+obj.Bucket+"/"+obj.Name, logging.KeyStage, lessonstate.StepProcess)
			return nil
		}
	case events.TypePubSubPublished:
		ev, attrs, err = events.LessonFromCloudEvent(ce)
	default:
		err = fmt.Errorf("%w: event type %q is neither an object finalize nor a Pub/Sub message", events.ErrInvalid, ce.Type())
	}
	ctx = tracing.Extract(ctx, attrs)
	ctx, span := tracing.Start(ctx, "start")
	defer span.End()
	if err != nil {
		h.log.ErrorContext(ctx, "rejected event; acknowledged, nothing started", "error", err.Error(), "eventId", ce.ID(),
			logging.KeyStage, lessonstate.StepProcess, logging.KeyLessonID, ev.LessonID)
		return nil
	}
	if err := h.starter.Start(ctx, ev); err != nil {
		span.RecordError(err)
		return err
	}
	return nil
}
