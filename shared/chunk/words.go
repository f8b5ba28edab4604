package chunk

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/artifact"
)

// word is a transcript word as the chunker writes it: its text cleaned so
// that words joined by single spaces tokenize as the sum of their parts.
type word struct {
	text       string
	start, end float64
	speaker    string
	src        int // index in Transcript.Words, for error messages
}

// Strength of the boundary after a word: the chunker cuts at the strongest
// boundary it can.
const (
	cutWord      = iota // inside a sentence: only for a sentence too long for a chunk
	cutSentence         // the word ends a sentence
	cutParagraph        // the word ends a transcript paragraph
	cutSpeaker          // the next word is another speaker's
)

// cleanWord returns s as valid UTF-8 with no leading, trailing or repeated
// whitespace, and no whitespace but single spaces. Then the encoding's split
// pattern starts a new piece at every space between words (a piece holds a
// space only as its first character, or holds only whitespace, and a lone
// space followed by a word is never a piece of its own), so tokenizing words
// one by one, each with the space before it, counts exactly what tokenizing
// them joined does (TestWordsCountAsTheirSum checks tempting cases, and
// FuzzSplit every chunk's count against a fresh one).
func cleanWord(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	clean := len(s) > 0
	prevSpace := true
	for _, r := range s {
		space := unicode.IsSpace(r)
		if space && (r != ' ' || prevSpace) {
			clean = false
			break
		}
		prevSpace = space
	}
	if clean && !prevSpace {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// readWords cleans and checks the transcript's words, and grades the
// boundary after each. Words with no text carry nothing to retrieve and are
// left out.
func readWords(tr artifact.Transcript) ([]word, []int8, error) {
	words := make([]word, 0, len(tr.Words))
	last := make([]int, len(tr.Words)) // last kept word at or before each source index, or -1
	prevStart := math.Inf(-1)
	for i, w := range tr.Words {
		if bad(w.Start) || bad(w.End) || w.End < w.Start {
			return nil, nil, fmt.Errorf("transcript word %d (%q): bad times %v..%v", i, w.Text, w.Start, w.End)
		}
		if w.Start < prevStart {
			return nil, nil, fmt.Errorf("transcript word %d (%q): starts at %v, before the word before it (%v)", i, w.Text, w.Start, prevStart)
		}
		prevStart = w.Start
		if text := cleanWord(w.Text); text != "" {
			words = append(words, word{text: text, start: w.Start, end: w.End, speaker: w.Speaker, src: i})
		}
		last[i] = len(words) - 1
	}

	cuts := make([]int8, len(words))
	for k, w := range words {
		if sentenceEnd(w.text) {
			cuts[k] = cutSentence
		}
		if k+1 < len(words) && words[k+1].speaker != w.speaker {
			cuts[k] = cutSpeaker
		}
	}
	for i, p := range tr.Paragraphs {
		if p.FirstWord < 0 || p.LastWord < p.FirstWord || p.LastWord >= len(tr.Words) {
			return nil, nil, fmt.Errorf("transcript paragraph %d: words %d..%d outside the transcript's %d words", i, p.FirstWord, p.LastWord, len(tr.Words))
		}
		if k := last[p.LastWord]; k >= 0 && words[k].src >= p.FirstWord {
			cuts[k] = max(cuts[k], cutParagraph)
		}
	}
	return words, cuts, nil
}

// bad reports a time that cannot be on a lesson's timeline.
func bad(t float64) bool { return math.IsNaN(t) || math.IsInf(t, 0) || t < 0 }

// sentenceEnd reports whether a word ends a sentence: its last character,
// closing quotes and brackets aside, is sentence-final punctuation.
func sentenceEnd(text string) bool {
	for text != "" {
		r, n := utf8.DecodeLastRuneInString(text)
		switch r {
		case '.', '?', '!', '…', '。', '？', '！':
			return true
		case '"', '\'', '”', '’', '»', ')', ']', '}':
			text = text[:len(text)-n]
		default:
			return false
		}
	}
	return false
}
