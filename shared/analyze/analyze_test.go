package analyze_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/shared/analyze"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

var analysisName = artifact.Name(lesson, 1, artifact.AnalysisFile)

// status is the HTTP status the workflow would get for (resp, err).
func status(resp workflowcall.Response, err error) int {
	rec := httptest.NewRecorder()
	workflowcall.Write(rec, resp, err)
	return rec.Code
}

func windowName(i int) string {
	return artifact.Prefix(lesson, 1) + fmt.Sprintf("analysis/window-%03d.json", i)
}

// A lesson longer than a window is analyzed window by window, in order;
// merged, the windows give what one look at the whole video gives, and
// the ledger holds every token Gemini billed.
func TestWindowsMergedInOrder(t *testing.T) {
	h := newHarness(t)
	resp, err := h.stage.Run(t.Context(), lesson, 1)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := "gs://" + artifacts + "/" + analysisName; !resp.Done || resp.URI != want || resp.Skipped {
		t.Fatalf("answer %+v, want done with %s", resp, want)
	}
	if got := h.gemini.Windows(lesson); !reflect.DeepEqual(got, h.plan()) {
		t.Errorf("windows asked = %v, want %v, in order", got, h.plan())
	}
	for _, rq := range h.gemini.Received() {
		if rq.Model != model || rq.FPS != 1 || rq.Resolution != "MEDIA_RESOLUTION_MEDIUM" || rq.Kind != gemini.Analysis {
			t.Errorf("request %+v, want an analysis by %s at 1 fps and medium resolution", rq, model)
		}
	}
	h.checkUsage(lesson)

	b, ok := h.object(analysisName)
	if !ok {
		t.Fatalf("no %s", analysisName)
	}
	var a artifact.Analysis
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if a.LessonID != lesson || a.Version != 1 || a.Model != model || a.Engine != model+" (local engine)" {
		t.Errorf("analysis header %+v", a)
	}
	if !reflect.DeepEqual(a.Windows, h.plan()) {
		t.Errorf("analysis windows = %v, want %v", a.Windows, h.plan())
	}
	if !slices.IsSortedFunc(a.Elements, func(x, y artifact.VisualElement) int { return cmp.Compare(x.Start, y.Start) }) {
		t.Errorf("elements not in order of start: %+v", a.Elements)
	}
	// The slides cut at 8 s and 16 s are whole again.
	if whole := h.wholeLesson(); !reflect.DeepEqual(a.Elements, whole) {
		t.Errorf("merged elements =\n%+v\nwant the whole video's\n%+v", a.Elements, whole)
	}
	if len(a.Elements) != 5 || a.Elements[3].Kind != artifact.VisualCode || !strings.Contains(a.Elements[3].Code, "print(type(precio))") {
		t.Errorf("elements = %+v, want 2 slides, their concepts and the code shown", a.Elements)
	}
	for i := 1; i <= 3; i++ {
		if _, ok := h.object(windowName(i)); !ok {
			t.Errorf("window %d was not stored", i)
		}
	}

	rec := h.record(lesson)
	want := map[string]string{"uri": resp.URI, "elements": "5", "windows": "3", "model": model}
	if rec.State != lessonstate.StateDone || !reflect.DeepEqual(rec.Outputs, want) {
		t.Errorf("stage record %+v, want done with %v", rec, want)
	}

	// Done is done: a second call answers the same, and asks nothing.
	n := len(h.gemini.Received())
	again, err := h.stage.Run(t.Context(), lesson, 1)
	if err != nil || !again.Done || again.URI != resp.URI || len(h.gemini.Received()) != n {
		t.Errorf("second run: %+v, %v, %d requests (had %d)", again, err, len(h.gemini.Received()), n)
	}
}

// A non-JSON answer is asked again; the good second answer completes the
// stage, and both answers are in the ledger.
func TestNonJSONAnswerIsAskedAgain(t *testing.T) {
	h := newHarness(t)
	h.gemini.NonJSONNext(gemini.Match{Lesson: lesson, Kind: gemini.Analysis}, 1)
	resp, err := h.stage.Run(t.Context(), lesson, 1)
	if err != nil || !resp.Done {
		t.Fatalf("run: %+v, %v; want done", resp, err)
	}
	got := h.gemini.Received()
	if len(got) != 4 || got[0].Fault != "non-json" || got[1].Fault != "" || got[0].Window != got[1].Window {
		t.Errorf("requests %+v, want the first window twice (prose, then JSON), then two more", got)
	}
	b, _ := h.object(windowName(1))
	var w struct{ Answers int }
	if err := json.Unmarshal(b, &w); err != nil || w.Answers != 2 {
		t.Errorf("window 1 record %s: want answers 2", b)
	}
	h.checkUsage(lesson)
}

// Answers that break the schema are asked again, then fail the stage for
// good with a reason naming the window and what was wrong with each
// answer; the failure is announced once and the answer is 422.
func TestSchemaBreakingAnswersFailClearly(t *testing.T) {
	h := newHarness(t)
	// Every answer breaks it: first without "elements", then with an
	// element of an unknown kind.
	h.gemini.BreakSchemaAlways(lesson)
	resp, err := h.stage.Run(t.Context(), lesson, 1)
	if err == nil || !failure.IsPermanent(err) || status(resp, err) != http.StatusUnprocessableEntity {
		t.Fatalf("run: %+v, %v; want a permanent failure (422)", resp, err)
	}
	rec := h.record(lesson)
	for _, says := range []string{
		"window 1 of 3 [0 s, 8 s)", "2 answer(s), none valid",
		`answer 1: no "elements" property (it has items)`,
		`answer 2: element 1 (animation "Variables y tipos de datos"): kind "animation" is not one of slide, code, diagram, demonstration, concept`,
	} {
		if !strings.Contains(rec.Error, says) || !strings.Contains(err.Error(), says) {
			t.Errorf("reason %q (error %q) does not say %q", rec.Error, err, says)
		}
	}
	if rec.State != lessonstate.StateFailed {
		t.Errorf("stage %s, want failed", rec.State)
	}
	if n := h.gemini.Count(gemini.Match{Lesson: lesson}); n != 2 {
		t.Errorf("%d requests, want 2: one answer and one retry (ANSWER_RETRIES=1)", n)
	}
	ev := h.waitFailed(lesson, lessonstate.StageAnalyze)
	if ev.Version != 1 || !strings.Contains(ev.Reason, "window 1 of 3") {
		t.Errorf("announcement %+v", ev)
	}
	// Bad answers were paid for too.
	h.checkUsage(lesson)
	if _, ok := h.object(windowName(1)); ok {
		t.Error("a bad answer was stored as a window")
	}
	// The workflow's own give-up after the 422 changes nothing.
	if resp, err := h.stage.GiveUp(t.Context(), lesson, 1, "gave up", false); err != nil || h.record(lesson).Error != rec.Error {
		t.Errorf("give up after failing: %+v, %v; reason now %q", resp, err, h.record(lesson).Error)
	}
}

// A window that keeps answering 503 through the SDK's retries fails the
// call retryably (503); the windows already paid for are kept, and the
// workflow's retry asks only for the others.
func TestRetryAfter503AsksOnlyWhatIsMissing(t *testing.T) {
	h := newHarness(t)
	// The second request is the second window's first: it and the SDK's
	// two retries of it answer 503.
	h.tap.before = func(n int) {
		if n == 2 {
			h.gemini.FailNext(gemini.Match{Lesson: lesson}, http.StatusServiceUnavailable, 3)
		}
	}
	resp, err := h.stage.Run(t.Context(), lesson, 1)
	if err == nil || failure.IsPermanent(err) || status(resp, err) != http.StatusServiceUnavailable {
		t.Fatalf("run: %+v, %v; want a retryable failure (503)", resp, err)
	}
	rec := h.record(lesson)
	if rec.State != lessonstate.StatePending || !strings.Contains(rec.Error, "window 2 of 3 [8 s, 16 s): Gemini answered 503 UNAVAILABLE") {
		t.Errorf("stage record %+v, want pending with the window and the 503", rec)
	}
	if _, ok := h.object(windowName(1)); !ok {
		t.Fatal("window 1 was not kept")
	}

	resp, err = h.stage.Run(t.Context(), lesson, 1)
	if err != nil || !resp.Done {
		t.Fatalf("retried run: %+v, %v", resp, err)
	}
	ws := h.plan()
	want := []artifact.Window{ws[0], ws[1], ws[1], ws[1], ws[1], ws[2]}
	if got := h.gemini.Windows(lesson); !reflect.DeepEqual(got, want) {
		t.Errorf("windows asked = %v\nwant %v: window 1 once, window 2 three times refused and once answered, window 3 once", got, want)
	}
	if rec := h.record(lesson); rec.State != lessonstate.StateDone || rec.Attempts != 2 {
		t.Errorf("stage record %+v, want done at attempt 2", rec)
	}
	h.checkUsage(lesson)
}

// Switched off, the stage is recorded skipped with the reason, nothing is
// asked, and the process step joins on the transcription alone.
func TestSwitchedOffSkipsAndTheJoinGoesOn(t *testing.T) {
	h := newHarness(t, func(o *options) { o.settings.Enabled = false })
	ctx := t.Context()
	// The starter's claim of the process step, and a finished transcription.
	if c, err := h.store.Claim(ctx, lesson, lessonstate.StepProcess, 1, time.Hour); err != nil || c.Outcome != lessonstate.Claimed {
		t.Fatalf("claim process: %v, %v", c.Outcome, err)
	}
	c, err := h.store.Claim(ctx, lesson, lessonstate.StageTranscribe, 1, time.Hour)
	if err != nil || c.Outcome != lessonstate.Claimed {
		t.Fatalf("claim transcribe: %v, %v", c.Outcome, err)
	}
	if err := h.store.Complete(ctx, lesson, lessonstate.StageTranscribe, 1, c.Token, map[string]string{"uri": "gs://a/t.json"}); err != nil {
		t.Fatal(err)
	}

	resp, err := h.stage.Run(ctx, lesson, 1)
	if err != nil || !resp.Done || !resp.Skipped || !strings.Contains(resp.Reason, "ANALYSIS_ENABLED=false") {
		t.Fatalf("run: %+v, %v; want done and skipped, saying why", resp, err)
	}
	l := h.lesson(lesson)
	if rec := l.Stages[lessonstate.StageAnalyze]; rec.State != lessonstate.StateSkipped || !strings.Contains(rec.Error, "switched off") {
		t.Errorf("analyze record %+v, want skipped with the reason", rec)
	}
	if p := l.Stages[lessonstate.StepProcess]; p.State != lessonstate.StateDone {
		t.Errorf("process step %+v, want done: the join goes on", p)
	}
	if n := len(h.gemini.Received()); n != 0 {
		t.Errorf("%d Gemini requests while switched off", n)
	}
	// Asked again, it stays skipped.
	if again, err := h.stage.Run(ctx, lesson, 1); err != nil || !again.Skipped || !again.Done {
		t.Errorf("second run: %+v, %v", again, err)
	}
}

// What the claim finds decides the answer without any work.
func TestClaimOutcomes(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()

	t.Run("busy", func(t *testing.T) {
		c, err := h.store.Claim(ctx, lesson, lessonstate.StageAnalyze, 1, time.Hour)
		if err != nil || c.Outcome != lessonstate.Claimed {
			t.Fatal(c.Outcome, err)
		}
		resp, err := h.stage.Run(ctx, lesson, 1)
		if status(resp, err) != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(err), "another call is at work") {
			t.Errorf("busy: %+v, %v; want 503", resp, err)
		}
		// The workflow cannot fail a stage another call holds: it is told
		// to retry, and the sweeper takes over if it stops.
		resp, err = h.stage.GiveUp(ctx, lesson, 1, "timed out", false)
		if status(resp, err) != http.StatusServiceUnavailable || h.record(lesson).State != lessonstate.StateRunning {
			t.Errorf("give up while busy: %+v, %v; stage %s", resp, err, h.record(lesson).State)
		}
	})
	t.Run("stale", func(t *testing.T) {
		h.detect("bumped", lessonstate.MediaReady)
		l := h.lesson("bumped")
		l.Title = "Renombrada"
		l.Fingerprint += "-renamed"
		if _, _, err := h.store.ApplyDetected(ctx, "bumped", lessonstate.Observed{Lesson: l, RunID: "run-2"}); err != nil {
			t.Fatal(err)
		}
		resp, err := h.stage.Run(ctx, "bumped", 1)
		if err != nil || !resp.Stale || resp.Done {
			t.Errorf("stale: %+v, %v", resp, err)
		}
	})
	t.Run("no media", func(t *testing.T) {
		h.detect("quiz01", lessonstate.MediaNone)
		resp, err := h.stage.Run(ctx, "quiz01", 1)
		if err != nil || !resp.Done || !resp.Skipped || resp.Reason != "page has no media" {
			t.Errorf("no media: %+v, %v; want skipped", resp, err)
		}
	})
	t.Run("no video object", func(t *testing.T) {
		h.detect("novideo1", lessonstate.MediaReady)
		resp, err := h.stage.Run(ctx, "novideo1", 1)
		if status(resp, err) != http.StatusUnprocessableEntity {
			t.Errorf("no video: %+v, %v; want 422", resp, err)
		}
		rec := h.record("novideo1")
		if rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, "no video at gs://raw/lessons/novideo1/v1/source.mp4") {
			t.Errorf("record %+v, want failed naming the missing object", rec)
		}
		h.waitFailed("novideo1", lessonstate.StageAnalyze)
		// Failed stays failed until a replay: 422 again, nothing asked.
		if resp, err := h.stage.Run(ctx, "novideo1", 1); status(resp, err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "failed earlier") {
			t.Errorf("again: %+v, %v", resp, err)
		}
	})
	t.Run("unknown lesson", func(t *testing.T) {
		resp, err := h.stage.Run(ctx, "nobody", 1)
		if status(resp, err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "no such lesson") {
			t.Errorf("unknown: %+v, %v", resp, err)
		}
	})
	if n := len(h.gemini.Received()); n != 0 {
		t.Errorf("%d Gemini requests; none of these needed one", n)
	}
}

// Gemini refusing the request (an unknown model here) fails the stage for
// good with the API's own message.
func TestGeminiRefusalIsPermanent(t *testing.T) {
	h := newHarness(t, func(o *options) {
		o.server.Models = []string{model}
		o.settings.Model = "gemini-0-retired"
	})
	resp, err := h.stage.Run(t.Context(), lesson, 1)
	if status(resp, err) != http.StatusUnprocessableEntity {
		t.Fatalf("run: %+v, %v; want 422", resp, err)
	}
	rec := h.record(lesson)
	if rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, "Gemini refused the request: 404 NOT_FOUND: Publisher Model") {
		t.Errorf("record %+v, want failed with Vertex's 404 message", rec)
	}
	if n := len(h.gemini.Received()); n != 1 {
		t.Errorf("%d requests, want 1: a 404 is not retried", n)
	}
}

// The workflow gives up (its calls kept failing): the stage is failed with
// its reason and announced.
func TestGiveUpFailsAndAnnounces(t *testing.T) {
	h := newHarness(t, func(o *options) { o.attempts = 1 })
	h.gemini.FailNext(gemini.Match{Lesson: lesson}, http.StatusTooManyRequests, 1)
	resp, err := h.stage.Run(t.Context(), lesson, 1)
	if status(resp, err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "429 RESOURCE_EXHAUSTED") {
		t.Fatalf("run: %+v, %v; want 503 after the 429", resp, err)
	}
	const reason = "lesson-pipeline exec-1 gave up: HTTP server responded with error code 503"
	resp, err = h.stage.Handle(t.Context(), workflowcall.Request{LessonID: lesson, Version: 1, Action: workflowcall.ActionFail, Reason: reason})
	if err != nil || resp.Reason != reason || resp.Done {
		t.Fatalf("give up: %+v, %v", resp, err)
	}
	if rec := h.record(lesson); rec.State != lessonstate.StateFailed || rec.Error != reason {
		t.Errorf("record %+v, want failed with the workflow's reason", rec)
	}
	if ev := h.waitFailed(lesson, lessonstate.StageAnalyze); ev.Reason != reason {
		t.Errorf("announced %+v", ev)
	}
}

// A workflow that gave up because its calls kept failing for now costs
// the stage an attempt: pending, not announced; the next run completes it.
func TestTransientGiveUpCostsAnAttempt(t *testing.T) {
	h := newHarness(t)
	const reason = "lesson-pipeline exec-1 gave up: HTTP server responded with error code 502"
	resp, err := h.stage.Handle(t.Context(), workflowcall.Request{LessonID: lesson, Version: 1, Action: workflowcall.ActionFail, Reason: reason, Transient: true})
	if err != nil || resp.Reason != reason || resp.Done {
		t.Fatalf("give up: %+v, %v", resp, err)
	}
	if rec := h.record(lesson); rec.State != lessonstate.StatePending || rec.Error != reason || rec.Attempts != 1 {
		t.Fatalf("record %+v, want pending with the reason after one attempt", rec)
	}
	if evs := h.failed(); len(evs) != 0 {
		t.Errorf("announced %+v for a stage that will be tried again", evs)
	}
	if resp, err := h.stage.Run(t.Context(), lesson, 1); err != nil || !resp.Done {
		t.Fatalf("the next run: %+v, %v", resp, err)
	}
	if rec := h.record(lesson); rec.State != lessonstate.StateDone || rec.Attempts != 2 {
		t.Errorf("record %+v, want done at attempt 2", rec)
	}
}

// A stored window asked another way (another model) is not reused.
func TestStoredWindowsOfAnotherRequestAreAskedAgain(t *testing.T) {
	h := newHarness(t, func(o *options) { o.settings.Window = time.Hour })
	if _, err := h.stage.Run(t.Context(), lesson, 1); err != nil {
		t.Fatal(err)
	}
	// A replay of the stage, with the settings changed meanwhile.
	other, err := analyze.New(analyze.Deps{
		Store: h.store, Storage: h.storage, Gemini: h.client, Announcer: noAnnouncer{},
		Outcome: h.stage.Outcome,
		Settings: analyze.Settings{
			RawBucket: raw, ArtifactsBucket: artifacts, Enabled: true, Model: "gemini-3.5-pro",
			Window: time.Hour, FPS: 2, AnswerRetries: 0, Lease: time.Minute,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	replay(t, h, lesson)
	if _, err := other.Run(t.Context(), lesson, 1); err != nil {
		t.Fatal(err)
	}
	got := h.gemini.Received()
	if len(got) != 2 || got[1].Model != "gemini-3.5-pro" || got[1].FPS != 2 {
		t.Errorf("requests %+v, want the one window asked again by the new model at 2 fps", got)
	}
	var a artifact.Analysis
	b, _ := h.object(analysisName)
	if err := json.Unmarshal(b, &a); err != nil || a.Model != "gemini-3.5-pro" || len(a.Windows) != 1 {
		t.Errorf("analysis %+v, %v", a, err)
	}
}

// replay puts a lesson's analyze stage back to pending at its version, as
// a replay from "analyze" does (lesson-replay): written directly, the
// replay handler being another stage's work.
func replay(t *testing.T, h *harness, id string) {
	t.Helper()
	_, err := h.fs.Collection(lessonstate.CollLessons).Doc(id).Update(t.Context(), []firestore.Update{
		{FieldPath: firestore.FieldPath{"stages", lessonstate.StageAnalyze}, Value: lessonstate.Stage{State: lessonstate.StatePending, Version: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

type noAnnouncer struct{}

func (noAnnouncer) Event(context.Context, string, events.LessonEvent) error { return nil }
