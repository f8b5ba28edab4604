package lessonstate

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
)

// due lists the lessons the sweeper's query finds now.
func due(t *testing.T, s *Store) []string {
	t.Helper()
	ids, err := s.DueForSweep(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func sweep(t *testing.T, s *Store, id string) *Swept {
	t.Helper()
	sw, err := s.Sweep(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// A claimed step whose owner died is found once its lease has ended, put
// back to pending and its event queued again; the next claim is attempt 2.
func TestSweepRedrivesExpiredLease(t *testing.T) {
	s, _, clk := newStore(t)
	create(t, s, "L1")
	c, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Fatal(c.Outcome, err)
	}
	if l := mustLesson(t, s, "L1"); !l.NextCheckAt.Equal(c.Stage.LeaseUntil) {
		t.Fatalf("next check %v, want the lease end %v", l.NextCheckAt, c.Stage.LeaseUntil)
	}
	if ids := due(t, s); len(ids) != 0 {
		t.Fatalf("due while the lease is live: %v", ids)
	}

	clk.Advance(time.Minute + time.Second)
	if ids := due(t, s); len(ids) != 1 || ids[0] != "L1" {
		t.Fatalf("due after the lease: %v", ids)
	}
	sw := sweep(t, s, "L1")
	if sw == nil || sw.Action != SweepRedriven || sw.Step != StageDownload || sw.Entry == nil {
		t.Fatalf("sweep: %+v", sw)
	}
	if sw.Entry.Topic != events.TopicLessonDiscovered {
		t.Fatalf("re-driven on %s, want %s", sw.Entry.Topic, events.TopicLessonDiscovered)
	}
	ev, err := sw.Entry.Event()
	if err != nil || ev.LessonID != "L1" || ev.Version != 1 || ev.From != StageDownload {
		t.Fatalf("re-driven event %+v, %v", ev, err)
	}
	l := mustLesson(t, s, "L1")
	rec := l.Stages[StageDownload]
	if rec.State != StatePending || rec.Redrives != 1 || rec.Attempts != 1 || rec.Token != "" || rec.Error == "" {
		t.Fatalf("record after the re-drive: %+v", rec)
	}
	if !l.NextCheckAt.Equal(clk.Now().Add(DefaultPendingAfter)) {
		t.Fatalf("next check %v, want the pending wait from now", l.NextCheckAt)
	}
	pending, err := s.PendingOutbox(t.Context())
	if err != nil || len(pending) != 1 || len(pending[0].Outbox) != 1 || pending[0].Outbox[0].Topic != events.TopicLessonDiscovered {
		t.Fatalf("outbox after the re-drive: %+v, %v", pending, err)
	}
	// Swept again at once: nothing is due, nothing happens.
	if sw := sweep(t, s, "L1"); sw != nil {
		t.Fatalf("second sweep acted: %+v", sw)
	}
	c2, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Minute)
	if err != nil || c2.Outcome != Claimed || c2.Stage.Attempts != 2 {
		t.Fatalf("claim after the re-drive: %v %+v %v", c2.Outcome, c2.Stage, err)
	}
}

// Work whose event was sent but never taken (lost, dead-lettered, refused
// before any claim) is sent again after the pending wait, and failed once it
// has been sent as often as a stage may be tried.
func TestSweepRedrivesPendingThenFails(t *testing.T) {
	s, _, clk := newStore(t, WithMaxAttempts(2), WithPendingAfter(time.Minute))
	create(t, s, "L1")
	for i := 1; i <= 2; i++ {
		clk.Advance(time.Minute)
		sw := sweep(t, s, "L1")
		if sw == nil || sw.Action != SweepRedriven {
			t.Fatalf("sweep %d: %+v", i, sw)
		}
		if got := mustLesson(t, s, "L1").Stages[StageDownload].Redrives; got != i {
			t.Fatalf("re-drives after sweep %d: %d", i, got)
		}
	}
	clk.Advance(time.Minute)
	sw := sweep(t, s, "L1")
	if sw == nil || sw.Action != SweepFailed || sw.Entry == nil || sw.Entry.Topic != events.TopicLessonEvents {
		t.Fatalf("sweep out of re-drives: %+v", sw)
	}
	ev, _ := sw.Entry.Event()
	if ev.Kind != events.KindFailed || ev.From != StageDownload || ev.Reason == "" {
		t.Fatalf("announcement %+v", ev)
	}
	l := mustLesson(t, s, "L1")
	if rec := l.Stages[StageDownload]; rec.State != StateFailed || rec.Error != ev.Reason {
		t.Fatalf("record %+v", rec)
	}
	if !l.NextCheckAt.IsZero() {
		t.Fatalf("a failed lesson is still checked at %v", l.NextCheckAt)
	}
	if ids := due(t, s); len(ids) != 0 {
		t.Fatalf("due after failing: %v", ids)
	}
}

// A step whose every attempt died holding its lease is failed with the last
// reason once it is out of attempts: the sweeper does not try it forever.
func TestSweepFailsExpiredLeaseOutOfAttempts(t *testing.T) {
	s, _, clk := newStore(t, WithMaxAttempts(2))
	create(t, s, "L1")
	for attempt := 1; attempt <= 2; attempt++ {
		c, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Minute)
		if err != nil || c.Outcome != Claimed || c.Stage.Attempts != attempt {
			t.Fatalf("claim %d: %v %+v %v", attempt, c.Outcome, c.Stage, err)
		}
		clk.Advance(2 * time.Minute)
		sw := sweep(t, s, "L1")
		want := SweepRedriven
		if attempt == 2 {
			want = SweepFailed
		}
		if sw == nil || sw.Action != want {
			t.Fatalf("sweep after attempt %d: %+v, want %s", attempt, sw, want)
		}
	}
	rec := mustLesson(t, s, "L1").Stages[StageDownload]
	if rec.State != StateFailed || rec.Attempts != 2 {
		t.Fatalf("record %+v", rec)
	}
}

// A lesson whose check time came while its lease is still live (a longer
// lease taken since the query) is only rescheduled.
func TestSweepReschedulesLiveLease(t *testing.T) {
	s, _, clk := newStore(t, WithPendingAfter(time.Minute))
	create(t, s, "L1")
	clk.Advance(time.Minute)
	ids := due(t, s)
	if len(ids) != 1 {
		t.Fatalf("due: %v", ids)
	}
	c, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Hour)
	if err != nil || c.Outcome != Claimed {
		t.Fatal(c.Outcome, err)
	}
	if sw := sweep(t, s, "L1"); sw != nil {
		t.Fatalf("the claim moved the check time; the sweep must see it: %+v", sw)
	}
	if rec := mustLesson(t, s, "L1").Stages[StageDownload]; rec.State != StateRunning || rec.Token != c.Token {
		t.Fatalf("record %+v", rec)
	}
}

// Sweepers running at once act on a lesson once.
func TestSweepConcurrent(t *testing.T) {
	s, _, clk := newStore(t, WithPendingAfter(time.Minute))
	create(t, s, "L1")
	clk.Advance(time.Minute)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acted int
	)
	for range 6 {
		wg.Go(func() {
			sw, err := s.Sweep(t.Context(), "L1")
			if err != nil {
				t.Error(err)
				return
			}
			if sw != nil {
				mu.Lock()
				acted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if acted != 1 {
		t.Fatalf("%d sweeps acted, want 1", acted)
	}
	if rec := mustLesson(t, s, "L1").Stages[StageDownload]; rec.Redrives != 1 {
		t.Fatalf("re-drives %d, want 1", rec.Redrives)
	}
}

// The query finds due lessons oldest first and no more than asked; a
// finished lesson is never found.
func TestDueForSweepOrderAndLimit(t *testing.T) {
	s, _, clk := newStore(t, WithPendingAfter(time.Minute))
	for _, id := range []string{"A", "B", "C"} {
		create(t, s, id)
		clk.Advance(time.Second)
	}
	for _, st := range Steps {
		runStage(t, s, "B", st, 1)
	}
	clk.Advance(time.Hour)
	ids, err := s.DueForSweep(t.Context(), 1)
	if err != nil || len(ids) != 1 || ids[0] != "A" {
		t.Fatalf("first due: %v, %v", ids, err)
	}
	if ids := due(t, s); len(ids) != 2 || ids[0] != "A" || ids[1] != "C" {
		t.Fatalf("due: %v", ids)
	}
}

// The process step is done when both branches are, and its completion makes
// enrich the step the lesson waits on.
func TestProcessJoin(t *testing.T) {
	s, _, clk := newStore(t)
	create(t, s, "L1")
	runStage(t, s, "L1", StageDownload, 1)
	p, err := s.Claim(t.Context(), "L1", StepProcess, 1, time.Hour)
	if err != nil || p.Outcome != Claimed {
		t.Fatal(p.Outcome, err)
	}
	runStage(t, s, "L1", StageTranscribe, 1)
	if rec := mustLesson(t, s, "L1").Stages[StepProcess]; rec.State != StateRunning {
		t.Fatalf("process after one branch: %+v", rec)
	}
	clk.Advance(time.Second)
	runStage(t, s, "L1", StageAnalyze, 1)
	l := mustLesson(t, s, "L1")
	if rec := l.Stages[StepProcess]; rec.State != StateDone || !rec.FinishedAt.Equal(clk.Now()) {
		t.Fatalf("process after both branches: %+v", rec)
	}
	if step, _, ok := l.Due(); !ok || step != StageEnrich {
		t.Fatalf("due %q %v, want enrich", step, ok)
	}
	if !l.NextCheckAt.Equal(clk.Now().Add(DefaultPendingAfter)) {
		t.Fatalf("next check %v", l.NextCheckAt)
	}
}

// A branch failing for good fails the process step and announces it once;
// failing retryably sends the process step back to pending for a new
// execution.
func TestProcessBranchFailure(t *testing.T) {
	s, _, _ := newStore(t, WithMaxAttempts(2))
	create(t, s, "L1")
	runStage(t, s, "L1", StageDownload, 1)
	claim := func(stage string) Claim {
		t.Helper()
		c, err := s.Claim(t.Context(), "L1", stage, 1, time.Hour)
		if err != nil || c.Outcome != Claimed {
			t.Fatalf("claim %s: %v %v", stage, c.Outcome, err)
		}
		return c
	}
	claim(StepProcess)
	tr := claim(StageTranscribe)
	f, err := s.Fail(t.Context(), "L1", StageTranscribe, 1, tr.Token, "speech 503", true)
	if err != nil || f.State != StatePending {
		t.Fatalf("retryable: %+v %v", f, err)
	}
	if rec := mustLesson(t, s, "L1").Stages[StepProcess]; rec.State != StatePending || rec.Error != "transcribe: speech 503" {
		t.Fatalf("process after a retryable branch failure: %+v", rec)
	}
	claim(StepProcess)
	tr = claim(StageTranscribe)
	f, err = s.Fail(t.Context(), "L1", StageTranscribe, 1, tr.Token, "no audio track", false)
	if err != nil || f.State != StateFailed || f.Announce == nil || f.Announce.From != StageTranscribe {
		t.Fatalf("permanent: %+v %v", f, err)
	}
	l := mustLesson(t, s, "L1")
	if rec := l.Stages[StepProcess]; rec.State != StateFailed || rec.Error != "transcribe: no audio track" {
		t.Fatalf("process after a permanent branch failure: %+v", rec)
	}
	if _, _, ok := l.Due(); ok || !l.NextCheckAt.IsZero() {
		t.Fatalf("a failed lesson still waits: next check %v", l.NextCheckAt)
	}
}

// A branch that fails for good while the process step waits pending (its
// last attempt failed retryably, the sweeper has not re-driven it yet)
// fails the process step too: re-driven, it would run an execution whose
// branch is failed already, and stay running until its lease ends.
func TestBranchFailingForGoodFailsAPendingProcess(t *testing.T) {
	s, _, _ := newStore(t, WithMaxAttempts(5))
	create(t, s, "L1")
	runStage(t, s, "L1", StageDownload, 1)
	claim := func(stage string) Claim {
		t.Helper()
		c, err := s.Claim(t.Context(), "L1", stage, 1, time.Hour)
		if err != nil || c.Outcome != Claimed {
			t.Fatalf("claim %s: %v %v", stage, c.Outcome, err)
		}
		return c
	}
	claim(StepProcess)
	tr := claim(StageTranscribe)
	if f, err := s.Fail(t.Context(), "L1", StageTranscribe, 1, tr.Token, "speech 429", true); err != nil || f.State != StatePending {
		t.Fatalf("retryable: %+v %v", f, err)
	}
	// The workflow gives up for good before the sweeper re-drives.
	tr = claim(StageTranscribe)
	f, err := s.Fail(t.Context(), "L1", StageTranscribe, 1, tr.Token, "polling window over", false)
	if err != nil || f.State != StateFailed || f.Announce == nil {
		t.Fatalf("permanent: %+v %v", f, err)
	}
	l := mustLesson(t, s, "L1")
	if rec := l.Stages[StepProcess]; rec.State != StateFailed || rec.Error != "transcribe: polling window over" {
		t.Fatalf("pending process after its branch failed for good: %+v", rec)
	}
	if _, _, ok := l.Due(); ok || !l.NextCheckAt.IsZero() {
		t.Fatalf("the failed lesson still waits for the sweeper: next check %v", l.NextCheckAt)
	}
	if c, err := s.Claim(t.Context(), "L1", StepProcess, 1, time.Hour); err != nil || c.Outcome != AlreadyFailed {
		t.Errorf("a re-drive of the process step: %v %v, want already-failed", c.Outcome, err)
	}
}

// A replay from a stage resets it and every stage after it, at the current
// version, and queues the event that starts there; the stages before keep
// what they did.
func TestReplayResetsFromTheStage(t *testing.T) {
	s, _, _ := newStore(t)
	create(t, s, "L1")
	for _, st := range []string{StageDownload, StepProcess, StageTranscribe, StageAnalyze, StageEnrich, StageSync} {
		runStage(t, s, "L1", st, 1)
	}
	ev, err := s.Replay(t.Context(), "L1", StageTranscribe, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Version != 1 || ev.From != StageTranscribe {
		t.Fatalf("replay event %+v", ev)
	}
	l := mustLesson(t, s, "L1")
	want := map[string]string{
		StageDownload: StateDone, StageAnalyze: StateDone,
		StepProcess: StatePending, StageTranscribe: StatePending, StageEnrich: StatePending, StageSync: StatePending,
	}
	for st, state := range want {
		if rec := l.Stages[st]; rec.State != state || rec.Version != 1 || (state == StatePending && (rec.Attempts != 0 || rec.Outputs != nil)) {
			t.Errorf("%s after the replay: %+v, want %s", st, rec, state)
		}
	}
	pending, err := s.PendingOutbox(t.Context())
	if err != nil || len(pending) != 1 || pending[0].Outbox[len(pending[0].Outbox)-1].Topic != events.TopicLessonDownloaded {
		t.Fatalf("outbox after the replay: %+v, %v", pending, err)
	}
	if step, _, ok := l.Due(); !ok || step != StepProcess {
		t.Fatalf("due %q %v, want the process step", step, ok)
	}

	if _, err := s.Replay(t.Context(), "L1", "dance", 0); err == nil {
		t.Error("a replay from an unknown stage was accepted")
	}
	if _, err := s.Replay(t.Context(), "L1", StageSync, 7); !errors.Is(err, ErrVersionStale) {
		t.Errorf("a replay of another version: %v, want ErrVersionStale", err)
	}
	if _, err := s.MarkRemoved(t.Context(), "L1", "run-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replay(t.Context(), "L1", StageSync, 0); !errors.Is(err, ErrRemoved) {
		t.Errorf("a replay of a removed lesson: %v, want ErrRemoved", err)
	}
}

// A stage that failed for now waits out a backoff that doubles with each
// attempt: deliveries before its end are answered Busy (the copies of one
// failing message no longer spend every attempt at once), the sweeper
// looks at the lesson exactly when it ends and sends the event again
// without counting a lost event, and the next claim is the next attempt.
func TestRetryableFailureBacksOff(t *testing.T) {
	s, _, clk := newStore(t, WithRetryBackoff(10*time.Second))
	ctx := t.Context()
	create(t, s, "L1")
	for attempt, wait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		c, err := s.Claim(ctx, "L1", StageDownload, 1, time.Minute)
		if err != nil || c.Outcome != Claimed || c.Stage.Attempts != attempt+1 {
			t.Fatalf("attempt %d: claim %v (attempts %d), %v", attempt+1, c.Outcome, c.Stage.Attempts, err)
		}
		if _, err := s.Fail(ctx, "L1", StageDownload, 1, c.Token, "media host answered 503", true); err != nil {
			t.Fatal(err)
		}
		l := mustLesson(t, s, "L1")
		rec := l.Stages[StageDownload]
		if rec.State != StatePending || !rec.NotBefore.Equal(clk.Now().Add(wait)) || !l.NextCheckAt.Equal(rec.NotBefore) {
			t.Fatalf("after attempt %d: %s, not before %v, next check %v; want pending for %s", attempt+1, rec.State, rec.NotBefore, l.NextCheckAt, wait)
		}
		if c, err := s.Claim(ctx, "L1", StageDownload, 1, time.Minute); err != nil || c.Outcome != Busy {
			t.Fatalf("a delivery during the backoff: %v, %v; want Busy", c.Outcome, err)
		}
		clk.Advance(wait - time.Second)
		if ids := due(t, s); len(ids) != 0 {
			t.Fatalf("due before the backoff ended: %v", ids)
		}
		clk.Advance(time.Second)
		sw := sweep(t, s, "L1")
		if sw == nil || sw.Action != SweepRedriven || sw.Entry == nil {
			t.Fatalf("sweep after the backoff: %+v", sw)
		}
		if r := mustLesson(t, s, "L1").Stages[StageDownload]; r.Redrives != 0 || !r.NotBefore.IsZero() {
			t.Fatalf("after the re-drive: redrives %d, not before %v; want 0 and none", r.Redrives, r.NotBefore)
		}
	}
}

// A process branch failing for now holds the process step back, not the
// branch: the process step's new execution must find its branch claimable.
func TestBranchFailureBacksOffTheProcessStep(t *testing.T) {
	s, _, clk := newStore(t, WithRetryBackoff(10*time.Second))
	ctx := t.Context()
	create(t, s, "L1")
	runStage(t, s, "L1", StageDownload, 1)
	p, err := s.Claim(ctx, "L1", StepProcess, 1, time.Hour)
	if err != nil || p.Outcome != Claimed {
		t.Fatal(p.Outcome, err)
	}
	c, err := s.Claim(ctx, "L1", StageTranscribe, 1, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Fatal(c.Outcome, err)
	}
	if _, err := s.Fail(ctx, "L1", StageTranscribe, 1, c.Token, "speech answered 429", true); err != nil {
		t.Fatal(err)
	}
	l := mustLesson(t, s, "L1")
	if pr := l.Stages[StepProcess]; pr.State != StatePending || !pr.NotBefore.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("process step %s, not before %v; want pending for 10s", pr.State, pr.NotBefore)
	}
	if br := l.Stages[StageTranscribe]; br.State != StatePending || !br.NotBefore.IsZero() {
		t.Fatalf("branch %s, not before %v; want pending and claimable", br.State, br.NotBefore)
	}
	if c, err := s.Claim(ctx, "L1", StepProcess, 1, time.Hour); err != nil || c.Outcome != Busy {
		t.Fatalf("a new execution during the backoff: %v, %v; want Busy", c.Outcome, err)
	}
}
