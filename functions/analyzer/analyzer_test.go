package analyzer

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

const lesson = "pyL1vars001"

// rig is the function as Cloud Functions starts it: NewFromEnv reading the
// environment, its clients reaching the emulators, the local Cloud Storage
// (STORAGE_EMULATOR_HOST) and the local Gemini (GEMINI_BASE_URL).
type rig struct {
	h      *Handler
	store  *lessonstate.Store
	gemini *gemini.Server
}

func newRig(t *testing.T, vars map[string]string) *rig {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("fn")

	gs, err := gcs.Start(gcs.Options{Buckets: []string{"raw", "artifacts"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gs.Stop)
	video := sampleVideo(t)
	b, err := os.ReadFile(video.Path)
	if err != nil {
		t.Fatal(err)
	}
	sc := gs.Client()
	t.Cleanup(func() { sc.Close() })
	w := sc.Bucket("raw").Object(download.ObjectName(lesson, 1, "mp4")).NewWriter(ctx)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	srv := gemini.NewServer(cat, gemini.Options{Logger: slog.New(slog.DiscardHandler)})
	url, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })

	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + events.TopicLessonEvents}); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"GOOGLE_CLOUD_PROJECT":  project,
		"STORAGE_EMULATOR_HOST": gs.Host(),
		"RAW_BUCKET":            "raw",
		"ARTIFACTS_BUCKET":      "artifacts",
		"GEMINI_BASE_URL":       url,
		"GEMINI_LOCATION":       "us-central1",
		"WINDOW_SECONDS":        "10",
		"GEMINI_API_ATTEMPTS":   "1",
		"LOG_LEVEL":             "error",
	}
	for k, v := range vars {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	h, err := NewFromEnv(ctx)
	if err != nil {
		t.Fatalf("start-up: %v", err)
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	store := lessonstate.New(fs)
	for _, id := range []string{lesson, "novideo1", "busy0001"} {
		_, _, err := store.ApplyDetected(ctx, id, lessonstate.Observed{RunID: "run-1", Lesson: lessonstate.Lesson{
			CourseID: "4100001", Title: "Lección " + id, Type: "CONTENT", HasMedia: true,
			MediaStatus: lessonstate.MediaReady, Fingerprint: id,
			Media: &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "v-" + id},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return &rig{h: h, store: store, gemini: srv}
}

// post sends the workflow's request and returns the status and the body.
func (r *rig) post(t *testing.T, method, body string) (int, http.Header, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, httptest.NewRequest(method, "/", strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, rec.Body.String())
	}
	return rec.Code, rec.Header(), out
}

func run(id string) string {
	return `{"lessonId":"` + id + `","version":1,"action":"run","execution":"exec-1"}`
}

// The workflow reads the status: 200 with the answer, 400 for a request
// that is not the contract's, 422 for a failure recorded for good, 503
// (with Retry-After) for what a retry may fix.
func TestStatusesTheWorkflowReads(t *testing.T) {
	r := newRig(t, nil)
	ctx := t.Context()

	for name, tc := range map[string]struct{ method, body, says string }{
		"GET":            {http.MethodGet, "", "the workflow posts"},
		"not JSON":       {http.MethodPost, "{", "not a JSON object"},
		"unsafe id":      {http.MethodPost, `{"lessonId":"a/b","version":1,"action":"run"}`, "lessonId"},
		"another action": {http.MethodPost, `{"lessonId":"L1","version":1,"action":"start"}`, `action "start" is not one of [run fail]`},
	} {
		code, _, body := r.post(t, tc.method, tc.body)
		if code != http.StatusBadRequest || !strings.Contains(body["error"].(string), tc.says) {
			t.Errorf("%s: %d %v, want 400 saying %q", name, code, body, tc.says)
		}
	}

	code, _, body := r.post(t, http.MethodPost, run(lesson))
	uri := "gs://artifacts/lessons/" + lesson + "/v1/analysis.json"
	if code != http.StatusOK || body["done"] != true || body["uri"] != uri {
		t.Fatalf("run: %d %v, want 200 done with %s", code, body, uri)
	}
	if ws := r.gemini.Windows(lesson); len(ws) != 3 {
		t.Errorf("windows asked %v, want 3 of at most 10 s", ws)
	}
	if code, _, again := r.post(t, http.MethodPost, run(lesson)); code != http.StatusOK || again["uri"] != uri {
		t.Errorf("run again: %d %v", code, again)
	}

	code, hdr, body := r.post(t, http.MethodPost, run("novideo1"))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body["error"].(string), "no video at gs://raw/lessons/novideo1/v1/source.mp4") || hdr.Get("Retry-After") != "" {
		t.Errorf("no video: %d %v, want 422 naming the object", code, body)
	}

	c, err := r.store.Claim(ctx, "busy0001", lessonstate.StageAnalyze, 1, time.Hour)
	if err != nil || c.Outcome != lessonstate.Claimed {
		t.Fatal(c.Outcome, err)
	}
	code, hdr, body = r.post(t, http.MethodPost, run("busy0001"))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body["error"].(string), "another call") {
		t.Errorf("busy: %d %v %v, want 503 with Retry-After", code, hdr, body)
	}
	code, _, body = r.post(t, http.MethodPost, `{"lessonId":"busy0001","version":1,"action":"fail","reason":"gave up"}`)
	if code != http.StatusServiceUnavailable {
		t.Errorf("fail while busy: %d %v, want 503", code, body)
	}
	code, _, body = r.post(t, http.MethodPost, `{"lessonId":"novideo1","version":1,"action":"fail","reason":"gave up"}`)
	if code != http.StatusOK {
		t.Errorf("fail after a recorded failure: %d %v, want 200", code, body)
	}
}

// Switched off by configuration, the function answers done and skipped.
func TestSwitchedOff(t *testing.T) {
	r := newRig(t, map[string]string{"ANALYSIS_ENABLED": "false"})
	code, _, body := r.post(t, http.MethodPost, run(lesson))
	if code != http.StatusOK || body["done"] != true || body["skipped"] != true {
		t.Errorf("switched off: %d %v, want 200 done and skipped", code, body)
	}
	if n := len(r.gemini.Received()); n != 0 {
		t.Errorf("%d Gemini requests while switched off", n)
	}
}

// A bad configuration is named whole at start-up.
func TestBadConfiguration(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "p")
	t.Setenv("RAW_BUCKET", "raw")
	t.Setenv("ARTIFACTS_BUCKET", "")
	t.Setenv("WINDOW_SECONDS", "0")
	t.Setenv("VIDEO_FPS", "30")
	_, err := NewFromEnv(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ARTIFACTS_BUCKET") {
		t.Fatalf("missing bucket: %v", err)
	}
	t.Setenv("ARTIFACTS_BUCKET", "artifacts")
	_, err = NewFromEnv(t.Context())
	if err == nil || !strings.Contains(err.Error(), "WINDOW_SECONDS is 0") || !strings.Contains(err.Error(), "VIDEO_FPS is 30") {
		t.Errorf("bad values: %v, want both named", err)
	}
}

// sampleVideo makes (or finds cached) the sample lesson's real video.
func sampleVideo(t *testing.T) sample.Video {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	one := sample.Catalog{Producer: cat.Producer}
	cat.Pages(func(p sample.Product, m sample.Module, pg sample.Page) {
		if pg.PageID == lesson {
			m.Pages = []sample.Page{pg}
			p.Modules = []sample.Module{m}
			one.Products = []sample.Product{p}
		}
	})
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
	vs, err := sample.Generate(context.Background(), one, filepath.Join(dir, ".cache", "sample-media"), sample.GenerateOptions{})
	if err != nil || len(vs) != 1 {
		t.Fatalf("sample video: %v (%d videos)", err, len(vs))
	}
	return vs[0]
}
