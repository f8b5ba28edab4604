// Package setup is the one start-up path of every function: configuration →
// logger → tracing → the clients every stage shares (Firestore, Cloud
// Storage, Pub/Sub, the lesson store, the event publisher and the outbox
// relay), created once per instance and closed together.
//
// A function keeps its handler in an Instance: built on the first request,
// kept once built, and built again on the next request if building failed —
// a transient failure at a cold start (a storage check that timed out, an
// exporter that could not reach Cloud Trace) costs one request, not the
// instance's whole life.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/tracing"
)

// Env is a function instance's environment. The Google Cloud clients honour
// the emulator variables (FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST,
// STORAGE_EMULATOR_HOST), which is how the one-machine stack runs the same
// code.
type Env struct {
	Service   string
	Common    config.Common
	Log       *slog.Logger
	Firestore *firestore.Client
	Storage   *storage.Client
	PubSub    *pubsub.Client
	Publisher *events.Publisher
	Store     *lessonstate.Store
	Relay     *relay.Relay

	closers []func()
}

// Options adjust New for tests.
type Options struct {
	// LogOutput receives the logs (default standard output, which Cloud
	// Logging reads).
	LogOutput io.Writer
}

// buildTimeout bounds a start-up: a request waiting on a start-up that
// hangs fails, and the next one tries again.
const buildTimeout = time.Minute

// New builds service's environment from its common configuration. On error
// whatever was made is closed.
func New(ctx context.Context, service string, c config.Common, opts Options) (_ *Env, err error) {
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stdout
	}
	e := &Env{Service: service, Common: c}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.Log = logging.New(opts.LogOutput, c.LogLevel, c.ProjectID)
	if err := tracing.SetupProcess(ctx, service, c.TraceExporter, c.ProjectID, c.TraceSampleRatio); err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	if e.Firestore, err = firestore.NewClient(ctx, c.ProjectID); err != nil {
		return nil, fmt.Errorf("%s: firestore client: %w", service, err)
	}
	e.closers = append(e.closers, func() { e.Firestore.Close() })
	if e.Storage, err = storage.NewClient(ctx); err != nil {
		return nil, fmt.Errorf("%s: storage client: %w", service, err)
	}
	e.closers = append(e.closers, func() { e.Storage.Close() })
	if e.PubSub, err = pubsub.NewClient(ctx, c.ProjectID); err != nil {
		return nil, fmt.Errorf("%s: pubsub client: %w", service, err)
	}
	e.closers = append(e.closers, func() { e.PubSub.Close() })
	e.Publisher = events.NewPublisher(e.PubSub)
	e.closers = append(e.closers, e.Publisher.Close)
	e.Store = lessonstate.New(e.Firestore,
		lessonstate.WithMaxAttempts(c.MaxAttempts), lessonstate.WithPendingAfter(c.PendingAfter),
		lessonstate.WithRetryBackoff(c.RetryBackoff))
	if e.Relay, err = relay.New(e.Store, e.Publisher, e.Log); err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	return e, nil
}

// Close closes every client, last made first.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// Outcome returns a context for writing a stage's outcome: detached from
// ctx's cancellation (a request cut off by its deadline must still record
// how it ended) but keeping its values (logger, trace), with its own short
// deadline.
func (e *Env) Outcome(ctx context.Context) (context.Context, context.CancelFunc) {
	return Detached(ctx, e.Common.OutcomeTimeout)
}

// bucketCheck bounds the start-up's look at the buckets: an instance that
// cannot reach one fails its start-up quickly, and the next request tries
// again.
const bucketCheck = 5 * time.Second

// CheckBuckets reads each bucket's attributes, so that a wrong bucket name
// or a missing grant fails the start-up, naming the bucket, instead of the
// first event.
func (e *Env) CheckBuckets(ctx context.Context, buckets ...string) error {
	ctx, cancel := context.WithTimeout(ctx, bucketCheck)
	defer cancel()
	for _, b := range buckets {
		if _, err := e.Storage.Bucket(b).Attrs(ctx); err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	return nil
}

// Detached returns a context carrying ctx's values but not its
// cancellation, ending after d.
func Detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = 20 * time.Second
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// Instance holds what a function builds at start-up (its handler), built
// on first use and kept only once built. It is safe for concurrent use;
// concurrent first requests wait for one build.
type Instance[T any] struct {
	build func(context.Context) (T, error)

	mu    sync.Mutex
	value T
	built bool
}

// NewInstance returns an Instance that builds with build.
func NewInstance[T any](build func(context.Context) (T, error)) *Instance[T] {
	return &Instance[T]{build: build}
}

// Get returns the built value, building it first if needed. The build runs
// on a context detached from the request's (the clients it makes outlive
// the request) and bounded by buildTimeout. A failed build is returned and
// forgotten: the next Get builds again.
func (i *Instance[T]) Get(ctx context.Context) (T, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.built {
		return i.value, nil
	}
	bctx, cancel := Detached(ctx, buildTimeout)
	defer cancel()
	v, err := i.build(bctx)
	if err != nil {
		var zero T
		return zero, err
	}
	i.value, i.built = v, true
	return v, nil
}

// Missing names every nil dependency of a constructor in one error, so a
// wiring mistake shows at start-up, not at the first event that needs it.
func Missing(what string, deps map[string]any) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(deps)) {
		if isNil(deps[name]) {
			errs = append(errs, fmt.Errorf("%s is nil", name))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: missing dependencies: %w", what, errors.Join(errs...))
}

// isNil reports whether d is nil or a typed nil (a nil pointer in an
// interface), which a plain comparison misses.
func isNil(d any) bool {
	if d == nil {
		return true
	}
	v := reflect.ValueOf(d)
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return v.IsNil()
	}
	return false
}

func fmtErr(service string, err error) error { return fmt.Errorf("%s: %w", service, err) }
