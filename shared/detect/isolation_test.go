package detect

// Failures are isolated at the smallest unit: a page, a module, a lesson, a
// course. What could be read is recorded, what could not is named, and
// nothing is removed on the strength of a partial walk.

import (
	"errors"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/hotmart"
)

// A course whose modules cannot be listed fails alone: the others are
// walked, its lessons stay as they were, and the run says which and why.
func TestCourseWhoseModulesCannotBeListed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()

	f.hotmart.modulesErr = map[string]error{"python-desde-cero": failure.Retryablef("hotmart: 503 Service Unavailable")}
	f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos de venta", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	r := f.run(t, 0)
	if r.Outcome != OutcomePartial || r.Complete || len(r.Errors) > 0 {
		t.Errorf("outcome %q complete %v errors %q, want partial with the problem in the course", r.Outcome, r.Complete, r.Errors)
	}
	py := courseRun(t, r, "4100001")
	if py.Outcome != CourseFailed || len(py.Problems) != 1 || !strings.Contains(py.Problems[0], "python-desde-cero") || !strings.Contains(py.Problems[0], "503") {
		t.Errorf("Python = %+v, want failed naming the Club and the Hotmart error", py)
	}
	if r.Counts.CoursesFailed != 1 || r.Counts.CoursesWalked != 1 || r.Counts.Removed != 0 {
		t.Errorf("counts %+v", r.Counts)
	}
	checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel"})
	for _, id := range []string{"pyVars", "pyTypes", "pyIf"} {
		if f.store.lesson(t, id).Removed {
			t.Errorf("lesson %s of the failing course was removed", id)
		}
	}

	// Every course failing for a transient reason is a failed run a retry
	// may fix.
	f.hotmart.modulesErr["marketing-digital"] = failure.Retryablef("hotmart: 503 Service Unavailable")
	r = f.run(t, 0)
	if r.Outcome != OutcomeFailed || !r.Transient {
		t.Errorf("every course failing: outcome %q transient %v, want failed, transient", r.Outcome, r.Transient)
	}
	f.hotmart.modulesErr["marketing-digital"] = failure.Permanentf("hotmart: 404 no such club")
	if r = f.run(t, 0); r.Outcome != OutcomeFailed || r.Transient {
		t.Errorf("a course failing for good: outcome %q transient %v, want failed, not transient", r.Outcome, r.Transient)
	}
}

// A module whose pages cannot be read is skipped and named; the modules
// after it are walked and their changes recorded; nothing of the course is
// removed and its fingerprint is not trusted until a complete walk.
func TestUnreadableModuleIsSkippedAndSiblingsWalked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()

	f.hotmart.pagesErr = map[string]error{pagesKey(pyID, "pyM1"): failure.Permanentf("hotmart: HTTP 200 with a malformed body: unexpected end of JSON input")}
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyIf", Name: "Condicionales (2026)", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyLoops", Name: "Bucles", Type: "CONTENT", PageOrder: 2, Published: true})
	f.hotmart.calls = nil
	r := f.run(t, 0)
	if f.hotmart.calls[pagesKey(pyID, "pyM2")] != 1 {
		t.Fatalf("the module after the broken one was not requested: %v", f.hotmart.calls)
	}
	py := courseRun(t, r, "4100001")
	if py.Outcome != CoursePartial || len(py.Problems) != 1 || !strings.Contains(py.Problems[0], "module pyM1") || !strings.Contains(py.Problems[0], "malformed") {
		t.Errorf("Python = %+v, want partial naming module pyM1 and why", py)
	}
	if r.Outcome != OutcomePartial || r.Counts.SkippedModules != 1 || r.Counts.New != 1 || r.Counts.Changed != 1 || r.Counts.Removed != 0 {
		t.Errorf("outcome %q counts %+v", r.Outcome, r.Counts)
	}
	checkIDs(t, "events", ids(f.pub.take()), []string{"pyIf"}) // pyLoops has no media
	for _, id := range []string{"pyVars", "pyTypes"} {
		if l := f.store.lesson(t, id); l.Removed || l.Version != 1 {
			t.Errorf("lesson %s of the unreadable module: removed %v version %d, want kept", id, l.Removed, l.Version)
		}
	}
	if c, _ := f.store.course(t, "4100001"); c.Fingerprint != "" {
		t.Errorf("a partial walk left fingerprint %q: the next run would trust it", c.Fingerprint)
	}

	// Once Hotmart mends the module, the next run walks the course in full.
	f.hotmart.pagesErr = nil
	f.store.take()
	r = f.run(t, 0)
	if py := courseRun(t, r, "4100001"); py.Outcome != CourseWalked || !py.Changed || r.Outcome != OutcomeComplete {
		t.Errorf("mended: Python %+v, run %q", py, r.Outcome)
	}
	if n := f.store.take()["ApplyDetected"]; n != 4 {
		t.Errorf("mended run recorded %d lessons, want Python's 4 again", n)
	}
	if c, _ := f.store.course(t, "4100001"); c.Fingerprint == "" {
		t.Error("a complete walk did not store the fingerprint")
	}
}

// Pages that cannot be decoded or used are skipped and named, with their
// module, position and raw value; the course is partial, so the lesson
// that vanished meanwhile is not removed on the strength of it.
func TestSkippedPagesMakeTheCoursePartial(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()

	f.hotmart.skipped = map[string][]hotmart.Skipped{pagesKey(pyID, "pyM1"): {{
		Call: "list pages of module pyM1 of product 4100001", Position: 5,
		Raw: `{"page_id":12345,"name":"Listas"}`, Reason: "page_id is a JSON number, not a string",
	}}}
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "../etc", Name: "Unsafe", Type: "CONTENT", PageOrder: 2, Published: true})
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyVars", Name: "Variables again", Type: "CONTENT", PageOrder: 3, Published: true})
	f.hotmart.deletePage(pyID, "pyM2", "pyIf")
	r := f.run(t, 0)
	py := courseRun(t, r, "4100001")
	want := []string{
		`module pyM1: page at position 5 skipped (page_id is a JSON number, not a string): {"page_id":12345,"name":"Listas"}`,
		`module pyM2: page at position 1 skipped: page_id "../etc" is not usable as a lesson id`,
		`module pyM2: page pyVars at position 2 skipped: the course already lists it (module pyM1)`,
	}
	if py.Outcome != CoursePartial || len(py.Problems) != len(want) {
		t.Fatalf("Python = %+v, want partial with %d problems", py, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(py.Problems[i], w) {
			t.Errorf("problem %d = %q, want it to start %q", i, py.Problems[i], w)
		}
	}
	if r.Counts.SkippedPages != 3 || r.Counts.Removed != 0 || f.store.lesson(t, "pyIf").Removed {
		t.Errorf("counts %+v; a partial walk must remove nothing", r.Counts)
	}
	if r.Outcome != OutcomePartial || len(r.Errors) != 0 {
		t.Errorf("run outcome %q errors %q, want partial, the problems in the course only", r.Outcome, r.Errors)
	}
}

// A page without a name is recorded with an empty title, and said so.
func TestUntitledPageIsRecordedWithAWarning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyIf", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	r := f.run(t, 0)
	py := courseRun(t, r, "4100001")
	if py.Outcome != CourseWalked || len(py.Warnings) != 1 || !strings.Contains(py.Warnings[0], "pyIf") || !strings.Contains(py.Warnings[0], "no name") {
		t.Errorf("Python = %+v, want walked with a warning naming pyIf", py)
	}
	if l := f.store.lesson(t, "pyIf"); l.Title != "" || l.Removed {
		t.Errorf("pyIf = %+v", l)
	}
	if r.Outcome != OutcomeComplete {
		t.Errorf("outcome %q: a warning is not a failure", r.Outcome)
	}
}

func TestMediaSourceFailureKeepsLesson(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()
	f.media.err = map[string]error{"pyIf": errors.New("manifest unreadable")}
	r := f.run(t, 0)
	py := courseRun(t, r, "4100001")
	if py.Outcome != CoursePartial || len(py.Problems) != 1 || !strings.Contains(py.Problems[0], "pyIf") {
		t.Errorf("Python = %+v, want partial naming pyIf", py)
	}
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("published %v", ids(msgs))
	}
	if l := f.store.lesson(t, "pyIf"); l.Removed || l.Version != 1 {
		t.Errorf("pyIf = removed %v version %d, want kept at version 1", l.Removed, l.Version)
	}
}

func TestStoreFailureOnOneLesson(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.applyErr = map[string]error{"pyIf": errors.New("firestore: deadline exceeded")}
	r := f.run(t, 0)
	py := courseRun(t, r, "4100001")
	if py.Outcome != CoursePartial || len(py.Problems) != 1 || !strings.Contains(py.Problems[0], "pyIf") {
		t.Errorf("Python = %+v, want partial naming pyIf", py)
	}
	checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel", "pyVars"})
	if c, _ := f.store.course(t, "4100001"); c.Fingerprint != "" {
		t.Errorf("course fingerprint %q stored although one of its lessons was not recorded", c.Fingerprint)
	}
	f.store.applyErr = nil
	f.run(t, 0)
	checkIDs(t, "retry events", ids(f.pub.take()), []string{"pyIf"})
	if c, _ := f.store.course(t, "4100001"); c.Fingerprint == "" {
		t.Error("course fingerprint not stored once every lesson was recorded")
	}
}

// A course document that cannot be written stops its course before any
// lesson is written: lessons written under a stored fingerprint they no
// longer match could be mistaken for unchanged later.
func TestCourseDocumentCannotBeWritten(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.failSet = errors.New("firestore: unavailable")
	r := f.run(t, 0)
	if r.Outcome != OutcomeFailed || !r.Transient || r.Counts.CoursesFailed != 2 || r.Counts.New != 0 {
		t.Errorf("outcome %q transient %v counts %+v, want failed, transient, nothing recorded", r.Outcome, r.Transient, r.Counts)
	}
	if n := f.store.take()["ApplyDetected"]; n != 0 {
		t.Errorf("%d lessons recorded", n)
	}
}
