package lessonstate

import (
	"maps"
	"reflect"
	"testing"

	"cloud.google.com/go/firestore"
)

// Detection writes only its own fields: what the later stages recorded (the
// media stages' outputs while the media is the same, the cost ledger, the
// live vector-store file) survives a rename, a new video and a removal.
func TestDetectionKeepsWhatLaterStagesWrote(t *testing.T) {
	s, client, _ := newStore(t)
	ctx := t.Context()
	create(t, s, "L1")
	for _, st := range []string{StageDownload, StepProcess, StageTranscribe, StageAnalyze, StageEnrich, StageSync} {
		runStage(t, s, "L1", st, 1)
	}
	usage := map[string]float64{"speech.chirp_3.seconds": 93, "gemini.input_tokens": 24000}
	if err := s.RecordUsage(ctx, "L1", usage); err != nil {
		t.Fatal(err)
	}
	live := VectorFile{StoreID: "vs_1", FileID: "file-1", Version: 1, School: "programming", SyncedAt: t0}
	// The sync stage writes its own field, as it will in production.
	if _, err := client.Collection(CollLessons).Doc("L1").Update(ctx, []firestore.Update{{Path: "vectorStore", Value: live}}); err != nil {
		t.Fatal(err)
	}
	later := func(step string) {
		t.Helper()
		l := mustLesson(t, s, "L1")
		if !reflect.DeepEqual(l.Usage, usage) {
			t.Fatalf("after %s: usage %v, want %v", step, l.Usage, usage)
		}
		if l.VectorStore == nil || *l.VectorStore != live {
			t.Fatalf("after %s: vector store %+v, want %+v", step, l.VectorStore, live)
		}
	}

	// A rename: v2 keeps the media stages' outputs, restarts from enrich.
	renamed := observed("Intro, renamed", "video-1")
	if _, ev, err := s.ApplyDetected(ctx, "L1", renamed); err != nil || ev == nil || ev.From != StageEnrich {
		t.Fatalf("rename: %+v, %v", ev, err)
	}
	later("rename")
	l := mustLesson(t, s, "L1")
	for _, st := range carriedStages {
		if rec := l.Stages[st]; rec.State != StateDone || rec.Version != 2 || !maps.Equal(rec.Outputs, map[string]string{"uri": st}) {
			t.Fatalf("after rename, %s: %+v", st, rec)
		}
	}
	for _, st := range []string{StageEnrich, StageSync} {
		if rec := l.Stages[st]; rec.State != StatePending || rec.Version != 2 || rec.Outputs != nil {
			t.Fatalf("after rename, %s: %+v", st, rec)
		}
	}

	// A new video: every stage restarts; the ledger and the live file stay
	// (the sync stage retires the old file only once the new one is live).
	if _, ev, err := s.ApplyDetected(ctx, "L1", observed("Intro, renamed", "video-2")); err != nil || ev == nil || ev.From != StageDownload {
		t.Fatalf("new video: %+v, %v", ev, err)
	}
	later("new video")

	// A removal marks the lesson; it erases nothing.
	if _, err := s.MarkRemoved(ctx, "L1", "run-9"); err != nil {
		t.Fatal(err)
	}
	later("removal")
	l = mustLesson(t, s, "L1")
	if !l.Removed || l.Title != "Intro, renamed" || l.Version != 3 || l.Stages[StageDownload].Version != 3 {
		t.Fatalf("after removal: %+v", l)
	}
	if !l.NextCheckAt.IsZero() {
		t.Fatalf("a removed lesson is still checked at %v", l.NextCheckAt)
	}
}
