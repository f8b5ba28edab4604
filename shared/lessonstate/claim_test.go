package lessonstate

import (
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
)

// Many deliveries of one message race for a stage: one owns it, the rest see
// a live lease.
func TestClaimConcurrent(t *testing.T) {
	s, _, _ := newStore(t)
	create(t, s, "L1")
	const n = 8
	var (
		wg       sync.WaitGroup
		outcomes = make([]ClaimOutcome, n)
		errs     = make([]error, n)
		tokens   = make([]string, n)
	)
	for i := range n {
		wg.Go(func() {
			c, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Minute)
			outcomes[i], errs[i], tokens[i] = c.Outcome, err, c.Token
		})
	}
	wg.Wait()
	claimed, busy := 0, 0
	var token string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		switch outcomes[i] {
		case Claimed:
			claimed++
			token = tokens[i]
		case Busy:
			busy++
		default:
			t.Errorf("claim %d: outcome %v", i, outcomes[i])
		}
	}
	if claimed != 1 || busy != n-1 {
		t.Fatalf("claimed %d, busy %d; want 1 and %d", claimed, busy, n-1)
	}
	rec := mustLesson(t, s, "L1").Stages[StageDownload]
	if rec.State != StateRunning || rec.Token != token || rec.Attempts != 1 || !rec.LeaseUntil.Equal(t0.Add(time.Minute)) {
		t.Fatalf("stored record %+v, want running with the winner's token, attempt 1, lease to %v", rec, t0.Add(time.Minute))
	}
}

func TestClaimOutcomes(t *testing.T) {
	s, client, _ := newStore(t)
	create(t, s, "done")
	runStage(t, s, "done", StageDownload, 1)

	create(t, s, "bumped") // v1, then a title change makes v2
	if _, _, err := s.ApplyDetected(t.Context(), "bumped", observed("Intro, revised", "video-1")); err != nil {
		t.Fatal(err)
	}
	create(t, s, "removed")
	if _, err := s.MarkRemoved(t.Context(), "removed", "run-2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApplyDetected(t.Context(), "nomedia", observed("Quiz", "")); err != nil {
		t.Fatal(err)
	}
	create(t, s, "fresh")

	tests := []struct {
		name    string
		id      string
		stage   string
		version int
		want    ClaimOutcome
		wantErr error
	}{
		{"duplicate delivery after complete", "done", StageDownload, 1, AlreadyDone, nil},
		{"older version", "bumped", StageEnrich, 1, Stale, nil},
		{"current version after bump", "bumped", StageEnrich, 2, Claimed, nil},
		{"newer than the document", "fresh", StageDownload, 2, 0, ErrVersionAhead},
		{"removed lesson", "removed", StageSync, 1, Stale, nil},
		{"no media", "nomedia", StageDownload, 1, Skipped, nil},
		{"no media, later stage", "nomedia", StageTranscribe, 1, Skipped, nil},
		{"missing lesson", "nope", StageDownload, 1, 0, ErrNotFound},
		{"pending", "fresh", StageDownload, 1, Claimed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr != nil {
				_, err := s.Claim(t.Context(), tt.id, tt.stage, tt.version, time.Minute)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			before := updateTime(t, client, CollLessons, tt.id)
			c, err := s.Claim(t.Context(), tt.id, tt.stage, tt.version, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if c.Outcome != tt.want {
				t.Fatalf("outcome %v, want %v", c.Outcome, tt.want)
			}
			after := updateTime(t, client, CollLessons, tt.id)
			if wrote := !after.Equal(before); wrote != (tt.want == Claimed) {
				t.Fatalf("document written = %v for outcome %v", wrote, c.Outcome)
			}
			if tt.want == Claimed && (c.Token == "" || c.Stage.Token != c.Token || c.Lesson.Stages[tt.stage].Token != c.Token) {
				t.Fatalf("claim %+v lacks its token", c)
			}
			if tt.want != Claimed && c.Token != "" {
				t.Fatalf("outcome %v came with token %q", c.Outcome, c.Token)
			}
		})
	}
}

func TestClaimUnknownStage(t *testing.T) {
	s, _, _ := newStore(t)
	create(t, s, "L1")
	if _, err := s.Claim(t.Context(), "L1", "transcode", 1, time.Minute); err == nil {
		t.Fatal("claim of an unknown stage succeeded")
	}
}

func TestCompleteRecordsOutputs(t *testing.T) {
	s, client, clk := newStore(t)
	create(t, s, "L1")
	c, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	outputs := map[string]string{"object": "gs://raw/lessons/L1/v1/source.mp4"}
	if err := s.Complete(t.Context(), "L1", StageDownload, 1, c.Token, outputs); err != nil {
		t.Fatal(err)
	}
	rec := mustLesson(t, s, "L1").Stages[StageDownload]
	if rec.State != StateDone || rec.Outputs["object"] != outputs["object"] || !rec.FinishedAt.Equal(t0.Add(10*time.Second)) ||
		!rec.LeaseUntil.IsZero() || !rec.StartedAt.Equal(t0) || rec.Version != 1 || rec.Attempts != 1 {
		t.Fatalf("record after complete: %+v", rec)
	}
	// A repeated Complete (reply lost) changes nothing; a duplicate delivery
	// finds the stage done and changes nothing either.
	before := updateTime(t, client, CollLessons, "L1")
	if err := s.Complete(t.Context(), "L1", StageDownload, 1, c.Token, outputs); err != nil {
		t.Fatalf("repeated complete: %v", err)
	}
	if got, err := s.Claim(t.Context(), "L1", StageDownload, 1, time.Minute); err != nil || got.Outcome != AlreadyDone {
		t.Fatalf("duplicate delivery: %v, %v", got.Outcome, err)
	}
	if after := updateTime(t, client, CollLessons, "L1"); !after.Equal(before) {
		t.Fatalf("document rewritten: update time %v -> %v", before, after)
	}
	if err := s.Complete(t.Context(), "L1", StageDownload, 1, "someone-else", outputs); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("complete with a foreign token: %v, want ErrLeaseLost", err)
	}
}

// A lease that ran out is taken over; the first owner can no longer write.
func TestLeaseExpiry(t *testing.T) {
	s, _, clk := newStore(t)
	create(t, s, "L1")
	first, err := s.Claim(t.Context(), "L1", StageTranscribe, 1, time.Minute)
	if err != nil || first.Outcome != Claimed {
		t.Fatalf("first claim: %v, %v", first.Outcome, err)
	}
	clk.Advance(59 * time.Second)
	if c, err := s.Claim(t.Context(), "L1", StageTranscribe, 1, time.Minute); err != nil || c.Outcome != Busy {
		t.Fatalf("claim within the lease: %v, %v; want busy", c.Outcome, err)
	}
	clk.Advance(2 * time.Second)
	second, err := s.Claim(t.Context(), "L1", StageTranscribe, 1, time.Minute)
	if err != nil || second.Outcome != Claimed {
		t.Fatalf("claim after the lease: %v, %v; want claimed", second.Outcome, err)
	}
	if second.Token == first.Token {
		t.Fatal("takeover kept the old token")
	}
	if second.Stage.Attempts != 2 || !second.Stage.StartedAt.Equal(clk.Now()) {
		t.Fatalf("takeover record %+v, want attempt 2 started now", second.Stage)
	}
	if err := s.Complete(t.Context(), "L1", StageTranscribe, 1, first.Token, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("old owner's complete: %v, want ErrLeaseLost", err)
	}
	if _, err := s.Fail(t.Context(), "L1", StageTranscribe, 1, first.Token, "late", true); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("old owner's fail: %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(t.Context(), "L1", StageTranscribe, 1, second.Token, map[string]string{"n": "1"}); err != nil {
		t.Fatalf("new owner's complete: %v", err)
	}
}

func TestFail(t *testing.T) {
	s, _, _ := newStore(t, WithMaxAttempts(2))
	create(t, s, "L1")
	ctx := t.Context()

	c1, err := s.Claim(ctx, "L1", StageAnalyze, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Fail(ctx, "L1", StageAnalyze, 1, c1.Token, "gemini 503", true)
	if err != nil || f.State != StatePending || f.Announce != nil {
		t.Fatalf("retryable fail below max: %+v, %v; want pending, nothing announced", f, err)
	}
	rec := mustLesson(t, s, "L1").Stages[StageAnalyze]
	if rec.State != StatePending || rec.Error != "gemini 503" || rec.Token != "" || !rec.LeaseUntil.IsZero() {
		t.Fatalf("record after retryable fail: %+v", rec)
	}
	// The redelivery claims it at once, though the lease had not run out.
	c2, err := s.Claim(ctx, "L1", StageAnalyze, 1, time.Minute)
	if err != nil || c2.Outcome != Claimed || c2.Stage.Attempts != 2 || c2.Stage.Error != "" {
		t.Fatalf("claim after retryable fail: %v %+v %v", c2.Outcome, c2.Stage, err)
	}
	f, err = s.Fail(ctx, "L1", StageAnalyze, 1, c2.Token, "gemini 503 again", true)
	if err != nil || f.State != StateFailed {
		t.Fatalf("retryable fail at max attempts: %+v, %v; want failed", f, err)
	}
	if a := f.Announce; a == nil || a.Kind != events.KindFailed || a.From != StageAnalyze || a.Reason != "gemini 503 again" || a.Version != 1 {
		t.Fatalf("announcement of the final failure: %+v", f.Announce)
	}
	rec = mustLesson(t, s, "L1").Stages[StageAnalyze]
	if rec.State != StateFailed || rec.Error != "gemini 503 again" || rec.FinishedAt.IsZero() || rec.Attempts != 2 {
		t.Fatalf("record after final fail: %+v", rec)
	}
	if c, err := s.Claim(ctx, "L1", StageAnalyze, 1, time.Minute); err != nil || c.Outcome != AlreadyFailed {
		t.Fatalf("claim after final fail: %v, %v; want already-failed", c.Outcome, err)
	}

	// A permanent failure is final on the first attempt.
	c3, err := s.Claim(ctx, "L1", StageDownload, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := s.Fail(ctx, "L1", StageDownload, 1, c3.Token, "checksum mismatch", false); err != nil || f.State != StateFailed {
		t.Fatalf("permanent fail: %+v, %v; want failed", f, err)
	}
	if _, err := s.Fail(ctx, "L1", StageDownload, 1, c3.Token, "again", false); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fail of a finished stage: %v, want ErrLeaseLost", err)
	}
}

// The usage a stage paid for goes to the cost ledger in the write that
// completes it, so it is counted exactly once: a Complete that lost the
// claim adds nothing, and a repeated Complete (its reply lost) adds nothing
// again. The ledger adds to what is there, as separate records of usage do.
func TestCompleteWithUsageCountsOnce(t *testing.T) {
	s, _, _ := newStore(t)
	create(t, s, "L1")
	if err := s.RecordUsage(t.Context(), "L1", map[string]float64{"speech.chirp_3.seconds": 10}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim(t.Context(), "L1", StageTranscribe, 1, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Fatalf("claim: %v, %v", c.Outcome, err)
	}
	usage := map[string]float64{"speech.chirp_3.seconds": 93.5, "gemini.m.input_tokens": 1200, "gemini.m.output_tokens": 0}
	out := map[string]string{"uri": "gs://a/t.json"}

	if err := s.CompleteWithUsage(t.Context(), "L1", StageTranscribe, 1, "someone-else", out, usage); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("complete with a foreign token: %v, want ErrLeaseLost", err)
	}
	if got := mustLesson(t, s, "L1").Usage; !maps.Equal(got, map[string]float64{"speech.chirp_3.seconds": 10}) {
		t.Fatalf("usage after a complete that lost the claim: %v, want only what was there", got)
	}

	for range 2 {
		if err := s.CompleteWithUsage(t.Context(), "L1", StageTranscribe, 1, c.Token, out, usage); err != nil {
			t.Fatal(err)
		}
	}
	l := mustLesson(t, s, "L1")
	want := map[string]float64{"speech.chirp_3.seconds": 103.5, "gemini.m.input_tokens": 1200}
	if !maps.Equal(l.Usage, want) {
		t.Errorf("usage %v, want %v (once, zero meters left out)", l.Usage, want)
	}
	if rec := l.Stages[StageTranscribe]; rec.State != StateDone || rec.Outputs["uri"] != out["uri"] {
		t.Errorf("record %+v", rec)
	}
}

// Progress and its cost are written together: a Note with usage adds it
// once per call, and one that lost the claim adds nothing.
func TestNoteWithUsage(t *testing.T) {
	s, _, _ := newStore(t)
	create(t, s, "L1")
	c, err := s.Claim(t.Context(), "L1", StageAnalyze, 1, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Fatalf("claim: %v, %v", c.Outcome, err)
	}
	window := map[string]float64{"gemini.m.input_tokens": 500, "gemini.m.output_tokens": 40}
	for i, w := range []string{"1/3", "2/3"} {
		rec, err := s.NoteWithUsage(t.Context(), "L1", StageAnalyze, 1, c.Token, map[string]string{"windows": w}, time.Minute, window)
		if err != nil || rec.Outputs["windows"] != w {
			t.Fatalf("note %d: %+v, %v", i+1, rec, err)
		}
	}
	if _, err := s.NoteWithUsage(t.Context(), "L1", StageAnalyze, 1, "someone-else", nil, 0, window); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("note with a foreign token: %v, want ErrLeaseLost", err)
	}
	l := mustLesson(t, s, "L1")
	if want := map[string]float64{"gemini.m.input_tokens": 1000, "gemini.m.output_tokens": 80}; !maps.Equal(l.Usage, want) {
		t.Errorf("usage %v, want %v: two windows noted", l.Usage, want)
	}
	if rec := l.Stages[StageAnalyze]; rec.State != StateRunning || rec.Outputs["windows"] != "2/3" {
		t.Errorf("record %+v", rec)
	}
}
