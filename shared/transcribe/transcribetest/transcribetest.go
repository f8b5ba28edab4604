// Package transcribetest gives tests of the transcribe stage (and of the
// function around it) one machine's version of everything the stage talks
// to, through the real clients: the Firestore and Pub/Sub emulators, the
// local Cloud Storage, the local Speech-to-Text v2 server answering from the
// bundled sample course, and real lesson videos made with ffmpeg and
// espeak-ng (local/sample).
package transcribetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/sample"
	localspeech "github.com/coursekb/pipeline/local/speech"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/audio"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/transcribe"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

// Buckets of every Env.
const (
	RawBucket       = "raw"
	ArtifactsBucket = "artifacts"
)

// CourseID is the sample course the lessons belong to (Spanish).
const CourseID = "4100001"

// Options shape an Env.
type Options struct {
	// Vars add to or override the transcriber's configuration (e.g.
	// SEGMENT_SECONDS, MIN_CONFIDENCE).
	Vars map[string]string
	// Speech configures the local speech server (faults, timing).
	Speech localspeech.Options
	// Log receives the stage's logs; nil discards them, unless
	// TRANSCRIBETEST_LOG is set: then they go to standard error.
	Log *slog.Logger
}

// Env is one test's transcriber and its world.
type Env struct {
	Stage   *transcribe.Stage
	Config  transcribe.Config
	Store   *lessonstate.Store
	Storage *storage.Client
	Engine  *localspeech.Server
	Log     *slog.Logger

	mu        sync.Mutex
	announced []events.LessonEvent
	fp        int
}

// New starts everything and builds the stage as the function does. With
// the emulators started by the package's TestMain (emulators.RunTests),
// tests calling it may run in parallel: each Env has its own project,
// buckets and speech server.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	for _, kind := range []emulators.Kind{emulators.Firestore, emulators.PubSub} {
		// Shared by TestMain (emulators.RunTests), tests may run in
		// parallel; ForTest (which sets the variable) is for those alone.
		if os.Getenv(kind.EnvVar()) == "" {
			emulators.ForTest(t, kind)
		}
	}
	ctx := context.Background()
	project := emulators.ProjectID("tr")

	g, err := gcs.Start(gcs.Options{Buckets: []string{RawBucket, ArtifactsBucket}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	st := g.Client()
	t.Cleanup(func() { st.Close() })

	if opts.Speech.Storage == nil {
		opts.Speech.Storage = st
	}
	if opts.Speech.Logger == nil {
		opts.Speech.Logger = slog.New(slog.DiscardHandler)
	}
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := localspeech.New(localspeech.FromCatalog(cat), opts.Speech)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, stop, err := engine.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })

	vars := map[string]string{
		"GOOGLE_CLOUD_PROJECT": project,
		"RAW_BUCKET":           RawBucket,
		"ARTIFACTS_BUCKET":     ArtifactsBucket,
		"SPEECH_ENDPOINT":      endpoint,
		"MAX_ATTEMPTS":         "3",
	}
	for k, v := range opts.Vars {
		vars[k] = v
	}
	cfg, err := transcribe.LoadConfigFrom(vars)
	if err != nil {
		t.Fatal(err)
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	store := lessonstate.New(fs, lessonstate.WithMaxAttempts(cfg.MaxAttempts))

	log := opts.Log
	if os.Getenv("TRANSCRIBETEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Env{Config: cfg, Store: store, Storage: st, Engine: engine, Log: log}
	rl := e.listen(t, ctx, project, store)

	x, err := audio.New(st, audio.Options{SegmentSeconds: cfg.Segment()})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := transcribe.DialSpeech(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	e.Stage, err = transcribe.New(transcribe.Deps{
		Config: cfg, Store: store, Announcer: rl, Storage: st, Audio: x, Speech: sp,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// listen creates the lesson-events topic, collects what is announced on
// it, and returns the relay the stage announces through.
func (e *Env) listen(t testing.TB, ctx context.Context, project string, store *lessonstate.Store) *relay.Relay {
	t.Helper()
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
		Name: "projects/" + project + "/subscriptions/announced", Topic: topic,
	}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ps.Subscriber("announced").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			var ev events.LessonEvent
			_ = json.Unmarshal(m.Data, &ev)
			e.mu.Lock()
			e.announced = append(e.announced, ev)
			e.mu.Unlock()
			m.Ack()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	pub := events.NewPublisher(ps)
	t.Cleanup(pub.Close)
	rl, err := relay.New(store, pub, e.Log)
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

// Lesson records lesson id as detection would, with a new video (a new
// version when the lesson exists), and puts video in the raw bucket where
// the downloader would. It returns the version.
func (e *Env) Lesson(t testing.TB, id, video string) int {
	t.Helper()
	e.mu.Lock()
	e.fp++
	fp := fmt.Sprintf("%s#%d", filepath.Base(video), e.fp)
	e.mu.Unlock()
	_, _, err := e.Store.ApplyDetected(context.Background(), id, lessonstate.Observed{RunID: "run-1", Lesson: lessonstate.Lesson{
		CourseID: CourseID, Title: "Lección " + id, Type: "CONTENT", HasMedia: true,
		MediaStatus: lessonstate.MediaReady, Fingerprint: fp,
		Media: &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: fp},
	}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := e.Store.Lesson(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(video)
	if err != nil {
		t.Fatal(err)
	}
	w := e.Storage.Bucket(RawBucket).Object(download.ObjectName(id, l.Version, "mp4")).NewWriter(context.Background())
	w.ContentType = "video/mp4"
	w.Metadata = map[string]string{"lessonId": id, "version": fmt.Sprint(l.Version)}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return l.Version
}

// Call runs one workflow request through the stage.
func (e *Env) Call(t testing.TB, req workflowcall.Request) (workflowcall.Response, error) {
	t.Helper()
	return e.Stage.Handle(logging.WithLogger(context.Background(), e.Log), req)
}

// Start, Poll and GiveUp are the workflow's three calls.
func (e *Env) Start(t testing.TB, id string, v int) (workflowcall.Response, error) {
	return e.Call(t, workflowcall.Request{LessonID: id, Version: v, Action: workflowcall.ActionStart})
}

func (e *Env) Poll(t testing.TB, id string, v int, op string) (workflowcall.Response, error) {
	return e.Call(t, workflowcall.Request{LessonID: id, Version: v, Action: workflowcall.ActionPoll, Operation: op})
}

func (e *Env) GiveUp(t testing.TB, id string, v int, reason string) (workflowcall.Response, error) {
	return e.Call(t, workflowcall.Request{LessonID: id, Version: v, Action: workflowcall.ActionFail, Reason: reason})
}

// PollUntilDone polls as the workflow does, following the operation each
// answer names, until an answer is done or an error comes back, for at
// most 30 seconds. It returns the last answer and the operations named.
func (e *Env) PollUntilDone(t testing.TB, id string, v int, first workflowcall.Response) (workflowcall.Response, []string, error) {
	t.Helper()
	resp := first
	ops := []string{first.Operation}
	deadline := time.Now().Add(30 * time.Second)
	for !resp.Done && !resp.Stale {
		if time.Now().After(deadline) {
			t.Fatalf("lesson %s v%d: not done after 30 s of polling (last answer %+v)", id, v, resp)
		}
		var err error
		if resp, err = e.Poll(t, id, v, resp.Operation); err != nil {
			return resp, ops, err
		}
		if resp.Operation != "" && resp.Operation != ops[len(ops)-1] {
			ops = append(ops, resp.Operation)
		}
	}
	return resp, ops, nil
}

// Transcribe starts and polls lesson id v to the end, failing the test on
// any error.
func (e *Env) Transcribe(t testing.TB, id string, v int) workflowcall.Response {
	t.Helper()
	resp, err := e.Start(t, id, v)
	if err != nil {
		t.Fatalf("start lesson %s v%d: %v", id, v, err)
	}
	resp, _, err = e.PollUntilDone(t, id, v, resp)
	if err != nil {
		t.Fatalf("poll lesson %s v%d: %v", id, v, err)
	}
	return resp
}

// Record is the lesson's transcribe record.
func (e *Env) Record(t testing.TB, id string) lessonstate.Stage {
	t.Helper()
	return e.LessonDoc(t, id).Stages[lessonstate.StageTranscribe]
}

// LessonDoc is the lesson document.
func (e *Env) LessonDoc(t testing.TB, id string) lessonstate.Lesson {
	t.Helper()
	l, err := e.Store.Lesson(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Transcript reads a transcript.json.
func (e *Env) Transcript(t testing.TB, uri string) artifact.Transcript {
	t.Helper()
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok {
		t.Fatalf("transcript URI %q", uri)
	}
	bucket, object, _ := strings.Cut(rest, "/")
	r, err := e.Storage.Bucket(bucket).Object(object).NewReader(context.Background())
	if err != nil {
		t.Fatalf("read %s: %v", uri, err)
	}
	defer r.Close()
	var tr artifact.Transcript
	if err := json.NewDecoder(r).Decode(&tr); err != nil {
		t.Fatalf("%s is not a transcript: %v", uri, err)
	}
	return tr
}

// Objects lists the object names of bucket under prefix.
func (e *Env) Objects(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var names []string
	it := e.Storage.Bucket(bucket).Objects(context.Background(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if err != nil {
			break
		}
		names = append(names, a.Name)
	}
	return names
}

// WaitAnnounced waits up to 10 s for a failure of lesson id to be
// announced on lesson-events, and returns it.
func (e *Env) WaitAnnounced(t testing.TB, id string) events.LessonEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		for _, ev := range e.announced {
			if ev.LessonID == id && ev.Kind == events.KindFailed {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no failure of lesson %s announced within 10 s", id)
		}
		time.Sleep(20 * time.Millisecond) // waiting for delivery, not before an assertion
	}
}

// Announced returns what was announced so far.
func (e *Env) Announced() []events.LessonEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]events.LessonEvent(nil), e.announced...)
}

// Narrated lesson ids of the bundled sample (the local speech server knows
// what each says).
const (
	LessonVars  = "pyL1vars001" // 22 s
	LessonConds = "pyL2cond002" // 16 s
	LessonFuncs = "pyL3func004" // 15 s
	LessonPers  = "mkL1pers005" // 16 s
)

var videos = sync.OnceValues(func() (map[string]sample.Video, error) {
	cat, err := sample.Load()
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	vs, err := sample.Generate(context.Background(), cat, filepath.Join(root, ".cache", "sample-media"), sample.GenerateOptions{})
	if err != nil {
		return nil, err
	}
	m := map[string]sample.Video{}
	for _, v := range vs {
		m[v.PageID] = v
	}
	return m, nil
})

// Video is the sample lesson's video (made once, cached under
// .cache/sample-media).
func Video(t testing.TB, pageID string) sample.Video {
	t.Helper()
	vs, err := videos()
	if err != nil {
		t.Fatalf("sample videos (%s): %v", sample.InstallHint, err)
	}
	v, ok := vs[pageID]
	if !ok {
		t.Fatalf("the sample has no video for %s", pageID)
	}
	return v
}

// Narration is what the sample lesson says.
func Narration(t testing.TB, pageID string) string {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	var text string
	cat.Pages(func(_ sample.Product, _ sample.Module, pg sample.Page) {
		if pg.PageID == pageID {
			text = strings.TrimSpace(pg.Narration)
		}
	})
	if text == "" {
		t.Fatalf("the sample has no narration for %s", pageID)
	}
	return text
}

var silent = sync.OnceValues(func() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".cache", "transcribetest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "silent.mp4")
	if st, err := os.Stat(out); err == nil && st.Size() > 0 {
		return out, nil
	}
	tmp, err := os.CreateTemp(dir, ".silent-*.mp4")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2",
		"-c:v", "libx264", "-preset", "ultrafast", "-f", "mp4", tmp.Name())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ffmpeg: %w: %s", err, stderr.String())
	}
	return out, os.Rename(tmp.Name(), out)
})

// SilentVideo is a 2-second video with no audio track (made once, cached
// under .cache/transcribetest).
func SilentVideo(t testing.TB) string {
	t.Helper()
	p, err := silent()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/coursekb/pipeline\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the pipeline module")
		}
		dir = parent
	}
}
