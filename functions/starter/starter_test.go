package starter

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	executions "cloud.google.com/go/workflows/executions/apiv1"
	"github.com/cloudevents/sdk-go/v2/event"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/start"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore)) }

type noAnnouncer struct{}

func (noAnnouncer) Event(context.Context, string, events.LessonEvent) error { return nil }

// The starter's events it does not own, and input that can never be
// started, are acknowledged with one log line saying why; nothing reaches
// the Workflows API (its client here points at nothing).
func TestStarterIgnoresWhatItDoesNotOwn(t *testing.T) {
	emulators.ForTest(t, emulators.Firestore)
	ctx := t.Context()
	fs, err := firestore.NewClient(ctx, emulators.ProjectID("starter"))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ex, err := executions.NewClient(ctx, option.WithEndpoint("127.0.0.1:1"), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	var logs bytes.Buffer
	log := logging.New(&logs, "info", "p")
	s, err := start.New(start.Deps{Store: lessonstate.New(fs), Executions: ex, Announcer: noAnnouncer{},
		Workflow: "projects/p/locations/l/workflows/lesson-pipeline", RawBucket: "raw", StartLease: time.Minute, ProcessLease: time.Hour,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(s, log)
	if err != nil {
		t.Fatal(err)
	}
	finalize := func(obj map[string]any) event.Event {
		ce := event.New()
		ce.SetID("e-1")
		ce.SetType(events.TypeStorageFinalize)
		ce.SetSource("//storage.googleapis.com/projects/_/buckets/raw")
		b, _ := json.Marshal(obj)
		_ = ce.SetData("application/json", json.RawMessage(b))
		return ce
	}
	other := event.New()
	other.SetID("e-2")
	other.SetType("google.cloud.audit.log.v1.written")
	other.SetSource("//cloudaudit.googleapis.com")

	for name, tc := range map[string]struct {
		ce   event.Event
		says string
	}{
		"derived audio":     {finalize(map[string]any{"bucket": "raw", "name": "lessons/L1/v1/audio/seg-000.flac", "generation": "3"}), "object ignored: not a lesson's source video"},
		"another bucket":    {finalize(map[string]any{"bucket": "artifacts", "name": "lessons/L1/v1/source.mp4"}), "object ignored: object of bucket artifacts"},
		"another event":     {other, "neither an object finalize nor a Pub/Sub message"},
		"an unknown lesson": {finalize(map[string]any{"bucket": "raw", "name": "lessons/L9/v1/source.mp4", "metadata": map[string]string{"lessonId": "L9", "version": "1"}}), "unknown lesson"},
	} {
		if err := h.Handle(ctx, tc.ce); err != nil {
			t.Errorf("%s: %v, want acknowledged", name, err)
		}
		if !strings.Contains(logs.String(), tc.says) {
			t.Errorf("%s: no log says %q:\n%s", name, tc.says, logs.String())
		}
	}
}
