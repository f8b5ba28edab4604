package workflows

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/emulators"
)

// One Pub/Sub emulator serves every test of the package.
func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.PubSub)) }

const (
	testWorkflow  = "projects/test-project/locations/us-central1/workflows/test-wf"
	testExecution = testWorkflow + "/executions/exec-1"
	// testScale makes a second of workflow time a millisecond.
	testScale = 0.001
)

// recorder keeps the StepEvents of a run.
type recorder struct {
	mu     sync.Mutex
	events []StepEvent
}

func (r *recorder) observe(e StepEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// steps returns the names of the steps that reached state, in order.
func (r *recorder) steps(state StepState) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.State == state {
			out = append(out, e.Step)
		}
	}
	return out
}

func (r *recorder) all() []StepEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]StepEvent(nil), r.events...)
}

func mustParse(t *testing.T, src string) *Definition {
	t.Helper()
	def, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return def
}

// runWorkflow runs src's main with arg; opts.TimeScale defaults to
// testScale and opts.Observer to a recorder it returns.
func runWorkflow(t *testing.T, src string, arg any, env map[string]string, opts Options) (any, error, *recorder) {
	t.Helper()
	def := mustParse(t, src)
	rec := &recorder{}
	if opts.Observer == nil {
		opts.Observer = rec.observe
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = testScale
	}
	r := NewRunner(opts)
	t.Cleanup(r.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := r.Run(ctx, def, arg, RunParams{Workflow: testWorkflow, Execution: testExecution, Env: env})
	return res, err, rec
}

// succeed runs src and fails the test unless it returns.
func succeed(t *testing.T, src string, arg any, opts Options) (any, *recorder) {
	t.Helper()
	res, err, rec := runWorkflow(t, src, arg, nil, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res, rec
}

// asJSON normalises a value for comparison with a JSON literal.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func assertJSON(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if g := asJSON(t, got); !reflect.DeepEqual(g, w) {
		gb, _ := json.Marshal(g)
		t.Errorf("got  %s\nwant %s", gb, want)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
