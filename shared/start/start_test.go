package start_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	executions "cloud.google.com/go/workflows/executions/apiv1"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/workflows"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/start"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore)) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

type env struct {
	starter *start.Starter
	store   *lessonstate.Store
	svc     *workflows.Service
	clock   *clock
	wf      string
	ex      *executions.Client
}

const raw = "raw"

func newEnv(t *testing.T) *env {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	ctx := t.Context()
	project := emulators.ProjectID("start")
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	clk := &clock{now: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	store := lessonstate.New(fs, lessonstate.WithClock(clk.Now))

	svc := workflows.NewService(workflows.Options{Logger: slog.New(slog.DiscardHandler)})
	wf := "projects/" + project + "/locations/us-central1/workflows/lesson-pipeline"
	if err := svc.RegisterFile(wf, "testdata/hold.yaml", nil); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := svc.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); svc.Close() })
	ex, err := executions.NewClient(ctx, option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	s, err := start.New(start.Deps{
		Store: store, Executions: ex, Announcer: discard{}, Workflow: wf, RawBucket: raw,
		StartLease: time.Minute, ProcessLease: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{starter: s, store: store, svc: svc, clock: clk, wf: wf, ex: ex}
}

type discard struct{}

func (discard) Event(context.Context, string, events.LessonEvent) error { return nil }

// downloaded records a lesson whose video is downloaded at version 1.
func (e *env) downloaded(t *testing.T, id string) {
	t.Helper()
	ctx := t.Context()
	_, _, err := e.store.ApplyDetected(ctx, id, lessonstate.Observed{RunID: "run-1", Lesson: lessonstate.Lesson{
		CourseID: "4100001", Title: "Lección", Type: "CONTENT", HasMedia: true, MediaStatus: lessonstate.MediaReady,
		Fingerprint: "fp-" + id, Media: &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "m"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Claim(ctx, id, lessonstate.StageDownload, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Complete(ctx, id, lessonstate.StageDownload, 1, c.Token, nil); err != nil {
		t.Fatal(err)
	}
}

func finalized(id string) events.StorageObject {
	return events.StorageObject{Bucket: raw, Name: "lessons/" + id + "/v1/source.mp4",
		Metadata: map[string]string{"lessonId": id, "version": "1", "courseId": "4100001"}}
}

func (e *env) active() []*executionspb.Execution {
	var out []*executionspb.Execution
	for _, x := range e.svc.Executions(e.wf) {
		if x.GetState() == executionspb.Execution_ACTIVE {
			out = append(out, x)
		}
	}
	return out
}

// The same finalize event delivered three times starts one execution, and
// the process step records it with the long lease.
func TestSameFinalizeThriceStartsOneExecution(t *testing.T) {
	e := newEnv(t)
	e.downloaded(t, "L1")
	for range 3 {
		ev, why := e.starter.Own(finalized("L1"))
		if why != "" {
			t.Fatalf("own: %s", why)
		}
		if err := e.starter.Start(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	act := e.active()
	if len(act) != 1 {
		t.Fatalf("%d executions running, want 1", len(act))
	}
	l, err := e.store.Lesson(t.Context(), "L1")
	if err != nil {
		t.Fatal(err)
	}
	rec := l.Stages[lessonstate.StepProcess]
	if rec.State != lessonstate.StateRunning || rec.Outputs[start.OutExecution] != act[0].GetName() ||
		!rec.LeaseUntil.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("process record %+v, want running with the execution and the process lease", rec)
	}
	if got := act[0].GetLabels(); got[start.LabelVersion] != "1" || got[start.LabelLesson] != start.Labels("L1", 1)[start.LabelLesson] {
		t.Errorf("execution labels %v", got)
	}
}

// Objects the starter does not own are ignored, each with its reason.
func TestForeignObjectsAreIgnored(t *testing.T) {
	e := newEnv(t)
	for name, obj := range map[string]events.StorageObject{
		"derived audio":    {Bucket: raw, Name: "lessons/L1/v1/audio/seg-000.flac", Metadata: map[string]string{"lessonId": "L1", "version": "1"}},
		"ingest master":    {Bucket: raw, Name: "ingest/4100001/m1/L1.mp4"},
		"manifest":         {Bucket: raw, Name: "media/manifest.json"},
		"other bucket":     {Bucket: "artifacts", Name: "lessons/L1/v1/source.mp4", Metadata: map[string]string{"lessonId": "L1", "version": "1"}},
		"metadata differs": {Bucket: raw, Name: "lessons/L1/v2/source.mp4", Metadata: map[string]string{"lessonId": "L1", "version": "1"}},
		"unsafe id":        {Bucket: raw, Name: "lessons/../v1/source.mp4"},
	} {
		if ev, why := e.starter.Own(obj); why == "" {
			t.Errorf("%s: owned as %+v", name, ev)
		}
	}
}

// A starter that crashed after starting the execution, before recording it:
// once its start lease ends the sweeper re-drives the version, and the next
// starter adopts the running execution instead of starting a second.
func TestCrashAfterStartingAdoptsTheExecution(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.downloaded(t, "L2")

	// The crashed starter: it claimed the step and started the execution.
	c, err := e.store.Claim(ctx, "L2", lessonstate.StepProcess, 1, time.Minute)
	if err != nil || c.Outcome != lessonstate.Claimed {
		t.Fatal(c.Outcome, err)
	}
	labels := start.Labels("L2", 1)
	labels[start.LabelAttempt] = "1"
	first, err := e.ex.CreateExecution(ctx, &executionspb.CreateExecutionRequest{Parent: e.wf,
		Execution: &executionspb.Execution{Argument: `{"lessonId":"L2","version":1}`, Labels: labels}})
	if err != nil {
		t.Fatal(err)
	}

	// Redelivered finalize events under the live start lease do nothing.
	ev, _ := e.starter.Own(finalized("L2"))
	if err := e.starter.Start(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// The lease ends; the sweeper re-drives the process step.
	e.clock.Add(2 * time.Minute)
	sw, err := e.store.Sweep(ctx, "L2")
	if err != nil || sw == nil || sw.Action != lessonstate.SweepRedriven || sw.Entry.Topic != events.TopicLessonDownloaded {
		t.Fatalf("sweep: %+v, %v", sw, err)
	}
	redriven, err := events.ParseLessonEvent(sw.Entry.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.starter.Start(ctx, redriven); err != nil {
		t.Fatal(err)
	}
	act := e.active()
	if len(act) != 1 || act[0].GetName() != first.GetName() {
		t.Fatalf("running executions %d, want only the first one", len(act))
	}
	l, _ := e.store.Lesson(ctx, "L2")
	if rec := l.Stages[lessonstate.StepProcess]; rec.Outputs[start.OutExecution] != first.GetName() || rec.Attempts != 2 {
		t.Fatalf("process record %+v, want the adopted execution at attempt 2", rec)
	}
}
