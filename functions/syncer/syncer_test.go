package syncer

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	localopenai "github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

func messagePublished(t *testing.T, id, topic string, data []byte, attrs map[string]string) event.Event {
	t.Helper()
	ce := event.New()
	ce.SetID(id)
	ce.SetType(events.TypePubSubPublished)
	ce.SetSource("//pubsub.googleapis.com/projects/p/topics/" + topic)
	body := map[string]any{"message": map[string]any{"data": data, "attributes": attrs, "messageId": id}}
	if err := ce.SetData("application/json", body); err != nil {
		t.Fatal(err)
	}
	return ce
}

// The function as deployed, built from its environment against the
// emulators, the local Cloud Storage server and the local OpenAI server: a
// lesson-enriched message syncs the lesson, a removed lesson event retires
// it, and input that can never succeed is acknowledged with nothing done.
func TestSyncerFromItsEnvironment(t *testing.T) {
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("syncer")

	srv, err := gcs.Start(gcs.Options{Buckets: []string{"artifacts"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Host())
	ai := localopenai.NewServer(localopenai.Options{Logger: slog.New(slog.DiscardHandler)})
	base, stop, err := ai.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })

	var cfg vectorsync.Config
	if err := config.LoadFrom(&cfg, map[string]string{
		"GOOGLE_CLOUD_PROJECT": project, "ARTIFACTS_BUCKET": "artifacts",
		"OPENAI_API_KEY": "local", "OPENAI_BASE_URL": base, "SYNC_INDEX_TIMEOUT": "10s",
	}); err != nil {
		t.Fatal(err)
	}
	env, err := setup.New(ctx, "syncer-test", cfg.Common, setup.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	if _, err := env.PubSub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + events.TopicLessonEvents}); err != nil {
		t.Fatal(err)
	}
	h, err := FromEnv(ctx, env, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// A lesson the enrich stage finished.
	if _, _, err := env.Store.ApplyDetected(ctx, "L1", lessonstate.Observed{RunID: "r1", Lesson: lessonstate.Lesson{
		CourseID: "c1", School: "programacion", ModuleID: "m1", Title: "Variables", Type: "CONTENT", HasMedia: true,
		MediaStatus: lessonstate.MediaReady, Media: &lessonstate.Media{Kind: "url", Ref: "L1", Ext: "mp4", Fingerprint: "v"},
		Fingerprint: "L1",
	}}); err != nil {
		t.Fatal(err)
	}
	put := func(name string, b []byte) {
		w := env.Storage.Bucket("artifacts").Object(name).NewWriter(ctx)
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	en, _ := json.Marshal(artifact.Enrichment{LessonID: "L1", Version: 1, Level: artifact.LevelBasic})
	put(artifact.Name("L1", 1, artifact.EnrichmentFile), en)
	put(artifact.Name("L1", 1, artifact.KnowledgeFile), []byte("# Variables\n\n## [00:00:00–00:01:00]\n\nUna variable guarda un valor.\n"))

	enriched, _ := json.Marshal(events.LessonEvent{LessonID: "L1", Version: 1, CourseID: "c1"})
	if err := h.Handle(ctx, messagePublished(t, "m1", events.TopicLessonEnriched, enriched, map[string]string{"lessonId": "L1", "version": "1"})); err != nil {
		t.Fatal(err)
	}
	l, err := env.Store.Lesson(ctx, "L1")
	if err != nil {
		t.Fatal(err)
	}
	if rec := l.Stages[lessonstate.StageSync]; rec.State != lessonstate.StateDone || l.VectorStore == nil {
		t.Fatalf("after lesson-enriched: stage %+v, live %+v", rec, l.VectorStore)
	}

	// Not for this function (a subscription without its filter would
	// deliver them): acknowledged, nothing retired.
	synced, _ := json.Marshal(events.LessonEvent{LessonID: "L1", Version: 1, Kind: events.KindSynced})
	if err := h.Handle(ctx, messagePublished(t, "m2", events.TopicLessonEvents, synced, nil)); err != nil {
		t.Fatal(err)
	}
	// Never processable: acknowledged.
	for i, bad := range [][]byte{[]byte("not json"), []byte(`{"lessonId":"../x","version":1}`), []byte(`{"lessonId":"L1"}`)} {
		if err := h.Handle(ctx, messagePublished(t, "bad", events.TopicLessonEnriched, bad, nil)); err != nil {
			t.Errorf("bad input %d: %v", i, err)
		}
	}
	if n := len(ai.LiveFiles()[l.VectorStore.StoreID]); n != 1 {
		t.Fatalf("%d files live after the ignored events", n)
	}

	removal, err := env.Store.MarkRemoved(ctx, "L1", "r2")
	if err != nil || removal == nil {
		t.Fatalf("mark removed: %v %v", removal, err)
	}
	removed, _ := json.Marshal(removal)
	if err := h.Handle(ctx, messagePublished(t, "m3", events.TopicLessonEvents, removed, removal.Attributes())); err != nil {
		t.Fatal(err)
	}
	if n := len(ai.LiveFiles()[l.VectorStore.StoreID]); n != 0 || len(ai.Files()) != 0 {
		t.Fatalf("after the removal: %d attached, files %+v", n, ai.Files())
	}
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	if _, err := New(nil, nil); err == nil {
		t.Fatal("New accepted nil dependencies")
	}
}
