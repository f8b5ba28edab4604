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
	resolver    func(ctx context.Context) (detect.MediaResolver, error)
	budget      time.Duration
	lessonTypes []string
	log         *slog.Logger
}

// Deps are the handler's collaborators.
type Deps struct {
	Hotmart   detect.Hotmart
	Store     detect.Store
	Publisher detect.Publisher
	Catalog   detect.Catalog
	Resolver  func(ctx context.Context) (detect.MediaResolver, error)
	Budget    time.Duration
	// LessonTypes are the page types that become lessons (empty:
	// detect.DefaultLessonTypes).
	LessonTypes []string
	Log         *slog.Logger
}

// New returns a handler, or an error naming every missing dependency or
// bad lesson type.
func New(d Deps) (*Handler, error) {
	if err := setup.Missing("detector", map[string]any{
		"Hotmart": d.Hotmart, "store": d.Store, "publisher": d.Publisher, "catalog": d.Catalog,
		"resolver": d.Resolver, "logger": d.Log,
	}); err != nil {
		return nil, err
	}
	h := &Handler{hotmart: d.Hotmart, store: d.Store, publisher: d.Publisher, catalog: d.Catalog,
		resolver: d.Resolver, budget: d.Budget, lessonTypes: d.LessonTypes, log: d.Log}
	// Checked now, so a bad LESSON_PAGE_TYPES fails the start-up, not
	// every run.
	if _, err := h.detector(noMedia{}); err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	return h, nil
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
		Resolver: resolver, Budget: cfg.Budget, LessonTypes: cfg.LessonPageTypes, Log: env.Log,
	})
}

// Summary is the detector's answer: the run record, as JSON.
type Summary struct {
	RunID string `json:"runId"`
	// Outcome is complete, budget, partial or failed (detect.Outcome*).
	Outcome  string             `json:"outcome"`
	Complete bool               `json:"complete"`
	Cursor   string             `json:"cursor,omitempty"`
	Counts   lessonstate.Counts `json:"counts"`
	// Courses says, per course looked at, what happened and why.
	Courses        []lessonstate.CourseRun `json:"courses,omitempty"`
	MoreCourses    int                     `json:"moreCourses,omitempty"`
	NotLessonTypes map[string]int          `json:"notLessonTypes,omitempty"`
	AwaitingMedia  []string                `json:"awaitingMedia,omitempty"`
	// Errors are the run's own failures, each once; a course's are in
	// its entry of Courses.
	Errors []string `json:"errors,omitempty"`
}

// Status codes of the answer. Cloud Scheduler acknowledges any 2xx and
// retries anything else, 4xx included, as the job's retry_config says
// (terraform/scheduler.tf: one retry, 60 s later); a permanent fault
// answered with a non-2xx is retried for nothing, and at worst, with a
// larger retry_count, several times an hour. So the code says how the run
// ended, and only a failure a retry may fix is answered outside 2xx:
//
//   - 200 OK: complete. The sweep reached the end of the product list and
//     every course was walked completely.
//   - 202 Accepted: budget. The run used its time budget with nothing
//     wrong; the next scheduled run resumes the sweep at the cursor.
//   - 207 Multi-Status: partial, or failed for a reason a retry cannot fix
//     (a looping cursor, refused credentials, malformed answers). The
//     summary says per course what happened; what was read is recorded and
//     the next scheduled run tries the rest again. Retrying now would meet
//     the same fault and spend Hotmart's rate limit re-walking the healthy
//     courses. The alert on partial runs (a log-based metric on the closing
//     log line, see detect.FinishedMessage) is what calls a person.
//   - 503 Service Unavailable: failed for reasons a retry may fix (Hotmart
//     or Firestore unavailable after the clients' own retries), or the run
//     record could not be saved. Scheduler's one retry is well spent here.
//   - 500 Internal Server Error: the detection could not start (its media
//     manifest unreadable, say); nothing was read from Hotmart, so the
//     retry costs little.
//   - 405 Method Not Allowed: anything but POST. Scheduler POSTs; a GET
//     (a health check, a crawler) must not start a detection. A path other
//     than the function's is 404, for the same reason.
const (
	StatusComplete = http.StatusOK
	StatusBudget   = http.StatusAccepted
	StatusPartial  = http.StatusMultiStatus
	StatusRetry    = http.StatusServiceUnavailable
)

// statusFor is the answer's status code for a saved run.
func statusFor(run lessonstate.Run) int {
	switch run.Outcome {
	case detect.OutcomeComplete:
		return StatusComplete
	case detect.OutcomeBudget:
		return StatusBudget
	case detect.OutcomeFailed:
		if run.Transient {
			return StatusRetry
		}
	}
	return StatusPartial
}

// ServeHTTP runs one detection on POST and answers with its summary.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Deployed with FUNCTION_TARGET, the function is served at "/" and gets
	// every path; locally at "/Detector". Another path (a probe's /healthz)
	// is not a request for a detection.
	if r.URL.Path != "/" && r.URL.Path != "/"+EntryPoint {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "detection runs on POST only", http.StatusMethodNotAllowed)
		return
	}
	ctx, span := tracing.Start(logging.WithLogger(r.Context(), h.log), "detect")
	defer span.End()
	runID := newRunID(time.Now())
	log := h.log.With(logging.KeyStage, "detect")
	d, err := h.start(ctx)
	if err != nil {
		span.RecordError(err)
		// The same closing line as a run's, so the alert sees a detector
		// that cannot even start.
		log.ErrorContext(ctx, detect.FinishedMessage, "runId", runID, "outcome", detect.OutcomeFailed,
			"transient", true, "error", err.Error())
		answer(w, http.StatusInternalServerError, Summary{RunID: runID, Outcome: detect.OutcomeFailed,
			Errors: []string{"detection cannot start: " + err.Error()}})
		return
	}
	run, err := d.Run(ctx, detect.RunOptions{RunID: runID, Budget: h.budget})
	sum := Summary{RunID: runID, Outcome: run.Outcome, Complete: run.Complete, Cursor: run.Cursor,
		Counts: run.Counts, Courses: run.Courses, MoreCourses: run.MoreCourses, NotLessonTypes: run.NotLessonTypes,
		AwaitingMedia: run.AwaitingMedia, Errors: run.Errors}
	status := statusFor(run)
	if err != nil {
		// The run's own errors are in the record already; this one could
		// not be, so it is said here, once.
		span.RecordError(err)
		log.ErrorContext(ctx, "detection run record not saved", "runId", runID, "error", err.Error())
		status = StatusRetry
		sum.Errors = append(sum.Errors, err.Error())
	}
	answer(w, status, sum)
}

// start builds this run's detector, with the media source as it is now.
func (h *Handler) start(ctx context.Context) (*detect.Detector, error) {
	resolver, err := h.resolver(ctx)
	if err != nil {
		return nil, err
	}
	return h.detector(resolver)
}

// detector builds a run's detector over resolver.
func (h *Handler) detector(resolver detect.MediaResolver) (*detect.Detector, error) {
	var opts []detect.Option
	if len(h.lessonTypes) > 0 {
		opts = append(opts, detect.WithLessonTypes(h.lessonTypes...))
	}
	return detect.New(h.hotmart, resolver, h.store, h.publisher, h.catalog, h.log.With(logging.KeyStage, "detect"), opts...)
}

// noMedia stands in for the media source when only the configuration is
// checked, at construction.
type noMedia struct{}

func (noMedia) Resolve(context.Context, int64, string, string) (*lessonstate.Media, error) {
	return nil, nil
}

func answer(w http.ResponseWriter, status int, sum Summary) {
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
