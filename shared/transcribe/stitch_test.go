package transcribe

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/coursekb/pipeline/shared/artifact"
)

// w is a word at [start, end] seconds of its segment.
type w struct {
	text       string
	start, end float64
	speaker    string
	conf       float32
}

func d(s float64) *durationpb.Duration {
	return durationpb.New(time.Duration(math.Round(s*1000)) * time.Millisecond)
}

// result is one recognition result saying words, in language lang.
func result(lang string, conf float32, words ...w) *speechpb.SpeechRecognitionResult {
	alt := &speechpb.SpeechRecognitionAlternative{Confidence: conf}
	var texts []string
	var end float64
	for _, x := range words {
		texts = append(texts, x.text)
		alt.Words = append(alt.Words, &speechpb.WordInfo{Word: x.text, StartOffset: d(x.start), EndOffset: d(x.end), SpeakerLabel: x.speaker, Confidence: x.conf})
		end = x.end
	}
	alt.Transcript = strings.Join(texts, " ")
	return &speechpb.SpeechRecognitionResult{Alternatives: []*speechpb.SpeechRecognitionAlternative{alt}, LanguageCode: lang, ResultEndOffset: d(end)}
}

func seg(offset float64, rs ...*speechpb.SpeechRecognitionResult) segmentResult {
	return segmentResult{offset: offset, results: &speechpb.BatchRecognizeResults{Results: rs}, requestID: "req"}
}

func texts(ws []artifact.Word) string {
	var out []string
	for _, x := range ws {
		out = append(out, x.Text)
	}
	return strings.Join(out, " ")
}

// Each segment's offsets are shifted by the segment's start; a word the
// service starts a little before the previous one ended (at a join) is
// moved to start where that one ends; a word both segments heard at the cut
// is kept once.
func TestStitchLaysSegmentsOnOneTimeline(t *testing.T) {
	t.Parallel()
	st := stitch([]segmentResult{
		seg(0, result("es-es", 0.9, w{"Hola", 0.2, 0.6, "1", 0}, w{"a", 0.7, 0.8, "1", 0}, w{"todos.", 0.9, 9.95, "1", 0})),
		seg(10, result("es-es", 0.8, w{"todos", -0.2, 0.1, "1", 0}, w{"Hoy", 0.3, 0.5, "1", 0}, w{"vemos", 0.45, 0.9, "1", 0})),
		seg(20, result("es-es", 0.7, w{"variables.", 0.1, 0.8, "1", 0})),
	}, "es-ES")
	if got := texts(st.Words); got != "Hola a todos. Hoy vemos variables." {
		t.Fatalf("words %q", got)
	}
	wantStarts := []float64{0.2, 0.7, 0.9, 10.3, 10.5, 20.1}
	for i, x := range st.Words {
		if math.Abs(x.Start-wantStarts[i]) > 1e-9 {
			t.Errorf("word %d %q starts at %v, want %v", i, x.Text, x.Start, wantStarts[i])
		}
		if x.End < x.Start || i > 0 && x.Start < st.Words[i-1].End {
			t.Errorf("word %d %q [%v, %v] breaks the timeline after %v", i, x.Text, x.Start, x.End, st.Words[i-1].End)
		}
	}
	if st.Text != "Hola a todos. Hoy vemos variables." {
		t.Errorf("text %q", st.Text)
	}
	if st.Language != "es-ES" || st.Engine != EngineSpeechV2 {
		t.Errorf("language %q engine %q", st.Language, st.Engine)
	}
	// No word confidences: the results' confidences, weighted by words.
	if want := (0.9*3 + 0.8*2 + 0.7*1) / 6; !st.confidenceKnown || math.Abs(st.Confidence-want) > 1e-6 {
		t.Errorf("confidence %v (known %v), want %v", st.Confidence, st.confidenceKnown, want)
	}
}

func TestStitchConfidenceAndEngine(t *testing.T) {
	t.Parallel()
	withWords := stitch([]segmentResult{seg(0, result("pt-br", 0.2, w{"Olá", 0, 1, "", 0.9}, w{"mundo", 1, 2, "", 0.7}))}, "es-ES")
	if !withWords.confidenceKnown || math.Abs(withWords.Confidence-0.8) > 1e-6 {
		t.Errorf("word confidences 0.9 and 0.7 give %v, want their mean", withWords.Confidence)
	}
	if withWords.Language != "pt-BR" {
		t.Errorf("language %q, want the results' pt-BR", withWords.Language)
	}
	none := stitch([]segmentResult{seg(0, result("", 0, w{"x", 0, 1, "", 0}))}, "es-ES")
	if none.confidenceKnown || none.Confidence != 0 || none.Language != "es-ES" {
		t.Errorf("no confidence reported: got %v (known %v), language %q", none.Confidence, none.confidenceKnown, none.Language)
	}
	s := seg(0, result("es-es", 0.9, w{"x", 0, 1, "", 0}))
	s.requestID = EngineLocal + "/7"
	if got := stitch([]segmentResult{s}, "es-ES").Engine; got != EngineLocal {
		t.Errorf("engine %q, want the local engine it says it is", got)
	}
	empty := stitch(nil, "es-es")
	if len(empty.Words) != 0 || empty.Text != "" || len(empty.Paragraphs) != 0 || empty.Language != "es-ES" {
		t.Errorf("no results: %+v", empty)
	}
}

// A result without word timings still gives its words, spread over its span.
func TestStitchWithoutWordTimes(t *testing.T) {
	t.Parallel()
	r := &speechpb.SpeechRecognitionResult{
		Alternatives:    []*speechpb.SpeechRecognitionAlternative{{Transcript: "uno dos tres cuatro", Confidence: 0.9}},
		ResultEndOffset: d(4),
	}
	st := stitch([]segmentResult{seg(100, r)}, "es-ES")
	if texts(st.Words) != "uno dos tres cuatro" {
		t.Fatalf("words %q", texts(st.Words))
	}
	if st.Words[0].Start != 100 || st.Words[3].End != 104 || st.Words[1].Start != 101 {
		t.Errorf("words %+v not spread over [100, 104]", st.Words)
	}
}

func TestParagraphs(t *testing.T) {
	t.Parallel()
	word := func(text string, start float64, speaker string) artifact.Word {
		return artifact.Word{Text: text, Start: start, End: start + 0.4, Speaker: speaker}
	}
	var ws []artifact.Word
	// One speaker talking 70 s without a pause: a paragraph closes at the
	// first sentence end past 60 s, not before.
	for i := range 140 {
		text := "palabra"
		if i%20 == 19 {
			text = "fin."
		}
		ws = append(ws, word(text, float64(i)*0.5, "1"))
	}
	// A pause of 2 s, then a second speaker.
	ws = append(ws, word("Después", 72, "1"), word("otra", 72.5, "2"), word("voz.", 73, "2"))
	ps := paragraphs(ws)
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s %.1f %.1f %s", p.Speaker, p.Start, p.End, strings.Fields(p.Text)[0]))
		if p.Text != texts(ws[p.FirstWord:p.LastWord+1]) {
			t.Errorf("paragraph %d text is not its words", p.FirstWord)
		}
	}
	// Word 119 ("fin.") ends at 59.9 s: under 60; word 139 ends at 69.9.
	want := []string{"1 0.0 69.9 palabra", "1 72.0 72.4 Después", "2 72.5 73.4 otra"}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("paragraphs\n %s\nwant\n %s", strings.Join(got, " | "), strings.Join(want, " | "))
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].FirstWord != ps[i-1].LastWord+1 {
			t.Errorf("paragraphs %d and %d do not cover the words back to back", i-1, i)
		}
	}
}

func TestNormalizeLanguage(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"es-es": "es-ES", "ES-us": "es-US", "pt-BR": "pt-BR", "cmn-hans-cn": "cmn-Hans-CN", "es-419": "es-419", "en": "en",
	} {
		if got := NormalizeLanguage(in); got != want {
			t.Errorf("NormalizeLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}
