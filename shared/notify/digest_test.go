package notify_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/notify"
)

// A run's digest goes out once, when the last of its lessons settles, and
// says what became of each: synced (with its Club link), failed (stage,
// reason, logs), removed, awaiting media (the run's own and those it found
// still waiting). Until then the run's events send nothing but the failure
// alert; after it, nothing at all.
func TestDigestOfASettledRun(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.putCourse()

	// An earlier run left a lesson that this run removes and one that is
	// still awaiting its media.
	f.saveRun(lessonstate.Run{ID: "run-0", StartedAt: t0, FinishedAt: t0, Outcome: "complete"})
	f.detect("run-0", "OldIntro", "Old intro", lessonstate.MediaReady, 1, 0)
	f.sync("OldIntro")
	f.detect("run-0", "Bonus", "Bonus: tooling", lessonstate.MediaAwaiting, 3, 1)

	f.clock.Advance(time.Hour)
	start := f.clock.Now()
	f.saveRun(lessonstate.Run{ID: "run-1", StartedAt: start})
	f.detect("run-1", "Vars", "Variables & types", lessonstate.MediaReady, 1, 1)
	f.detect("run-1", "Funcs", "Functions", lessonstate.MediaReady, 1, 2)
	f.detect("run-1", "Gorout", "Goroutines", lessonstate.MediaReady, 2, 1)
	f.detect("run-1", "Generics", "Generics", lessonstate.MediaAwaiting, 2, 2)
	removed := f.remove("OldIntro", "run-1")
	f.clock.Advance(time.Minute)
	f.saveRun(lessonstate.Run{
		ID: "run-1", StartedAt: start, FinishedAt: f.clock.Now(), Outcome: "complete", Complete: true,
		Counts:        lessonstate.Counts{New: 4, Removed: 1, Unchanged: 1, AwaitingMedia: 2},
		AwaitingMedia: []string{"Generics", "Bonus"},
	})

	// Lessons settle one by one; each event asks, none finds the run
	// settled, and only the failure is told at once.
	f.mustHandle(lessonEvent(t, "m-removed", removed))
	varsSynced := lessonEvent(t, "m-vars", f.sync("Vars"))
	f.mustHandle(varsSynced)
	failed := f.fail("Gorout", lessonstate.StageTranscribe, "audio track missing")
	f.mustHandle(lessonEvent(t, "m-gorout", failed))
	if got := len(f.slack.Messages()); got != 1 {
		t.Fatalf("%d Slack messages before the run settled, want only the failure alert", got)
	}
	if got := f.slack.Messages()[0].Blocks[0].Text.Text; !strings.Contains(got, "Lesson failed at transcribe: Goroutines") {
		t.Errorf("first message is %q, want the failure alert", got)
	}

	// The last lesson settles: its event sends the digest.
	last := lessonEvent(t, "m-funcs", f.sync("Funcs"))
	f.mustHandle(last)
	msgs := f.slack.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d Slack messages after the run settled, want alert + digest", len(msgs))
	}
	digest := msgs[1]
	if h := digest.Blocks[0].Text.Text; h != "Course knowledge: 2 synced, 1 failed, 1 removed" {
		t.Errorf("digest header %q", h)
	}
	contains(t, "Slack digest", digest.AllText(),
		"Detection run run-1: 2 lessons synced, 1 failed, 1 removed, 2 awaiting media.",
		"*New*\n4", "*Removed*\n1", "*Unchanged*\n1", "*Awaiting media*\n2", "*Run outcome*\ncomplete",
		"*Synced (2)*",
		"<https://goschool.club.hotmart.com/lesson/Vars|Variables &amp; types> — Go from zero › Module 1 · v1",
		"<https://goschool.club.hotmart.com/lesson/Funcs|Functions>",
		"*Failed (1)*",
		"<https://goschool.club.hotmart.com/lesson/Gorout|Goroutines> — transcribe failed: audio track missing",
		"https://console.cloud.google.com/logs/query;query=jsonPayload.lessonId%3D%22Gorout%22%0AjsonPayload.stage%3D%22transcribe%22;duration=P7D?project=coursekb-prod",
		"*Removed (1)*", "• Old intro — Go from zero › Module 1",
		"*Awaiting media (2)*", "Generics", "Bonus: tooling",
		"run run-1 · started 2026-03-02 10:00 UTC · finished 2026-03-02 10:01 UTC",
	)
	// Lists follow the course's order; a lesson is in one list only.
	text := digest.AllText()
	if n := strings.Count(text, "|Generics>"); n != 1 {
		t.Errorf("Generics listed %d times:\n%s", n, text)
	}
	if strings.Index(text, "Variables") > strings.Index(text, "|Functions>") {
		t.Errorf("synced lessons out of course order:\n%s", text)
	}

	// The same digest by e-mail, as text and HTML.
	mails := f.smtp.Messages()
	if len(mails) != 2 {
		t.Fatalf("%d e-mails, want alert + digest", len(mails))
	}
	m := mails[1]
	if m.Subject != "Course knowledge: 2 synced, 1 failed, 1 removed" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.From != "notifier@coursekb.example" || strings.Join(m.To, ",") != "ops@school.example,producer@school.example" {
		t.Errorf("envelope from %s to %v", m.From, m.To)
	}
	if id := m.Header.Get("Message-ID"); !strings.HasPrefix(id, "<notify.") || !strings.HasSuffix(id, "@coursekb.example>") || id == mails[0].Header.Get("Message-ID") {
		t.Errorf("Message-ID %q (alert's %q)", id, mails[0].Header.Get("Message-ID"))
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(f.clock.Now().Truncate(time.Second)) {
		t.Errorf("Date %v (%v)", d, err)
	}
	contains(t, "e-mail text", m.Text,
		"Detection run run-1: 2 lessons synced", "Synced (2)", "  - Variables & types — Go from zero › Module 1 · v1",
		"    https://goschool.club.hotmart.com/lesson/Vars", "Goroutines — transcribe failed: audio track missing",
		"Awaiting media (2)")
	contains(t, "e-mail HTML", m.HTML,
		`<a href="https://goschool.club.hotmart.com/lesson/Vars">Variables &amp; types</a>`, "<h3>Failed (1)</h3>")

	rec := f.record(notify.DigestKey("run-1"))
	if rec.State != notify.StateSent || rec.Channels[notify.ChannelSlack].State != notify.StateSent || rec.Channels[notify.ChannelEmail].State != notify.StateSent {
		t.Errorf("digest record %+v", rec)
	}

	// Later events of the run — a redelivery, a late duplicate — send
	// nothing more.
	f.mustHandle(last)
	f.mustHandle(varsSynced)
	if got := len(f.slack.Messages()); got != 2 {
		t.Errorf("%d Slack messages after more events of a digested run, want 2", got)
	}
}

// Every lesson of a run may settle before the run records its end (a
// removal settles at once). The event that finds it so asks for a
// redelivery instead of sending a digest that more lessons could still
// join; once the run records its end, the redelivery sends it. A run that
// never records an end (its detector died) gets its digest RunWait after
// its start, saying so.
func TestDigestWaitsForTheRunToEnd(t *testing.T) {
	f := newFixture(t, fixtureOpts{runWait: 10 * time.Minute})
	f.putCourse()
	f.saveRun(lessonstate.Run{ID: "run-0", StartedAt: t0, FinishedAt: t0, Outcome: "complete"})
	f.detect("run-0", "A", "Lesson A", lessonstate.MediaReady, 1, 1)
	f.detect("run-0", "B", "Lesson B", lessonstate.MediaReady, 1, 2)

	f.saveRun(lessonstate.Run{ID: "run-2", StartedAt: f.clock.Now()})
	removedA := lessonEvent(t, "m-a", f.remove("A", "run-2"))
	err := f.handle(removedA)
	if err == nil || failure.IsPermanent(err) {
		t.Fatalf("settled run still detecting: err = %v, want a retryable error", err)
	}
	if n := len(f.slack.Messages()); n != 0 {
		t.Fatalf("%d messages while the run is still detecting", n)
	}
	f.clock.Advance(time.Minute)
	f.saveRun(lessonstate.Run{ID: "run-2", StartedAt: t0, FinishedAt: f.clock.Now(), Outcome: "complete", Counts: lessonstate.Counts{Removed: 1, Unchanged: 1}})
	f.mustHandle(removedA)
	if msgs := f.slack.Messages(); len(msgs) != 1 || !strings.Contains(msgs[0].AllText(), "Lesson A") {
		t.Fatalf("after the run ended: %d messages, want its digest", len(msgs))
	}

	// A run whose detector died: waited for, then reported as such.
	f.saveRun(lessonstate.Run{ID: "run-3", StartedAt: f.clock.Now()})
	removedB := lessonEvent(t, "m-b", f.remove("B", "run-3"))
	if err := f.handle(removedB); err == nil {
		t.Fatal("run-3 still within its wait: want a retryable error")
	}
	f.clock.Advance(10 * time.Minute)
	f.mustHandle(removedB)
	msgs := f.slack.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want run-3's digest after the wait", len(msgs))
	}
	contains(t, "digest of a run with no end", msgs[1].AllText(), "run run-3", "the run recorded no end", "*Run outcome*\nunrecorded")
}

// A run that changed no lesson (or whose lessons a later run took over)
// sends no digest.
func TestRunThatChangedNothingSendsNoDigest(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.putCourse()
	f.saveRun(lessonstate.Run{ID: "run-5", StartedAt: t0, FinishedAt: t0, Outcome: "complete"})
	f.detect("run-5", "C", "Lesson C", lessonstate.MediaReady, 1, 1)
	ev := f.sync("C")
	// A later run changes the lesson again before the event arrives.
	f.saveRun(lessonstate.Run{ID: "run-6", StartedAt: t0})
	f.detect("run-6", "C", "Lesson C, renamed", lessonstate.MediaReady, 1, 1)
	f.mustHandle(lessonEvent(t, "m-c", ev))
	if n := len(f.slack.Messages()); n != 0 {
		t.Fatalf("%d messages for a run with no lesson left, want none", n)
	}
	if len(f.logs.lines(t, "run changed no lesson")) != 1 {
		t.Error("no log line says why no digest was sent")
	}
}

// Settle decides, lesson by lesson, whether a run's digest may go out.
func TestSettle(t *testing.T) {
	at := func(state string, v int) lessonstate.Stage { return lessonstate.Stage{State: state, Version: v} }
	cases := []struct {
		name  string
		l     lessonstate.Lesson
		want  notify.Settlement
		stage string
	}{
		{"removed", lessonstate.Lesson{Version: 2, Removed: true, MediaStatus: lessonstate.MediaReady}, notify.SettledRemoved, ""},
		{"synced", lessonstate.Lesson{Version: 2, MediaStatus: lessonstate.MediaReady,
			Stages: map[string]lessonstate.Stage{lessonstate.StageSync: at(lessonstate.StateDone, 2)}}, notify.SettledSynced, ""},
		{"synced an older version only", lessonstate.Lesson{Version: 3, MediaStatus: lessonstate.MediaReady,
			Stages: map[string]lessonstate.Stage{lessonstate.StageSync: at(lessonstate.StateDone, 2)}}, notify.InFlight, ""},
		{"branch failed", lessonstate.Lesson{Version: 1, MediaStatus: lessonstate.MediaReady,
			Stages: map[string]lessonstate.Stage{lessonstate.StageAnalyze: at(lessonstate.StateFailed, 1), lessonstate.StepProcess: at(lessonstate.StateFailed, 1)}},
			notify.SettledFailed, lessonstate.StageAnalyze},
		{"failed an older version", lessonstate.Lesson{Version: 2, MediaStatus: lessonstate.MediaReady,
			Stages: map[string]lessonstate.Stage{lessonstate.StageEnrich: at(lessonstate.StateFailed, 1)}}, notify.InFlight, ""},
		{"sync skipped", lessonstate.Lesson{Version: 1, MediaStatus: lessonstate.MediaReady,
			Stages: map[string]lessonstate.Stage{lessonstate.StageSync: at(lessonstate.StateSkipped, 1)}}, notify.SettledSkipped, ""},
		{"awaiting media", lessonstate.Lesson{Version: 1, MediaStatus: lessonstate.MediaAwaiting}, notify.SettledAwaiting, ""},
		{"no media", lessonstate.Lesson{Version: 1, MediaStatus: lessonstate.MediaNone}, notify.SettledNoMedia, ""},
		{"running", lessonstate.Lesson{Version: 1, MediaStatus: lessonstate.MediaReady,
			Stages: map[string]lessonstate.Stage{lessonstate.StageEnrich: at(lessonstate.StateRunning, 1)}}, notify.InFlight, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, stage := notify.Settle(c.l)
			if got != c.want || stage != c.stage {
				t.Errorf("Settle = %q, %q; want %q, %q", got, stage, c.want, c.stage)
			}
		})
	}
}

// A digest of a large run stays within Slack's Block Kit limits (the local
// webhook refuses what Slack would), naming the first lessons of each list
// and counting the rest.
func TestLargeDigestFitsSlack(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.putCourse()
	f.saveRun(lessonstate.Run{ID: "run-big", StartedAt: t0})
	var last events.LessonEvent
	for i := range 40 {
		id := fmt.Sprintf("L%02d", i)
		f.detect("run-big", id, strings.Repeat("A long lesson title ", 8)+id, lessonstate.MediaReady, 1+i/10, i%10)
		last = f.sync(id)
	}
	f.saveRun(lessonstate.Run{ID: "run-big", StartedAt: t0, FinishedAt: t0.Add(time.Minute), Outcome: "complete", Counts: lessonstate.Counts{New: 40}})
	f.mustHandle(lessonEvent(t, "m-big", last))
	msgs := f.slack.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want the digest (Slack answers: %+v)", len(msgs), f.slack.Requests())
	}
	contains(t, "large digest", msgs[0].AllText(), "*Synced (40)*", "more_")
}
