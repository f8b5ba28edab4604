package transcribe_test

import (
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coursekb/pipeline/local/emulators"
	localspeech "github.com/coursekb/pipeline/local/speech"
	"github.com/coursekb/pipeline/shared/audio"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/transcribe"
	tt "github.com/coursekb/pipeline/shared/transcribe/transcribetest"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

// TestMain shares one Firestore and one Pub/Sub emulator among the tests.
func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

// A 22-second lesson cut at most 8 s a segment is recognized in three
// segments by one BatchRecognize, and comes back as one transcript: the
// narration's words once each, in order, on one monotonic timeline that
// covers the lesson, with the record, the ledger and the artifact saying
// the same.
func TestThreeSegmentsMakeOneTimeline(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Vars: map[string]string{"SEGMENT_SECONDS": "8"}})
	id := tt.LessonVars
	video := tt.Video(t, id)
	v := e.Lesson(t, id, video.Path)

	started, err := e.Start(t, id, v)
	if err != nil {
		t.Fatal(err)
	}
	if started.Done || started.Operation == "" || strings.Contains(started.Operation, ",") {
		t.Fatalf("start answered %+v, want one operation in flight", started)
	}
	rec := e.Record(t, id)
	if rec.State != lessonstate.StateRunning || rec.Outputs[transcribe.OutOperation] != started.Operation ||
		rec.Outputs[transcribe.OutSegments] != "3" || rec.Outputs[transcribe.OutModel] != "chirp_3" {
		t.Errorf("record after start: %s %v", rec.State, rec.Outputs)
	}
	segs := e.Objects(t, tt.ArtifactsBucket, "lessons/"+id+"/v1/audio/")
	if len(segs) != 3 {
		t.Fatalf("segments %v, want 3 beside the transcript", segs)
	}
	// Every object finalized in the raw bucket wakes the starter.
	if raw := e.Objects(t, tt.RawBucket, "lessons/"+id+"/v1/audio/"); len(raw) != 0 {
		t.Errorf("segments in the raw bucket: %v", raw)
	}

	done, _, err := e.PollUntilDone(t, id, v, started)
	if err != nil {
		t.Fatal(err)
	}
	wantURI := "gs://" + tt.ArtifactsBucket + "/lessons/" + id + "/v1/transcript.json"
	if !done.Done || done.URI != wantURI {
		t.Fatalf("answer %+v, want done with %s", done, wantURI)
	}
	tr := e.Transcript(t, done.URI)
	want := strings.Fields(tt.Narration(t, id))
	if len(tr.Words) != len(want) {
		t.Fatalf("%d words, the narration has %d:\n%s", len(tr.Words), len(want), tr.Text)
	}
	for i, w := range tr.Words {
		if w.Text != want[i] {
			t.Fatalf("word %d is %q, the narration says %q", i, w.Text, want[i])
		}
		if w.End < w.Start || i > 0 && w.Start < tr.Words[i-1].End {
			t.Fatalf("word %d %q [%.3f, %.3f] goes back in time after %.3f", i, w.Text, w.Start, w.End, tr.Words[i-1].End)
		}
		if w.Speaker != "1" {
			t.Errorf("word %d speaker %q: chirp_3 diarizes Spanish", i, w.Speaker)
		}
	}
	// Words come from all three segments: the timeline runs from the
	// first second to the last.
	first, last := tr.Words[0], tr.Words[len(tr.Words)-1]
	if first.Start > 1 || last.End < video.Duration-1.5 || last.End > video.Duration+0.1 {
		t.Errorf("words span [%.2f, %.2f] of a %.2f s lesson", first.Start, last.End, video.Duration)
	}
	for _, cut := range []float64{video.Duration / 3, 2 * video.Duration / 3} {
		before, after := 0, 0
		for _, w := range tr.Words {
			switch {
			case w.End <= cut:
				before++
			case w.Start >= cut:
				after++
			}
		}
		if before == 0 || after == 0 || before+after < len(tr.Words)-1 {
			t.Errorf("around the cut at %.2f s: %d words before, %d after, of %d", cut, before, after, len(tr.Words))
		}
	}
	if tr.Text != strings.Join(want, " ") || tr.LessonID != id || tr.Version != v {
		t.Errorf("transcript %s v%d text %q", tr.LessonID, tr.Version, tr.Text)
	}
	if tr.Language != "es-ES" || tr.Model != "chirp_3" || tr.Engine != transcribe.EngineLocal {
		t.Errorf("language %q model %q engine %q", tr.Language, tr.Model, tr.Engine)
	}
	if math.Abs(tr.DurationSeconds-video.Duration) > 0.1 || tr.Confidence < 0.85 || tr.Confidence > 0.98 {
		t.Errorf("duration %.3f (video %.3f), confidence %.3f", tr.DurationSeconds, video.Duration, tr.Confidence)
	}
	n := 0
	for i, p := range tr.Paragraphs {
		if p.FirstWord != n || p.LastWord < p.FirstWord {
			t.Errorf("paragraph %d covers words %d..%d, want from %d", i, p.FirstWord, p.LastWord, n)
		}
		n = p.LastWord + 1
	}
	if n != len(tr.Words) {
		t.Errorf("paragraphs cover %d of %d words", n, len(tr.Words))
	}

	rec = e.Record(t, id)
	out := rec.Outputs
	if rec.State != lessonstate.StateDone || out[transcribe.OutURI] != done.URI || out[transcribe.OutAudioSHA256] != tr.AudioSHA256 ||
		out[transcribe.OutModel] != "chirp_3" || out[transcribe.OutEngine] != transcribe.EngineLocal || out[transcribe.OutConfidence] == "" {
		t.Errorf("record: %s %v", rec.State, out)
	}
	usage := e.LessonDoc(t, id).Usage[lessonstate.MeterSpeechSeconds("chirp_3")]
	if math.Abs(usage-video.Duration) > 0.1 {
		t.Errorf("usage %.3f s of chirp_3, want the %.3f s recognized", usage, video.Duration)
	}
	if calls := e.Engine.LessonCalls(id); calls != 1 {
		t.Errorf("%d BatchRecognize calls, want one for the three segments", calls)
	}
	// A poll repeated after the end answers the same, and counts nothing twice.
	again, err := e.Poll(t, id, v, started.Operation)
	if err != nil || !again.Done || again.URI != done.URI {
		t.Errorf("repeated poll: %+v, %v", again, err)
	}
	if u := e.LessonDoc(t, id).Usage[lessonstate.MeterSpeechSeconds("chirp_3")]; u != usage {
		t.Errorf("usage %.3f s after a repeated poll, was %.3f s", u, usage)
	}
}

// A new version of a lesson whose video did not change is not recognized
// again: the audio's hash finds the transcript, copied for the version.
func TestUnchangedAudioIsNotRecognizedAgain(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{})
	id := tt.LessonConds
	video := tt.Video(t, id).Path
	v1 := e.Lesson(t, id, video)
	first := e.Transcribe(t, id, v1)
	used := e.LessonDoc(t, id).Usage

	v2 := e.Lesson(t, id, video) // re-detected: new version, same video
	if v2 != v1+1 {
		t.Fatalf("version %d after %d", v2, v1)
	}
	resp, err := e.Start(t, id, v2)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Done || resp.URI != "gs://"+tt.ArtifactsBucket+"/lessons/"+id+"/v2/transcript.json" {
		t.Fatalf("start of v2 answered %+v, want done with v2's transcript", resp)
	}
	if calls := e.Engine.LessonCalls(id); calls != 1 {
		t.Errorf("%d BatchRecognize calls for the lesson, want only v1's", calls)
	}
	a, b := e.Transcript(t, first.URI), e.Transcript(t, resp.URI)
	if b.Version != v2 || b.LessonID != id || b.Text != a.Text || b.AudioSHA256 != a.AudioSHA256 || len(b.Words) != len(a.Words) {
		t.Errorf("v2 transcript %s v%d (%d words) is not v1's words (%d) for v2", b.LessonID, b.Version, len(b.Words), len(a.Words))
	}
	rec := e.Record(t, id)
	if rec.State != lessonstate.StateDone || rec.Version != v2 || rec.Outputs[transcribe.OutReusedFrom] != first.URI {
		t.Errorf("v2 record %s v%d %v", rec.State, rec.Version, rec.Outputs)
	}
	if got := e.LessonDoc(t, id).Usage; got[lessonstate.MeterSpeechSeconds("chirp_3")] != used[lessonstate.MeterSpeechSeconds("chirp_3")] {
		t.Errorf("usage %v after reuse, was %v: nothing was recognized", got, used)
	}
}

// A recognition that fails for a reason no retry changes fails the stage
// with the service's reason, answers 422 (permanent), and announces the
// failure once; a start after that does not try again.
func TestFailedOperationFailsTheStage(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Speech: localspeech.Options{Faults: []localspeech.Fault{{
		Match:          func(uri string) bool { return strings.Contains(uri, tt.LessonFuncs) },
		WholeOperation: true, Code: codes.InvalidArgument, Message: "audio encoding not understood",
	}}}})
	id := tt.LessonFuncs
	v := e.Lesson(t, id, tt.Video(t, id).Path)
	started, err := e.Start(t, id, v)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.PollUntilDone(t, id, v, started)
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "audio encoding not understood") {
		t.Fatalf("poll: %v, want the operation's permanent failure", err)
	}
	rec := e.Record(t, id)
	if rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, "audio encoding not understood") {
		t.Errorf("record %s %q", rec.State, rec.Error)
	}
	ev := e.WaitAnnounced(t, id)
	if ev.From != lessonstate.StageTranscribe || ev.Version != v || !strings.Contains(ev.Reason, "audio encoding not understood") {
		t.Errorf("announced %+v", ev)
	}
	if _, err := e.Start(t, id, v); err == nil || !failure.IsPermanent(err) {
		t.Errorf("start after the failure: %v, want the recorded permanent failure", err)
	}
	if n := len(e.Announced()); n != 1 {
		t.Errorf("%d announcements, want 1", n)
	}
}

// A recognition that fails for a reason a retry may fix puts the stage
// back to pending (503); the workflow's next poll starts a new recognition
// of the segments already cut, and finishes.
func TestRetryableOperationFailureStartsOver(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Speech: localspeech.Options{Faults: []localspeech.Fault{{
		Match: func(string) bool { return true }, WholeOperation: true, Code: codes.Internal, Message: "backend restarted",
	}}}})
	id := tt.LessonPers
	v := e.Lesson(t, id, tt.Video(t, id).Path)
	started, err := e.Start(t, id, v)
	if err != nil {
		t.Fatal(err)
	}
	seg := "lessons/" + id + "/v1/audio/seg-000.flac"
	before, err := e.Storage.Bucket(tt.ArtifactsBucket).Object(seg).Attrs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.PollUntilDone(t, id, v, started)
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "backend restarted") {
		t.Fatalf("poll: %v, want a retryable failure", err)
	}
	if rec := e.Record(t, id); rec.State != lessonstate.StatePending {
		t.Fatalf("record %s, want pending after a retryable failure", rec.State)
	}
	e.Engine.ClearFaults()
	resp, err := e.Poll(t, id, v, started.Operation) // the workflow retries its poll
	if err != nil || resp.Done || resp.Operation == "" || resp.Operation == started.Operation {
		t.Fatalf("retried poll: %+v, %v; want a new recognition", resp, err)
	}
	done, _, err := e.PollUntilDone(t, id, v, resp)
	if err != nil || !done.Done {
		t.Fatalf("after the retry: %+v, %v", done, err)
	}
	after, err := e.Storage.Bucket(tt.ArtifactsBucket).Object(seg).Attrs(t.Context())
	if err != nil || after.Generation != before.Generation {
		t.Errorf("segment rewritten (generation %d, was %d): the retry should reuse it", after.Generation, before.Generation)
	}
	if calls := e.Engine.LessonCalls(id); calls != 2 {
		t.Errorf("%d recognitions, want 2", calls)
	}
}

// Under the minimum confidence, the primary model's transcript is made
// again by the fallback model (chirp_2, in its own region), once; the
// answer to that poll names the new operation, and both recognitions are
// in the ledger.
func TestLowConfidenceFallsBackOnce(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Vars: map[string]string{"MIN_CONFIDENCE": "0.99"}})
	id := tt.LessonVars
	video := tt.Video(t, id)
	v := e.Lesson(t, id, video.Path)
	started, err := e.Start(t, id, v)
	if err != nil {
		t.Fatal(err)
	}
	done, ops, err := e.PollUntilDone(t, id, v, started)
	if err != nil || !done.Done {
		t.Fatalf("%+v, %v", done, err)
	}
	if len(ops) != 2 || !strings.Contains(ops[0], "/locations/us/") || !strings.Contains(ops[1], "/locations/us-central1/") {
		t.Fatalf("operations %v, want chirp_3's in us then chirp_2's in us-central1", ops)
	}
	if calls := e.Engine.LessonCalls(id); calls != 2 {
		t.Errorf("%d recognitions, want the primary and one fallback", calls)
	}
	rec := e.Record(t, id)
	if rec.Outputs[transcribe.OutRecognitions] != "chirp_3,chirp_2" {
		t.Errorf("recognitions %q", rec.Outputs[transcribe.OutRecognitions])
	}
	usage := e.LessonDoc(t, id).Usage
	for _, m := range []string{"chirp_3", "chirp_2"} {
		if got := usage[lessonstate.MeterSpeechSeconds(m)]; math.Abs(got-video.Duration) > 0.1 {
			t.Errorf("usage of %s: %.3f s, want %.3f", m, got, video.Duration)
		}
	}
	tr := e.Transcript(t, done.URI)
	if tr.Model != rec.Outputs[transcribe.OutModel] || len(tr.Words) != len(strings.Fields(tt.Narration(t, id))) {
		t.Errorf("transcript by %s (record says %s), %d words", tr.Model, rec.Outputs[transcribe.OutModel], len(tr.Words))
	}
}

// A fallback that cannot run (here: chirp_2 asked for where it does not
// exist) is no failure of the lesson: the first transcript stands, and the
// first recognition is in the ledger once, the refused one not at all.
func TestFallbackRefusedKeepsTheFirstTranscript(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Vars: map[string]string{"MIN_CONFIDENCE": "0.99", "SPEECH_FALLBACK_LOCATION": "eu"}})
	id := tt.LessonConds
	video := tt.Video(t, id)
	v := e.Lesson(t, id, video.Path)
	done := e.Transcribe(t, id, v)
	if !done.Done {
		t.Fatalf("%+v", done)
	}
	if tr := e.Transcript(t, done.URI); tr.Model != "chirp_3" || len(tr.Words) == 0 {
		t.Errorf("transcript by %s with %d words, want chirp_3's", tr.Model, len(tr.Words))
	}
	if calls := e.Engine.LessonCalls(id); calls != 2 {
		t.Errorf("%d BatchRecognize calls, want the primary and the refused fallback", calls)
	}
	if rec := e.Record(t, id); rec.State != lessonstate.StateDone {
		t.Errorf("record %s %q", rec.State, rec.Error)
	}
	usage := e.LessonDoc(t, id).Usage
	if got := usage[lessonstate.MeterSpeechSeconds("chirp_3")]; math.Abs(got-video.Duration) > 0.1 {
		t.Errorf("usage of chirp_3: %.3f s, want %.3f", got, video.Duration)
	}
	if got, ok := usage[lessonstate.MeterSpeechSeconds("chirp_2")]; ok {
		t.Errorf("usage of the refused chirp_2: %.3f s, want none", got)
	}
}

// A video without an audio track fails the stage for good, saying so,
// before anything is recognized.
func TestVideoWithoutAudioFailsPermanently(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{})
	id := "silentLesson01"
	v := e.Lesson(t, id, tt.SilentVideo(t))
	_, err := e.Start(t, id, v)
	if err == nil || !failure.IsPermanent(err) || !errors.Is(err, audio.ErrNoAudio) {
		t.Fatalf("start: %v, want the permanent no-audio failure", err)
	}
	rec := e.Record(t, id)
	if rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, "no audio track") {
		t.Errorf("record %s %q", rec.State, rec.Error)
	}
	if ev := e.WaitAnnounced(t, id); !strings.Contains(ev.Reason, "no audio track") {
		t.Errorf("announced %+v", ev)
	}
	if e.Engine.Calls() != 0 {
		t.Errorf("%d recognitions of a silent video", e.Engine.Calls())
	}
}

// A start repeated while the recognition runs (the workflow retried it)
// answers the same operation and starts nothing; so does one after the
// lease ended, finding the recognition still running.
func TestRepeatedStartResumes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		vars map[string]string
	}{
		{"lease live", nil},
		{"lease ended", map[string]string{"TRANSCRIBE_LEASE": "1ms", "TRANSCRIBE_EXTRACT_LEASE": "1ms"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Done at the fourth poll: the repeated starts find it running.
			e := tt.New(t, tt.Options{Vars: c.vars, Speech: localspeech.Options{Polls: 4}})
			id := tt.LessonConds
			v := e.Lesson(t, id, tt.Video(t, id).Path)
			first, err := e.Start(t, id, v)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				again, err := e.Start(t, id, v)
				if err != nil || again.Operation != first.Operation || again.Done {
					t.Fatalf("repeated start: %+v, %v; want %s again", again, err, first.Operation)
				}
			}
			if calls := e.Engine.LessonCalls(id); calls != 1 {
				t.Errorf("%d recognitions, want 1", calls)
			}
			done, ops, err := e.PollUntilDone(t, id, v, first)
			if err != nil || !done.Done || len(ops) != 1 {
				t.Fatalf("%+v %v, operations %v", done, err, ops)
			}
		})
	}
}

// The workflow giving up fails the stage with its reason, announced; a
// later call of that version finds it failed.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Speech: localspeech.Options{Polls: 100}})
	id := tt.LessonVars
	v := e.Lesson(t, id, tt.Video(t, id).Path)
	started, err := e.Start(t, id, v)
	if err != nil {
		t.Fatal(err)
	}
	const reason = "lesson-pipeline e-1 gave up: transcription did not finish within 60 s of polling"
	resp, err := e.GiveUp(t, id, v, reason)
	if err != nil || resp.Done || resp.Reason != reason {
		t.Fatalf("give up: %+v, %v", resp, err)
	}
	rec := e.Record(t, id)
	if rec.State != lessonstate.StateFailed || rec.Error != reason {
		t.Errorf("record %s %q", rec.State, rec.Error)
	}
	if ev := e.WaitAnnounced(t, id); ev.Reason != reason || ev.Kind != events.KindFailed {
		t.Errorf("announced %+v", ev)
	}
	if _, err := e.Poll(t, id, v, started.Operation); err == nil || !failure.IsPermanent(err) {
		t.Errorf("poll after giving up: %v, want the recorded failure", err)
	}
	// Told twice, it says the same and announces nothing more.
	if again, err := e.GiveUp(t, id, v, reason); err != nil || again.Reason != reason {
		t.Errorf("given up twice: %+v, %v", again, err)
	}
	if n := len(e.Announced()); n != 1 {
		t.Errorf("%d announcements, want 1", n)
	}
}

// A workflow that gave up because its calls kept failing for now (a
// quota, a replaced instance) costs the stage an attempt, not the lesson:
// the stage goes back to pending, nothing is announced, and the next
// execution's start claims it again. Out of attempts, it fails for good.
func TestGiveUpOnTransientFailuresCostsAnAttempt(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Speech: localspeech.Options{Polls: 100}, Vars: map[string]string{"MAX_ATTEMPTS": "2"}})
	id := tt.LessonVars
	v := e.Lesson(t, id, tt.Video(t, id).Path)
	if _, err := e.Start(t, id, v); err != nil {
		t.Fatal(err)
	}
	const reason = "lesson-pipeline e-1 gave up: HTTP server responded with error code 503"
	transient := workflowcall.Request{LessonID: id, Version: v, Action: workflowcall.ActionFail, Reason: reason, Transient: true}
	resp, err := e.Call(t, transient)
	if err != nil || resp.Done || resp.Reason != reason {
		t.Fatalf("transient give-up: %+v, %v", resp, err)
	}
	if rec := e.Record(t, id); rec.State != lessonstate.StatePending || rec.Error != reason || rec.Attempts != 1 {
		t.Errorf("record %s %q after %d attempt(s), want pending with the reason after 1", rec.State, rec.Error, rec.Attempts)
	}
	if n := len(e.Announced()); n != 0 {
		t.Errorf("%d announcements of a stage that will be tried again", n)
	}
	// The next execution gives up too, and the stage is out of attempts.
	if _, err := e.Call(t, transient); err != nil {
		t.Fatal(err)
	}
	if rec := e.Record(t, id); rec.State != lessonstate.StateFailed || rec.Attempts != 2 {
		t.Errorf("record %s after %d attempts, want failed after 2", rec.State, rec.Attempts)
	}
	if ev := e.WaitAnnounced(t, id); ev.Reason != reason {
		t.Errorf("announced %+v", ev)
	}
}

// A version the lesson moved past is stale for every action.
func TestStaleVersion(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Speech: localspeech.Options{Polls: 100}})
	id := tt.LessonVars
	video := tt.Video(t, id).Path
	v1 := e.Lesson(t, id, video)
	started, err := e.Start(t, id, v1)
	if err != nil {
		t.Fatal(err)
	}
	e.Lesson(t, id, video) // v2
	for _, req := range []workflowcall.Request{
		{LessonID: id, Version: v1, Action: workflowcall.ActionPoll, Operation: started.Operation},
		{LessonID: id, Version: v1, Action: workflowcall.ActionStart},
		{LessonID: id, Version: v1, Action: workflowcall.ActionFail, Reason: "late"},
	} {
		resp, err := e.Call(t, req)
		if err != nil || !resp.Stale || resp.Done {
			t.Errorf("%s of v%d: %+v, %v; want stale", req.Action, v1, resp, err)
		}
	}
	if len(e.Announced()) != 0 {
		t.Errorf("announced %v for a stale version", e.Announced())
	}
}

// A lesson longer than 15 segments is recognized by several operations,
// named by one handle the workflow polls as one.
func TestMoreThanFifteenSegments(t *testing.T) {
	t.Parallel()
	e := tt.New(t, tt.Options{Vars: map[string]string{"SEGMENT_SECONDS": "1.4"}})
	id := tt.LessonVars // 22 s: 16 segments
	video := tt.Video(t, id)
	v := e.Lesson(t, id, video.Path)
	started, err := e.Start(t, id, v)
	if err != nil {
		t.Fatal(err)
	}
	segments, _ := strconv.Atoi(e.Record(t, id).Outputs[transcribe.OutSegments])
	ops := strings.Split(started.Operation, ",")
	if segments <= transcribe.MaxFiles || len(ops) != (segments+transcribe.MaxFiles-1)/transcribe.MaxFiles {
		t.Fatalf("%d segments in %d operation(s) %v", segments, len(ops), ops)
	}
	done, _, err := e.PollUntilDone(t, id, v, started)
	if err != nil || !done.Done {
		t.Fatalf("%+v, %v", done, err)
	}
	tr := e.Transcript(t, done.URI)
	if tr.Text != strings.Join(strings.Fields(tt.Narration(t, id)), " ") {
		t.Errorf("text %q", tr.Text)
	}
	for i := 1; i < len(tr.Words); i++ {
		if tr.Words[i].Start < tr.Words[i-1].End {
			t.Fatalf("word %d goes back in time", i)
		}
	}
}
