package chunk

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/coursekb/pipeline/shared/artifact"
)

// ErrNothingToChunk is returned for a lesson with no spoken words and no
// visual element with anything to say: nothing in it could be retrieved.
var ErrNothingToChunk = errors.New("no spoken words and no visual content")

// Lesson is the lesson a transcript and an analysis belong to: its identity,
// copied into every chunk, and its names and link for the knowledge document.
type Lesson struct {
	School   string
	CourseID string
	ModuleID string
	LessonID string
	Version  int

	CourseTitle string
	ModuleTitle string
	Title       string
	// URL is the lesson's page for a student to open.
	URL string
}

// Splitter cuts lessons into chunks. It is safe for concurrent use.
type Splitter struct {
	tok  *Tokenizer
	opts Options
}

// NewSplitter checks the options and returns a splitter counting tokens with
// tok.
func NewSplitter(tok *Tokenizer, opts Options) (*Splitter, error) {
	if tok == nil {
		return nil, errors.New("chunk: NewSplitter: no tokenizer")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Splitter{tok: tok, opts: opts}, nil
}

// Options are the splitter's options.
func (s *Splitter) Options() Options { return s.opts }

// Split cuts a lesson's transcript and the analysis of its video into
// retrieval chunks, ordered by Start, following the rules of the package
// comment.
func (s *Splitter) Split(l Lesson, tr artifact.Transcript, an artifact.Analysis) ([]artifact.Chunk, error) {
	p, err := s.plan(l, tr, an)
	if err != nil {
		return nil, err
	}
	chunks := make([]artifact.Chunk, len(p.drafts))
	for i, d := range p.drafts {
		chunks[i] = artifact.Chunk{
			Index:    i,
			Start:    d.start,
			End:      d.stop,
			Text:     d.text,
			Tokens:   d.tokens,
			Speakers: p.speakers(d),
			Visuals:  p.visuals(d),
			School:   l.School,
			CourseID: l.CourseID,
			ModuleID: l.ModuleID,
			LessonID: l.LessonID,
			Version:  l.Version,
		}
	}
	return chunks, nil
}

// draft is a chunk in the making, with where it comes from.
type draft struct {
	// Spoken words [first, end); [first, own) repeat the end of the
	// previous spoken chunk. first == own == end for a chunk of visual
	// elements alone.
	first, own, end int
	elems           []int // elements rendered in text
	text            string
	tokens          int
	start, stop     float64
}

func (d draft) spoken() bool { return d.end > d.first }

// plan cuts a lesson: the chunks as drafts, in order, with the words and
// elements each holds.
func (s *Splitter) plan(l Lesson, tr artifact.Transcript, an artifact.Analysis) (*packer, error) {
	p, err := s.cut(l, tr, an)
	if err != nil {
		return nil, fmt.Errorf("chunk lesson %s v%d: %w", l.LessonID, l.Version, err)
	}
	return p, nil
}

func (s *Splitter) cut(l Lesson, tr artifact.Transcript, an artifact.Analysis) (*packer, error) {
	for _, a := range []struct {
		name, id string
		version  int
	}{{"transcript", tr.LessonID, tr.Version}, {"analysis", an.LessonID, an.Version}} {
		if a.id != "" && (a.id != l.LessonID || a.version != l.Version) {
			return nil, fmt.Errorf("the %s is of lesson %s v%d", a.name, a.id, a.version)
		}
	}
	words, cuts, err := readWords(tr)
	if err != nil {
		return nil, err
	}
	ves, err := readElements(an)
	if err != nil {
		return nil, err
	}
	p := newPacker(s, words, ves)
	p.segment(cuts)
	if err := p.pack(); err != nil {
		return nil, err
	}
	if len(p.drafts) == 0 {
		return nil, ErrNothingToChunk
	}
	p.order()
	return p, nil
}

// order sorts the chunks by start. They are made in the order of the
// transcript, but a chunk of elements alone, made where its elements are
// anchored, may start after the next spoken chunk does, whose overlap
// reaches back before it.
func (p *packer) order() {
	slices.SortStableFunc(p.drafts, func(a, b draft) int { return cmp.Compare(a.start, b.start) })
}

// speakers lists the chunk's speakers in order of first word.
func (p *packer) speakers(d draft) []string {
	var out []string
	for _, w := range p.words[d.first:d.end] {
		if w.speaker != "" && !slices.Contains(out, w.speaker) {
			out = append(out, w.speaker)
		}
	}
	return out
}

// visuals lists the elements on screen during the chunk (for some time, or
// at an instant inside it) and those rendered in it, in order of
// appearance.
func (p *packer) visuals(d draft) []artifact.VisualElement {
	var out []artifact.VisualElement
	for i, e := range p.els {
		if e.Start > d.stop {
			break
		}
		if onScreen(e.VisualElement, d.start, d.stop) || slices.Contains(d.elems, i) {
			out = append(out, e.VisualElement)
		}
	}
	return out
}

// onScreen reports whether an element is shown during [start, stop]: for a
// positive time, or, for an element shown at an instant, at an instant of
// the span.
func onScreen(e artifact.VisualElement, start, stop float64) bool {
	if e.Start == e.End {
		return e.Start >= start && e.Start <= stop
	}
	return e.Start < stop && e.End > start
}
