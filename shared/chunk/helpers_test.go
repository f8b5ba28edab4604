package chunk

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/artifact"
)

var testTokenizer = sync.OnceValue(func() *Tokenizer {
	tok, err := NewTokenizer("text-embedding-3-small")
	if err != nil {
		panic(err)
	}
	return tok
})

func newSplitter(t testing.TB, maxTokens, overlapTokens int) *Splitter {
	t.Helper()
	s, err := NewSplitter(testTokenizer(), Options{MaxTokens: maxTokens, OverlapTokens: overlapTokens})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testLesson = Lesson{
	School:      "programacion",
	CourseID:    "1117869",
	ModuleID:    "2z7ramxejw",
	LessonID:    "RE4zW6m6el",
	Version:     2,
	CourseTitle: "Go desde cero",
	ModuleTitle: "Fundamentos",
	Title:       "Variables y tipos",
	URL:         "https://escuela.club.hotmart.com/lesson/RE4zW6m6el",
}

// script writes a transcript: each word takes 0.3 s and a 0.1 s gap.
type script struct {
	words     []artifact.Word
	paras     []artifact.Paragraph
	t         float64
	paraStart int
}

func (s *script) say(speaker, text string) *script {
	for _, w := range strings.Fields(text) {
		s.word(speaker, w)
	}
	return s
}

func (s *script) word(speaker, text string) {
	s.words = append(s.words, artifact.Word{Text: text, Start: s.t, End: s.t + 0.3, Speaker: speaker, Confidence: 0.9})
	s.t += 0.4
}

func (s *script) pause(seconds float64) *script { s.t += seconds; return s }

// paragraph ends the paragraph open since the last one.
func (s *script) paragraph() *script {
	if last := len(s.words) - 1; last >= s.paraStart {
		s.paras = append(s.paras, artifact.Paragraph{
			Start: s.words[s.paraStart].Start, End: s.words[last].End,
			Speaker: s.words[last].Speaker, FirstWord: s.paraStart, LastWord: last,
		})
	}
	s.paraStart = len(s.words)
	return s
}

func (s *script) transcript() artifact.Transcript {
	var text []string
	for _, w := range s.words {
		text = append(text, w.Text)
	}
	return artifact.Transcript{
		LessonID: testLesson.LessonID, Version: testLesson.Version, Language: "es-ES",
		Text: strings.Join(text, " "), Words: s.words, Paragraphs: s.paras, DurationSeconds: s.t,
	}
}

func analysis(els ...artifact.VisualElement) artifact.Analysis {
	return artifact.Analysis{LessonID: testLesson.LessonID, Version: testLesson.Version, Elements: els}
}

// sentence makes a sentence of n words from a small Spanish vocabulary,
// ending with a full stop.
func sentence(seed, n int) string {
	vocab := []string{"la", "variable", "guarda", "un", "valor", "que", "el", "programa", "usa", "después",
		"cada", "función", "recibe", "parámetros", "y", "devuelve", "resultados", "con", "tipos", "claros"}
	words := make([]string, n)
	for i := range words {
		words[i] = vocab[(seed*7+i*3+i*i)%len(vocab)]
	}
	return strings.Join(words, " ") + "."
}

// refWord is a transcript word as the specification reads it, computed
// here independently of the package.
type refWord struct {
	text       string
	start, end float64
	speaker    string
}

func refWords(tr artifact.Transcript) []refWord {
	var out []refWord
	for _, w := range tr.Words {
		text := strings.Join(strings.Fields(strings.ToValidUTF8(w.Text, "\uFFFD")), " ")
		if text != "" {
			out = append(out, refWord{text, w.Start, w.End, w.Speaker})
		}
	}
	return out
}

func joinWords(ws []refWord) string {
	texts := make([]string, len(ws))
	for i, w := range ws {
		texts[i] = w.text
	}
	return strings.Join(texts, " ")
}

// refBoundaries reports, for each word of ref, whether the chunker may end
// a chunk after it: a sentence end, a paragraph end, or a change of speaker.
func refBoundaries(tr artifact.Transcript, ref []refWord) []bool {
	out := make([]bool, len(ref))
	for k, w := range ref {
		t := strings.TrimRight(w.text, `"'”’»)]}`)
		r, _ := utf8.DecodeLastRuneInString(t)
		out[k] = k == len(ref)-1 || w.speaker != ref[k+1].speaker || strings.ContainsRune(".?!…。？！", r)
	}
	// Paragraph ends, mapped from source indices to kept words.
	kept := -1
	last := make([]int, len(tr.Words))
	for i, w := range tr.Words {
		if strings.TrimSpace(w.Text) != "" {
			kept++
		}
		last[i] = kept
	}
	for _, p := range tr.Paragraphs {
		if k := last[p.LastWord]; k >= 0 && (p.FirstWord == 0 || last[p.FirstWord-1] < k) {
			out[k] = true
		}
	}
	return out
}

// checkOverlap checks that got is where the overlap after a spoken chunk
// of ref[from:end] starts: the least s whose run ref[s:end], joined and
// counted afresh, is at most limit tokens (end if none is). Longer runs
// count more, give or take a token where a word starts the text, so the
// search stops once a run is well over the limit.
func checkOverlap(tok *Tokenizer, ref []refWord, from, end, limit, got int) error {
	if got < end && tok.Count(joinWords(ref[got:end])) > limit {
		return fmt.Errorf("overlap of words %d..%d counts %d, over %d", got, end, tok.Count(joinWords(ref[got:end])), limit)
	}
	for s := got - 1; s >= from; s-- {
		n := tok.Count(joinWords(ref[s:end]))
		if n <= limit {
			return fmt.Errorf("overlap starts at word %d, but words %d..%d count %d, within %d", got, s, end, n, limit)
		}
		if n > limit+8 {
			break
		}
	}
	return nil
}

func hasContent(e artifact.VisualElement) bool {
	return strings.TrimSpace(e.Title+e.Text+e.Description+e.Code) != ""
}

// checkSplit splits a lesson and checks every rule of the package comment
// on the result, against values computed here. It returns the chunks and
// the plan they came from (which says which words each chunk holds; the
// chunks' texts are checked against it).
func checkSplit(t testing.TB, s *Splitter, tr artifact.Transcript, an artifact.Analysis) ([]artifact.Chunk, *packer) {
	t.Helper()
	chunks, err := s.Split(testLesson, tr, an)
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	p, err := s.plan(testLesson, tr, an)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(p.drafts) != len(chunks) {
		t.Fatalf("%d chunks, plan has %d", len(chunks), len(p.drafts))
	}
	tok, opts := s.tok, s.Options()
	ref := refWords(tr)
	n := len(ref)
	boundary := refBoundaries(tr, ref)
	els := slices.Clone(an.Elements)
	slices.SortStableFunc(els, func(a, b artifact.VisualElement) int { return cmp.Compare(a.Start, b.Start) })

	renderedIn := make([][]int, len(els))
	var prev *draft
	prevEnd := math.Inf(-1)
	for i, c := range chunks {
		d := p.drafts[i]
		if c.Text != d.text {
			t.Fatalf("chunk %d: Split and plan disagree", i)
		}
		if c.Index != i || c.School != testLesson.School || c.CourseID != testLesson.CourseID ||
			c.ModuleID != testLesson.ModuleID || c.LessonID != testLesson.LessonID || c.Version != testLesson.Version {
			t.Errorf("chunk %d: identity %d %s %s %s %s v%d", i, c.Index, c.School, c.CourseID, c.ModuleID, c.LessonID, c.Version)
		}
		if got := tok.Count(c.Text); got != c.Tokens {
			t.Errorf("chunk %d: Tokens %d, a fresh count gives %d", i, c.Tokens, got)
		}
		if c.Tokens > opts.MaxTokens {
			lone := !d.spoken() && len(d.elems) == 1 && slices.ContainsFunc(p.els[d.elems[0]].pieces, func(pc piece) bool { return pc.text == c.Text }) &&
				(strings.Contains(c.Text, "```") || len(strings.Fields(c.Text[strings.Index(c.Text, "]")+1:])) <= 1)
			if !lone {
				t.Errorf("chunk %d: %d tokens, over %d, and not a lone uncuttable piece:\n%s", i, c.Tokens, opts.MaxTokens, c.Text)
			}
		}
		if i > 0 && c.Start < chunks[i-1].Start {
			t.Errorf("chunk %d starts at %v, before chunk %d (%v)", i, c.Start, i-1, chunks[i-1].Start)
		}
		if c.End < c.Start {
			t.Errorf("chunk %d ends at %v, before its start %v", i, c.End, c.Start)
		}
		for _, e := range d.elems {
			renderedIn[e] = append(renderedIn[e], i)
			if !strings.Contains(c.Text, "["+kindLabels[els[e].Kind]) && kindLabels[els[e].Kind] != "" {
				t.Errorf("chunk %d renders element %d but its text has no %q header", i, e, kindLabels[els[e].Kind])
			}
		}

		// Visuals: on screen during the span, or rendered here.
		var want []artifact.VisualElement
		for j, e := range els {
			instant := e.Start == e.End && e.Start >= c.Start && e.Start <= c.End
			during := e.Start < c.End && e.End > c.Start
			if instant || during || slices.Contains(d.elems, j) {
				want = append(want, e)
			}
		}
		if !reflect.DeepEqual(c.Visuals, want) {
			t.Errorf("chunk %d [%v, %v]: visuals %v, want %v", i, c.Start, c.End, titles(c.Visuals), titles(want))
		}

		if !d.spoken() {
			if c.Speakers != nil {
				t.Errorf("chunk %d has no words but speakers %v", i, c.Speakers)
			}
			start, end := math.Inf(1), math.Inf(-1)
			for _, e := range d.elems {
				start, end = math.Min(start, els[e].Start), math.Max(end, els[e].End)
			}
			if c.Start != start || c.End != end {
				t.Errorf("chunk %d of elements alone spans [%v, %v], its elements [%v, %v]", i, c.Start, c.End, start, end)
			}
			if !strings.HasPrefix(c.Text, "[") {
				t.Errorf("chunk %d of elements alone starts %.20q", i, c.Text)
			}
			continue
		}

		// The spoken text is the transcript's words, then the elements.
		spoken := joinWords(ref[d.first:d.end])
		if c.Text != spoken && !strings.HasPrefix(c.Text, spoken+"\n\n[") {
			t.Fatalf("chunk %d: text does not start with words %d..%d %.60q:\n%.200q", i, d.first, d.end, spoken, c.Text)
		}
		if (c.Text == spoken) != (len(d.elems) == 0) {
			t.Errorf("chunk %d: %d elements rendered, text %.200q", i, len(d.elems), c.Text)
		}
		// No word lost, none repeated but the overlap, which is exact.
		if prev == nil {
			if d.first != 0 || d.own != 0 {
				t.Errorf("first spoken chunk %d starts at word %d (own %d)", i, d.first, d.own)
			}
		} else {
			if d.own != prev.end {
				t.Errorf("chunk %d: own words start at %d, the spoken chunk before ended at %d", i, d.own, prev.end)
			}
			if err := checkOverlap(tok, ref, prev.first, prev.end, opts.OverlapTokens, d.first); err != nil {
				t.Errorf("chunk %d: %v", i, err)
			}
		}
		if d.own >= d.end {
			t.Errorf("chunk %d has no words of its own", i)
		}
		// Cut at a boundary, or inside one sentence too long to fit.
		if k := d.end - 1; d.end < n && !boundary[k] {
			for j := d.own; j < k; j++ {
				if boundary[j] {
					t.Errorf("chunk %d ends inside a sentence (word %d %q) though it holds a boundary at word %d", i, k, ref[k].text, j)
					break
				}
			}
			if tok.Count(joinWords(ref[d.first:d.end+1])) <= opts.MaxTokens && len(d.elems) == 0 {
				t.Errorf("chunk %d ends inside a sentence (word %d %q) though the next word fits", i, k, ref[k].text)
			}
		}
		// Times.
		start, end := ref[d.first].start, math.Max(prevEnd, ref[d.first].end)
		for _, w := range ref[d.first:d.end] {
			end = math.Max(end, w.end)
		}
		next := math.Inf(1)
		if d.end < n {
			next = ref[d.end].start
		}
		for _, e := range d.elems {
			start = math.Min(start, els[e].Start)
			if els[e].End <= next {
				end = math.Max(end, els[e].End)
			}
		}
		if c.Start != start || c.End != end {
			t.Errorf("chunk %d spans [%v, %v], want [%v, %v]", i, c.Start, c.End, start, end)
		}
		prevEnd = c.End
		var speakers []string
		for _, w := range ref[d.first:d.end] {
			if w.speaker != "" && !slices.Contains(speakers, w.speaker) {
				speakers = append(speakers, w.speaker)
			}
		}
		if !slices.Equal(c.Speakers, speakers) {
			t.Errorf("chunk %d: speakers %v, want %v", i, c.Speakers, speakers)
		}
		prev = &d
	}
	if (prev == nil) != (n == 0) || prev != nil && prev.end != n {
		t.Errorf("spoken chunks end at word %v of %d", prev, n)
	}

	// Every element with something to say is rendered: once, in the chunk
	// holding its anchor as an own word, or in chunks of elements alone.
	for j, e := range els {
		if !hasContent(e) {
			if len(renderedIn[j]) > 0 {
				t.Errorf("element %d has nothing to say but is rendered in %v", j, renderedIn[j])
			}
			continue
		}
		if len(renderedIn[j]) == 0 {
			t.Errorf("element %d (%s %q) is in no chunk", j, e.Kind, e.Title)
			continue
		}
		// Carriage returns are line breaks in a chunk's text.
		code := strings.ReplaceAll(strings.ReplaceAll(e.Code, "\r\n", "\n"), "\r", "\n")
		if code = strings.TrimRight(code, "\n"); strings.TrimSpace(code) != "" {
			whole := 0
			for _, ci := range renderedIn[j] {
				if strings.Contains(chunks[ci].Text, "\n"+code+"\n") {
					whole++
				}
			}
			if whole != 1 {
				t.Errorf("element %d's code is whole in %d of its chunks %v", j, whole, renderedIn[j])
			}
		}
		anchor := n
		for k, w := range ref {
			if w.end > e.Start {
				anchor = k
				break
			}
		}
		for _, ci := range renderedIn[j] {
			d := p.drafts[ci]
			if !d.spoken() {
				continue
			}
			if len(renderedIn[j]) > 1 {
				t.Errorf("element %d is rendered in chunks %v, one of them spoken", j, renderedIn[j])
			}
			if !(d.own <= anchor && anchor < d.end || anchor == n && d.end == n) {
				t.Errorf("element %d (anchor word %d) is rendered in chunk %d, whose own words are %d..%d", j, anchor, ci, d.own, d.end)
			}
		}
	}
	return chunks, p
}

func titles(els []artifact.VisualElement) []string {
	out := make([]string, len(els))
	for i, e := range els {
		out[i] = e.Title
	}
	return out
}
