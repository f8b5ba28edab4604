// Package enricher is the Cloud Function fed by the lesson-processed topic:
// it decodes the Pub/Sub CloudEvent and runs the enrich stage
// (shared/enrich), which classifies and describes a lesson version, cuts it
// into chunks and knowledge.md, and announces it on lesson-enriched.
package enricher

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/enrich"
	"github.com/coursekb/pipeline/shared/genaiclient"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Enricher"

func init() {
	functions.CloudEvent(EntryPoint, setup.CloudEventEntry(instance, "enricher", lessonstate.StageEnrich))
}

// instance is built on the first event and kept; a failed start-up is
// retried by the next event (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

// Handler decodes lesson-processed events and runs the enrich stage.
type Handler struct {
	stage *enrich.Stage
	log   *slog.Logger
}

// New returns a handler around an enrich stage.
func New(stage *enrich.Stage, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("enricher", map[string]any{"stage": stage, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{stage: stage, log: log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (enrich.Config), and checks that the artifacts bucket can be reached and
// the compiled-in taxonomy is valid: a wrong bucket, a missing grant or a
// broken file shows at start-up.
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "enricher", enrich.LoadConfig, func(c enrich.Config) config.Common { return c.Common }, FromEnv)
}

// FromEnv builds the handler on an environment already set up.
func FromEnv(ctx context.Context, env *setup.Env, cfg enrich.Config) (*Handler, error) {
	if err := env.CheckBuckets(ctx, cfg.ArtifactsBucket); err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	tax, err := taxonomy.Default()
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	// One tokenizer for the embedding's parts and the chunks alike:
	// building one compiles the encoding's pattern.
	tok, err := chunk.NewTokenizer(cfg.EmbeddingModel)
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	emb, err := taxonomy.NewEmbedder(cfg.Embedder(), tok)
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	syncer, err := taxonomy.NewSyncer(env.Firestore, emb, tax, env.Log, taxonomy.SyncerOptions{Lease: cfg.TaxonomyLease})
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	classifier, err := taxonomy.NewClassifier(env.Firestore, taxonomy.DefaultTop, cfg.ClassifyThreshold)
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	splitter, err := chunk.NewSplitter(tok, cfg.Chunking())
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	gemini, err := genaiclient.New(ctx, cfg.Gemini())
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	stage, err := enrich.New(enrich.Deps{
		Store: env.Store, Firestore: env.Firestore, Storage: env.Storage, Gemini: gemini,
		Taxonomy: tax, Syncer: syncer, Embedder: emb, Classifier: classifier, Splitter: splitter,
		Publisher: env.Publisher, Announcer: env.Relay, Outcome: env.Outcome,
		Settings: cfg.Settings(),
	})
	if err != nil {
		return nil, err
	}
	env.Log.InfoContext(ctx, "enricher ready", "model", cfg.Model, "embeddingModel", cfg.EmbeddingModel,
		"dimensions", cfg.EmbeddingDimensions, "taxonomyVersion", tax.Version, "schools", tax.Slugs(),
		"threshold", cfg.ClassifyThreshold, "localGemini", cfg.BaseURL != "", "localOpenAI", cfg.OpenAIBaseURL != "")
	return New(stage, env.Log)
}

// Handle processes one messagePublished CloudEvent. Input that can never
// succeed (not JSON, missing fields, an unsafe lesson id) is logged and
// acknowledged, with nothing written; only failures a redelivery may fix
// return an error.
func (h *Handler) Handle(ctx context.Context, ce event.Event) error {
	return setup.HandleLessonEvent(ctx, ce, h.log, lessonstate.StageEnrich, h.stage.Handle)
}
