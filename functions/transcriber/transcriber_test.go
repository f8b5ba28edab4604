package transcriber

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/lessonstate"
	tt "github.com/coursekb/pipeline/shared/transcribe/transcribetest"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

type answer struct {
	status     int
	retryAfter string
	resp       workflowcall.Response
	err        string
}

func call(t *testing.T, h http.Handler, method, body string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/", strings.NewReader(body)))
	a := answer{status: rec.Code, retryAfter: rec.Header().Get("Retry-After")}
	b := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(b, &a.resp); err != nil {
			t.Fatalf("200 body %s: %v", b, err)
		}
		return a
	}
	var e struct{ Error string }
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("%d body %s is not {\"error\":…}", rec.Code, b)
	}
	a.err = e.Error
	return a
}

func body(id string, v int, action, more string) string {
	b, _ := json.Marshal(map[string]any{"lessonId": id, "version": v, "action": action, "execution": "e-1"})
	if more != "" {
		b = append(b[:len(b)-1], []byte(","+more+"}")...)
	}
	return string(b)
}

// The function answers the workflow in workflowcall's terms: 200 with the
// answer, 400 for a request that is wrong, 422 for a failure recorded and
// announced, 503 with Retry-After for one worth a retry.
func TestStatusMapping(t *testing.T) {
	var logs bytes.Buffer
	e := tt.New(t, tt.Options{})
	h, err := New(e.Stage, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ok := tt.LessonConds
	v := e.Lesson(t, ok, tt.Video(t, ok).Path)

	for _, c := range []struct {
		name, method, body, want string
	}{
		{"not a POST", http.MethodGet, "", "the workflow posts"},
		{"not JSON", http.MethodPost, "transcribe please", "not a JSON object"},
		{"unknown action", http.MethodPost, body(ok, v, "run", ""), `action "run"`},
		{"poll without operation", http.MethodPost, body(ok, v, "poll", ""), "names no operation"},
		{"bad lesson id", http.MethodPost, body("a/b", v, "start", ""), "lessonId"},
	} {
		if a := call(t, h, c.method, c.body); a.status != http.StatusBadRequest || !strings.Contains(a.err, c.want) {
			t.Errorf("%s: %d %q, want 400 saying %q", c.name, a.status, a.err, c.want)
		}
	}

	started := call(t, h, http.MethodPost, body(ok, v, "start", ""))
	if started.status != http.StatusOK || started.resp.Done || started.resp.Operation == "" {
		t.Fatalf("start: %+v", started)
	}
	polled := started
	deadline := time.Now().Add(30 * time.Second)
	for !polled.resp.Done {
		if time.Now().After(deadline) {
			t.Fatalf("not done after 30 s: %+v", polled)
		}
		op, _ := json.Marshal(polled.resp.Operation)
		polled = call(t, h, http.MethodPost, body(ok, v, "poll", `"operation":`+string(op)))
		if polled.status != http.StatusOK {
			t.Fatalf("poll: %+v", polled)
		}
	}
	if polled.resp.URI != "gs://"+tt.ArtifactsBucket+"/lessons/"+ok+"/v1/transcript.json" {
		t.Errorf("done answer %+v", polled.resp)
	}

	silent := "silentLesson02"
	sv := e.Lesson(t, silent, tt.SilentVideo(t))
	if a := call(t, h, http.MethodPost, body(silent, sv, "start", "")); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.err, "no audio track") {
		t.Errorf("video without audio: %+v, want 422 naming it", a)
	}
	if a := call(t, h, http.MethodPost, body("noSuchLesson", 1, "start", "")); a.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown lesson: %+v, want 422", a)
	}

	// Speech-to-Text out of quota: worth a retry. The stage goes back to
	// pending for it.
	busy := tt.LessonVars
	bv := e.Lesson(t, busy, tt.Video(t, busy).Path)
	e.Engine.RejectNext(1, codes.ResourceExhausted, "quota exceeded for batch recognize requests")
	a := call(t, h, http.MethodPost, body(busy, bv, "start", ""))
	if a.status != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.err, "quota exceeded") {
		t.Errorf("quota: %+v, want 503 with Retry-After", a)
	}
	if rec := e.Record(t, busy); rec.State != lessonstate.StatePending {
		t.Errorf("after a retryable failure the stage is %s, want pending", rec.State)
	}
	// The workflow gives up: recorded, answered 200; then a start is 422.
	gaveUp := call(t, h, http.MethodPost, body(busy, bv, "fail", `"reason":"calls kept failing"`))
	if gaveUp.status != http.StatusOK || gaveUp.resp.Done || gaveUp.resp.Reason != "calls kept failing" {
		t.Errorf("fail: %+v", gaveUp)
	}
	if a := call(t, h, http.MethodPost, body(busy, bv, "start", "")); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.err, "calls kept failing") {
		t.Errorf("start after giving up: %+v, want 422 with the reason", a)
	}
	if !strings.Contains(logs.String(), `"stage":"transcribe"`) || !strings.Contains(logs.String(), `"lessonId":"`+busy+`"`) {
		t.Errorf("logs do not name the stage and lesson:\n%s", logs.String())
	}
}

// A start-up that cannot be configured names every missing variable.
func TestNewFromEnvNamesWhatIsMissing(t *testing.T) {
	for _, k := range []string{"RAW_BUCKET", "ARTIFACTS_BUCKET", "GOOGLE_CLOUD_PROJECT"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	_, err := NewFromEnv(t.Context())
	if err == nil {
		t.Fatal("started without configuration")
	}
	for _, want := range []string{"RAW_BUCKET", "ARTIFACTS_BUCKET", "GOOGLE_CLOUD_PROJECT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
	if _, err := New(nil, nil); err == nil || !strings.Contains(err.Error(), "stage is nil") || !strings.Contains(err.Error(), "logger is nil") {
		t.Errorf("New(nil, nil): %v", err)
	}
}
