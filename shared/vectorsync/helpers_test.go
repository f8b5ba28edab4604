package vectorsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	localopenai "github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// TestMain shares one Firestore and one Pub/Sub emulator among the
// package's tests; each test has its own project in them.
func TestMain(m *testing.M) {
	// The stage logs through the context's logger, slog's default here.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

const (
	artifacts = "artifacts"
	school    = "programacion"
	// lease is the stage's lease; tests end it by moving the store's clock.
	lease = time.Minute
)

// clock lets a test end a lease without waiting for it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

type env struct {
	stage   *vectorsync.Stage
	store   *lessonstate.Store
	ai      *localopenai.Server
	base    string // the local OpenAI server's base URL
	storage *storage.Client
	clock   *clock
	// announced returns what was published on lesson-events so far.
	announced func() []events.LessonEvent
}

type envOptions struct {
	indexTimeout time.Duration
	maxAttempts  int
}

// newEnv wires the stage to real collaborators: the Firestore and Pub/Sub
// emulators, the local Cloud Storage server, and the local OpenAI server
// through the real SDK.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("sync")
	if o.indexTimeout == 0 {
		o.indexTimeout = 10 * time.Second
	}
	if o.maxAttempts == 0 {
		o.maxAttempts = 3
	}

	srv, err := gcs.Start(gcs.Options{Buckets: []string{artifacts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	ai := localopenai.NewServer(localopenai.Options{Logger: slog.New(slog.DiscardHandler)})
	base, stop, err := ai.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	client, err := vectorsync.NewOpenAI(vectorsync.OpenAIConfig{APIKey: "local", BaseURL: base, MaxRetries: 2, RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	clk := &clock{now: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	store := lessonstate.New(fs, lessonstate.WithClock(clk.Now), lessonstate.WithMaxAttempts(o.maxAttempts))

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
	pub := events.NewPublisher(ps)
	t.Cleanup(pub.Close)
	rl, err := relay.New(store, pub, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	stage, err := vectorsync.New(vectorsync.Deps{
		Store: store, OpenAI: client, Storage: srv.Client(), Announcer: rl,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		},
		Settings: vectorsync.Settings{
			ArtifactsBucket: artifacts, Chunking: chunk.DefaultOptions(),
			Lease: lease, IndexTimeout: o.indexTimeout,
			StoreNamePrefix: "coursekb-", StoreCreationLease: 10 * time.Second,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{stage: stage, store: store, ai: ai, base: base, storage: srv.Client(), clock: clk,
		announced: func() []events.LessonEvent {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}}
}

// detect records a lesson as the detector does (media ready), or a change
// of its title, and returns its version.
func (e *env) detect(t *testing.T, id, schoolSlug, title string) int {
	t.Helper()
	_, _, err := e.store.ApplyDetected(t.Context(), id, lessonstate.Observed{RunID: "run-1", Lesson: lessonstate.Lesson{
		CourseID: "c1", CourseName: "Python desde cero", School: schoolSlug, ModuleID: "m1", ModuleName: "Fundamentos",
		Title: title, Type: "CONTENT", HasMedia: true, MediaStatus: lessonstate.MediaReady,
		Media:       &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "video-" + id},
		Fingerprint: id + "|" + title,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return e.lesson(t, id).Version
}

func (e *env) lesson(t *testing.T, id string) lessonstate.Lesson {
	t.Helper()
	l, err := e.store.Lesson(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// enrich leaves what the enrich stage leaves for a version: enrichment.json
// and knowledge.md, rendered by the real renderer.
func (e *env) enrich(t *testing.T, id string, version int, title, text string) {
	t.Helper()
	en := artifact.Enrichment{LessonID: id, Version: version, Level: artifact.LevelBasic,
		Categories: []artifact.Category{{ID: "python", Name: "Python", Score: 0.9}, {ID: "variables", Name: "Variables", Score: 0.8}},
		Summary:    "Lección " + title}
	chunks := []artifact.Chunk{
		{Index: 0, Start: 0, End: 65.4, Text: text},
		{Index: 1, Start: 65.4, End: 131, Text: fmt.Sprintf("Resumen de la versión %d de %s.", version, title)},
	}
	doc := chunk.Knowledge(chunk.Lesson{School: school, CourseID: "c1", ModuleID: "m1", LessonID: id, Version: version,
		CourseTitle: "Python desde cero", ModuleTitle: "Fundamentos", Title: title}, en, chunks)
	b, err := json.Marshal(en)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, artifact.Name(id, version, artifact.EnrichmentFile), b)
	e.put(t, artifact.Name(id, version, artifact.KnowledgeFile), doc)
}

func (e *env) put(t *testing.T, name string, b []byte) {
	t.Helper()
	w := e.storage.Bucket(artifacts).Object(name).NewWriter(t.Context())
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// ready makes lesson id's next version ready to sync: detected (a title
// change after the first) and enriched. It returns the sync event.
func (e *env) ready(t *testing.T, id, title string) events.LessonEvent {
	t.Helper()
	v := e.detect(t, id, school, title)
	e.enrich(t, id, v, title, "En Python una variable se declara asignándole un valor con el signo igual.")
	return events.LessonEvent{LessonID: id, Version: v, CourseID: "c1"}
}

// synced runs one sync that must end done.
func (e *env) synced(t *testing.T, ev events.LessonEvent) {
	t.Helper()
	if err := e.stage.Sync(t.Context(), ev); err != nil {
		t.Fatalf("sync %s v%d: %v", ev.LessonID, ev.Version, err)
	}
	if rec := e.lesson(t, ev.LessonID).Stages[lessonstate.StageSync]; rec.State != lessonstate.StateDone || rec.Version != ev.Version {
		t.Fatalf("sync %s v%d: stage %+v", ev.LessonID, ev.Version, rec)
	}
}

// live returns the files attached for a lesson in every store.
func (e *env) live(id string) []localopenai.StoreFile {
	var out []localopenai.StoreFile
	for _, fs := range e.ai.LiveFiles() {
		for _, f := range fs {
			if f.Attributes[vectorsync.AttrLesson] == id {
				out = append(out, f)
			}
		}
	}
	return out
}

// uploaded returns the files in Files named after the lesson.
func (e *env) uploaded(id string) []localopenai.File {
	var out []localopenai.File
	for _, f := range e.ai.Files() {
		if lid, _, ok := vectorsync.ParseFileName(f.Filename); ok && lid == id {
			out = append(out, f)
		}
	}
	return out
}

// onlyLive checks that the lesson has exactly one file at OpenAI, live and
// indexed, for version, and that its document records it.
func (e *env) onlyLive(t *testing.T, id string, version int) localopenai.StoreFile {
	t.Helper()
	live := e.live(id)
	if len(live) != 1 {
		t.Fatalf("lesson %s: %d attached files, want 1: %+v", id, len(live), live)
	}
	f := live[0]
	if f.Status != "completed" || f.Attributes[vectorsync.AttrVersion] != float64(version) || f.Filename != vectorsync.FileName(id, version) {
		t.Fatalf("lesson %s: live file %+v, want v%d completed", id, f, version)
	}
	if up := e.uploaded(id); len(up) != 1 || up[0].ID != f.FileID {
		t.Fatalf("lesson %s: files %+v, want only %s", id, up, f.FileID)
	}
	l := e.lesson(t, id)
	if vf := l.VectorStore; vf == nil || vf.FileID != f.FileID || vf.StoreID != f.StoreID || vf.Version != version || vf.School != school {
		t.Fatalf("lesson %s: vectorStore record %+v, want %s in %s at v%d", id, l.VectorStore, f.FileID, f.StoreID, version)
	}
	return f
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// announcedKinds counts the announcements of one lesson by kind.
func (e *env) announcedKinds(id string) map[string]int {
	n := map[string]int{}
	for _, ev := range e.announced() {
		if ev.LessonID == id {
			n[ev.Kind]++
		}
	}
	return n
}

// chunking reads the static chunking a file was attached with, as OpenAI
// reports it (max_chunk_size_tokens, chunk_overlap_tokens).
func (e *env) chunking(t *testing.T, f localopenai.StoreFile) [2]int64 {
	t.Helper()
	c := openai.NewClient(option.WithBaseURL(e.base), option.WithAPIKey("local"))
	vf, err := c.VectorStores.Files.Get(t.Context(), f.StoreID, f.FileID)
	if err != nil {
		t.Fatal(err)
	}
	st := vf.ChunkingStrategy.AsStatic().Static
	return [2]int64{st.MaxChunkSizeTokens, st.ChunkOverlapTokens}
}
