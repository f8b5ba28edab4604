package lessonstate

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
)

// outboxOf returns lesson id's pending outbox entries, in order, as
// PendingOutbox reports them.
func outboxOf(t *testing.T, s *Store, id string) []Outbox {
	t.Helper()
	pending, err := s.PendingOutbox(t.Context())
	if err != nil {
		t.Fatalf("pending outboxes: %v", err)
	}
	for _, l := range pending {
		if l.ID == id {
			if !l.OutboxPending || len(l.Outbox) == 0 {
				t.Fatalf("pending lesson %s: outboxPending %v, %d entries", id, l.OutboxPending, len(l.Outbox))
			}
			return l.Outbox
		}
	}
	return nil
}

// outboxEvents decodes lesson id's outbox.
func outboxEvents(t *testing.T, s *Store, id string) []events.LessonEvent {
	t.Helper()
	var out []events.LessonEvent
	for _, o := range outboxOf(t, s, id) {
		e, err := o.Event()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func checkStages(t *testing.T, l Lesson, want map[string]Stage) {
	t.Helper()
	for st, w := range want {
		got := l.Stages[st]
		if got.State != w.State || got.Version != w.Version || (w.Error != "" && got.Error != w.Error) {
			t.Errorf("stage %s = %s v%d %q, want %s v%d %q", st, got.State, got.Version, got.Error, w.State, w.Version, w.Error)
		}
	}
}

func allStages(state string, version int) map[string]Stage {
	m := map[string]Stage{}
	for _, st := range records {
		m[st] = Stage{State: state, Version: version}
	}
	return m
}

func TestApplyDetectedLifecycle(t *testing.T) {
	s, client, _ := newStore(t)
	ctx := t.Context()
	apply := func(obs Observed, wantChange Change) *events.LessonEvent {
		t.Helper()
		ch, ev, err := s.ApplyDetected(ctx, "L1", obs)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if ch != wantChange {
			t.Fatalf("change %v, want %v", ch, wantChange)
		}
		return ev
	}

	// New: version 1, every stage pending, a lesson-discovered event queued.
	ev := apply(observed("Intro", "video-1"), NewLesson)
	want := events.LessonEvent{LessonID: "L1", Version: 1, CourseID: "c1", RunID: "run-1", From: StageDownload}
	if ev == nil || *ev != want {
		t.Fatalf("event %+v, want %+v", ev, want)
	}
	l := mustLesson(t, s, "L1")
	checkStages(t, l, allStages(StatePending, 1))
	if l.ID != "L1" || l.Version != 1 || l.Title != "Intro" || l.Media == nil || l.Media.Fingerprint != "video-1" || l.LastRunID != "run-1" {
		t.Fatalf("new lesson %+v", l)
	}
	if l.Outbox != nil || l.OutboxPending {
		t.Fatalf("Lesson filled the outbox: %+v", l.Outbox)
	}
	if ob := outboxOf(t, s, "L1"); len(ob) != 1 || ob[0].Topic != events.TopicLessonDiscovered {
		t.Fatalf("outbox %+v, want one %s entry", ob, events.TopicLessonDiscovered)
	}
	if got := outboxEvents(t, s, "L1"); got[0] != want {
		t.Fatalf("outbox event %+v, want %+v", got[0], want)
	}

	// Unchanged: no write at all, even from another run.
	before := updateTime(t, client, CollLessons, "L1")
	again := observed("Intro", "video-1")
	again.RunID = "run-2"
	if ev := apply(again, Unchanged); ev != nil {
		t.Fatalf("unchanged lesson produced event %+v", ev)
	}
	if after := updateTime(t, client, CollLessons, "L1"); !after.Equal(before) {
		t.Fatalf("unchanged lesson rewritten: update time %v -> %v", before, after)
	}

	// Title change with the media work finished: version 2, media stages
	// kept (moved to v2), enrich and sync redone, event from enrich.
	for _, st := range MediaStages {
		runStage(t, s, "L1", st, 1)
	}
	runStage(t, s, "L1", StageEnrich, 1)
	ev = apply(observed("Intro to Go", "video-1"), Changed)
	if ev == nil || ev.Version != 2 || ev.From != StageEnrich {
		t.Fatalf("title change event %+v, want v2 from enrich", ev)
	}
	l = mustLesson(t, s, "L1")
	checkStages(t, l, map[string]Stage{
		StageDownload: {State: StateDone, Version: 2}, StageTranscribe: {State: StateDone, Version: 2}, StageAnalyze: {State: StateDone, Version: 2},
		StageEnrich: {State: StatePending, Version: 2}, StageSync: {State: StatePending, Version: 2},
	})
	if l.Title != "Intro to Go" || l.Stages[StageDownload].Outputs["uri"] != StageDownload {
		t.Fatalf("after title change: title %q, download outputs %v", l.Title, l.Stages[StageDownload].Outputs)
	}
	if ob := outboxOf(t, s, "L1"); ob[len(ob)-1].Topic != events.TopicLessonProcessed {
		t.Fatalf("enrich event on topic %q, want %q", ob[len(ob)-1].Topic, events.TopicLessonProcessed)
	}
	if c, err := s.Claim(ctx, "L1", StageDownload, 2, time.Minute); err != nil || c.Outcome != AlreadyDone {
		t.Fatalf("download v2 after title change: %v, %v; want already-done", c.Outcome, err)
	}

	// New video: every stage pending at version 3, event from download.
	ev = apply(observed("Intro to Go", "video-2"), Changed)
	if ev == nil || ev.Version != 3 || ev.From != StageDownload {
		t.Fatalf("media change event %+v, want v3 from download", ev)
	}
	l = mustLesson(t, s, "L1")
	checkStages(t, l, allStages(StatePending, 3))
	if got := outboxEvents(t, s, "L1"); len(got) != 3 || got[0].Version != 1 || got[1].Version != 2 || got[2].Version != 3 {
		t.Fatalf("outbox holds %+v, want v1, v2, v3 in order (none published yet)", got)
	}

	// The video disappears from the media source: no event, every stage
	// skipped with the reason (nothing waits on the sweeper).
	awaiting := observed("Intro to Go", "")
	awaiting.Lesson.HasMedia, awaiting.Lesson.MediaStatus, awaiting.Lesson.Fingerprint = true, MediaAwaiting, "awaiting"
	if ev := apply(awaiting, Changed); ev != nil {
		t.Fatalf("awaiting media produced event %+v", ev)
	}
	l = mustLesson(t, s, "L1")
	reason := "media source has no file for this page yet"
	checkStages(t, l, map[string]Stage{
		StageDownload: {State: StateSkipped, Version: 4, Error: reason}, StageTranscribe: {State: StateSkipped, Version: 4, Error: reason},
		StageAnalyze: {State: StateSkipped, Version: 4, Error: reason}, StageEnrich: {State: StateSkipped, Version: 4, Error: reason},
		StageSync: {State: StateSkipped, Version: 4, Error: reason},
	})
	if !l.NextCheckAt.IsZero() {
		t.Fatalf("a lesson awaiting media is checked at %v", l.NextCheckAt)
	}
	if ob := outboxOf(t, s, "L1"); len(ob) != 3 || l.Media != nil {
		t.Fatalf("awaiting: outbox %d entries, media %+v", len(ob), l.Media)
	}

	// Removed: one removal event, then nothing.
	rm, err := s.MarkRemoved(ctx, "L1", "run-5")
	if err != nil {
		t.Fatal(err)
	}
	wantRm := events.LessonEvent{LessonID: "L1", Version: 4, CourseID: "c1", RunID: "run-5", Kind: events.KindRemoved, Reason: "page no longer in the course"}
	if rm == nil || *rm != wantRm {
		t.Fatalf("removal event %+v, want %+v", rm, wantRm)
	}
	l = mustLesson(t, s, "L1")
	ob := outboxOf(t, s, "L1")
	if !l.Removed || len(ob) != 4 || ob[len(ob)-1].Topic != events.TopicLessonEvents {
		t.Fatalf("after removal: removed %v, outbox %+v", l.Removed, ob)
	}
	before = updateTime(t, client, CollLessons, "L1")
	if rm, err := s.MarkRemoved(ctx, "L1", "run-6"); err != nil || rm != nil {
		t.Fatalf("second removal: %+v, %v; want nil, nil", rm, err)
	}
	if after := updateTime(t, client, CollLessons, "L1"); !after.Equal(before) {
		t.Fatal("second removal rewrote the lesson")
	}
	if ids, err := s.ActiveLessonIDs(ctx, "c1"); err != nil || len(ids) != 0 {
		t.Fatalf("active lessons after removal: %v, %v", ids, err)
	}

	// Back, with the same fingerprint it had: reappeared, new version.
	back := awaiting
	back.Lesson.MediaStatus, back.Lesson.Fingerprint = MediaReady, "back"
	back.Lesson.Media = &Media{Kind: "object", Ref: "gs://raw/ingest/x.mp4", Ext: "mp4", Fingerprint: "video-3"}
	ev = apply(back, Reappeared)
	if ev == nil || ev.Version != 5 || ev.From != StageDownload {
		t.Fatalf("reappeared event %+v, want v5 from download", ev)
	}
	if l = mustLesson(t, s, "L1"); l.Removed {
		t.Fatal("reappeared lesson still removed")
	}
	if ids, err := s.ActiveLessonIDs(ctx, "c1"); err != nil || !reflect.DeepEqual(ids, []string{"L1"}) {
		t.Fatalf("active lessons after reappearing: %v, %v", ids, err)
	}
	if _, err := s.MarkRemoved(ctx, "missing", "run-7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove a missing lesson: %v, want ErrNotFound", err)
	}
}

// A lesson whose media work did not finish cannot restart at enrich: a title
// change sends it through download again.
func TestApplyDetectedUnfinishedMediaRestartsAtDownload(t *testing.T) {
	s, _, _ := newStore(t)
	create(t, s, "L1")
	runStage(t, s, "L1", StageDownload, 1)
	if _, err := s.Claim(t.Context(), "L1", StageTranscribe, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	ch, ev, err := s.ApplyDetected(t.Context(), "L1", observed("Renamed", "video-1"))
	if err != nil || ch != Changed {
		t.Fatalf("apply: %v, %v", ch, err)
	}
	if ev == nil || ev.From != StageDownload || ev.Version != 2 {
		t.Fatalf("event %+v, want v2 from download", ev)
	}
	checkStages(t, mustLesson(t, s, "L1"), allStages(StatePending, 2))
}

func TestApplyDetectedNoMedia(t *testing.T) {
	s, _, _ := newStore(t)
	ch, ev, err := s.ApplyDetected(t.Context(), "Q1", observed("Quiz", ""))
	if err != nil || ch != NewLesson || ev != nil {
		t.Fatalf("apply: %v, %+v, %v; want new, no event", ch, ev, err)
	}
	l := mustLesson(t, s, "Q1")
	checkStages(t, l, map[string]Stage{
		StageDownload:   {State: StateSkipped, Version: 1, Error: "page has no media"},
		StageTranscribe: {State: StateSkipped, Version: 1, Error: "page has no media"},
		StageAnalyze:    {State: StateSkipped, Version: 1, Error: "page has no media"},
		StageEnrich:     {State: StateSkipped, Version: 1, Error: "page has no media"},
		StageSync:       {State: StateSkipped, Version: 1, Error: "page has no media"},
	})
	if ob := outboxOf(t, s, "Q1"); len(ob) != 0 {
		t.Fatalf("no-media lesson has an outbox: %+v", ob)
	}
	if _, _, err := s.ApplyDetected(t.Context(), "../x", observed("Bad", "")); err == nil {
		t.Fatal("ApplyDetected accepted an id that is not a page id")
	}
}

func TestOutboxRoundTrip(t *testing.T) {
	s, client, _ := newStore(t)
	ctx := t.Context()
	create(t, s, "A")
	create(t, s, "B")
	if _, _, err := s.ApplyDetected(ctx, "C", observed("Text page", "")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApplyDetected(ctx, "B", observed("B renamed", "video-9")); err != nil {
		t.Fatal(err)
	}
	pending, err := s.PendingOutbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].ID != "A" || pending[1].ID != "B" || len(pending[1].Outbox) != 2 {
		t.Fatalf("pending outboxes: %+v", pending)
	}
	if pending[1].Version != 2 || pending[1].Title != "B renamed" {
		t.Fatalf("pending lesson B not read: %+v", pending[1])
	}
	for _, o := range pending[0].Outbox {
		var e events.LessonEvent
		if err := json.Unmarshal(o.Data, &e); err != nil || e.LessonID != "A" {
			t.Fatalf("outbox data %s: %v", o.Data, err)
		}
	}
	outboxA := pending[0].Outbox
	if err := s.AckOutbox(ctx, "A", outboxA); err != nil {
		t.Fatal(err)
	}
	// B: only its first event was published; the second stays queued.
	if err := s.AckOutbox(ctx, "B", pending[1].Outbox[:1]); err != nil {
		t.Fatal(err)
	}
	pending, err = s.PendingOutbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != "B" || len(pending[0].Outbox) != 1 {
		t.Fatalf("pending after ack: %+v", pending)
	}
	if e, _ := pending[0].Outbox[0].Event(); e.Version != 2 {
		t.Fatalf("left in B's outbox: %+v, want the v2 event", e)
	}
	if err := s.AckOutbox(ctx, "B", pending[0].Outbox); err != nil {
		t.Fatal(err)
	}
	if pending, err = s.PendingOutbox(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("pending after acking everything: %+v, %v", pending, err)
	}
	// Acknowledging again (a retry after a lost reply) is harmless.
	if err := s.AckOutbox(ctx, "A", outboxA); err != nil {
		t.Fatalf("second ack: %v", err)
	}
	for _, id := range []string{"A", "B", "C"} {
		docs, err := client.Collection(CollLessons).Doc(id).Collection(CollOutbox).Documents(ctx).GetAll()
		if err != nil || len(docs) != 0 {
			t.Fatalf("outbox documents of %s after ack: %d, %v", id, len(docs), err)
		}
	}
}

func TestLessonsOrderedAndRoundTrip(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	put := func(id, course string, module, page int) {
		o := observed(id, "v-"+id)
		o.Lesson.CourseID, o.Lesson.ModuleOrder, o.Lesson.PageOrder = course, module, page
		if _, _, err := s.ApplyDetected(ctx, id, o); err != nil {
			t.Fatal(err)
		}
	}
	put("p4", "c2", 1, 1)
	put("p3", "c1", 2, 1)
	put("p2", "c1", 1, 2)
	put("p1", "c1", 1, 1)
	ls, err := s.Lessons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	if !reflect.DeepEqual(ids, []string{"p1", "p2", "p3", "p4"}) {
		t.Fatalf("lessons in order %v", ids)
	}
	// Every field survives Firestore: zero times stay zero, absent maps nil.
	got := ls[0]
	want := observed("p1", "v-p1").Lesson
	want.ID, want.Version, want.LastRunID, want.UpdatedAt = "p1", 1, "run-1", t0
	want.Stages = allStages(StatePending, 1)
	// Download waits to be taken: the sweeper looks after the pending wait.
	want.NextCheckAt = t0.Add(DefaultPendingAfter)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if ids, err := s.ActiveLessonIDs(ctx, "c1"); err != nil || !reflect.DeepEqual(ids, []string{"p1", "p2", "p3"}) {
		t.Fatalf("active lessons of c1: %v, %v", ids, err)
	}
	if _, err := s.Lesson(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing lesson: %v, want ErrNotFound", err)
	}
}
