// Package sweeper is the HTTP Cloud Function Cloud Scheduler calls every few
// minutes: one sweep (shared/sweep) re-drives stalled work and fails what is
// out of attempts. `pipeline sweep` runs the same sweep from a terminal.
package sweeper

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/sweep"
	"github.com/coursekb/pipeline/shared/tracing"
)

// EntryPoint is the function's name for functions-framework and Terraform.
const EntryPoint = "Sweeper"

func init() {
	functions.HTTP(EntryPoint, setup.HTTPEntry(instance, "sweeper", "sweep"))
}

var instance = setup.NewInstance(NewFromEnv)

// Handler runs a sweep per request.
type Handler struct {
	sweeper *sweep.Sweeper
	log     *slog.Logger
}

// New returns a handler around a sweeper.
func New(s *sweep.Sweeper, log *slog.Logger) (*Handler, error) {
	if err := setup.Missing("sweeper", map[string]any{"sweeper": s, "logger": log}); err != nil {
		return nil, err
	}
	return &Handler{sweeper: s, log: log}, nil
}

// NewFromEnv builds the handler from the environment (config.Sweeper).
func NewFromEnv(ctx context.Context) (*Handler, error) {
	return setup.Build(ctx, "sweeper", setup.Load[config.Sweeper]("sweeper"),
		func(c config.Sweeper) config.Common { return c.Common }, fromEnv)
}

func fromEnv(_ context.Context, env *setup.Env, cfg config.Sweeper) (*Handler, error) {
	s, err := sweep.New(env.Store, env.Relay, cfg.Batch, env.Log)
	if err != nil {
		return nil, err
	}
	return New(s, env.Log)
}

// ServeHTTP runs one sweep and answers its report. Only POST runs a sweep
// (Cloud Scheduler posts); a sweep that could not even query answers 500 so
// the scheduler's retry tries again.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the sweeper runs on POST", http.StatusMethodNotAllowed)
		return
	}
	ctx, span := tracing.Start(logging.WithLogger(r.Context(), h.log), "sweep")
	defer span.End()
	rep, err := h.sweeper.Run(ctx)
	status := http.StatusOK
	if err != nil {
		span.RecordError(err)
		h.log.ErrorContext(ctx, "sweep failed", logging.KeyStage, "sweep", "error", err.Error())
		rep.Errors = append(rep.Errors, err.Error())
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rep)
}
