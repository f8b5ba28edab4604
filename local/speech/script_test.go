package speech

import (
	"strings"
	"testing"
)

const narration = "Bienvenidos al curso. En esta lección vamos a ver qué es una variable. " +
	"¿Qué guarda? Un valor, en la memoria del programa: por ejemplo, 9.99 o \"Ana\"."

// However a lesson is cut, each word lands in exactly one window, in order,
// and the layout fills the audio.
func TestLayoutWindows(t *testing.T) {
	t.Parallel()
	const total = 17.3
	words := layout("lesson-x", narration, total)
	fields := strings.Fields(narration)
	if len(words) != len(fields) {
		t.Fatalf("%d words laid out, narration has %d", len(words), len(fields))
	}
	for i, w := range words {
		if w.text != fields[i] || w.end <= w.start || (i > 0 && w.start < words[i-1].end) {
			t.Fatalf("word %d %+v", i, w)
		}
		if w.confidence < 0.85 || w.confidence > 0.98 {
			t.Errorf("confidence %v", w.confidence)
		}
	}
	if words[0].start > 0.5 || words[len(words)-1].end > total || words[len(words)-1].end < total-0.5 {
		t.Errorf("words span [%v, %v] of %v", words[0].start, words[len(words)-1].end, total)
	}
	// Sentence pauses are 0.1-0.4 s; other words follow at once.
	for i := 0; i < len(words)-1; i++ {
		gap := words[i+1].start - words[i].end
		if words[i].sentenceEnd && (gap < 0.1-1e-9 || gap > 0.4) || !words[i].sentenceEnd && gap > 1e-9 {
			t.Errorf("gap %.3f after %q", gap, words[i].text)
		}
	}
	again := layout("lesson-x", narration, total)
	for i := range words {
		if words[i] != again[i] {
			t.Fatal("layout is not deterministic")
		}
	}

	f := features{punctuation: true, wordTimes: true, language: "es-es"}
	for _, cuts := range [][]float64{{0, total}, {0, 5, 11.7, total}, {0, 0.3, 1, 2, 3, 4, 9, 16.9, total}} {
		var got []string
		for i := 0; i+1 < len(cuts); i++ {
			// Encoded segments come out a little longer or shorter than asked.
			w := window{offset: cuts[i], duration: cuts[i+1] - cuts[i] + 0.02*float64(i%2*2-1), total: total}
			for _, r := range results(words, w, f) {
				for _, wi := range r.GetAlternatives()[0].GetWords() {
					if s, e := wi.GetStartOffset().AsDuration().Seconds(), wi.GetEndOffset().AsDuration().Seconds(); s < 0 || e > w.duration+0.0005 || e < s {
						t.Errorf("cuts %v: %q at [%v, %v] outside [0, %v]", cuts, wi.GetWord(), s, e, w.duration)
					}
					got = append(got, wi.GetWord())
				}
			}
		}
		if strings.Join(got, " ") != strings.Join(fields, " ") {
			t.Errorf("cuts %v: words\n%v\nwant\n%v", cuts, got, fields)
		}
	}
}

func TestResultsShape(t *testing.T) {
	t.Parallel()
	words := layout("lesson-y", narration, 20)
	w := window{offset: 0, duration: 20, total: 20}
	rs := results(words, w, features{language: "es-es"})
	if len(rs) != 4 {
		t.Fatalf("%d results, want one per sentence (4)", len(rs))
	}
	if got := rs[2].GetAlternatives()[0].GetTranscript(); got != "qué guarda" {
		t.Errorf("transcript without punctuation %q", got)
	}
	if len(rs[0].GetAlternatives()[0].GetWords()) != 0 {
		t.Error("words listed though neither offsets, confidence nor speakers were asked for")
	}
	rs = results(words, w, features{punctuation: true, diarization: true, language: "es-es"})
	if got := rs[3].GetAlternatives()[0].GetTranscript(); got != `Un valor, en la memoria del programa: por ejemplo, 9.99 o "Ana".` {
		t.Errorf("transcript %q", got)
	}
	for _, wi := range rs[3].GetAlternatives()[0].GetWords() {
		if wi.GetSpeakerLabel() != "1" || wi.GetStartOffset() != nil {
			t.Errorf("word %v", wi)
		}
	}
}

func TestOutputName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ prefix, in, want string }{
		{"transcripts/", "lessons/a/v1/audio/seg-000.flac", "transcripts/seg-000_transcript_ID.json"},
		{"transcripts", "x.ogg", "transcripts/x_transcript_ID.json"},
		{"", "x", "x_transcript_ID.json"},
	} {
		if got := outputName(c.prefix, c.in, "ID"); got != c.want {
			t.Errorf("outputName(%q, %q) = %q, want %q", c.prefix, c.in, got, c.want)
		}
	}
}
