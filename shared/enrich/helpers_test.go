package enrich_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/enrich"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/genaiclient"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/notify"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

const (
	artifacts      = "artifacts"
	model          = "gemini-3.5-flash"
	embeddingModel = "text-embedding-3-small"
	courseID       = "4100001"
	lease          = time.Minute
)

// TestMain shares one Firestore and one Pub/Sub emulator among the
// package's tests; each test works in a project of its own.
func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

// tokenizer is built once: building one compiles the encoding's pattern.
var tokenizer = func() *chunk.Tokenizer {
	tok, err := chunk.NewTokenizer(embeddingModel)
	if err != nil {
		panic(err)
	}
	return tok
}()

// harness is the enrich stage with real clients against the emulators, the
// local Cloud Storage, the local OpenAI and the local Gemini, the sample
// course's lessons detected, and taps on the topics it publishes to.
type harness struct {
	t       *testing.T
	fs      *firestore.Client
	store   *lessonstate.Store
	storage *storage.Client
	stage   *enrich.Stage
	gemini  *gemini.Server
	ai      *openai.Server
	cat     sample.Catalog

	enriched, failed func() []events.LessonEvent
	prompts          func() []string

	// skew moves the store's clock forward (a lease lapsing); dead makes
	// the outcome context dead (an instance that died before recording
	// its outcome); breakUpload, when set, refuses uploads whose body
	// contains it and then kills the instance.
	skew        atomic.Int64
	dead        atomic.Bool
	breakUpload atomic.Value
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("en")
	h := &harness{t: t}
	h.breakUpload.Store("")

	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	h.cat = cat

	gs, err := gcs.Start(gcs.Options{Buckets: []string{artifacts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gs.Stop)
	h.storage = h.storageThrough(gs)

	ai := openai.NewServer(openai.Options{Logger: slog.New(slog.DiscardHandler)})
	aiURL, stopAI, err := ai.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAI() })
	h.ai = ai

	h.gemini = gemini.NewServer(cat, gemini.Options{Logger: slog.New(slog.DiscardHandler)})
	var pmu sync.Mutex
	var prompts []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var req struct {
			Contents []struct {
				Parts []struct{ Text string } `json:"parts"`
			} `json:"contents"`
		}
		if json.Unmarshal(b, &req) == nil && len(req.Contents) > 0 {
			var texts []string
			for _, p := range req.Contents[0].Parts {
				texts = append(texts, p.Text)
			}
			pmu.Lock()
			prompts = append(prompts, strings.Join(texts, "\n"))
			pmu.Unlock()
		}
		h.gemini.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	h.prompts = func() []string { pmu.Lock(); defer pmu.Unlock(); return append([]string(nil), prompts...) }
	client, err := genaiclient.New(ctx, genaiclient.Config{Project: project, Location: "us-central1", BaseURL: hs.URL, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}

	h.fs, err = firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.fs.Close() })
	h.store = lessonstate.New(h.fs, lessonstate.WithMaxAttempts(3),
		lessonstate.WithClock(func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) }))

	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	h.enriched = tap(t, ps, project, events.TopicLessonEnriched)
	h.failed = tap(t, ps, project, events.TopicLessonEvents)
	pub := events.NewPublisher(ps)
	t.Cleanup(pub.Close)
	rl, err := relay.New(h.store, pub, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	tax, err := taxonomy.Default()
	if err != nil {
		t.Fatal(err)
	}
	emb, err := taxonomy.NewEmbedder(taxonomy.EmbedderConfig{
		APIKey: "sk-test", BaseURL: aiURL, RequestTimeout: 30 * time.Second, Model: embeddingModel, Dimensions: 1536,
	}, tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := taxonomy.NewSyncer(h.fs, emb, tax, slog.New(slog.DiscardHandler), taxonomy.SyncerOptions{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	classifier, err := taxonomy.NewClassifier(h.fs, taxonomy.DefaultTop, taxonomy.DefaultThreshold)
	if err != nil {
		t.Fatal(err)
	}
	splitter, err := chunk.NewSplitter(tokenizer, chunk.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	h.stage, err = enrich.New(enrich.Deps{
		Store: h.store, Firestore: h.fs, Storage: h.storage, Gemini: client,
		Taxonomy: tax, Syncer: syncer, Embedder: emb, Classifier: classifier, Splitter: splitter,
		Publisher: pub, Announcer: rl,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) {
			octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if h.dead.Load() {
				cancel()
			}
			return octx, cancel
		},
		Settings: enrich.Settings{
			ArtifactsBucket: artifacts, Model: model, AnswerRetries: 1, Lease: lease,
			Links: notify.Links{ClubLessonURL: notify.DefaultClubLessonURL},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.detectCourse()
	return h
}

// storageThrough is a Cloud Storage client reaching gs through a proxy
// that can refuse an upload (breakUpload) and kill the instance with it.
func (h *harness) storageThrough(gs *gcs.Server) *storage.Client {
	h.t.Helper()
	target, err := url.Parse(gs.URL())
	if err != nil {
		h.t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if needle := h.breakUpload.Load().(string); needle != "" && r.Method != http.MethodGet {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			if bytes.Contains(b, []byte(needle)) {
				h.dead.Store(true)
				http.Error(w, `{"error":{"code":400,"message":"the instance died"}}`, http.StatusBadRequest)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	h.t.Cleanup(srv.Close)
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// tap creates topic and returns what arrives on it.
func tap(t *testing.T, ps *pubsub.Client, project, topic string) func() []events.LessonEvent {
	t.Helper()
	ctx := t.Context()
	name := "projects/" + project + "/topics/" + topic
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name}); err != nil {
		t.Fatal(err)
	}
	sub := "tap-" + topic
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/" + sub, Topic: name,
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []events.LessonEvent
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ps.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
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

// waitFor waits, up to a deadline, for a message matching ok on a tap.
func (h *harness) waitFor(what string, on func() []events.LessonEvent, ok func(events.LessonEvent) bool) events.LessonEvent {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, ev := range on() {
			if ok(ev) {
				return ev
			}
		}
		select {
		case <-deadline:
			h.t.Fatalf("no %s within 20 s; got %+v", what, on())
			return events.LessonEvent{}
		case <-tick.C:
		}
	}
}

// sampleLesson finds a sample page with its product and module.
func (h *harness) sampleLesson(id string) (sample.Product, sample.Module, sample.Page) {
	h.t.Helper()
	for _, p := range h.cat.Products {
		for _, m := range p.Modules {
			for _, pg := range m.Pages {
				if pg.PageID == id {
					return p, m, pg
				}
			}
		}
	}
	h.t.Fatalf("no sample lesson %s", id)
	return sample.Product{}, sample.Module{}, sample.Page{}
}

// detectCourse records the Python course and its lessons as the detector
// does: the course with its Club subdomain, each lesson at version 1.
func (h *harness) detectCourse() {
	h.t.Helper()
	p, _, _ := h.sampleLesson("pyL1vars001")
	if err := h.store.SetCourse(h.t.Context(), lessonstate.Course{
		ID: courseID, Name: p.Name, School: p.School, ClubSubdomain: p.ClubSubdomain,
	}); err != nil {
		h.t.Fatal(err)
	}
	for _, m := range p.Modules {
		for _, pg := range m.Pages {
			if pg.Type == "CONTENT" {
				h.detect(pg.PageID, pg.Name)
			}
		}
	}
}

// detect records what detection saw of a lesson of the Python course, with
// its title; a new title bumps the version and, the video being the same,
// carries the finished media stages over and restarts from enrich.
func (h *harness) detect(id, title string) *events.LessonEvent {
	h.t.Helper()
	p, m, pg := h.sampleLesson(id)
	l := lessonstate.Lesson{
		CourseID: courseID, CourseName: p.Name, School: p.School,
		ModuleID: m.ModuleID, ModuleName: m.Name, ModuleOrder: m.Sequence, PageOrder: pg.PageOrder,
		Title: title, Type: pg.Type, HasMedia: true, MediaStatus: lessonstate.MediaReady,
		Media:       &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "video-" + id},
		Fingerprint: id + "|" + title,
	}
	_, ev, err := h.store.ApplyDetected(h.t.Context(), id, lessonstate.Observed{Lesson: l, RunID: "run-1"})
	if err != nil {
		h.t.Fatal(err)
	}
	return ev
}

// process does what the download stage and the process step's branches
// would for a lesson version: the transcript and analysis artifacts written
// as the transcriber and analyzer write them, and their records completed
// with the artifacts' URIs (which joins the process step). analysis nil
// records the analysis as skipped.
func (h *harness) process(id string, version int, tr artifact.Transcript, an *artifact.Analysis) {
	h.t.Helper()
	ctx := h.t.Context()
	complete := func(stage string, outputs map[string]string) {
		c, err := h.store.Claim(ctx, id, stage, version, time.Minute)
		if err != nil || c.Outcome != lessonstate.Claimed {
			h.t.Fatalf("claim %s: %v %v", stage, c.Outcome, err)
		}
		if outputs == nil {
			if err := h.store.Skip(ctx, id, stage, version, c.Token, "video analysis is switched off by configuration"); err != nil {
				h.t.Fatal(err)
			}
			return
		}
		if err := h.store.Complete(ctx, id, stage, version, c.Token, outputs); err != nil {
			h.t.Fatal(err)
		}
	}
	complete(lessonstate.StageDownload, map[string]string{"uri": "gs://raw/" + artifact.Prefix(id, version) + "source.mp4"})
	h.putJSON(artifact.Name(id, version, artifact.TranscriptFile), tr)
	complete(lessonstate.StageTranscribe, map[string]string{"uri": h.uri(id, version, artifact.TranscriptFile)})
	if an == nil {
		complete(lessonstate.StageAnalyze, nil)
		return
	}
	h.putJSON(artifact.Name(id, version, artifact.AnalysisFile), an)
	complete(lessonstate.StageAnalyze, map[string]string{"uri": h.uri(id, version, artifact.AnalysisFile)})
}

// processSample processes a sample lesson at version with the transcript
// and analysis made from its narration and slides.
func (h *harness) processSample(id string, version int) {
	h.t.Helper()
	_, _, pg := h.sampleLesson(id)
	tr := transcriptOf(id, version, pg.Narration)
	an := analysisOf(id, version, pg, tr.DurationSeconds)
	h.process(id, version, tr, &an)
}

func (h *harness) uri(id string, version int, file string) string {
	return "gs://" + artifacts + "/" + artifact.Name(id, version, file)
}

// transcriptOf lays narration out word by word, 0.4 s a word, one
// paragraph per sentence, as a transcript.json of the local engine.
func transcriptOf(id string, version int, narration string) artifact.Transcript {
	tr := artifact.Transcript{LessonID: id, Version: version, Language: "es-ES", Model: "chirp_3",
		Engine: "local engine", Text: strings.Join(strings.Fields(narration), " "), Confidence: 0.9,
		Words: []artifact.Word{}, Paragraphs: []artifact.Paragraph{}}
	first := 0
	for i, w := range strings.Fields(narration) {
		start := 0.5 + 0.4*float64(i)
		tr.Words = append(tr.Words, artifact.Word{Text: w, Start: start, End: start + 0.35, Confidence: 0.9})
		if strings.HasSuffix(w, ".") {
			var text []string
			for _, x := range tr.Words[first:] {
				text = append(text, x.Text)
			}
			tr.Paragraphs = append(tr.Paragraphs, artifact.Paragraph{
				Start: tr.Words[first].Start, End: start + 0.35, Text: strings.Join(text, " "), FirstWord: first, LastWord: i,
			})
			first = i + 1
		}
	}
	if n := len(tr.Words); n > 0 {
		tr.DurationSeconds = tr.Words[n-1].End + 1
	}
	return tr
}

// analysisOf is the analysis.json the analyzer would make of a sample
// lesson's slides: a slide element each, and a code element for its code.
func analysisOf(id string, version int, pg sample.Page, duration float64) artifact.Analysis {
	an := artifact.Analysis{LessonID: id, Version: version, Model: model, Engine: model + " (local engine)",
		Windows: []artifact.Window{{Start: 0, End: duration}}, Elements: []artifact.VisualElement{}}
	for i, s := range pg.Slides {
		end := duration
		if i+1 < len(pg.Slides) {
			end = pg.Slides[i+1].At
		}
		an.Elements = append(an.Elements, artifact.VisualElement{Kind: artifact.VisualSlide, Start: s.At, End: end, Title: s.Title, Text: s.Text})
		if s.Code != "" {
			an.Elements = append(an.Elements, artifact.VisualElement{Kind: artifact.VisualCode, Start: s.At, End: end,
				Title: s.Title, Code: strings.TrimRight(s.Code, "\n"), Language: "python"})
		}
	}
	return an
}

func (h *harness) putJSON(name string, v any) {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	w := h.storage.Bucket(artifacts).Object(name).NewWriter(h.t.Context())
	w.ChunkSize = 0
	if _, err := w.Write(b); err != nil {
		h.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		h.t.Fatal(err)
	}
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
	b, err := io.ReadAll(r)
	if err != nil {
		h.t.Fatal(err)
	}
	return b, true
}

func (h *harness) readJSON(name string, v any) {
	h.t.Helper()
	b, ok := h.object(name)
	if !ok {
		h.t.Fatalf("no %s in the artifacts bucket", name)
	}
	if err := json.Unmarshal(b, v); err != nil {
		h.t.Fatalf("%s: %v", name, err)
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
	return h.lesson(id).Stages[lessonstate.StageEnrich]
}

// event is the lesson-processed message the workflow sends after the join.
func event(id string, version int) events.LessonEvent {
	return events.LessonEvent{LessonID: id, Version: version, CourseID: courseID, RunID: "run-1"}
}

// paid counts the paid calls made so far: embedding requests and Gemini
// enrichment requests.
func (h *harness) paid(id string) (embeddings, answers int) {
	return h.ai.Counters().EmbeddingCalls, h.gemini.Count(gemini.Match{Lesson: id, Kind: gemini.Enrichment})
}
