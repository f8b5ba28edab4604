// Package sweeper is the HTTP Cloud Function Cloud Scheduler calls every few
// minutes: one sweep (shared/sweep) re-drives stalled work and fails what is
// out of attempts. `pipeline sweep` runs the same sweep from a terminal.
package sweeper

import (
	"context"
	"encoding/json"
	"fmt"
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
	functions.HTTP(EntryPoint, entry)
}

var instance = setup.NewInstance(NewFromEnv)

func entry(w http.ResponseWriter, r *http.Request) {
	h, err := instance.Get(r.Context())
	if err != nil {
		logging.Default().ErrorContext(r.Context(), "sweeper cannot start", "error", err.Error(), logging.KeyStage, "sweep")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.ServeHTTP(w, r)
}

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
	var cfg config.Sweeper
	if err := config.Load(&cfg); err != nil {
		return nil, fmt.Errorf("sweeper: %w", err)
	}
	env, err := setup.New(ctx, "sweeper", cfg.Common, setup.Options{})
	if err != nil {
		return nil, err
	}
	s, err := sweep.New(env.Store, env.Relay, cfg.Batch, env.Log)
	if err == nil {
		var h *Handler
		if h, err = New(s, env.Log); err == nil {
			return h, nil
		}
	}
	env.Close()
	return nil, err
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
