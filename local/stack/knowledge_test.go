package stack

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/ask"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/redrive"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// settledAll waits until no lesson has anything in flight and returns them.
func (h *harness) settledAll(t *testing.T, limit time.Duration) []lessonstate.Lesson {
	t.Helper()
	var ls []lessonstate.Lesson
	waitFor(t, limit, "every lesson settled", func() bool {
		var err error
		if ls, err = h.State.Lessons(context.Background()); err != nil || len(ls) == 0 {
			return false
		}
		for _, l := range ls {
			if _, _, inFlight := l.Due(); inFlight {
				return false
			}
		}
		return true
	})
	return ls
}

// asker answers from the stack's Firestore and local OpenAI server.
func (h *harness) asker(t *testing.T) *ask.Asker {
	t.Helper()
	a, err := ask.New(h.State, ask.Config{
		OpenAIConfig: vectorsync.OpenAIConfig{APIKey: "local", BaseURL: h.OpenAIURL, MaxRetries: 2, RequestTimeout: time.Minute},
		Model:        "gpt-5-mini", MaxResults: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The sample course end to end through the stack: detected, downloaded,
// transcribed ∥ analyzed, enriched and synced, one live knowledge file per
// lesson; a question answered citing the right lesson and time; the
// project's own evaluation passing; the run's digest sent once.
func TestSampleCourseEndToEnd(t *testing.T) {
	h := startStack(t)
	ctx := context.Background()
	h.detect(t)
	lessons := h.settledAll(t, 5*time.Minute)

	t.Run("every lesson with media synced, one live file each, for its version", func(t *testing.T) {
		live := map[string]int{}
		for _, files := range h.OpenAI.LiveFiles() {
			for _, f := range files {
				if f.Status == "completed" {
					live[f.Attributes[vectorsync.AttrLesson].(string)]++
				}
			}
		}
		for _, l := range lessons {
			if l.MediaStatus != lessonstate.MediaReady {
				if live[l.ID] != 0 {
					t.Errorf("%s (no media) has %d knowledge files", l.ID, live[l.ID])
				}
				continue
			}
			if rec := l.Stages[lessonstate.StageSync]; rec.State != lessonstate.StateDone {
				t.Errorf("%s: sync %+v, want done", l.ID, rec)
			}
			if l.VectorStore == nil || l.VectorStore.Version != l.Version || live[l.ID] != 1 {
				t.Errorf("%s: vector store %+v, %d live files; want one, for v%d", l.ID, l.VectorStore, live[l.ID], l.Version)
			}
		}
	})

	t.Run("a question is answered citing the right lesson and time", func(t *testing.T) {
		ans, err := h.asker(t).Ask(ctx, ask.Question{School: "programacion", Text: "¿Qué devuelve una función que no tiene return?"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Citations) == 0 || ans.Citations[0].LessonID != "pyL3func004" || ans.Citations[0].Start == nil {
			t.Fatalf("answer %q cites %+v, want pyL3func004 first with its time range", ans.Text, ans.Citations)
		}
	})

	t.Run("the project's own evaluation passes", func(t *testing.T) {
		f, err := ask.ParseEval(sample.Questions)
		if err != nil {
			t.Fatal(err)
		}
		a := h.asker(t)
		rep, err := ask.Evaluate(ctx, a.Ask, f)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(rep)
		if short := rep.Shortfalls(1, 1); len(short) > 0 {
			t.Fatalf("evaluation below the bar: %v\n%s", short, b)
		}
	})

	t.Run("the run's digest is sent once, on Slack and by e-mail", func(t *testing.T) {
		waitFor(t, 2*time.Minute, "the digest", func() bool {
			for _, m := range h.Slack.Messages() {
				if strings.Contains(m.AllText(), "pyL1vars001") {
					return true
				}
			}
			return false
		})
		digests := 0
		for _, m := range h.Slack.Messages() {
			if strings.Contains(m.AllText(), "pyL1vars001") {
				digests++
			}
		}
		if digests != 1 || len(h.Mail.Messages()) == 0 {
			t.Errorf("%d Slack digests and %d e-mails, want one digest and its e-mail", digests, len(h.Mail.Messages()))
		}
	})
}

// An operator replays a lesson with the real gcloud against the Pub/Sub
// emulator: it runs again from that stage, and no stage before it runs.
// And a dead-lettered message, once the fault is fixed, is moved back.
func TestReplayWithGcloudAndRedrive(t *testing.T) {
	h := startStack(t)
	ctx := context.Background()
	h.detect(t)
	h.settledAll(t, 5*time.Minute)
	const id = "pyL2cond002"
	before := h.lesson(t, id)
	analyses := h.Gemini.Count(geminiMatch(id))

	cmd := exec.CommandContext(ctx, "gcloud", "pubsub", "topics", "publish", events.TopicLessonReplay,
		`--message={"lessonId":"`+id+`","from":"enrich"}`)
	cmd.Env = append(os.Environ(),
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=http://"+h.PubSub.Host+"/",
		"CLOUDSDK_CORE_PROJECT="+h.ProjectID,
		"CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true",
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_CONFIG="+t.TempDir(),
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcloud pubsub topics publish: %v\n%s", err, out)
	}
	waitFor(t, 3*time.Minute, id+" enriched and synced again", func() bool {
		l := h.lesson(t, id)
		en, sy := l.Stages[lessonstate.StageEnrich], l.Stages[lessonstate.StageSync]
		return en.State == lessonstate.StateDone && sy.State == lessonstate.StateDone && en.FinishedAt.After(before.Stages[lessonstate.StageEnrich].FinishedAt) &&
			sy.FinishedAt.After(before.Stages[lessonstate.StageSync].FinishedAt)
	})
	after := h.lesson(t, id)
	for _, st := range []string{lessonstate.StageDownload, lessonstate.StageTranscribe, lessonstate.StageAnalyze, lessonstate.StepProcess} {
		if !after.Stages[st].FinishedAt.Equal(before.Stages[st].FinishedAt) || after.Stages[st].Attempts != before.Stages[st].Attempts {
			t.Errorf("%s ran again on a replay from enrich: %+v, was %+v", st, after.Stages[st], before.Stages[st])
		}
	}
	if n := h.Gemini.Count(geminiMatch(id)) - analyses; n != 0 {
		t.Errorf("the replay asked Gemini for %d analyses", n)
	}
	if after.Version != before.Version {
		t.Errorf("the replay made version %d, want the same version %d", after.Version, before.Version)
	}

	// A dead letter of the replayer's subscription, as Pub/Sub leaves one
	// (the data as published, the dead-letter attributes); once the fault is
	// fixed, redrive moves it back to its topic and it is replayed.
	dlq := events.TopicLessonReplay + "-replayer-dlq"
	dead, _ := json.Marshal(map[string]string{"lessonId": id, "from": "sync"})
	if err := h.Publish(ctx, dlq, dead, map[string]string{
		"lessonId": id, redrive.AttrSourceSubscription: "replayer-" + events.TopicLessonReplay,
		"CloudPubSubDeadLetterSourceDeliveryCount": "15",
	}); err != nil {
		t.Fatal(err)
	}
	syncs := h.lesson(t, id).Stages[lessonstate.StageSync].FinishedAt
	moved, err := redrive.Run(ctx, h.PS, h.ProjectID, strings.TrimPrefix(eventarc.HoldSubscription(h.ProjectID, eventarc.Route{DeadLetterTopic: dlq}), "projects/"+h.ProjectID+"/subscriptions/"), redrive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 1 || moved[0].To != "projects/"+h.ProjectID+"/topics/"+events.TopicLessonReplay {
		t.Fatalf("moved %+v, want the one dead letter back to %s", moved, events.TopicLessonReplay)
	}
	waitFor(t, 2*time.Minute, "the redriven replay synced again", func() bool {
		return h.lesson(t, id).Stages[lessonstate.StageSync].FinishedAt.After(syncs)
	})
	if again, err := redrive.Run(ctx, h.PS, h.ProjectID, dlq+"-hold", redrive.Options{Wait: time.Second}); err != nil || len(again) != 0 {
		t.Errorf("a second redrive moved %v (%v), want nothing left", again, err)
	}
}

func geminiMatch(id string) gemini.Match { return gemini.Match{Lesson: id, Kind: gemini.Analysis} }
