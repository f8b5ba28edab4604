package speech_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"google.golang.org/grpc/codes"

	localspeech "github.com/coursekb/pipeline/local/speech"
)

// A lesson cut into three segments, recognized in one request with results
// written to Cloud Storage: each segment's words, shifted by the segment's
// offset, form one timeline that says the whole narration in order, no word
// lost or repeated.
func TestSegmentsFormOneTimeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	uris := e.uploadSegments(t, 1)
	resp := e.recognize(t, request(uris...))

	if len(resp.GetResults()) != 3 {
		t.Fatalf("results for %d files, want 3", len(resp.GetResults()))
	}
	if billed := resp.GetTotalBilledDuration().AsDuration(); billed < time.Duration(media.total*float64(time.Second)) {
		t.Errorf("total billed %v, less than the %.2fs of audio", billed, media.total)
	}
	type timed struct {
		word       string
		start, end float64
	}
	var timeline []timed
	var transcripts []string
	for i, uri := range uris {
		fr := resp.GetResults()[uri]
		if fr.GetError() != nil {
			t.Fatalf("%s: %v", uri, fr.GetError())
		}
		out := fr.GetCloudStorageResult().GetUri()
		if !strings.HasPrefix(out, fmt.Sprintf("gs://%s/transcripts/seg-%03d_transcript_", outBucket, i)) || !strings.HasSuffix(out, ".json") {
			t.Errorf("%s written to %q, want gs://%s/transcripts/seg-%03d_transcript_<uuid>.json", uri, out, outBucket, i)
		}
		if id := fr.GetMetadata().GetRequestId(); !strings.HasPrefix(id, localspeech.RequestIDPrefix) {
			t.Errorf("%s: request id %q does not say local engine", uri, id)
		}
		res := e.readResults(t, out)
		if res.GetMetadata().GetRequestId() != fr.GetMetadata().GetRequestId() {
			t.Errorf("%s: results file request id %q, operation says %q", uri, res.GetMetadata().GetRequestId(), fr.GetMetadata().GetRequestId())
		}
		segDur := media.total / 3
		for _, r := range res.GetResults() {
			if r.GetLanguageCode() != "es-es" {
				t.Errorf("language %q, want es-es", r.GetLanguageCode())
			}
			alt := r.GetAlternatives()[0]
			transcripts = append(transcripts, alt.GetTranscript())
			var last float64
			for _, w := range alt.GetWords() {
				s, en := w.GetStartOffset().AsDuration().Seconds(), w.GetEndOffset().AsDuration().Seconds()
				if s < 0 || en < s || en > segDur+0.1 {
					t.Errorf("%s: %q at [%.3f, %.3f] is not within the file's %.3fs", uri, w.GetWord(), s, en, segDur)
				}
				if c := w.GetConfidence(); c < 0.85 || c > 0.98 {
					t.Errorf("%q confidence %v", w.GetWord(), c)
				}
				if w.GetSpeakerLabel() != "" {
					t.Errorf("speaker label %q without diarization", w.GetSpeakerLabel())
				}
				timeline = append(timeline, timed{w.GetWord(), media.segments[i].offset + s, media.segments[i].offset + en})
				last = en
			}
			if end := r.GetResultEndOffset().AsDuration().Seconds(); end+0.001 < last {
				t.Errorf("result ends at %.3f before its last word (%.3f)", end, last)
			}
		}
	}
	want := strings.Fields(media.narration)
	if len(timeline) != len(want) {
		t.Fatalf("%d words over the three segments, the narration has %d", len(timeline), len(want))
	}
	for i, w := range timeline {
		if w.word != want[i] {
			t.Fatalf("word %d is %q, want %q", i, w.word, want[i])
		}
		if i > 0 && w.start < timeline[i-1].start {
			t.Errorf("word %d %q starts at %.3f, before word %d (%.3f)", i, w.word, w.start, i-1, timeline[i-1].start)
		}
	}
	if first, last := timeline[0].start, timeline[len(timeline)-1].end; first > 1 || last > media.total+0.1 || last < media.total-1 {
		t.Errorf("words span [%.2f, %.2f] of a %.2fs lesson", first, last, media.total)
	}
	if got := strings.Join(transcripts, " "); got != strings.Join(want, " ") {
		t.Errorf("transcripts\n%s\nwant\n%s", got, strings.Join(want, " "))
	}
	// Results are cut at sentence ends (a sentence cut by a segment end
	// closes that segment's last result).
	if n := strings.Count(media.narration, ". "); len(transcripts) < n {
		t.Errorf("%d results for a narration of %d+ sentences", len(transcripts), n)
	}
}

// Inline results, the lesson's whole audio in one Ogg Opus file with no
// segment metadata (lesson from the object name, the file being the whole
// lesson), no punctuation, and diarization for es-ES.
func TestInlineWholeLesson(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	uri := e.upload(t, "lessons/"+lesson1+"/v2/audio/seg-000.ogg", media.opus, nil)
	req := inline(request(uri))
	req.Config.Features = &speechpb.RecognitionFeatures{
		EnableWordTimeOffsets: true,
		DiarizationConfig:     &speechpb.SpeakerDiarizationConfig{MinSpeakerCount: 1, MaxSpeakerCount: 2},
	}
	resp := e.recognize(t, req)
	fr := resp.GetResults()[uri]
	if fr.GetError() != nil {
		t.Fatal(fr.GetError())
	}
	if fr.GetCloudStorageResult() != nil {
		t.Errorf("inline request wrote to %s", fr.GetCloudStorageResult().GetUri())
	}
	tr := fr.GetInlineResult().GetTranscript()
	var words []string
	for _, r := range tr.GetResults() {
		for _, w := range r.GetAlternatives()[0].GetWords() {
			words = append(words, w.GetWord())
			if w.GetSpeakerLabel() != "1" {
				t.Errorf("%q speaker %q, want 1", w.GetWord(), w.GetSpeakerLabel())
			}
			if w.GetConfidence() != 0 {
				t.Errorf("word confidence %v given though not asked for", w.GetConfidence())
			}
			if end := w.GetEndOffset().AsDuration().Seconds(); end > media.total+0.1 {
				t.Errorf("%q ends at %.2f, after the audio (%.2f)", w.GetWord(), end, media.total)
			}
		}
	}
	var want []string
	for _, w := range strings.Fields(media.narration) {
		want = append(want, strings.ToLower(strings.Trim(w, ".,:;¿?¡!")))
	}
	if strings.Join(words, " ") != strings.Join(want, " ") {
		t.Errorf("words without punctuation\n%s\nwant\n%s", strings.Join(words, " "), strings.Join(want, " "))
	}
	if !strings.HasPrefix(tr.GetMetadata().GetRequestId(), localspeech.RequestIDPrefix) {
		t.Errorf("inline transcript request id %q", tr.GetMetadata().GetRequestId())
	}
}

// WAV is read too, and a WAV of the lesson gives the same words as the Opus.
func TestWAVInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	uri := e.upload(t, "lessons/"+lesson1+"/v3/audio/lesson.wav", media.wav, nil)
	resp := e.recognize(t, inline(request(uri)))
	fr := resp.GetResults()[uri]
	if fr.GetError() != nil {
		t.Fatal(fr.GetError())
	}
	n := 0
	for _, r := range fr.GetInlineResult().GetTranscript().GetResults() {
		n += len(r.GetAlternatives()[0].GetWords())
	}
	if n != len(strings.Fields(media.narration)) {
		t.Errorf("%d words from the WAV, want %d", n, len(strings.Fields(media.narration)))
	}
	if got := fr.GetMetadata().GetTotalBilledDuration().AsDuration(); got.Seconds() < media.total || got.Seconds() > media.total+1 {
		t.Errorf("billed %v for %.2fs", got, media.total)
	}
}

// The operation's name is all a later step needs: a second client resumes it
// and sees it done at the configured poll, with metadata along the way.
// A delay-timed operation is done once the delay has passed;
// WaitOperation waits for it.
// Cancel ends an operation with CANCELLED; List shows it; Delete forgets it.
// A fault on one file fails that file only; a whole-operation fault fails
// the operation with the given status.
// Requests the real service refuses are refused with InvalidArgument naming
// the problem, before any operation starts.
// Word timestamps with chirp_3 stop at 20 minutes of audio per file: a
// 21-minute file fails on its own, in the results; the same file with
// chirp_2, or chirp_3 without word offsets, is fine.
func TestChirp3WordTimestampLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	long := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-000.flac", media.long, nil)
	short := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-001.flac", media.short, nil)
	resp := e.recognize(t, request(long, short))
	fe := resp.GetResults()[long].GetError()
	if fe.GetCode() != int32(codes.InvalidArgument) || !strings.Contains(fe.GetMessage(), "21m0s") || !strings.Contains(fe.GetMessage(), "20m0s") {
		t.Errorf("21-minute chirp_3 file: %v, want InvalidArgument naming 21m0s and the 20m0s limit", fe)
	}
	if err := resp.GetResults()[short].GetError(); err != nil {
		t.Errorf("short file failed beside the long one: %v", err)
	}

	resp = e.recognize(t, inline(with(request(long), func(r *speechpb.BatchRecognizeRequest) {
		r.Recognizer = chirp2
		r.Config.Model = "chirp_2"
	})))
	fr := resp.GetResults()[long]
	if fr.GetError() != nil {
		t.Fatalf("chirp_2: %v", fr.GetError())
	}
	rs := fr.GetInlineResult().GetTranscript().GetResults()
	last := rs[len(rs)-1].GetAlternatives()[0].GetWords()
	if end := last[len(last)-1].GetEndOffset().AsDuration(); end < 20*time.Minute || end > 21*time.Minute {
		t.Errorf("last word of a 21-minute lesson ends at %v", end)
	}
	if got := fr.GetMetadata().GetTotalBilledDuration().AsDuration(); got != 21*time.Minute {
		t.Errorf("billed %v for 21 minutes", got)
	}

	noWords := inline(request(long))
	noWords.Config.Features.EnableWordTimeOffsets = false
	if err := e.recognize(t, noWords).GetResults()[long].GetError(); err != nil {
		t.Errorf("chirp_3 without word offsets: %v", err)
	}
}

// Files the engine cannot answer for fail on their own: a lesson it does not
// know, a missing object, bytes that are not audio, bad segment metadata.
func TestPerFileErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	unknown := e.upload(t, "lessons/nope123/v1/audio/seg-000.flac", media.short, nil)
	missing := "gs://raw/lessons/" + lesson1 + "/v1/audio/seg-404.flac"
	garbage := e.put(t, "lessons/"+lesson1+"/v1/audio/seg-900.flac", []byte(strings.Repeat("not audio ", 100)), nil)
	truncated := e.put(t, "lessons/"+lesson1+"/v1/audio/seg-901.flac", []byte("fLaC\x00\x00"), nil)
	badMeta := e.upload(t, "lessons/"+lesson1+"/v1/audio/seg-902.flac", media.short, map[string]string{localspeech.MetaOffset: "soon"})
	noLesson := e.upload(t, "elsewhere/seg.flac", media.short, nil)
	byMeta := e.upload(t, "elsewhere/other.flac", media.short, map[string]string{localspeech.MetaLessonID: lesson2})
	resp := e.recognize(t, request(unknown, missing, garbage, truncated, badMeta, noLesson, byMeta))
	for uri, want := range map[string]struct {
		code codes.Code
		text string
	}{
		unknown:   {codes.NotFound, `lesson "nope123"`},
		missing:   {codes.NotFound, "object not found"},
		garbage:   {codes.InvalidArgument, "unsupported audio format"},
		truncated: {codes.InvalidArgument, "flac"},
		badMeta:   {codes.InvalidArgument, `offsetSeconds="soon"`},
		noLesson:  {codes.NotFound, "no lesson"},
	} {
		fe := resp.GetResults()[uri].GetError()
		if fe.GetCode() != int32(want.code) || !strings.Contains(fe.GetMessage(), want.text) {
			t.Errorf("%s: %v, want %v containing %q", uri, fe, want.code, want.text)
		}
	}
	if fr := resp.GetResults()[byMeta]; fr.GetError() != nil || fr.GetCloudStorageResult() == nil {
		t.Errorf("lesson from metadata: %v", fr)
	}
}

// The counters tell how many calls named each lesson, so a test of the
// pipeline can check that unchanged audio was not sent again.
// Injected UNAVAILABLE is retried by the client itself (and counted here);
// RESOURCE_EXHAUSTED reaches the caller.
// Without Options.Storage the engine makes its own client, which follows
// STORAGE_EMULATOR_HOST as in the one-machine stack. Not parallel: it sets
// the environment.
func TestStorageEmulatorHost(t *testing.T) {
	e := newEnv(t, localspeech.Options{})
	uri := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-000.flac", media.short, nil)
	t.Setenv("STORAGE_EMULATOR_HOST", e.gcs.Host())
	own := startEngine(t, localspeech.Options{Logger: testLogger(t)})
	c := newClient(t, listen(t, own))
	op, err := c.BatchRecognize(t.Context(), request(uri))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pollUntilDone(t, op)
	if err != nil {
		t.Fatal(err)
	}
	fr := resp.GetResults()[uri]
	if fr.GetError() != nil {
		t.Fatal(fr.GetError())
	}
	if res := e.readResults(t, fr.GetCloudStorageResult().GetUri()); len(res.GetResults()) == 0 {
		t.Error("no results for a narrated lesson")
	}
}
