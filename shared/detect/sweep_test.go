package detect

// The sweep over the product list: time budgets and resuming, vanished
// courses, a product list that fails or comes back incomplete, the outbox
// carried from run to run.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/hotmart"
)

func TestBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Product order: 4100001 (Python), 4100002 (Marketing), 4100003 (paused).
	// Each Modules call takes a minute; the budget is 30 s, so the first run
	// walks Python (a run always walks its first product) and stops.
	f.hotmart.perModules = time.Minute
	r := f.run(t, 30*time.Second)
	if r.Outcome != OutcomeBudget || r.Complete || r.Cursor != "4100002" {
		t.Fatalf("first run: outcome %q cursor %q, want budget at 4100002", r.Outcome, r.Cursor)
	}
	checkIDs(t, "first run events", ids(f.pub.take()), []string{"pyIf", "pyVars"})
	if _, ok := f.store.course(t, "4100002"); ok {
		t.Error("marketing walked beyond the budget")
	}

	// Meanwhile Python loses a page: only a complete walk of Python would
	// notice, and the next run resumes at Marketing.
	f.hotmart.deletePage(pyID, "pyM1", "pyVars")
	r = f.run(t, 30*time.Second)
	if r.Outcome != OutcomeComplete || r.Cursor != "" || len(r.Errors) > 0 {
		t.Fatalf("second run: outcome %q cursor %q errors %v", r.Outcome, r.Cursor, r.Errors)
	}
	checkIDs(t, "second run events", ids(f.pub.take()), []string{"mkFunnel"})
	if f.store.lesson(t, "pyVars").Removed {
		t.Error("second run walked Python again")
	}

	// The next sweep starts over.
	r = f.run(t, 0)
	if r.Outcome != OutcomeComplete || r.Counts.Removed != 1 {
		t.Errorf("third run: outcome %q counts %+v", r.Outcome, r.Counts)
	}
	checkIDs(t, "third run events", ids(f.pub.take()), []string{"pyVars"})
}

func TestBudgetAbandonsProductBetweenModules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.hotmart.modules["marketing-digital"] = append(f.hotmart.modules["marketing-digital"], hotmart.Module{ID: "mkM2", Name: "Anuncios", Sequence: 2})
	f.hotmart.pages[pagesKey(mkID, "mkM2")] = []hotmart.Page{{ID: "mkAds", Name: "Anuncios", Type: "CONTENT", PageOrder: 1, Published: true}}
	f.run(t, 0)
	f.pub.take()

	// Each Pages call takes 40 s and the budget is 100 s: Python's two
	// modules take 80 s, Marketing starts in budget and is abandoned after
	// its first module. Nothing of it is recorded: its walk did not end.
	f.hotmart.perPages = 40 * time.Second
	f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos de venta", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	f.hotmart.setPage(mkID, "mkM2", hotmart.Page{ID: "mkAds", Name: "Anuncios pagados", Type: "CONTENT", PageOrder: 1, Published: true})
	before, _ := f.store.course(t, "4100002")
	r := f.run(t, 100*time.Second)
	if r.Outcome != OutcomeBudget || r.Cursor != "4100002" || len(r.Errors) > 0 {
		t.Fatalf("run: outcome %q cursor %q errors %v, want budget at 4100002", r.Outcome, r.Cursor, r.Errors)
	}
	if mk := courseRun(t, r, "4100002"); mk.Outcome != CourseAbandoned {
		t.Errorf("Marketing = %+v, want abandoned", mk)
	}
	if msgs := f.pub.take(); len(msgs) > 0 || r.Counts.Removed != 0 {
		t.Errorf("the abandoned course published %v, removed %d", ids(msgs), r.Counts.Removed)
	}
	if after, _ := f.store.course(t, "4100002"); after != before {
		t.Error("abandoned course's document rewritten")
	}

	// The next run walks Marketing again, whole.
	r = f.run(t, 0)
	if r.Outcome != OutcomeComplete || r.Counts.Changed != 2 {
		t.Errorf("resumed run: outcome %q counts %+v", r.Outcome, r.Counts)
	}
	if l := f.store.lesson(t, "mkAds"); l.Title != "Anuncios pagados" {
		t.Errorf("mkAds title %q", l.Title)
	}
	if after, _ := f.store.course(t, "4100002"); after.Fingerprint == before.Fingerprint || after.Fingerprint == "" {
		t.Error("course fingerprint did not follow its lessons")
	}
}

func TestVanishedCourseRemovedAtEndOfSweep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.idPage = 2 // Python's three lessons take two pages of ids
	f.run(t, 0)
	f.pub.take()

	// Python leaves the catalog; an incomplete sweep does not remove it.
	delete(f.catalog, pyID)
	f.hotmart.perModules = time.Minute
	f.catalog[4000000] = CatalogEntry{Subdomain: "first", School: "x"}
	f.hotmart.products = append(f.hotmart.products, hotmart.Product{ID: 4000000, Name: "First", Status: "ACTIVE"})
	r := f.run(t, time.Second)
	if r.Outcome != OutcomeBudget || r.Counts.Removed != 0 {
		t.Fatalf("incomplete run: outcome %q counts %+v", r.Outcome, r.Counts)
	}
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("incomplete run published %v", ids(msgs))
	}

	f.store.take()
	r = f.run(t, 0)
	if r.Outcome != OutcomeComplete || r.Counts.Removed != 3 {
		t.Fatalf("completing run: outcome %q counts %+v errors %v", r.Outcome, r.Counts, r.Errors)
	}
	if py := courseRun(t, r, "4100001"); py.Outcome != CourseVanished || py.Lessons != 3 {
		t.Errorf("Python = %+v, want vanished with 3 lessons removed", py)
	}
	msgs := f.pub.take()
	checkIDs(t, "removals", ids(msgs), []string{"pyIf", "pyTypes", "pyVars"})
	for _, m := range msgs {
		if m.Topic != events.TopicLessonEvents || m.Event.Kind != events.KindRemoved {
			t.Errorf("message %+v, want a removal on lesson-events", m)
		}
	}
	if f.store.lesson(t, "mkFunnel").Removed {
		t.Error("a course still in the catalog lost its lessons")
	}
	if c, _ := f.store.course(t, "4100001"); !c.Removed {
		t.Errorf("vanished course document = %+v, want removed", c)
	}

	// Found from ids alone: two pages of ids, no lesson document loaded.
	if n := f.store.take()["ActiveLessonIDPage"]; n != 2 {
		t.Errorf("%d id pages read for Python, want 2", n)
	}
	// A later sweep passes the removed course by.
	f.run(t, 0)
	if n := f.store.take()["ActiveLessonIDPage"]; n != 0 {
		t.Errorf("a later sweep listed lessons again (%d pages)", n)
	}
}

func TestEmptyProductListRemovesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()
	f.hotmart.products = nil
	r := f.run(t, 0)
	if r.Counts.Removed != 0 || len(f.pub.take()) > 0 {
		t.Errorf("an empty product list removed %d lessons", r.Counts.Removed)
	}
	if r.Outcome != OutcomePartial || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "refusing") {
		t.Errorf("outcome %q errors = %q, want partial with the refusal", r.Outcome, r.Errors)
	}
}

func TestProductListFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		transient bool
	}{
		{"Hotmart unavailable", failure.Retryablef("hotmart: list products: HTTP 503 (5 attempts)"), true},
		{"credentials refused", failure.Permanentf("hotmart: fetch access token: HTTP 401 unauthorized"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.hotmart.perModules = time.Minute
			f.run(t, time.Second) // stops at the budget: cursor 4100002
			f.pub.take()

			f.hotmart.productsErr = tt.err
			r := f.run(t, 0)
			if r.Outcome != OutcomeFailed || r.Transient != tt.transient || r.Complete {
				t.Errorf("outcome %q transient %v, want failed, transient %v", r.Outcome, r.Transient, tt.transient)
			}
			saved, err := f.store.Run(t.Context(), r.ID)
			if err != nil || len(saved.Errors) != 1 || !strings.Contains(saved.Errors[0], tt.err.Error()) || saved.Cursor != "4100002" || saved.FinishedAt.IsZero() {
				t.Errorf("saved run = %+v (%v), want the error once and the cursor kept", saved, err)
			}

			f.hotmart.productsErr = nil
			if r = f.run(t, 0); r.Outcome != OutcomeComplete {
				t.Errorf("run after the failure: outcome %q", r.Outcome)
			}
			checkIDs(t, "resumed events", ids(f.pub.take()), []string{"mkFunnel"})
		})
	}
}

// A product list that failed after some pages (a looping cursor) is walked
// as far as it was read, and no course is removed for missing from it.
func TestIncompleteProductListWalksWhatWasRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()

	f.hotmart.products = f.hotmart.products[:1] // Marketing only
	f.hotmart.loopErr = failure.Permanentf("hotmart: list products (page 3): next_page_token \"x\" repeats an earlier page")
	f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos de venta", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	r := f.run(t, 0)
	checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel"})
	if r.Outcome != OutcomePartial || r.Transient || r.Counts.Removed != 0 || r.Counts.Changed != 1 {
		t.Errorf("outcome %q transient %v counts %+v, want partial, Marketing recorded, nothing removed", r.Outcome, r.Transient, r.Counts)
	}
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "repeats") {
		t.Errorf("errors %q, want the looping cursor once", r.Errors)
	}
	if f.store.lesson(t, "pyIf").Removed {
		t.Error("a course missing from an incomplete list was removed")
	}
}

func TestOutboxFlushedAfterPublishFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pub.failing = true
	r := f.run(t, 0)
	if r.Outcome != OutcomePartial || len(r.Errors) != 3 || !strings.Contains(r.Errors[0], "left in the outbox") {
		t.Errorf("outcome %q errors = %q, want partial with three publish failures", r.Outcome, r.Errors)
	}
	if r.Counts.New != 4 {
		t.Errorf("counts = %+v", r.Counts)
	}
	if n := f.store.pendingCount(t); n != 3 {
		t.Fatalf("%d outbox entries pending, want 3", n)
	}

	// Meanwhile a page goes away: the flush comes first, so its discovery
	// goes out before its removal.
	f.pub.failing = false
	f.hotmart.deletePage(pyID, "pyM2", "pyIf")
	r = f.run(t, 0)
	if len(r.Errors) > 0 || r.Outcome != OutcomeComplete {
		t.Errorf("outcome %q errors = %q", r.Outcome, r.Errors)
	}
	msgs := f.pub.take()
	checkIDs(t, "flushed events", ids(msgs), []string{"mkFunnel", "pyIf", "pyIf", "pyVars"})
	var pyIf []string
	for _, m := range msgs {
		if m.Event.LessonID == "pyIf" {
			pyIf = append(pyIf, m.Topic)
		}
	}
	if !slices.Equal(pyIf, []string{events.TopicLessonDiscovered, events.TopicLessonEvents}) {
		t.Errorf("pyIf topics in order = %v", pyIf)
	}
	if n := f.store.pendingCount(t); n != 0 {
		t.Errorf("%d outbox entries left", n)
	}

	// Nothing is published twice.
	f.run(t, 0)
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("third run published %v", ids(msgs))
	}
}

func TestCancelledRunSavesItsPlace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f.hotmart.onPages = cancel // the function's deadline strikes during Python's walk
	r, err := f.runCtx(ctx, 0)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	saved, err := f.store.Run(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != OutcomeBudget || r.Cursor != "4100001" || saved.Cursor != "4100001" || saved.FinishedAt.IsZero() {
		t.Errorf("run = %+v, saved %+v; want stopped at 4100001", r, saved)
	}
	if r.Counts.Removed != 0 || r.Counts.New != 0 {
		t.Errorf("counts %+v, want nothing recorded", r.Counts)
	}
}
