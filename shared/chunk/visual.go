package chunk

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/coursekb/pipeline/shared/artifact"
)

// kindLabels name each kind of visual element in a chunk's text, in the
// language of the lessons.
var kindLabels = map[string]string{
	artifact.VisualSlide:         "Diapositiva",
	artifact.VisualCode:          "Código",
	artifact.VisualDiagram:       "Diagrama",
	artifact.VisualDemonstration: "Demostración",
	artifact.VisualConcept:       "Concepto",
}

// element is a visual element with the text it contributes to a chunk.
type element struct {
	artifact.VisualElement
	// pieces are what the element adds to a chunk's text, each kept whole:
	// one piece for an element that fits in a chunk; else its prose cut at
	// lines (then at spaces) into pieces that fit, and its code as one
	// piece however long. Nil for an element with nothing to say.
	pieces []piece
	// anchor is the first word still being spoken when the element appears
	// (len(words) if none): the element is rendered in the chunk whose own
	// words include it.
	anchor int
}

// piece is a part of an element's text. It starts with "[", holds no
// carriage return, and its last line is not blank: so a blank line before
// it ends the token before, and one after it never merges with what
// follows. The tokens of pieces joined by blank lines are then each piece's
// count followed by a blank line, the last one's alone.
type piece struct {
	text string
	// tokens counts the piece at the end of a text; blank, followed by a
	// blank line and another piece.
	tokens, blank int
}

// readElements checks the analysis's elements and orders them by the time
// they appear.
func readElements(an artifact.Analysis) ([]artifact.VisualElement, error) {
	for i, e := range an.Elements {
		if bad(e.Start) || bad(e.End) || e.End < e.Start {
			return nil, fmt.Errorf("analysis element %d (%s %q): bad times %v..%v", i, e.Kind, e.Title, e.Start, e.End)
		}
	}
	els := slices.Clone(an.Elements)
	slices.SortStableFunc(els, func(a, b artifact.VisualElement) int { return cmp.Compare(a.Start, b.Start) })
	return els, nil
}

// anchor places each element before the first word whose end is after the
// element appears. Elements are ordered by start, so the anchors are too.
func anchor(els []element, words []word) {
	k := 0
	for i := range els {
		for k < len(words) && words[k].end <= els[i].Start {
			k++
		}
		els[i].anchor = k
	}
}

// pieces renders an element for a chunk's text:
//
//	[Diapositiva: title]
//	text
//	description
//	```go
//	code
//	```
func (s *Splitter) pieces(e artifact.VisualElement) []piece {
	label := kindLabels[e.Kind]
	if label == "" {
		label = oneLine(e.Kind)
	}
	title := oneLine(e.Title)
	header := "[" + label + "]"
	if title != "" {
		header = "[" + label + ": " + title + "]"
	}
	var prose []string
	for _, p := range []string{e.Text, e.Description} {
		if p = strings.TrimSpace(noCR(p)); p != "" {
			prose = append(prose, p)
		}
	}
	code := ""
	if strings.TrimSpace(e.Code) != "" {
		code = fence(noCR(e.Code), e.Language)
	}
	if len(prose) == 0 && code == "" && title == "" {
		return nil
	}

	whole := joinNonEmpty("\n", header, strings.Join(prose, "\n"), code)
	if n := s.tok.Count(whole); n <= s.opts.MaxTokens {
		return []piece{s.piece(whole, n)}
	}
	out := s.cutProse(header, strings.Join(prose, "\n"))
	if code != "" {
		c := header + "\n" + code
		out = append(out, s.piece(c, s.tok.Count(c)))
	}
	return out
}

// piece counts a piece followed by a blank line from its count alone. A
// line break ends any token holding it, and a last line that is not blank
// starts a token of its own; so only the last line needs counting again.
func (s *Splitter) piece(text string, tokens int) piece {
	last := text[strings.LastIndexByte(text, '\n')+1:]
	if strings.TrimSpace(last) == "" {
		// A blank last line would merge with the blank line after it.
		return piece{text: text, tokens: tokens, blank: s.tok.Count(text + "\n\n")}
	}
	return piece{text: text, tokens: tokens, blank: tokens - s.tok.Count(last) + s.tok.Count(last+"\n\n")}
}

// noCR turns carriage returns into line breaks, which keeps a piece's last
// line from starting with one.
func noCR(s string) string {
	if !strings.ContainsRune(s, '\r') {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// cutProse cuts prose too long for one chunk into pieces that each fit
// with the header before them: at line breaks, and inside a line that does
// not fit alone, at spaces (a word that does not fit alone is a piece by
// itself). Blank lines are dropped.
//
// A line break ends any token that holds it, and a token of a line that is
// not blank starts with the line: so a piece counts its header and each
// line followed by a line break, then its last line alone, and each line is
// tokenized once, not once for every piece it might end.
func (s *Splitter) cutProse(header, text string) []piece {
	if text == "" {
		return nil
	}
	head := s.tok.Count(header + "\n")
	type line struct {
		text         string
		alone, ended int // tokens alone, and followed by a line break
	}
	var lines []line
	add := func(l string) {
		lines = append(lines, line{l, s.tok.Count(l), s.tok.Count(l + "\n")})
	}
	for l := range strings.SplitSeq(text, "\n") {
		if l = strings.TrimRightFunc(l, unicode.IsSpace); strings.TrimSpace(l) == "" {
			continue
		}
		if head+s.tok.Count(l) <= s.opts.MaxTokens {
			add(l)
			continue
		}
		// Words joined by single spaces count as the sum of their counts,
		// each after a space (see cleanWord).
		fields := strings.Fields(l)
		cur, n := fields[0], s.tok.Count(fields[0])
		for _, f := range fields[1:] {
			if m := s.tok.Count(" " + f); head+n+m <= s.opts.MaxTokens {
				cur, n = cur+" "+f, n+m
				continue
			}
			add(cur)
			cur, n = f, s.tok.Count(f)
		}
		add(cur)
	}

	var out []piece
	var b strings.Builder
	var last line
	sum := 0 // the piece so far, its last line followed by a line break
	for _, l := range lines {
		if b.Len() > 0 {
			if sum+l.alone <= s.opts.MaxTokens {
				b.WriteString("\n" + l.text)
				sum, last = sum+l.ended, l
				continue
			}
			out = append(out, s.piece(b.String(), sum-last.ended+last.alone))
			b.Reset()
		}
		b.WriteString(header + "\n" + l.text)
		sum, last = head+l.ended, l
	}
	if b.Len() > 0 {
		out = append(out, s.piece(b.String(), sum-last.ended+last.alone))
	}
	return out
}

// fence wraps code in a fenced block longer than any run of backticks in it,
// so code that shows a fence cannot close ours.
func fence(code, lang string) string {
	longest, run := 0, 0
	for _, r := range code {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	f := strings.Repeat("`", max(3, longest+1))
	lang = strings.Join(strings.Fields(strings.ReplaceAll(lang, "`", "")), "-")
	return f + lang + "\n" + strings.TrimRight(code, "\n") + "\n" + f
}

func joinNonEmpty(sep string, parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), sep)
}
