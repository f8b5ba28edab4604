// Package downloader is the Cloud Function fed by the lesson-discovered
// topic: it decodes the Pub/Sub CloudEvent and runs the download stage
// (shared/download), which streams the lesson's video into the raw bucket.
package downloader

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/tracing"
	"github.com/coursekb/pipeline/shared/transfer"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Downloader"

func init() {
	functions.CloudEvent(EntryPoint, entry)
}

// instance is built once per function instance, on the first event: clients
// are reused across events, and a bad configuration is reported on every
// event instead of crashing the container at import time.
var instance = sync.OnceValues(func() (*Handler, error) {
	return NewFromEnv(context.Background())
})

func entry(ctx context.Context, ce event.Event) error {
	h, err := instance()
	if err != nil {
		logging.Default().ErrorContext(ctx, "downloader cannot start", "error", err.Error())
		return err
	}
	return h.Handle(ctx, ce)
}

// Handler decodes lesson-discovered events and runs the download stage.
type Handler struct {
	stage *download.Stage
	log   *slog.Logger
}

// New returns a handler around a download stage.
func New(stage *download.Stage, log *slog.Logger) *Handler {
	return &Handler{stage: stage, log: log}
}

// NewFromEnv builds the handler and its clients from the environment
// (config.Downloader). The Google Cloud clients honour the emulator
// variables (FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST,
// STORAGE_EMULATOR_HOST), which is how the one-machine stack runs this same
// code.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	var cfg config.Downloader
	if err := config.Load(&cfg); err != nil {
		return nil, fmt.Errorf("downloader: %w", err)
	}
	log := logging.New(os.Stdout, cfg.LogLevel, cfg.ProjectID)
	if err := tracing.SetupProcess(ctx, "downloader", cfg.TraceExporter, cfg.ProjectID, cfg.TraceSampleRatio); err != nil {
		return nil, fmt.Errorf("downloader: %w", err)
	}
	fs, err := firestore.NewClient(ctx, cfg.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("downloader: firestore client: %w", err)
	}
	st, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("downloader: storage client: %w", err)
	}
	ps, err := pubsub.NewClient(ctx, cfg.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("downloader: pubsub client: %w", err)
	}
	// No overall timeout: a multi-gigabyte video takes as long as it takes;
	// the lease and the function's own timeout bound it.
	copier := transfer.New(st, &http.Client{}, transfer.Options{MaxBytes: cfg.MaxMediaBytes, ChunkSize: cfg.ChunkSize})
	store := lessonstate.New(fs, lessonstate.WithMaxAttempts(cfg.MaxAttempts))
	stage := download.New(store, copier, events.NewPublisher(ps), cfg.RawBucket, cfg.Lease)
	return New(stage, log), nil
}

// Handle processes one messagePublished CloudEvent. Input that can never
// succeed (not JSON, missing fields, an unsafe lesson id) is logged and
// acknowledged, with nothing written; only failures a redelivery may fix
// return an error.
func (h *Handler) Handle(ctx context.Context, ce event.Event) error {
	ctx = logging.WithLogger(ctx, h.log)
	ev, attrs, err := events.LessonFromCloudEvent(ce)
	ctx = tracing.Extract(ctx, attrs)
	ctx, span := tracing.Start(ctx, "download")
	defer span.End()
	if err != nil {
		h.log.ErrorContext(ctx, "rejected event; acknowledged, nothing written",
			"error", err.Error(), "eventId", ce.ID(), logging.KeyStage, lessonstate.StageDownload,
			logging.KeyLessonID, ev.LessonID)
		return nil
	}
	if err := h.stage.Handle(ctx, ev); err != nil {
		span.RecordError(err)
		return err
	}
	return nil
}
