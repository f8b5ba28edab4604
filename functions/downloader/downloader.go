// Package downloader is the Cloud Function fed by the lesson-discovered
// topic: it decodes the Pub/Sub CloudEvent and runs the download stage
// (shared/download), which streams the lesson's video into the raw bucket.
package downloader

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/media"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/transfer"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Downloader"

func init() {
	functions.CloudEvent(EntryPoint, setup.CloudEventEntry(instance, "downloader", lessonstate.StageDownload))
}

// instance is built on the first event and kept; a failed start-up is
// retried by the next event (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

// Handler decodes lesson-discovered events and runs the download stage.
type Handler struct {
	stage *download.Stage
	log   *slog.Logger
}

// New returns a handler around a download stage.
func New(stage *download.Stage, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("downloader", map[string]any{"stage": stage, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{stage: stage, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (config.Downloader), and checks that the raw bucket can be reached: a
// wrong bucket or a missing grant shows at start-up.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "downloader", setup.Load[config.Downloader]("downloader"), func(c config.Downloader) config.Common { return c.Common }, fromEnv)
}

func fromEnv(ctx context.Context, env *setup.Env, cfg config.Downloader) (*Handler, error) {
	if err := env.CheckBuckets(ctx, cfg.RawBucket); err != nil {
		return nil, fmt.Errorf("downloader: %w", err)
	}
	hc := transfer.NewMediaClient()
	stage, err := download.New(download.Deps{
		Store:     env.Store,
		Copier:    transfer.New(env.Storage, hc, transfer.Options{MaxBytes: cfg.MaxMediaBytes, ChunkSize: cfg.ChunkSize}),
		Links:     media.NewLinks(cfg.MediaManifestURI, env.Storage, hc, cfg.MediaLinksMaxAge),
		Announcer: env.Relay,
		RawBucket: cfg.RawBucket,
		Lease:     cfg.Lease,
		Outcome:   env.Outcome,
	})
	if err != nil {
		return nil, err
	}
	return New(stage, env.Log)
}

// Handle processes one messagePublished CloudEvent. Input that can never
// succeed (not JSON, missing fields, an unsafe lesson id) is logged and
// acknowledged, with nothing written; only failures a redelivery may fix
// return an error.
func (h *Handler) Handle(ctx context.Context, ce event.Event) error {
	return setup.HandleLessonEvent(ctx, ce, h.log, lessonstate.StageDownload, h.stage.Handle)
}
