package vectorsync_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	localopenai "github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// The school's document is written by its first sync, not by every one: a
// second lesson synced within the minute reads the recorded store and
// leaves the stats as they were, so a course's lessons syncing together do
// not all write the one document of their school.
func TestSyncWritesTheSchoolOnlyWhenDue(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.synced(t, e.ready(t, "py1", "Variables en Python"))
	first, _, err := e.store.School(ctx, school)
	if err != nil || first.Stats == nil {
		t.Fatalf("school after the first sync = %+v, %v", first, err)
	}
	e.synced(t, e.ready(t, "py2", "Condicionales en Python"))
	second, _, err := e.store.School(ctx, school)
	if err != nil {
		t.Fatal(err)
	}
	if second.VectorStoreID != first.VectorStoreID || second.Stats == nil || !second.Stats.At.Equal(first.Stats.At) {
		t.Errorf("school after a second sync within the minute = %+v, want it unwritten (%+v)", second, first)
	}
	if f := e.onlyLive(t, "py2", 1); f.StoreID != first.VectorStoreID {
		t.Errorf("second lesson went to store %s, want the school's %s", f.StoreID, first.VectorStoreID)
	}
}

// A new lesson of a new school: the school's store is made and recorded,
// the knowledge document is uploaded under its lesson-<id>-v<n>.md name,
// attached with its attributes and the chunking derived from the chunk
// options, indexed, recorded as live, and announced as synced.
func TestSyncNewLesson(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	ev := e.ready(t, "py1", "Variables en Python")
	e.synced(t, ev)

	f := e.onlyLive(t, "py1", 1)
	want := map[string]any{
		"school": school, "course": "c1", "module": "m1", "lesson": "py1", "version": float64(1),
		"level": "básico", "categories": "python,variables", "title": "Variables en Python",
	}
	for k, v := range want {
		if f.Attributes[k] != v {
			t.Errorf("attribute %s = %#v, want %#v", k, f.Attributes[k], v)
		}
	}
	if len(f.Attributes) != len(want) {
		t.Errorf("attributes = %v", f.Attributes)
	}
	if len(f.Chunks) == 0 || !strings.Contains(f.Chunks[0], "## [00:00:00–00:01:06]") {
		t.Errorf("indexed chunks = %q", f.Chunks)
	}

	sc, ok, err := e.store.School(ctx, school)
	if err != nil || !ok || sc.VectorStoreID != f.StoreID || sc.StoreCreation != nil {
		t.Fatalf("school = %+v, %v, %v; want store %s", sc, ok, err, f.StoreID)
	}
	if sc.Stats == nil || sc.Stats.Completed != 1 || sc.Stats.UsageBytes <= 0 {
		t.Errorf("school stats = %+v", sc.Stats)
	}
	if ids := e.ai.StoreIDs(); len(ids) != 1 || ids[0] != f.StoreID {
		t.Errorf("stores = %v", ids)
	}

	l := e.lesson(t, "py1")
	rec := l.Stages[lessonstate.StageSync]
	if rec.Outputs[vectorsync.OutFileID] != f.FileID || rec.Outputs[vectorsync.OutStoreID] != f.StoreID ||
		rec.Outputs[vectorsync.OutUsageBytes] == "" || rec.Outputs[vectorsync.OutUsageBytes] == "0" {
		t.Errorf("stage outputs = %v", rec.Outputs)
	}
	waitFor(t, "the synced announcement", func() bool { return e.announcedKinds("py1")[events.KindSynced] == 1 })
	got := e.announced()[0]
	if got.Version != 1 || got.RunID != "run-1" || got.CourseID != "c1" {
		t.Errorf("announcement = %+v", got)
	}
	// The relay acknowledged the announcement (the detection event the test
	// never published is still there).
	pending, err := e.store.PendingOutbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range pending {
		for _, o := range l.Outbox {
			if o.Topic == events.TopicLessonEvents {
				t.Errorf("announcement left in the outbox: %s", o.Data)
			}
		}
	}
}

// The static chunking sent is what chunk.StoreChunking derives from the
// chunk options: the configuration's, unless the enrich stage recorded the
// options it cut this version with.
func TestSyncAttachesWithTheChunkOptionsKnowledgeWasCutWith(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.synced(t, e.ready(t, "py1", "Variables en Python"))
	if got := e.chunking(t, e.onlyLive(t, "py1", 1)); got != [2]int64{840, 420} {
		t.Errorf("default options: chunking %v", got)
	}

	ev := e.ready(t, "py2", "Funciones en Python")
	claim, err := e.store.Claim(t.Context(), "py2", lessonstate.StageEnrich, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Complete(t.Context(), "py2", lessonstate.StageEnrich, 1, claim.Token, map[string]string{
		vectorsync.OutChunkMaxTokens: "200", vectorsync.OutChunkOverlapTokens: "40"}); err != nil {
		t.Fatal(err)
	}
	e.synced(t, ev)
	maxTokens, overlap := chunk.StoreChunking(chunk.Options{MaxTokens: 200, OverlapTokens: 40})
	if got := e.chunking(t, e.onlyLive(t, "py2", 1)); got != [2]int64{int64(maxTokens), int64(overlap)} {
		t.Errorf("the enrich stage's options: chunking %v, want %d/%d", got, maxTokens, overlap)
	}
}

// A new version replaces the old one only once it is indexed: while v2 is
// in_progress, v1 is still live in the store and in Files, and the lesson's
// record still names it.
func TestNewVersionReplacesTheOldOnlyAfterCompleted(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.synced(t, e.ready(t, "py1", "Variables en Python"))
	v1 := e.onlyLive(t, "py1", 1)

	ev2 := e.ready(t, "py1", "Variables y tipos en Python")
	e.ai.PauseIndexing()
	done := make(chan error, 1)
	go func() { done <- e.stage.Sync(ctx, ev2) }()
	waitFor(t, "v2 attached", func() bool { return len(e.live("py1")) == 2 })

	live := e.live("py1")
	if live[0].FileID != v1.FileID || live[0].Status != "completed" || live[1].Status != "in_progress" ||
		live[1].Attributes[vectorsync.AttrVersion] != float64(2) {
		t.Fatalf("while v2 indexes: %+v", live)
	}
	if up := e.uploaded("py1"); len(up) != 2 {
		t.Fatalf("while v2 indexes, files: %+v", up)
	}
	if vf := e.lesson(t, "py1").VectorStore; vf == nil || vf.FileID != v1.FileID || vf.Version != 1 {
		t.Fatalf("while v2 indexes, record: %+v", vf)
	}
	select {
	case err := <-done:
		t.Fatalf("sync ended while its file was in_progress: %v", err)
	default:
	}

	e.ai.ResumeIndexing()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	v2 := e.onlyLive(t, "py1", 2)
	if v2.FileID == v1.FileID {
		t.Fatal("v2 is v1's file")
	}
	for _, f := range e.ai.Files() {
		if f.ID == v1.FileID {
			t.Fatalf("v1's file %s is still in Files", v1.FileID)
		}
	}
	if c := e.ai.Counters(); c.Uploads != 2 || c.Attaches != 2 || c.FileDeletes != 1 {
		t.Errorf("counters = %+v", c)
	}
}

// A file OpenAI fails to index fails the stage for good with OpenAI's
// last_error; the failed file is retired and v1 stays live.
func TestFailedIndexingFailsTheStageAndKeepsTheOldVersion(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.synced(t, e.ready(t, "py1", "Variables en Python"))
	v1 := e.onlyLive(t, "py1", 1)

	ev2 := e.ready(t, "py1", "Variables y tipos en Python")
	e.ai.FailIndexing(vectorsync.FileName("py1", 2), "invalid_file", "The file could not be parsed (injected).")
	if err := e.stage.Sync(t.Context(), ev2); err != nil {
		t.Fatalf("a permanent failure is acknowledged, got %v", err)
	}
	rec := e.lesson(t, "py1").Stages[lessonstate.StageSync]
	if rec.State != lessonstate.StateFailed || rec.Version != 2 ||
		!strings.Contains(rec.Error, "invalid_file: The file could not be parsed (injected).") {
		t.Fatalf("stage = %+v", rec)
	}
	if live := e.onlyLive(t, "py1", 1); live.FileID != v1.FileID {
		t.Fatalf("live = %+v, want v1 %s", live, v1.FileID)
	}
	waitFor(t, "the failure announcement", func() bool { return e.announcedKinds("py1")[events.KindFailed] == 1 })

	// A redelivery of the failed version changes nothing.
	if err := e.stage.Sync(t.Context(), ev2); err != nil {
		t.Fatal(err)
	}
	if c := e.ai.Counters(); c.Uploads != 2 {
		t.Errorf("uploads = %d after a redelivery of a failed version", c.Uploads)
	}
}

// Indexing that outlasts the deadline is retryable: the next attempt
// waits on the same attachment, uploading and attaching nothing.
func TestIndexingDeadlineIsRetriedOnTheSameAttachment(t *testing.T) {
	e := newEnv(t, envOptions{indexTimeout: 300 * time.Millisecond})
	ev := e.ready(t, "py1", "Variables en Python")
	e.ai.PauseIndexing()
	err := e.stage.Sync(t.Context(), ev)
	if err == nil || !strings.Contains(err.Error(), "still indexing") {
		t.Fatalf("sync = %v, want a retryable deadline error", err)
	}
	if rec := e.lesson(t, "py1").Stages[lessonstate.StageSync]; rec.State != lessonstate.StatePending || rec.Outputs[vectorsync.OutAttached] != "true" {
		t.Fatalf("stage = %+v", rec)
	}
	e.ai.ResumeIndexing()
	e.synced(t, ev)
	e.onlyLive(t, "py1", 1)
	if c := e.ai.Counters(); c.Uploads != 1 || c.Attaches != 1 {
		t.Errorf("counters = %+v", c)
	}
}

// A crash after the upload — before its id was noted, or after — followed
// by the redelivery that comes once the lease ended, ends with one live
// file: the one uploaded before the crash.
func TestCrashAfterUploadBeforeAttach(t *testing.T) {
	for _, point := range []string{vectorsync.PointUploaded, vectorsync.PointNoted} {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			ev := e.ready(t, "py1", "Variables en Python")
			crashOnce(t, e, ev, point)
			up := e.uploaded("py1")
			if len(up) != 1 || len(e.live("py1")) != 0 {
				t.Fatalf("after the crash: files %+v, attached %+v", up, e.live("py1"))
			}

			redeliverAfterLease(t, e, ev)
			if f := e.onlyLive(t, "py1", 1); f.FileID != up[0].ID {
				t.Fatalf("live %s, want the upload made before the crash %s", f.FileID, up[0].ID)
			}
			if c := e.ai.Counters(); c.Uploads != 1 || c.Attaches != 1 {
				t.Errorf("counters = %+v", c)
			}
		})
	}
}

// An attach OpenAI keeps refusing, past the SDK's retries, fails the attempt
// retryably; the redelivery attaches the file uploaded before, uploading
// nothing again.
func TestAttachRefusedIsRetriedWithTheSameUpload(t *testing.T) {
	e := newEnv(t, envOptions{})
	ev := e.ready(t, "py1", "Variables en Python")
	vectorsync.OnPoint(e.stage, func(point string) bool {
		if point == vectorsync.PointNoted {
			// The SDK tries three times (two retries).
			e.ai.InjectFault(localopenai.Fault{Status: 503, PathPrefix: "/vector_stores/", Count: 3, RetryAfter: time.Millisecond})
		}
		return false
	})
	err := e.stage.Sync(t.Context(), ev)
	vectorsync.OnPoint(e.stage, nil)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("sync = %v, want the refused attach", err)
	}
	if rec := e.lesson(t, "py1").Stages[lessonstate.StageSync]; rec.State != lessonstate.StatePending || rec.Outputs[vectorsync.OutFileID] == "" {
		t.Fatalf("stage = %+v", rec)
	}
	e.synced(t, ev)
	e.onlyLive(t, "py1", 1)
	if c := e.ai.Counters(); c.Uploads != 1 || c.Attaches != 1 || c.Faults != 3 {
		t.Errorf("counters = %+v", c)
	}
}

// A crash after the attach and before the Firestore write — before the
// attach was noted, once indexed, or after the old version was retired —
// followed by the redelivery, ends with one live file for v2, and v1 gone
// from the store and from Files; nothing is uploaded or attached again.
func TestCrashAfterAttachBeforeFirestoreWrite(t *testing.T) {
	for _, point := range []string{vectorsync.PointAttached, vectorsync.PointIndexed, vectorsync.PointRetired} {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.synced(t, e.ready(t, "py1", "Variables en Python"))
			v1 := e.onlyLive(t, "py1", 1)
			ev2 := e.ready(t, "py1", "Variables y tipos en Python")
			crashOnce(t, e, ev2, point)
			if vf := e.lesson(t, "py1").VectorStore; vf == nil || vf.FileID != v1.FileID {
				t.Fatalf("after the crash the record moved: %+v", vf)
			}

			redeliverAfterLease(t, e, ev2)
			e.onlyLive(t, "py1", 2)
			for _, f := range e.ai.Files() {
				if f.ID == v1.FileID {
					t.Fatal("v1 is still in Files")
				}
			}
			if c := e.ai.Counters(); c.Uploads != 2 || c.Attaches != 2 {
				t.Errorf("counters = %+v", c)
			}
			waitFor(t, "one synced announcement per version", func() bool { return e.announcedKinds("py1")[events.KindSynced] == 2 })
		})
	}
}

// An upload whose answer is lost on the way back is repeated by the SDK,
// which makes a second file of the same name: the attempt retires it, and
// one file is left.
func TestLostUploadAnswerLeavesOneFile(t *testing.T) {
	e := newEnv(t, envOptions{})
	ev := e.ready(t, "py1", "Variables en Python")
	vectorsync.OnPoint(e.stage, func(point string) bool {
		if point == vectorsync.PointUpload {
			e.ai.InjectFault(localopenai.Fault{Status: 502, PathPrefix: "/files", AfterServing: true})
		}
		return false
	})
	e.synced(t, ev)
	vectorsync.OnPoint(e.stage, nil)
	e.onlyLive(t, "py1", 1)
	if c := e.ai.Counters(); c.Uploads != 2 || c.FileDeletes != 1 {
		t.Errorf("counters = %+v, want the lost upload's twin deleted", c)
	}
}

// The same event three times at once, then once more: one delivery does the
// work, the others find it busy and then done; one upload, one attach, one
// announcement.
func TestSameEventThreeTimes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ev := e.ready(t, "py1", "Variables en Python")
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() { errs <- e.stage.Sync(t.Context(), ev) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.synced(t, ev)
	e.onlyLive(t, "py1", 1)
	if c := e.ai.Counters(); c.Uploads != 1 || c.Attaches != 1 {
		t.Errorf("counters = %+v", c)
	}
	waitFor(t, "the synced announcement", func() bool { return e.announcedKinds("py1")[events.KindSynced] == 1 })
	if rec := e.lesson(t, "py1").Stages[lessonstate.StageSync]; rec.Attempts != 1 {
		t.Errorf("attempts = %d", rec.Attempts)
	}
}

// Two lessons of a new school synced at once make one store.
func TestTwoLessonsOfANewSchoolMakeOneStore(t *testing.T) {
	e := newEnv(t, envOptions{})
	evs := []events.LessonEvent{e.ready(t, "py1", "Variables en Python"), e.ready(t, "py2", "Funciones en Python")}
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for _, ev := range evs {
		wg.Go(func() { errs <- e.stage.Sync(t.Context(), ev) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ids := e.ai.StoreIDs(); len(ids) != 1 {
		t.Fatalf("stores = %v", ids)
	}
	a, b := e.onlyLive(t, "py1", 1), e.onlyLive(t, "py2", 1)
	if a.StoreID != b.StoreID {
		t.Errorf("stores %s and %s", a.StoreID, b.StoreID)
	}
}

// A course's worth of lessons of a new school synced at once: one makes the
// store while the others wait for its record without contending for the
// school's document, and every lesson syncs on the first attempt.
func TestACrowdOfLessonsOfANewSchoolSyncAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	var evs []events.LessonEvent
	for i := range 30 {
		evs = append(evs, e.ready(t, fmt.Sprintf("crowd%02d", i), fmt.Sprintf("Lección %d de Python", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for _, ev := range evs {
		wg.Go(func() { errs <- e.stage.Sync(t.Context(), ev) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if ids := e.ai.StoreIDs(); len(ids) != 1 {
		t.Fatalf("stores = %v, want one", ids)
	}
	for _, ev := range evs {
		e.onlyLive(t, ev.LessonID, 1)
	}
}

// A store made by a creator that died before recording it is found by its
// metadata and used, not made twice.
func TestAStoreMadeButNotRecordedIsFound(t *testing.T) {
	e := newEnv(t, envOptions{})
	ev := e.ready(t, "py1", "Variables en Python")
	// Holding the creation lease, the earlier creator made the store and
	// died; its lease has ended.
	if _, err := e.store.ClaimStoreCreation(t.Context(), school, time.Minute); err != nil {
		t.Fatal(err)
	}
	client, err := vectorsync.NewOpenAI(vectorsync.OpenAIConfig{APIKey: "local", BaseURL: e.base, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := client.CreateStore(t.Context(), "coursekb-"+school, map[string]string{vectorsync.MetaSchool: school})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Minute)
	e.synced(t, ev)
	if f := e.onlyLive(t, "py1", 1); f.StoreID != vs.ID {
		t.Fatalf("live in %s, want the earlier store %s", f.StoreID, vs.ID)
	}
	if n := len(e.ai.StoreIDs()); n != 1 {
		t.Errorf("%d stores", n)
	}
}

// A removed lesson's files are retired and its record cleared; the same
// removal again changes nothing.
func TestRemovalRetiresTheLessonsFiles(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.synced(t, e.ready(t, "py1", "Variables en Python"))
	e.synced(t, e.ready(t, "py2", "Funciones en Python"))
	other := e.onlyLive(t, "py2", 1)
	removal, err := e.store.MarkRemoved(ctx, "py1", "run-2")
	if err != nil || removal == nil {
		t.Fatalf("mark removed: %v, %v", removal, err)
	}
	for i := range 2 {
		if err := e.stage.Handle(ctx, *removal); err != nil {
			t.Fatalf("removal %d: %v", i+1, err)
		}
		if live, up := e.live("py1"), e.uploaded("py1"); len(live) != 0 || len(up) != 0 {
			t.Fatalf("removal %d: attached %+v, files %+v", i+1, live, up)
		}
		if vf := e.lesson(t, "py1").VectorStore; vf != nil {
			t.Fatalf("removal %d: record %+v", i+1, vf)
		}
	}
	if f := e.onlyLive(t, "py2", 1); f.FileID != other.FileID {
		t.Error("the other lesson's file changed")
	}
	if c := e.ai.Counters(); c.FileDeletes != 1 {
		t.Errorf("counters = %+v", c)
	}
}

// A removal that arrives after the lesson came back retires nothing; the
// lesson's new sync replaces its old file.
func TestRemovalOfALessonThatCameBack(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.synced(t, e.ready(t, "py1", "Variables en Python"))
	removal, err := e.store.MarkRemoved(ctx, "py1", "run-2")
	if err != nil || removal == nil {
		t.Fatal(err)
	}
	ev2 := e.ready(t, "py1", "Variables en Python") // back, at v2
	if err := e.stage.Handle(ctx, *removal); err != nil {
		t.Fatal(err)
	}
	e.onlyLive(t, "py1", 1)
	e.synced(t, ev2)
	e.onlyLive(t, "py1", 2)
}

// A lesson removed while its sync runs: the sync does not record its file
// but retires it, and the stage is skipped.
func TestLessonRemovedDuringItsSync(t *testing.T) {
	e := newEnv(t, envOptions{})
	ev := e.ready(t, "py1", "Variables en Python")
	vectorsync.OnPoint(e.stage, func(point string) bool {
		if point == vectorsync.PointRetired {
			if _, err := e.store.MarkRemoved(t.Context(), "py1", "run-2"); err != nil {
				t.Error(err)
			}
		}
		return false
	})
	if err := e.stage.Sync(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	vectorsync.OnPoint(e.stage, nil)
	if live, up := e.live("py1"), e.uploaded("py1"); len(live) != 0 || len(up) != 0 {
		t.Fatalf("attached %+v, files %+v", live, up)
	}
	l := e.lesson(t, "py1")
	if rec := l.Stages[lessonstate.StageSync]; rec.State != lessonstate.StateSkipped || l.VectorStore != nil {
		t.Fatalf("stage %+v, record %+v", rec, l.VectorStore)
	}
}

// crashOnce runs one attempt that dies at point.
func crashOnce(t *testing.T, e *env, ev events.LessonEvent, point string) {
	t.Helper()
	vectorsync.OnPoint(e.stage, func(p string) bool { return p == point })
	err := e.stage.Sync(t.Context(), ev)
	vectorsync.OnPoint(e.stage, nil)
	if !errors.Is(err, vectorsync.ErrCrashed) {
		t.Fatalf("attempt = %v, want a crash at %s", err, point)
	}
}

// redeliverAfterLease delivers ev again: at once the stage is busy (the
// dead owner's lease is live), and once the lease ended it is taken over.
func redeliverAfterLease(t *testing.T, e *env, ev events.LessonEvent) {
	t.Helper()
	if err := e.stage.Sync(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if rec := e.lesson(t, ev.LessonID).Stages[lessonstate.StageSync]; rec.State != lessonstate.StateRunning {
		t.Fatalf("a redelivery within the lease changed the stage: %+v", rec)
	}
	e.clock.Add(2 * lease)
	e.synced(t, ev)
}
