package speech

import (
	"hash/fnv"
	"math"
	"strings"
	"time"
	"unicode"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// What the engine "hears" is the lesson's narration laid out over the
// lesson's whole audio: each word takes time in proportion to its length,
// with a short pause after each sentence. The layout depends only on the
// lesson, its narration and the lesson's total duration, never on how the
// audio was cut, so the segments of one lesson, recognized in any order and
// in any number of requests, fit back together into one timeline with every
// word exactly once.

// spokenWord is one word of the layout, in seconds from the start of the
// lesson's audio.
type spokenWord struct {
	text        string // as written, punctuation kept
	start, end  float64
	sentenceEnd bool
	confidence  float32
}

// layout places the words of narration over [0, total] seconds.
func layout(lessonID, narration string, total float64) []spokenWord {
	fields := strings.Fields(narration)
	if len(fields) == 0 || total <= 0 {
		return nil
	}
	words := make([]spokenWord, len(fields))
	weights := make([]float64, len(fields))
	pauses := make([]float64, len(fields))
	var sumW, sumP float64
	for i, f := range fields {
		words[i] = spokenWord{
			text:        f,
			sentenceEnd: endsSentence(f),
			confidence:  float32(0.85 + 0.13*unit(lessonID, i, "confidence")),
		}
		n := 0
		for _, r := range f {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				n++
			}
		}
		weights[i] = float64(max(n, 1))
		sumW += weights[i]
		if words[i].sentenceEnd && i < len(fields)-1 {
			pauses[i] = 0.1 + 0.3*unit(lessonID, i, "pause")
			sumP += pauses[i]
		}
	}
	// A little silence before the first word and after the last, as a
	// recording has; then speech gets at least half of what is left, pauses
	// shrinking if the narration is long for its audio.
	edge := math.Min(0.25, total*0.02)
	avail := total - 2*edge
	if sumP > avail/2 {
		scale := avail / 2 / sumP
		for i := range pauses {
			pauses[i] *= scale
		}
		sumP = avail / 2
	}
	speech := avail - sumP
	t := edge
	for i := range words {
		d := speech * weights[i] / sumW
		words[i].start, words[i].end = t, t+d
		t += d + pauses[i]
	}
	return words
}

// unit is a deterministic number in [0, 1) for word i of a lesson: the same
// lesson always sounds the same.
func unit(lessonID string, i int, what string) float64 {
	h := fnv.New64a()
	h.Write([]byte(lessonID))
	h.Write([]byte{0, byte(i), byte(i >> 8), byte(i >> 16), 0})
	h.Write([]byte(what))
	return float64(h.Sum64()>>11) / float64(1<<53)
}

func endsSentence(w string) bool {
	w = strings.TrimRight(w, "\"'”’»)")
	return strings.HasSuffix(w, ".") || strings.HasSuffix(w, "?") || strings.HasSuffix(w, "!") || strings.HasSuffix(w, "…")
}

// window is the part of the lesson's audio one file holds.
type window struct {
	offset, duration, total float64 // seconds
}

// edgeTolerance absorbs the difference between the cut points the
// transcriber asked ffmpeg for and the durations the encoded segments really
// have: a file that starts within it of 0 or ends within it of the lesson's
// end is taken to reach that edge, so no word falls off the ends.
const edgeTolerance = 0.25

// contains reports whether a word whose midpoint is at mid (lesson seconds)
// belongs to this file: every word belongs to exactly one of a lesson's
// back-to-back segments.
func (w window) contains(mid float64) bool {
	lo, hi := w.offset, w.offset+w.duration
	if lo <= edgeTolerance {
		lo = math.Inf(-1)
	}
	if hi >= w.total-edgeTolerance {
		hi = math.Inf(1)
	}
	return mid >= lo && mid < hi
}

// features is what the request asked for that changes the results' shape.
type features struct {
	punctuation bool // enable_automatic_punctuation
	wordTimes   bool // enable_word_time_offsets
	wordConf    bool // enable_word_confidence
	diarization bool // diarization_config present
	language    string
}

// results cuts the words of w into recognition results, one per sentence (a
// sentence cut by the file's end closes the file's last result). Offsets are
// relative to the file's start, as the real service gives them.
func results(words []spokenWord, w window, f features) []*speechpb.SpeechRecognitionResult {
	var out []*speechpb.SpeechRecognitionResult
	var cur []spokenWord
	flush := func() {
		if len(cur) == 0 {
			return
		}
		out = append(out, result(cur, w, f))
		cur = nil
	}
	for _, sw := range words {
		if !w.contains((sw.start + sw.end) / 2) {
			continue
		}
		cur = append(cur, sw)
		if sw.sentenceEnd {
			flush()
		}
	}
	flush()
	return out
}

func result(ws []spokenWord, w window, f features) *speechpb.SpeechRecognitionResult {
	alt := &speechpb.SpeechRecognitionAlternative{}
	texts := make([]string, 0, len(ws))
	var conf float64
	var end float64
	for _, sw := range ws {
		text := sw.text
		if !f.punctuation {
			text = plain(text)
		}
		texts = append(texts, text)
		conf += float64(sw.confidence)
		s := clamp(sw.start-w.offset, 0, w.duration)
		e := clamp(sw.end-w.offset, s, w.duration)
		end = e
		// As on the real service, words are listed when offsets,
		// confidences or speakers were asked for.
		if f.wordTimes || f.wordConf || f.diarization {
			wi := &speechpb.WordInfo{Word: text}
			if f.wordTimes {
				wi.StartOffset, wi.EndOffset = dur(s), dur(e)
			}
			if f.wordConf {
				wi.Confidence = sw.confidence
			}
			if f.diarization {
				wi.SpeakerLabel = "1" // the sample lessons have one narrator
			}
			alt.Words = append(alt.Words, wi)
		}
	}
	alt.Transcript = strings.Join(texts, " ")
	alt.Confidence = float32(conf / float64(len(ws)))
	return &speechpb.SpeechRecognitionResult{
		Alternatives:    []*speechpb.SpeechRecognitionAlternative{alt},
		ResultEndOffset: dur(end),
		LanguageCode:    f.language,
	}
}

// plain is a word as a recognizer without automatic punctuation writes it:
// lower case, no punctuation around it.
func plain(w string) string {
	return strings.ToLower(strings.TrimFunc(w, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }))
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// dur is a protobuf duration in whole milliseconds: real results are given
// to the millisecond or coarser, and round numbers keep outputs readable.
func dur(sec float64) *durationpb.Duration {
	return durationpb.New(time.Duration(math.Round(sec*1000)) * time.Millisecond)
}
