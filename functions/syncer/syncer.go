// Package syncer is the Cloud Function fed by the lesson-enriched topic and
// by the removed events of lesson-events: it decodes the Pub/Sub CloudEvent
// and runs the sync stage (shared/vectorsync), which publishes a lesson
// version's knowledge into its school's OpenAI vector store, or retires a
// removed lesson's files.
//
// Two push subscriptions of ours feed the one entry point: one on
// lesson-enriched, and one on lesson-events with the filter
// attributes.kind = "removed" (the notifier reads the rest of that topic).
package syncer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Syncer"

func init() {
	functions.CloudEvent(EntryPoint, setup.CloudEventEntry(instance, "syncer", lessonstate.StageSync))
}

// instance is built on the first event and kept; a failed start-up is
// retried by the next event (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

// Handler decodes lesson-enriched and removed lesson events and runs the
// sync stage.
type Handler struct {
	stage *vectorsync.Stage
	log   *slog.Logger
}

// New returns a handler around a sync stage.
func New(stage *vectorsync.Stage, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("syncer", map[string]any{"stage": stage, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{stage: stage, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (vectorsync.Config), and checks that the artifacts bucket can be reached:
// a wrong bucket or a missing grant shows at start-up.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "syncer", vectorsync.LoadConfig, func(c vectorsync.Config) config.Common { return c.Common }, FromEnv)
}

// FromEnv builds the handler on an environment already set up.
func FromEnv(ctx context.Context, env *setup.Env, cfg vectorsync.Config) (*Handler, error) {
	if err := env.CheckBuckets(ctx, cfg.ArtifactsBucket); err != nil {
		return nil, fmt.Errorf("syncer: %w", err)
	}
	ai, err := vectorsync.NewOpenAI(cfg.OpenAIConfig)
	if err != nil {
		return nil, fmt.Errorf("syncer: %w", err)
	}
	stage, err := vectorsync.New(vectorsync.Deps{
		Store: env.Store, OpenAI: ai, Storage: env.Storage, Announcer: env.Relay,
		Outcome: env.Outcome, Settings: cfg.Settings(),
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
	return setup.HandleLessonEvent(ctx, ce, h.log, lessonstate.StageSync, h.stage.Handle)
}
