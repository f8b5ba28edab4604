package detect

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// ids lists the lesson ids of messages, sorted.
func ids(ms []message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Event.LessonID)
	}
	slices.Sort(out)
	return out
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestFirstRunThenNothingChanged(t *testing.T) {
	t.Parallel()
	f := newFixture()

	r := f.run(t, 0)
	if !r.Complete || r.Cursor != "" || len(r.Errors) > 0 {
		t.Fatalf("first run: complete=%v cursor=%q errors=%v", r.Complete, r.Cursor, r.Errors)
	}
	want := lessonstate.Counts{New: 5, AwaitingMedia: 1, NoMedia: 1}
	if r.Counts != want {
		t.Errorf("first run counts = %+v, want %+v", r.Counts, want)
	}
	checkIDs(t, "awaiting media", r.AwaitingMedia, []string{"pyTypes"})
	msgs := f.pub.take()
	checkIDs(t, "first run events", ids(msgs), []string{"mkFunnel", "pyIf", "pyVars"})
	for _, m := range msgs {
		if m.Topic != events.TopicLessonDiscovered || m.Attrs[events.AttrLessonID] != m.Event.LessonID || m.Attrs[events.AttrVersion] != "1" {
			t.Errorf("message %+v: want lesson-discovered with lessonId and version 1 attributes", m)
		}
	}
	if n := f.store.pendingCount(); n != 0 {
		t.Errorf("%d outbox entries left after publishing", n)
	}

	// What the store holds describes the page.
	l := f.store.lesson(t, "pyIf")
	if l.CourseID != "4100001" || l.CourseName != "Python desde cero" || l.School != "programacion" ||
		l.ModuleID != "pyM2" || l.ModuleName != "Control de flujo" || l.ModuleOrder != 2 || l.PageOrder != 1 ||
		l.Title != "Condicionales" || l.Type != "CONTENT" || !l.HasMedia || l.MediaStatus != lessonstate.MediaReady ||
		l.Media == nil || l.Media.Fingerprint != "fp-if" || l.Fingerprint != Fingerprint(l) {
		t.Errorf("stored lesson pyIf = %+v", l)
	}
	if q := f.store.lesson(t, "pyQuiz"); q.MediaStatus != lessonstate.MediaNone || q.Media != nil {
		t.Errorf("quiz: media status %q media %v, want none", q.MediaStatus, q.Media)
	}
	if aw := f.store.lesson(t, "pyTypes"); aw.MediaStatus != lessonstate.MediaAwaiting {
		t.Errorf("pyTypes media status %q, want awaiting", aw.MediaStatus)
	}
	if _, ok := f.store.lessons["pyDraft"]; ok {
		t.Error("an unpublished page was stored")
	}
	c, ok := f.store.courses["4100001"]
	if !ok || c.ClubSubdomain != "python-desde-cero" || c.School != "programacion" || c.Fingerprint == "" || c.LastRunID != "run-1" {
		t.Errorf("course 4100001 = %+v", c)
	}
	for _, id := range []string{"999", "4100003"} {
		if _, ok := f.store.courses[id]; ok {
			t.Errorf("course %s (not in catalog, or inactive) was walked", id)
		}
	}

	// A second run over the same structure writes only its run record.
	writes := f.store.writes
	r = f.run(t, 0)
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("second run published %v", ids(msgs))
	}
	if f.store.writes != writes {
		t.Errorf("second run wrote %d lesson/course documents, want 0", f.store.writes-writes)
	}
	want = lessonstate.Counts{Unchanged: 5, AwaitingMedia: 1, NoMedia: 1}
	if r.Counts != want || !r.Complete || len(r.Errors) > 0 {
		t.Errorf("second run: counts %+v complete %v errors %v; want counts %+v", r.Counts, r.Complete, r.Errors, want)
	}
	if got := f.store.runs[len(f.store.runs)-1]; got.ID != "run-2" || got.FinishedAt.IsZero() || got.StartedAt.IsZero() {
		t.Errorf("saved run = %+v", got)
	}
}

func TestChangesBetweenRuns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(f *fixture)
		counts lessonstate.Counts
		topic  string
		events []string
		// pyCourse: whether Python's course fingerprint must change.
		pyCourse bool
	}{
		{
			name: "renamed page and new page",
			change: func(f *fixture) {
				f.hotmart.setPage(pyID, "pyM1", hotmart.Page{ID: "pyVars", Name: "Variables (2026)", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
				f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyLoops", Name: "Bucles", Type: "CONTENT", PageOrder: 2, Published: true, HasMedia: true})
				f.media.media["pyLoops"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-loops"}
			},
			counts:   lessonstate.Counts{New: 1, Changed: 1, Unchanged: 4, AwaitingMedia: 1, NoMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyLoops", "pyVars"},
			pyCourse: true,
		},
		{
			name:     "removed page",
			change:   func(f *fixture) { f.hotmart.deletePage(pyID, "pyM2", "pyIf") },
			counts:   lessonstate.Counts{Removed: 1, Unchanged: 4, AwaitingMedia: 1, NoMedia: 1},
			topic:    events.TopicLessonEvents,
			events:   []string{"pyIf"},
			pyCourse: true,
		},
		{
			name: "unpublished page",
			change: func(f *fixture) {
				f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos", Type: "CONTENT", PageOrder: 1, Published: false, HasMedia: true})
			},
			counts:   lessonstate.Counts{Removed: 1, Unchanged: 4, AwaitingMedia: 1, NoMedia: 1},
			topic:    events.TopicLessonEvents,
			events:   []string{"mkFunnel"},
			pyCourse: false,
		},
		{
			name: "media arrives",
			change: func(f *fixture) {
				f.media.media["pyTypes"] = &lessonstate.Media{Kind: "object", Ref: "gs://raw/ingest/types.mp4", Ext: "mp4", Fingerprint: "fp-types"}
			},
			counts:   lessonstate.Counts{Changed: 1, Unchanged: 4, NoMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyTypes"},
			pyCourse: true,
		},
		{
			name: "new video",
			change: func(f *fixture) {
				f.media.media["pyIf"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-if-v2"}
			},
			counts:   lessonstate.Counts{Changed: 1, Unchanged: 4, AwaitingMedia: 1, NoMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyIf"},
			pyCourse: true,
		},
		{
			name: "media re-resolved, same video",
			change: func(f *fixture) {
				f.media.media["pyIf"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-if"}
			},
			counts:   lessonstate.Counts{Unchanged: 5, AwaitingMedia: 1, NoMedia: 1},
			pyCourse: false,
		},
		{
			name: "modules reordered",
			change: func(f *fixture) {
				f.hotmart.modules["python-desde-cero"] = []hotmart.Module{
					{ID: "pyM2", Name: "Control de flujo", Sequence: 1},
					{ID: "pyM1", Name: "Fundamentos", Sequence: 2},
				}
			},
			counts:   lessonstate.Counts{Changed: 4, Unchanged: 1, AwaitingMedia: 1, NoMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyIf", "pyVars"}, // the quiz and the awaiting lesson change without an event
			pyCourse: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.run(t, 0)
			f.pub.take()
			courseBefore := f.store.courses["4100001"].Fingerprint

			tt.change(f)
			r := f.run(t, 0)
			if !r.Complete || len(r.Errors) > 0 {
				t.Fatalf("run: complete=%v errors=%v", r.Complete, r.Errors)
			}
			if r.Counts != tt.counts {
				t.Errorf("counts = %+v, want %+v", r.Counts, tt.counts)
			}
			msgs := f.pub.take()
			checkIDs(t, "events", ids(msgs), tt.events)
			for _, m := range msgs {
				if m.Topic != tt.topic {
					t.Errorf("event for %s on %s, want %s", m.Event.LessonID, m.Topic, tt.topic)
				}
				if tt.topic == events.TopicLessonEvents && (m.Event.Kind != events.KindRemoved || m.Attrs[events.AttrKind] != events.KindRemoved) {
					t.Errorf("removal message %+v lacks kind removed", m)
				}
			}
			if n := f.store.pendingCount(); n != 0 {
				t.Errorf("%d outbox entries left", n)
			}
			if changed := f.store.courses["4100001"].Fingerprint != courseBefore; changed != tt.pyCourse {
				t.Errorf("Python course fingerprint changed = %v, want %v", changed, tt.pyCourse)
			}
		})
	}
}

func TestRemovedPageReappears(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.run(t, 0)
	f.pub.take()
	f.hotmart.deletePage(pyID, "pyM2", "pyIf")
	f.run(t, 0)
	f.pub.take()
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyIf", Name: "Condicionales", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	r := f.run(t, 0)
	msgs := f.pub.take()
	checkIDs(t, "events", ids(msgs), []string{"pyIf"})
	if r.Counts.New != 1 || msgs[0].Event.Version != 2 || msgs[0].Topic != events.TopicLessonDiscovered {
		t.Errorf("reappeared lesson: counts %+v message %+v", r.Counts, msgs[0])
	}
}

func TestFailingProduct(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fail func(f *fixture)
	}{
		{"modules", func(f *fixture) {
			f.hotmart.modulesErr = map[string]error{"python-desde-cero": errors.New("hotmart: 503 Service Unavailable")}
		}},
		{"pages of a later module", func(f *fixture) {
			f.hotmart.pagesErr = map[string]error{pagesKey(pyID, "pyM2"): errors.New("hotmart: 503 Service Unavailable")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.run(t, 0)
			f.pub.take()

			tt.fail(f)
			// The other course changes meanwhile, and is processed.
			f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos de venta", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
			r := f.run(t, 0)
			if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "4100001") || !strings.Contains(r.Errors[0], "503") {
				t.Errorf("errors = %q, want one naming course 4100001 and the Hotmart error", r.Errors)
			}
			if !r.Complete {
				t.Error("a failing product made the sweep incomplete")
			}
			checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel"})
			if r.Counts.Removed != 0 {
				t.Errorf("removed %d lessons of the failing course", r.Counts.Removed)
			}
			for _, id := range []string{"pyVars", "pyTypes", "pyQuiz", "pyIf"} {
				if f.store.lesson(t, id).Removed {
					t.Errorf("lesson %s of the failing course was removed", id)
				}
			}
		})
	}
}

func TestMediaSourceFailureKeepsLesson(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.run(t, 0)
	f.pub.take()
	course := f.store.courses["4100001"]
	f.media.err = map[string]error{"pyIf": errors.New("manifest unreadable")}
	r := f.run(t, 0)
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "pyIf") {
		t.Errorf("errors = %q, want one naming pyIf", r.Errors)
	}
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("published %v", ids(msgs))
	}
	if l := f.store.lesson(t, "pyIf"); l.Removed || l.Version != 1 {
		t.Errorf("pyIf = removed %v version %d, want kept at version 1", l.Removed, l.Version)
	}
	if f.store.courses["4100001"] != course {
		t.Error("course document rewritten from a partial walk")
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	f := newFixture()
	// Product order: 4100001 (Python), 4100002 (Marketing), 4100003 (paused).
	// Each Modules call takes a minute; the budget is 30 s, so the first run
	// walks Python (a run always walks its first product) and stops.
	f.hotmart.perModules = time.Minute
	r := f.run(t, 30*time.Second)
	if r.Complete || r.Cursor != "4100002" {
		t.Fatalf("first run: complete=%v cursor=%q, want incomplete at 4100002", r.Complete, r.Cursor)
	}
	checkIDs(t, "first run events", ids(f.pub.take()), []string{"pyIf", "pyVars"})
	if _, ok := f.store.courses["4100002"]; ok {
		t.Error("marketing walked beyond the budget")
	}

	// Meanwhile Python loses a page: only a complete walk of Python would
	// notice, and the next run resumes at Marketing.
	f.hotmart.deletePage(pyID, "pyM1", "pyVars")
	r = f.run(t, 30*time.Second)
	if !r.Complete || r.Cursor != "" || len(r.Errors) > 0 {
		t.Fatalf("second run: complete=%v cursor=%q errors=%v", r.Complete, r.Cursor, r.Errors)
	}
	checkIDs(t, "second run events", ids(f.pub.take()), []string{"mkFunnel"})
	if f.store.lesson(t, "pyVars").Removed {
		t.Error("second run walked Python again")
	}

	// The next sweep starts over.
	r = f.run(t, 0)
	if !r.Complete || r.Counts.Removed != 1 {
		t.Errorf("third run: complete=%v counts %+v", r.Complete, r.Counts)
	}
	checkIDs(t, "third run events", ids(f.pub.take()), []string{"pyVars"})
}

func TestBudgetAbandonsProductBetweenModules(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.hotmart.modules["marketing-digital"] = append(f.hotmart.modules["marketing-digital"], hotmart.Module{ID: "mkM2", Name: "Anuncios", Sequence: 2})
	f.hotmart.pages[pagesKey(mkID, "mkM2")] = []hotmart.Page{{ID: "mkAds", Name: "Anuncios", Type: "CONTENT", PageOrder: 1, Published: true}}
	f.run(t, 0)
	f.pub.take()

	// Each Pages call takes 40 s and the budget is 100 s: Python's two
	// modules take 80 s, Marketing starts in budget and is abandoned after
	// its first module. Its second module's lesson must not be removed.
	f.hotmart.perPages = 40 * time.Second
	f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos de venta", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	f.hotmart.setPage(mkID, "mkM2", hotmart.Page{ID: "mkAds", Name: "Anuncios pagados", Type: "CONTENT", PageOrder: 1, Published: true})
	courseBefore := f.store.courses["4100002"]
	r := f.run(t, 100*time.Second)
	if r.Complete || r.Cursor != "4100002" || len(r.Errors) > 0 {
		t.Fatalf("run: complete=%v cursor=%q errors=%v, want incomplete at 4100002", r.Complete, r.Cursor, r.Errors)
	}
	checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel"})
	if r.Counts.Removed != 0 || f.store.lesson(t, "mkAds").Removed {
		t.Error("a lesson of the abandoned course was removed")
	}
	if f.store.courses["4100002"] != courseBefore {
		t.Error("abandoned course's document rewritten")
	}

	// The next run walks Marketing again, whole.
	r = f.run(t, 0)
	if !r.Complete || r.Counts.Changed != 1 || r.Counts.Unchanged != 1 {
		t.Errorf("resumed run: complete=%v counts %+v", r.Complete, r.Counts)
	}
	if l := f.store.lesson(t, "mkAds"); l.Title != "Anuncios pagados" {
		t.Errorf("mkAds title %q", l.Title)
	}
	if f.store.courses["4100002"].Fingerprint == courseBefore.Fingerprint {
		t.Error("course fingerprint did not follow its lessons")
	}
}

func TestVanishedCourseRemovedAtEndOfSweep(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.run(t, 0)
	f.pub.take()

	// Python leaves the catalog; an incomplete run does not remove it.
	delete(f.catalog, pyID)
	f.hotmart.perModules = time.Minute
	f.catalog[4000000] = CatalogEntry{Subdomain: "first", School: "x"}
	f.hotmart.products = append(f.hotmart.products, hotmart.Product{ID: 4000000, Name: "First", Status: "ACTIVE"})
	r := f.run(t, time.Second)
	if r.Complete || r.Counts.Removed != 0 {
		t.Fatalf("incomplete run: complete=%v counts %+v", r.Complete, r.Counts)
	}
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("incomplete run published %v", ids(msgs))
	}

	r = f.run(t, 0)
	if !r.Complete || r.Counts.Removed != 4 {
		t.Fatalf("completing run: complete=%v counts %+v errors %v", r.Complete, r.Counts, r.Errors)
	}
	msgs := f.pub.take()
	checkIDs(t, "removals", ids(msgs), []string{"pyIf", "pyQuiz", "pyTypes", "pyVars"})
	for _, m := range msgs {
		if m.Topic != events.TopicLessonEvents || m.Event.Kind != events.KindRemoved {
			t.Errorf("message %+v, want a removal on lesson-events", m)
		}
	}
	if f.store.lesson(t, "mkFunnel").Removed {
		t.Error("a course still in the catalog lost its lessons")
	}
}

func TestEmptyProductListRemovesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.run(t, 0)
	f.pub.take()
	f.hotmart.products = nil
	r := f.run(t, 0)
	if r.Counts.Removed != 0 || len(f.pub.take()) > 0 {
		t.Errorf("an empty product list removed %d lessons", r.Counts.Removed)
	}
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "refusing") {
		t.Errorf("errors = %q, want the refusal", r.Errors)
	}
}

func TestProductListFails(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.hotmart.perModules = time.Minute
	f.run(t, time.Second) // incomplete: cursor 4100002
	f.pub.take()

	f.hotmart.productsErr = errors.New("hotmart: 401 unauthorized")
	r, err := f.tryRun(0)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Run error = %v, want the product list's", err)
	}
	saved := f.store.runs[len(f.store.runs)-1]
	if saved.ID != r.ID || len(saved.Errors) != 1 || saved.Complete || saved.Cursor != "4100002" || saved.FinishedAt.IsZero() {
		t.Errorf("saved run = %+v, want the error and the cursor kept", saved)
	}

	f.hotmart.productsErr = nil
	r = f.run(t, 0)
	if !r.Complete {
		t.Error("run after the failure did not complete")
	}
	checkIDs(t, "resumed events", ids(f.pub.take()), []string{"mkFunnel"})
}

func TestOutboxFlushedAfterPublishFailure(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.pub.failing = true
	r := f.run(t, 0)
	if len(r.Errors) != 3 || !strings.Contains(r.Errors[0], "left in the outbox") {
		t.Errorf("errors = %q, want three publish failures", r.Errors)
	}
	if r.Counts.New != 5 {
		t.Errorf("counts = %+v", r.Counts)
	}
	if n := f.store.pendingCount(); n != 3 {
		t.Fatalf("%d outbox entries pending, want 3", n)
	}

	// Meanwhile a page goes away: the flush comes first, so its discovery
	// goes out before its removal.
	f.pub.failing = false
	f.hotmart.deletePage(pyID, "pyM2", "pyIf")
	r = f.run(t, 0)
	if len(r.Errors) > 0 {
		t.Errorf("errors = %q", r.Errors)
	}
	msgs := f.pub.take()
	checkIDs(t, "flushed events", ids(msgs), []string{"mkFunnel", "pyIf", "pyIf", "pyVars"})
	var pyIf []string
	for _, m := range msgs {
		if m.Event.LessonID == "pyIf" {
			pyIf = append(pyIf, m.Topic)
		}
	}
	checkIDs(t, "pyIf topics in order", pyIf, []string{events.TopicLessonDiscovered, events.TopicLessonEvents})
	if n := f.store.pendingCount(); n != 0 {
		t.Errorf("%d outbox entries left", n)
	}

	// Nothing is published twice.
	f.run(t, 0)
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("third run published %v", ids(msgs))
	}
}

func TestStoreFailureOnOneLesson(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.store.applyErr = map[string]error{"pyIf": errors.New("firestore: deadline exceeded")}
	r := f.run(t, 0)
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "pyIf") {
		t.Errorf("errors = %q", r.Errors)
	}
	checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel", "pyVars"})
	if _, ok := f.store.courses["4100001"]; ok {
		t.Error("course saved although one of its lessons was not recorded")
	}
	f.store.applyErr = nil
	f.run(t, 0)
	checkIDs(t, "retry events", ids(f.pub.take()), []string{"pyIf"})
	if _, ok := f.store.courses["4100001"]; !ok {
		t.Error("course not saved once every lesson was recorded")
	}
}

func TestCancelledRunSavesItsPlace(t *testing.T) {
	t.Parallel()
	f := newFixture()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.hotmart.onPages = cancel // the function's deadline strikes during Python's walk
	d, err := New(f.hotmart, f.media, f.store, f.pub, f.catalog, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.now = f.clock.now
	r, err := d.Run(ctx, RunOptions{RunID: "cancelled"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	saved := f.store.runs[len(f.store.runs)-1]
	if r.Complete || r.Cursor != "4100001" || saved.ID != "cancelled" || saved.Cursor != "4100001" || saved.FinishedAt.IsZero() {
		t.Errorf("run = %+v, saved %+v; want incomplete at 4100001", r, saved)
	}
	if r.Counts.Removed != 0 {
		t.Errorf("removed %d lessons", r.Counts.Removed)
	}
}
