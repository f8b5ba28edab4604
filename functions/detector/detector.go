// Package detector is the HTTP Cloud Function Cloud Scheduler calls: it runs
// one detection run (shared/detect) over the producer's Hotmart courses and
// answers with the run's summary.
package detector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/detect"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/media"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/tracing"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Detector"

func init() {
	functions.HTTP(EntryPoint, entry)
}

// instance is built on the first request and kept; a failed start-up is
// retried by the next request (setup.Instance).
var instance = setup.NewInstance(NewFromEnv)

func entry(w http.ResponseWriter, r *http.Request) {
	h, err := instance.Get(r.Context())
	if err != nil {
		logging.Default().ErrorContext(r.Context(), "detector cannot start", "error", err.Error(), logging.KeyStage, "detect")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.ServeHTTP(w, r)
}

// Handler runs a detection per request.
type Handler struct {
	hotmart   detect.Hotmart
	store     detect.Store
	publisher detect.Publisher
	catalog   detect.Catalog
	// resolver is built per run: the producer adds media between runs, and
	// a manifest read once per instance would never see it.
	resolver func(ctx context.Context) (detect.MediaResolver, error)
	budget   time.Duration
	log      *slog.Logger
}

// Deps are the handler's collaborators.
type Deps struct {
	Hotmart   detect.Hotmart
	Store     detect.Store
	Publisher detect.Publisher
	Catalog   detect.Catalog
	Resolver  func(ctx context.Context) (detect.MediaResolver, error)
	Budget    time.Duration
	Log       *slog.Logger
}

// New returns a handler, or an error naming every missing dependency.
func New(d Deps) (*Handler, error) {
	if err := setup.Missing("detector", map[string]any{
		"Hotmart": d.Hotmart, "store": d.Store, "publisher": d.Publisher, "catalog": d.Catalog,
		"resolver": d.Resolver, "logger": d.Log,
	}); err != nil {
		return nil, err
	}
	return &Handler{hotmart: d.Hotmart, store: d.Store, publisher: d.Publisher, catalog: d.Catalog,
		resolver: d.Resolver, budget: d.Budget, log: d.Log}, nil
}

// NewFromEnv builds the handler and its clients from the environment
// (config.Detector).
func NewFromEnv(ctx context.Context) (*Handler, error) {
	var cfg config.Detector
	if err := config.Load(&cfg); err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	catalog, err := detect.ParseCatalog(cfg.CourseCatalog)
	if err != nil {
		return nil, fmt.Errorf("detector: COURSE_CATALOG: %w", err)
	}
	env, err := setup.New(ctx, "detector", cfg.Common, setup.Options{})
	if err != nil {
		return nil, err
	}
	h, err := fromEnv(env, cfg, catalog)
	if err != nil {
		env.Close()
		return nil, err
	}
	return h, nil
}

func fromEnv(env *setup.Env, cfg config.Detector, catalog detect.Catalog) (*Handler, error) {
	hm, err := hotmart.New(hotmart.Config{
		BaseURL: cfg.Hotmart.BaseURL, TokenURL: cfg.Hotmart.TokenURL,
		ClientID: cfg.Hotmart.ClientID, ClientSecret: cfg.Hotmart.ClientSecret, BasicToken: cfg.Hotmart.BasicToken,
		RequestsPerMinute: cfg.Hotmart.RequestsPerMinute, Logger: env.Log.With(logging.KeyStage, "detect"),
	})
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	hc := &http.Client{Timeout: time.Minute}
	resolver := func(ctx context.Context) (detect.MediaResolver, error) {
		var manifest *media.Manifest
		if cfg.MediaManifestURI != "" {
			m, err := media.LoadManifest(ctx, cfg.MediaManifestURI, env.Storage, hc)
			if err != nil {
				return nil, fmt.Errorf("load media manifest %s: %w", cfg.MediaManifestURI, err)
			}
			manifest = m
		}
		return media.NewResolver(manifest, env.Storage, cfg.RawBucket, cfg.MediaIngestPrefix), nil
	}
	return New(Deps{
		Hotmart: hm, Store: env.Store, Publisher: env.Publisher, Catalog: catalog,
		Resolver: resolver, Budget: cfg.Budget, Log: env.Log,
	})
}

// Summary is the detector's answer.
type Summary struct {
	RunID         string             `json:"runId"`
	Complete      bool               `json:"complete"`
	Cursor        string             `json:"cursor,omitempty"`
	Counts        lessonstate.Counts `json:"counts"`
	AwaitingMedia []string           `json:"awaitingMedia,omitempty"`
	Errors        []string           `json:"errors,omitempty"`
}

// ServeHTTP runs one detection. It answers 500 only when the run could do
// nothing useful, so Cloud Scheduler's retry is spent where it helps.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, span := tracing.Start(logging.WithLogger(r.Context(), h.log), "detect")
	defer span.End()
	runID := newRunID(time.Now())
	log := h.log.With("runId", runID, logging.KeyStage, "detect")
	resolver, err := h.resolver(ctx)
	if err != nil {
		log.ErrorContext(ctx, "detection cannot start", "error", err.Error())
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d, err := detect.New(h.hotmart, resolver, h.store, h.publisher, h.catalog, log)
	if err != nil {
		log.ErrorContext(ctx, "detection cannot start", "error", err.Error())
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	run, err := d.Run(ctx, detect.RunOptions{RunID: runID, Budget: h.budget})
	sum := Summary{RunID: runID, Complete: run.Complete, Cursor: run.Cursor, Counts: run.Counts,
		AwaitingMedia: run.AwaitingMedia, Errors: run.Errors}
	status := http.StatusOK
	if err != nil {
		span.RecordError(err)
		log.ErrorContext(ctx, "detection failed", "error", err.Error())
		status = http.StatusInternalServerError
		sum.Errors = append(sum.Errors, err.Error())
	} else {
		log.InfoContext(ctx, "detection finished", "complete", run.Complete, "new", run.Counts.New,
			"changed", run.Counts.Changed, "removed", run.Counts.Removed, "unchanged", run.Counts.Unchanged)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(sum)
}

// newRunID is sortable by time and unique across concurrent runs.
func newRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
