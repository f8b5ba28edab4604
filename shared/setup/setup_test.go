package setup

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// A failed start-up is not kept: the next request builds again, and once
// built the value is reused.
func TestInstanceRetriesFailedBuild(t *testing.T) {
	var builds atomic.Int32
	fail := true
	inst := NewInstance(func(ctx context.Context) (string, error) {
		builds.Add(1)
		if fail {
			return "", errors.New("storage check timed out")
		}
		return "handler", nil
	})
	if _, err := inst.Get(t.Context()); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("first start-up: %v, want its failure", err)
	}
	fail = false
	for range 3 {
		v, err := inst.Get(t.Context())
		if err != nil || v != "handler" {
			t.Fatalf("start-up after the failure: %q, %v", v, err)
		}
	}
	if n := builds.Load(); n != 2 {
		t.Fatalf("%d builds, want 2 (one failed, one kept)", n)
	}
}

// A request cancelled while the instance is being built does not cut the
// build short: the clients being made serve every later request.
func TestInstanceBuildIsDetachedFromTheRequest(t *testing.T) {
	req, cancel := context.WithCancel(t.Context())
	inst := NewInstance(func(ctx context.Context) (error, error) {
		cancel() // the request gives up mid-build
		return ctx.Err(), nil
	})
	buildErr, err := inst.Get(req)
	if err != nil || buildErr != nil {
		t.Fatalf("build saw the request's cancellation: %v, %v", buildErr, err)
	}
}

// Constructors name every nil dependency at once, typed nils included.
func TestMissing(t *testing.T) {
	var store *struct{}
	err := Missing("download", map[string]any{"store": store, "copier": nil, "bucket": "raw"})
	if err == nil || err.Error() != "download: missing dependencies: copier is nil\nstore is nil" {
		t.Fatalf("Missing: %v", err)
	}
	if err := Missing("download", map[string]any{"bucket": "raw"}); err != nil {
		t.Fatal(err)
	}
}

// The outcome context keeps going after the request's is cancelled.
func TestDetachedOutlivesCancellation(t *testing.T) {
	req, cancel := context.WithCancel(t.Context())
	cancel()
	ctx, done := Detached(req, 0)
	defer done()
	if ctx.Err() != nil {
		t.Fatalf("detached context is done: %v", ctx.Err())
	}
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("detached context has no deadline of its own")
	}
}
