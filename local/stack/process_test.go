package stack

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/grpc/codes"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/speech"
	"github.com/coursekb/pipeline/local/workflows"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// processed waits until a lesson's process step has ended at its version
// (done, skipped or failed) and returns the lesson.
func (h *harness) processed(t *testing.T, id string, limit time.Duration) lessonstate.Lesson {
	t.Helper()
	var l lessonstate.Lesson
	waitFor(t, limit, id+" processed", func() bool {
		l = h.lesson(t, id)
		rec := l.Stages[lessonstate.StepProcess]
		return rec.Version == l.Version && (rec.State == lessonstate.StateDone || rec.State == lessonstate.StateFailed || rec.State == lessonstate.StateSkipped)
	})
	return l
}

// steps counts the named steps the workflow ran for a lesson, over all its
// executions.
func (h *harness) steps(id, step string) int {
	n := 0
	for _, ex := range h.Workflows.Executions(h.WorkflowName()) {
		if !strings.Contains(ex.GetArgument(), `"`+id+`"`) {
			continue
		}
		for _, e := range h.Workflows.Steps(ex.GetName()) {
			if e.Step == step && e.State == workflows.StepFinished {
				n++
			}
		}
	}
	return n
}

// The real workflow file, run by the local Workflows service against the
// real functions process and the local engines: both branches, a
// transcription that needs several polls, an analyzer that answers 503 twice,
// a transcriber that fails for good, and analysis switched off.
func TestProcessTranscribeAndAnalyzeUnderTheWorkflow(t *testing.T) {
	h := startStack(t, func(o *Options) {
		// No retries inside the analyzer's SDK: a 503 from Gemini is the
		// analyzer's 503 to the workflow, whose retry policy is tested.
		o.Env = map[string]string{"GEMINI_API_ATTEMPTS": "1"}
	})
	ctx := context.Background()
	processedTap, err := h.Tap(ctx, events.TopicLessonProcessed, "tap-processed")
	if err != nil {
		t.Fatal(err)
	}
	lessonEvents, err := h.Tap(ctx, events.TopicLessonEvents, "tap-lesson-events")
	if err != nil {
		t.Fatal(err)
	}
	const (
		flaky  = "pyL2cond002" // Gemini answers 503 twice
		broken = "mkL2cale006" // every recognition of it fails
	)
	h.Speech.SetTiming(0, 3) // each recognition is done at its third poll
	h.Gemini.FailNext(gemini.Match{Lesson: flaky, Kind: gemini.Analysis}, 503, 2)
	h.Speech.AddFault(speech.Fault{
		Match:   func(uri string) bool { return strings.Contains(uri, "/"+broken+"/") },
		Code:    codes.InvalidArgument,
		Message: "audio could not be decoded",
	})
	h.detect(t)

	for _, v := range h.videos {
		l := h.processed(t, v.PageID, 3*time.Minute)
		if v.PageID == broken {
			continue
		}
		for _, st := range []string{lessonstate.StageTranscribe, lessonstate.StageAnalyze, lessonstate.StepProcess} {
			if rec := l.Stages[st]; rec.State != lessonstate.StateDone {
				t.Errorf("%s: %s %+v, want done", v.PageID, st, rec)
			}
		}
		for st, file := range map[string]string{lessonstate.StageTranscribe: artifact.TranscriptFile, lessonstate.StageAnalyze: artifact.AnalysisFile} {
			want := "gs://" + ArtifactBucket + "/" + artifact.Name(v.PageID, 1, file)
			if got := l.Stages[st].Outputs["uri"]; got != want {
				t.Errorf("%s: %s artifact %q, want %q", v.PageID, st, got, want)
			}
		}
		// Done at the server's third GetOperation: the workflow polled
		// until then. A poll call the workflow retried (an answer slow
		// on a loaded machine) is one step that made two GetOperations,
		// so the steps are two or more.
		if polls := h.steps(v.PageID, "poll"); polls < 2 {
			t.Errorf("%s: %d polls of its transcription, want at least 2", v.PageID, polls)
		}
	}

	t.Run("both branches joined, lesson-processed published once per lesson", func(t *testing.T) {
		var want []string
		for _, v := range h.videos {
			if v.PageID != broken {
				want = append(want, v.PageID+"@")
			}
		}
		slices.Sort(want)
		waitFor(t, 30*time.Second, "lesson-processed for every processed lesson", func() bool {
			return len(processedTap.Events()) >= len(want)
		})
		if got := ids(processedTap.Events()); !slices.Equal(got, want) {
			t.Errorf("lesson-processed %v, want %v", got, want)
		}
	})

	t.Run("the analyzer's 503s are retried by the workflow", func(t *testing.T) {
		rec := h.lesson(t, flaky).Stages[lessonstate.StageAnalyze]
		if rec.State != lessonstate.StateDone || rec.Attempts != 3 {
			t.Errorf("analyze of %s: %+v, want done at attempt 3", flaky, rec)
		}
		if n := h.Gemini.Count(gemini.Match{Lesson: flaky, Kind: gemini.Analysis}); n < 3 {
			t.Errorf("Gemini asked %d times for %s, want the two refused and the good one", n, flaky)
		}
	})

	t.Run("a transcriber that fails for good fails the lesson once, with the reason", func(t *testing.T) {
		l := h.lesson(t, broken)
		tr, pr := l.Stages[lessonstate.StageTranscribe], l.Stages[lessonstate.StepProcess]
		if tr.State != lessonstate.StateFailed || !strings.Contains(tr.Error, "audio could not be decoded") {
			t.Errorf("transcribe of %s: %+v, want failed with the engine's reason", broken, tr)
		}
		if pr.State != lessonstate.StateFailed {
			t.Errorf("process of %s: %+v, want failed", broken, pr)
		}
		waitFor(t, 30*time.Second, "the failure announced", func() bool {
			return slices.Contains(ids(lessonEvents.Events()), broken+"@failed")
		})
		n := 0
		for _, e := range lessonEvents.Events() {
			if e.LessonID == broken && e.Kind == events.KindFailed {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d failed events for %s, want 1", n, broken)
		}
		var failedExecutions int
		for _, ex := range h.Workflows.Executions(h.WorkflowName()) {
			if strings.Contains(ex.GetArgument(), `"`+broken+`"`) && ex.GetState() == executionspb.Execution_FAILED {
				failedExecutions++
			}
		}
		if failedExecutions != 1 {
			t.Errorf("%d failed executions for %s, want 1", failedExecutions, broken)
		}
	})

	t.Run("analysis switched off: the branch records skipped and the join goes on", func(t *testing.T) {
		h.SetFunctionEnv(map[string]string{"ANALYSIS_ENABLED": "false"})
		if err := h.RestartFunctions(ctx); err != nil {
			t.Fatal(err)
		}
		// A new video for one lesson: a new version goes through again.
		id := h.videos[0].PageID
		videos := slices.Clone(h.videos)
		b, err := os.ReadFile(h.videos[2].Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.videos[0].Path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		videos[0].Size, videos[0].MD5 = h.videos[2].Size, h.videos[2].MD5
		if err := h.PutManifest(ctx, videos); err != nil {
			t.Fatal(err)
		}
		before := h.Gemini.Count(gemini.Match{Lesson: id})
		h.detect(t)
		waitFor(t, 3*time.Minute, id+" v2 processed", func() bool {
			l := h.lesson(t, id)
			p := l.Stages[lessonstate.StepProcess]
			return l.Version == 2 && p.Version == 2 && p.State == lessonstate.StateDone
		})
		l := h.lesson(t, id)
		if rec := l.Stages[lessonstate.StageAnalyze]; rec.State != lessonstate.StateSkipped || rec.Version != 2 {
			t.Errorf("analyze: %+v, want skipped at v2", rec)
		}
		if n := h.Gemini.Count(gemini.Match{Lesson: id}) - before; n != 0 {
			t.Errorf("Gemini asked %d times with analysis off", n)
		}
	})
}
