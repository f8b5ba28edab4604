package transcribe

import (
	"strings"
	"unicode"

	"cloud.google.com/go/speech/apiv2/speechpb"

	"github.com/coursekb/pipeline/shared/artifact"
)

// Engines named in a transcript.
const (
	EngineSpeechV2 = "speech-to-text-v2"
	// EngineLocal is the one-machine stack's local speech server, which
	// says so in every result's request id.
	EngineLocal = "local-speech-engine"
)

// Paragraph breaks: a pause longer than paragraphPause, a change of
// speaker, or a sentence's end once a paragraph has run paragraphSoft
// seconds; paragraphHard bounds one without punctuation.
const (
	paragraphPause = 1.5
	paragraphSoft  = 60.0
	paragraphHard  = 120.0
)

// segmentResult is one segment's recognition: its results, with word
// offsets relative to the segment, which starts offset seconds into the
// lesson's audio.
type segmentResult struct {
	offset    float64
	results   *speechpb.BatchRecognizeResults
	requestID string // the file result's metadata request id
}

// stitched is a transcript put together from segments, and whether its
// confidence was reported at all (chirp models may give none).
type stitched struct {
	artifact.Transcript
	confidenceKnown bool
}

// stitch lays the segments' words on the lesson's timeline, in segment
// order: offsets shifted by each segment's start, times made monotonic (a
// word the service placed a little before the end of the previous one, at
// a join, starts where that one ends), a word repeated across a join kept
// once. It fills Words, Text, Paragraphs, Confidence, Language (requested
// when the results name none) and Engine.
func stitch(segs []segmentResult, requested string) stitched {
	var (
		out             stitched
		words           []artifact.Word
		wordConf, nConf float64
		altConf, nAlt   float64
		languages       = map[string]int{}
		local           bool
	)
	// add appends w to the timeline, unless it repeats the word before it
	// across a join (the word at the cut, heard by both segments).
	add := func(w artifact.Word, join bool) bool {
		if n := len(words); n > 0 {
			prev := words[n-1]
			if join && sameWord(prev.Text, w.Text) && w.Start < prev.End {
				return false
			}
			w.Start = max(w.Start, prev.End)
		}
		w.End = max(w.End, w.Start)
		words = append(words, w)
		return true
	}
	for _, seg := range segs {
		local = local || strings.HasPrefix(seg.requestID, EngineLocal) ||
			strings.HasPrefix(seg.results.GetMetadata().GetRequestId(), EngineLocal)
		join := len(words) > 0
		var resultStart float64 // where the next result's speech may begin, segment seconds
		for _, r := range seg.results.GetResults() {
			alts := r.GetAlternatives()
			resultEnd := r.GetResultEndOffset().AsDuration().Seconds()
			if len(alts) == 0 {
				resultStart = max(resultStart, resultEnd)
				continue
			}
			alt := alts[0]
			n := 0
			if ws := alt.GetWords(); len(ws) > 0 {
				for _, wi := range ws {
					w := artifact.Word{
						Text:       strings.TrimSpace(wi.GetWord()),
						Start:      seg.offset + wi.GetStartOffset().AsDuration().Seconds(),
						End:        seg.offset + wi.GetEndOffset().AsDuration().Seconds(),
						Speaker:    wi.GetSpeakerLabel(),
						Confidence: float64(wi.GetConfidence()),
					}
					if w.Text == "" {
						continue
					}
					kept := add(w, join)
					join = false
					if !kept {
						continue
					}
					if w.Confidence > 0 {
						wordConf += w.Confidence
						nConf++
					}
					n++
				}
			} else if fields := strings.Fields(alt.GetTranscript()); len(fields) > 0 {
				// No word timings came back: spread the words over the
				// result's span, so none is lost and times stay ordered.
				end := max(resultEnd, resultStart)
				step := (end - resultStart) / float64(len(fields))
				for i, f := range fields {
					if add(artifact.Word{
						Text:  f,
						Start: seg.offset + resultStart + float64(i)*step,
						End:   seg.offset + resultStart + float64(i+1)*step,
					}, join) {
						n++
					}
					join = false
				}
			}
			if c := float64(alt.GetConfidence()); c > 0 && n > 0 {
				altConf += c * float64(n)
				nAlt += float64(n)
			}
			if lc := r.GetLanguageCode(); lc != "" && n > 0 {
				languages[NormalizeLanguage(lc)] += n
			}
			resultStart = max(resultStart, resultEnd)
		}
	}

	out.Words = words
	out.Paragraphs = paragraphs(words)
	texts := make([]string, len(words))
	for i, w := range words {
		texts[i] = w.Text
	}
	out.Text = strings.Join(texts, " ")
	switch {
	case nConf > 0:
		out.Confidence, out.confidenceKnown = wordConf/nConf, true
	case nAlt > 0:
		out.Confidence, out.confidenceKnown = altConf/nAlt, true
	}
	out.Language = NormalizeLanguage(requested)
	best := 0
	for l, n := range languages {
		if n > best || n == best && l < out.Language {
			out.Language, best = l, n
		}
	}
	out.Engine = EngineSpeechV2
	if local {
		out.Engine = EngineLocal
	}
	return out
}

// paragraphs groups words into runs of one speaker without a long pause,
// closed at a sentence's end once they have run long enough.
func paragraphs(words []artifact.Word) []artifact.Paragraph {
	var out []artifact.Paragraph
	first := 0
	flush := func(last int) {
		ws := words[first : last+1]
		texts := make([]string, len(ws))
		for i, w := range ws {
			texts[i] = w.Text
		}
		out = append(out, artifact.Paragraph{
			Start: ws[0].Start, End: ws[len(ws)-1].End, Speaker: ws[0].Speaker,
			Text: strings.Join(texts, " "), FirstWord: first, LastWord: last,
		})
		first = last + 1
	}
	for i := 1; i < len(words); i++ {
		prev, w := words[i-1], words[i]
		long := prev.End - words[first].Start
		if w.Speaker != prev.Speaker ||
			w.Start-prev.End > paragraphPause ||
			long >= paragraphSoft && endsSentence(prev.Text) ||
			long >= paragraphHard {
			flush(i - 1)
		}
	}
	if len(words) > 0 {
		flush(len(words) - 1)
	}
	return out
}

func endsSentence(w string) bool {
	w = strings.TrimRight(w, "\"'”’»)")
	return strings.HasSuffix(w, ".") || strings.HasSuffix(w, "?") || strings.HasSuffix(w, "!") || strings.HasSuffix(w, "…")
}

// sameWord compares words as spoken: case and punctuation aside.
func sameWord(a, b string) bool {
	norm := func(s string) string {
		return strings.ToLower(strings.TrimFunc(s, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }))
	}
	return norm(a) != "" && norm(a) == norm(b)
}
