package enricher

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/gemini"
	localopenai "github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/enrich"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/setup"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

func messagePublished(t *testing.T, id string, data []byte) event.Event {
	t.Helper()
	ce := event.New()
	ce.SetID(id)
	ce.SetType(events.TypePubSubPublished)
	ce.SetSource("//pubsub.googleapis.com/projects/p/topics/" + events.TopicLessonProcessed)
	body := map[string]any{"message": map[string]any{"data": data, "messageId": id}}
	if err := ce.SetData("application/json", body); err != nil {
		t.Fatal(err)
	}
	return ce
}

// The function as deployed, built from its environment against the
// emulators, the local Cloud Storage, the local OpenAI and the local
// Gemini: a lesson-processed message enriches the lesson; input that can
// never succeed is acknowledged with nothing done.
func TestEnricherFromItsEnvironment(t *testing.T) {
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("enricher")

	srv, err := gcs.Start(gcs.Options{Buckets: []string{"artifacts"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Host())
	ai := localopenai.NewServer(localopenai.Options{Logger: slog.New(slog.DiscardHandler)})
	aiURL, stopAI, err := ai.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stopAI() })
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	gem := gemini.NewServer(cat, gemini.Options{Logger: slog.New(slog.DiscardHandler)})
	gemURL, stopGem, err := gem.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stopGem() })

	var cfg enrich.Config
	if err := config.LoadFrom(&cfg, map[string]string{
		"GOOGLE_CLOUD_PROJECT": project, "ARTIFACTS_BUCKET": "artifacts",
		"OPENAI_API_KEY": "local", "OPENAI_BASE_URL": aiURL,
		"GEMINI_BASE_URL": gemURL, "GEMINI_LOCATION": "us-central1", "GEMINI_API_ATTEMPTS": "1",
	}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	env, err := setup.New(ctx, "enricher-test", cfg.Common, setup.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	for _, topic := range []string{events.TopicLessonEnriched, events.TopicLessonEvents} {
		if _, err := env.PubSub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + topic}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := FromEnv(ctx, env, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// A lesson whose process step finished: its transcript written as the
	// transcriber writes it, its analysis skipped.
	const id = "mkL1pers005"
	if _, _, err := env.Store.ApplyDetected(ctx, id, lessonstate.Observed{RunID: "r1", Lesson: lessonstate.Lesson{
		CourseID: "4100002", CourseName: "Marketing digital para creadores", School: "marketing", ModuleID: "mkM1aud001",
		ModuleName: "Audiencia", ModuleOrder: 1, PageOrder: 1, Title: "El buyer persona", Type: "CONTENT", HasMedia: true,
		MediaStatus: lessonstate.MediaReady, Media: &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "v"},
		Fingerprint: id,
	}}); err != nil {
		t.Fatal(err)
	}
	text := "Un buyer persona es un retrato semificticio de tu cliente ideal. Incluye sus objetivos, sus problemas y dónde busca información."
	tr := artifact.Transcript{LessonID: id, Version: 1, Text: text}
	for i, w := range []string{"Un", "buyer", "persona", "es", "un", "retrato", "semificticio", "de", "tu", "cliente", "ideal.",
		"Incluye", "sus", "objetivos,", "sus", "problemas", "y", "dónde", "busca", "información."} {
		tr.Words = append(tr.Words, artifact.Word{Text: w, Start: float64(i) * 0.4, End: float64(i)*0.4 + 0.3})
	}
	b, _ := json.Marshal(tr)
	w := env.Storage.Bucket("artifacts").Object(artifact.Name(id, 1, artifact.TranscriptFile)).NewWriter(ctx)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{lessonstate.StageTranscribe, lessonstate.StageAnalyze} {
		c, err := env.Store.Claim(ctx, id, st, 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if st == lessonstate.StageAnalyze {
			err = env.Store.Skip(ctx, id, st, 1, c.Token, "switched off")
		} else {
			err = env.Store.Complete(ctx, id, st, 1, c.Token, map[string]string{"uri": "gs://artifacts/" + artifact.Name(id, 1, artifact.TranscriptFile)})
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	processed, _ := json.Marshal(events.LessonEvent{LessonID: id, Version: 1, CourseID: "4100002"})
	if err := h.Handle(ctx, messagePublished(t, "m1", processed)); err != nil {
		t.Fatal(err)
	}
	l, err := env.Store.Lesson(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rec := l.Stages[lessonstate.StageEnrich]
	if rec.State != lessonstate.StateDone || rec.Outputs[enrich.OutCategories] == "" || rec.Outputs[enrich.OutCategories][:len("marketing-audiencia")] != "marketing-audiencia" {
		t.Fatalf("enrich record: %+v", rec)
	}

	// Never processable: acknowledged, nothing done.
	calls := ai.Counters().EmbeddingCalls
	for i, bad := range [][]byte{[]byte("not json"), []byte(`{"lessonId":"../x","version":1}`), []byte(`{"lessonId":"L1"}`)} {
		if err := h.Handle(ctx, messagePublished(t, "bad", bad)); err != nil {
			t.Errorf("bad input %d: %v", i, err)
		}
	}
	if ai.Counters().EmbeddingCalls != calls {
		t.Error("bad input made embedding calls")
	}
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	if _, err := New(nil, nil); err == nil {
		t.Fatal("New accepted nil dependencies")
	}
}
