package analyze_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/analyze"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/genaiclient"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/relay"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

const (
	// lesson is a sample lesson with a real video: 22 s, two slides, the
	// second with Python code on it.
	lesson    = "pyL1vars001"
	model     = "gemini-3.5-flash"
	raw       = "raw"
	artifacts = "artifacts"
)

// sampleVideo makes (or finds in .cache/sample-media) the sample lesson's
// real MP4, once per test binary.
var sampleVideo = sync.OnceValues(func() (sample.Video, error) {
	cat, err := sample.Load()
	if err != nil {
		return sample.Video{}, err
	}
	one := sample.Catalog{Producer: cat.Producer}
	cat.Pages(func(p sample.Product, m sample.Module, pg sample.Page) {
		if pg.PageID == lesson {
			m.Pages = []sample.Page{pg}
			p.Modules = []sample.Module{m}
			one.Products = []sample.Product{p}
		}
	})
	root, err := moduleRoot()
	if err != nil {
		return sample.Video{}, err
	}
	vs, err := sample.Generate(context.Background(), one, filepath.Join(root, ".cache", "sample-media"), sample.GenerateOptions{})
	if err != nil {
		return sample.Video{}, err
	}
	if len(vs) != 1 {
		return sample.Video{}, fmt.Errorf("generated %d videos for %s, want 1", len(vs), lesson)
	}
	return vs[0], nil
})

func mustVideo(t *testing.T) sample.Video {
	t.Helper()
	v, err := sampleVideo()
	if err != nil {
		t.Fatalf("sample video: %v", err)
	}
	return v
}

// moduleRoot is the directory of go.mod, where the sample videos are cached.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// tap sits in front of the local Gemini: it counts the requests, lets a
// test act just before request n is served, and sums the tokens of every
// answer it passes back, as Vertex would bill them.
type tap struct {
	srv    *gemini.Server
	n      atomic.Int64
	before func(n int)

	mu            sync.Mutex
	input, output float64
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(tp.n.Add(1))
	if tp.before != nil {
		tp.before(n)
	}
	rec := httptest.NewRecorder()
	tp.srv.ServeHTTP(rec, r)
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
	if rec.Code != http.StatusOK {
		return
	}
	var body struct {
		UsageMetadata struct {
			PromptTokenCount     float64 `json:"promptTokenCount"`
			CandidatesTokenCount float64 `json:"candidatesTokenCount"`
			ThoughtsTokenCount   float64 `json:"thoughtsTokenCount"`
		} `json:"usageMetadata"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err == nil {
		tp.mu.Lock()
		tp.input += body.UsageMetadata.PromptTokenCount
		tp.output += body.UsageMetadata.CandidatesTokenCount + body.UsageMetadata.ThoughtsTokenCount
		tp.mu.Unlock()
	}
}

func (tp *tap) tokens() (in, out float64) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.input, tp.output
}

// harness is the stage wired to real clients: the Firestore and Pub/Sub
// emulators, the local Cloud Storage with the sample video in the raw
// bucket, and the local Gemini through the genai SDK.
type harness struct {
	t        *testing.T
	stage    *analyze.Stage
	store    *lessonstate.Store
	storage  *storage.Client
	gemini   *gemini.Server
	tap      *tap
	client   *genai.Client
	fs       *firestore.Client
	duration float64
	failed   func() []events.LessonEvent
}

// options adjust a harness before it is built.
type options struct {
	settings analyze.Settings
	server   gemini.Options
	// attempts is the SDK's attempts per request (ClientConfig.Attempts).
	attempts int
}

func newHarness(t *testing.T, adjust ...func(*options)) *harness {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("an")
	video := mustVideo(t)

	o := options{
		settings: analyze.Settings{
			RawBucket: raw, ArtifactsBucket: artifacts, Enabled: true, Model: model,
			Window: 10 * time.Second, FPS: 1, Resolution: genai.MediaResolutionMedium, AnswerRetries: 1, Lease: time.Minute,
		},
		attempts: 3,
	}
	for _, f := range adjust {
		f(&o)
	}

	gs, err := gcs.Start(gcs.Options{Buckets: []string{raw, artifacts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gs.Stop)
	sc := gs.Client()
	t.Cleanup(func() { sc.Close() })
	b, err := os.ReadFile(video.Path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, sc, raw, download.ObjectName(lesson, 1, "mp4"), b)
	duration, err := analyze.MP4Duration(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("sample video length: %v", err)
	}

	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	o.server.Logger = slog.New(slog.DiscardHandler)
	srv := gemini.NewServer(cat, o.server)
	// The engine knows the video as long as its file says, as Vertex would.
	srv.SetDuration(lesson, duration)
	tp := &tap{srv: srv}
	hs := httptest.NewServer(tp)
	t.Cleanup(hs.Close)
	client, err := genaiclient.New(ctx, genaiclient.Config{
		Project: project, Location: "us-central1", BaseURL: hs.URL,
		Attempts: o.attempts, RetryDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	store := lessonstate.New(fs, lessonstate.WithMaxAttempts(3))

	failed := subscribe(t, project)
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	pub := events.NewPublisher(ps)
	t.Cleanup(pub.Close)
	rl, err := relay.New(store, pub, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	stage, err := analyze.New(analyze.Deps{
		Store: store, Storage: sc, Gemini: client, Announcer: rl,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		},
		Settings: o.settings,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, fs: fs, stage: stage, store: store, storage: sc, gemini: srv, tap: tp, client: client, duration: duration, failed: failed}
	h.detect(lesson, lessonstate.MediaReady)
	return h
}

// detect records a lesson as the detector does: version 1, with media
// ready (its video in the raw bucket when it is the sample lesson) or not.
func (h *harness) detect(id, mediaStatus string) {
	h.t.Helper()
	l := lessonstate.Lesson{
		CourseID: "4100001", CourseName: "Python desde cero", School: "programacion",
		ModuleID: "m1", ModuleName: "Fundamentos", ModuleOrder: 1, PageOrder: 1,
		Title: "Variables y tipos de datos", Type: "CONTENT", MediaStatus: mediaStatus,
		Fingerprint: id + "-" + mediaStatus,
	}
	if mediaStatus == lessonstate.MediaReady {
		l.HasMedia = true
		l.Media = &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "video-" + id}
	}
	if _, _, err := h.store.ApplyDetected(h.t.Context(), id, lessonstate.Observed{Lesson: l, RunID: "run-1"}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) lesson(id string) lessonstate.Lesson {
	h.t.Helper()
	l, err := h.store.Lesson(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *harness) record(id string) lessonstate.Stage {
	h.t.Helper()
	return h.lesson(id).Stages[lessonstate.StageAnalyze]
}

// plan is the windows a 10-second window cuts the sample video into.
func (h *harness) plan() []artifact.Window {
	return []artifact.Window{{Start: 0, End: 8}, {Start: 8, End: 16}, {Start: 16, End: h.duration}}
}

// object reads an object of the artifacts bucket; ok is false if absent.
func (h *harness) object(name string) ([]byte, bool) {
	h.t.Helper()
	r, err := h.storage.Bucket(artifacts).Object(name).NewReader(h.t.Context())
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer r.Close()
	b := new(bytes.Buffer)
	if _, err := b.ReadFrom(r); err != nil {
		h.t.Fatal(err)
	}
	return b.Bytes(), true
}

// usage is the lesson's Gemini tokens in its cost ledger.
func (h *harness) usage(id string) (in, out float64) {
	u := h.lesson(id).Usage
	return u[lessonstate.MeterGeminiInputTokens(model)], u[lessonstate.MeterGeminiOutputTokens(model)]
}

// checkUsage asserts that the ledger holds exactly what Gemini billed.
func (h *harness) checkUsage(id string) {
	h.t.Helper()
	in, out := h.usage(id)
	wantIn, wantOut := h.tap.tokens()
	if wantIn == 0 || in != wantIn || out != wantOut {
		h.t.Errorf("ledger has %g input and %g output tokens; Gemini billed %g and %g", in, out, wantIn, wantOut)
	}
}

// waitFailed waits for the failed announcement of a lesson's stage.
func (h *harness) waitFailed(id, stage string) events.LessonEvent {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range h.failed() {
			if ev.LessonID == id && ev.Kind == events.KindFailed && ev.From == stage {
				return ev
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("no failed announcement for %s/%s on %s within 20 s; got %+v", id, stage, events.TopicLessonEvents, h.failed())
	return events.LessonEvent{}
}

// subscribe creates the lesson-events topic and returns what arrives on it.
func subscribe(t *testing.T, project string) func() []events.LessonEvent {
	t.Helper()
	ctx := t.Context()
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	topic := "projects/" + project + "/topics/" + events.TopicLessonEvents
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/events", Topic: topic,
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []events.LessonEvent
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ps.Subscriber("events").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			var ev events.LessonEvent
			_ = json.Unmarshal(m.Data, &ev)
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
			m.Ack()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []events.LessonEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]events.LessonEvent(nil), got...)
	}
}

func put(t *testing.T, c *storage.Client, bucket, name string, b []byte) {
	t.Helper()
	w := c.Bucket(bucket).Object(name).NewWriter(t.Context())
	w.ChunkSize = 0
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// wholeLesson asks the local Gemini for the whole video at once, with a
// schema of the same shape: what the merged windows must add up to.
func (h *harness) wholeLesson() []artifact.VisualElement {
	h.t.Helper()
	str := &genai.Schema{Type: genai.TypeString}
	num := &genai.Schema{Type: genai.TypeNumber}
	schema := &genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{
		"elements": {Type: genai.TypeArray, Items: &genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{
			"kind": {Type: genai.TypeString, Enum: artifact.VisualKinds}, "start": num, "end": num,
			"title": str, "text": str, "code": str, "language": str, "description": str,
		}}},
	}}
	part := genai.NewPartFromURI("gs://"+raw+"/"+download.ObjectName(lesson, 1, "mp4"), "video/mp4")
	resp, err := h.client.Models.GenerateContent(h.t.Context(), model,
		[]*genai.Content{genai.NewContentFromParts([]*genai.Part{part, genai.NewPartFromText("Todo el vídeo.")}, genai.RoleUser)},
		&genai.GenerateContentConfig{ResponseMIMEType: "application/json", ResponseSchema: schema})
	if err != nil {
		h.t.Fatal(err)
	}
	var a struct{ Elements []artifact.VisualElement }
	if err := json.Unmarshal([]byte(resp.Text()), &a); err != nil {
		h.t.Fatal(err)
	}
	return a.Elements
}
