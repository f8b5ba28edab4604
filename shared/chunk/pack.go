package chunk

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/coursekb/pipeline/shared/artifact"
)

// segment is the unit the packer adds to a chunk: a sentence (or the part
// of a sentence up to a paragraph end or a speaker change) with the visual
// elements anchored in it; or, with no words, the elements shown after the
// last word.
type segment struct {
	first, end int
	elems      []int
	cut        int8 // strength of the boundary after it
}

// cand is a place a chunk may end: after segment seg, with the first
// nElems elements of the segments up to it rendered.
type cand struct {
	seg, tokens, nElems int
}

// counts are the tokens of one distinct word text: after a space (as it
// follows another word), at the start of a text, and each of those followed
// by a blank line (as the last word before visual elements); -1 until
// needed. Speech repeats its words: each distinct text is tokenized once
// however often it is said.
type counts struct {
	mid, lead, midBlank, leadBlank int
}

// packer holds one lesson's state while it is cut.
type packer struct {
	s      *Splitter
	words  []word
	counts []counts // of each distinct word text
	wc     []int32  // words[k]'s in counts
	// pre[k] is the tokens of words[:k], each counted after a space; by the
	// property cleanWord gives words, the tokens of words[i:k] joined are
	// pre[k]-pre[i+1] plus words[i]'s lead count.
	pre    []int
	els    []element
	segs   []segment
	drafts []draft
	cands  []cand
	elems  []int // the elements of the chunk being built, in order
}

func newPacker(s *Splitter, words []word, ves []artifact.VisualElement) *packer {
	p := &packer{s: s, words: words, els: make([]element, len(ves)), wc: make([]int32, len(words)), pre: make([]int, len(words)+1)}
	for i, e := range ves {
		p.els[i] = element{VisualElement: e, pieces: s.pieces(e)}
	}
	anchor(p.els, words)

	memo := make(map[string]int32)
	for k, w := range words {
		i, ok := memo[w.text]
		if !ok {
			i = int32(len(p.counts))
			memo[w.text] = i
			p.counts = append(p.counts, counts{mid: s.tok.Count(" " + w.text), lead: -1, midBlank: -1, leadBlank: -1})
		}
		p.wc[k] = i
		p.pre[k+1] = p.pre[k] + p.counts[i].mid
	}
	return p
}

// segment groups the words into segments, and anchors each element with
// something to say in the segment of its anchor word.
func (p *packer) segment(cuts []int8) {
	n, e, first := len(p.words), 0, 0
	take := func(upTo int) []int {
		var out []int
		for ; e < len(p.els) && p.els[e].anchor <= upTo; e++ {
			if p.els[e].pieces != nil {
				out = append(out, e)
			}
		}
		return out
	}
	for k := range n {
		if k == n-1 || cuts[k] >= cutSentence {
			p.segs = append(p.segs, segment{first: first, end: k + 1, elems: take(k), cut: cuts[k]})
			first = k + 1
		}
	}
	if trail := take(n); len(trail) > 0 {
		p.segs = append(p.segs, segment{first: n, end: n, elems: trail})
	}
}

// spoken is the tokens of words[from:end] joined by spaces, from < end.
func (p *packer) spoken(from, end int) int {
	c := &p.counts[p.wc[from]]
	if c.lead < 0 {
		c.lead = p.s.tok.Count(p.words[from].text)
	}
	return c.lead + p.pre[end] - p.pre[from+1]
}

// spokenThenBlank is the tokens of words[from:end] joined by spaces and
// followed by a blank line, from < end. The blank line may merge with the
// last word's punctuation, so that word is counted with it.
func (p *packer) spokenThenBlank(from, end int) int {
	last := end - 1
	c := &p.counts[p.wc[last]]
	if last == from {
		if c.leadBlank < 0 {
			c.leadBlank = p.s.tok.Count(p.words[last].text + "\n\n")
		}
		return c.leadBlank
	}
	if c.midBlank < 0 {
		c.midBlank = p.s.tok.Count(" " + p.words[last].text + "\n\n")
	}
	return p.spoken(from, last) + c.midBlank
}

// visualTokens is the tokens of the elements' pieces joined by blank
// lines: a blank line never merges with the "[" after it.
func (p *packer) visualTokens(elems []int) int {
	n := 0
	for _, e := range elems {
		for _, pc := range p.els[e].pieces {
			n += pc.blank
		}
	}
	if n == 0 {
		return 0
	}
	last := p.els[elems[len(elems)-1]].pieces
	return n - last[len(last)-1].blank + last[len(last)-1].tokens
}

// overlapStart is where the chunk after a spoken chunk of words[from:end]
// starts: the longest run of whole words ending it that counts at most
// OverlapTokens on its own.
func (p *packer) overlapStart(from, end int) int {
	limit := p.s.opts.OverlapTokens
	if limit == 0 {
		return end
	}
	// A word counts at least one token at the start of a text, so no run
	// starting before lo fits; from lo on, the first start that fits is the
	// answer.
	lo := from + sort.Search(end-from, func(i int) bool { return p.pre[end]-p.pre[from+i+1] <= limit-1 })
	for s := lo; s < end; s++ {
		if p.spoken(s, end) <= limit {
			return s
		}
	}
	return end
}

// pack cuts the segments into chunks, in order.
func (p *packer) pack() error {
	limit := p.s.opts.MaxTokens
	prevFirst, prevEnd := -1, -1 // the previous spoken chunk's words
	for cur := 0; cur < len(p.segs); {
		sg := &p.segs[cur]
		if sg.first == sg.end {
			p.visualOnly(sg.elems)
			cur++
			continue
		}
		from := sg.first
		if prevEnd >= 0 {
			from = p.overlapStart(prevFirst, prevEnd)
		}

		p.cands, p.elems = p.cands[:0], p.elems[:0]
		visTokens := 0
		j := cur
		for ; j < len(p.segs); j++ {
			next := &p.segs[j]
			if len(next.elems) > 0 {
				p.elems = append(p.elems, next.elems...)
				visTokens = p.visualTokens(p.elems)
			}
			tokens := p.spoken(from, next.end)
			if len(p.elems) > 0 {
				tokens = p.spokenThenBlank(from, next.end) + visTokens
			}
			if tokens > limit {
				break
			}
			p.cands = append(p.cands, cand{seg: j, tokens: tokens, nElems: len(p.elems)})
		}

		if len(p.cands) == 0 {
			if len(sg.elems) > 0 {
				// The sentence and what appeared during it do not fit
				// beside the overlap: the elements go to chunks of their
				// own, and the sentence is tried alone.
				p.visualOnly(sg.elems)
				sg.elems = nil
				continue
			}
			// One sentence too long for a chunk: cut it between words.
			k := sg.first
			for k < sg.end && p.spoken(from, k+1) <= limit {
				k++
			}
			if k == sg.first {
				w, overlap := p.words[k], 0
				if from < k {
					overlap = p.spoken(from, k)
				}
				return fmt.Errorf("transcript word %d (%.40q) is too long for a chunk: %d tokens with its %d tokens of overlap, over %d", w.src, w.text, p.spoken(from, k+1), overlap, limit)
			}
			p.emit(from, sg.first, k, nil, p.spoken(from, k))
			prevFirst, prevEnd = from, k
			sg.first = k
			continue
		}

		c := p.choose(j == len(p.segs))
		end := p.segs[c.seg].end
		p.emit(from, sg.first, end, p.elems[:c.nElems:c.nElems], c.tokens)
		p.elems = nil // now the draft's
		prevFirst, prevEnd = from, end
		cur = c.seg + 1
	}
	return nil
}

// choose picks where the chunk ends among p.cands. At the lesson's end
// everything left fits, and it is one chunk. Otherwise the strongest
// boundary (speaker change, paragraph end, sentence end) wins, the latest
// of equals, among the places that leave the chunk at least half full; if
// none does, the latest place.
func (p *packer) choose(atEnd bool) cand {
	last := p.cands[len(p.cands)-1]
	if atEnd {
		return last
	}
	best := -1
	for i, c := range p.cands {
		if c.tokens*2 < p.s.opts.MaxTokens {
			continue
		}
		if best < 0 || p.segs[c.seg].cut >= p.segs[p.cands[best].seg].cut {
			best = i
		}
	}
	if best < 0 {
		return last
	}
	return p.cands[best]
}

// emit adds the chunk of words[from:end] (of which [from, own) are
// overlap) and the elements rendered with them.
func (p *packer) emit(from, own, end int, elems []int, tokens int) {
	var b strings.Builder
	b.Grow(p.textSize(from, end, elems))
	for k, w := range p.words[from:end] {
		if k > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.text)
	}
	for _, e := range elems {
		for _, pc := range p.els[e].pieces {
			b.WriteString("\n\n")
			b.WriteString(pc.text)
		}
	}

	// The span is the words', widened to when an element rendered here
	// appeared, and to when it left the screen if that is before the next
	// word is spoken: then it is shown in no other chunk.
	start, stop := p.words[from].start, p.words[from].end
	for _, w := range p.words[from:end] {
		stop = math.Max(stop, w.end)
	}
	next := math.Inf(1)
	if end < len(p.words) {
		next = p.words[end].start
	}
	for _, e := range elems {
		el := p.els[e]
		start = math.Min(start, el.Start)
		if el.End <= next {
			stop = math.Max(stop, el.End)
		}
	}
	// Words that overlap in time could leave a chunk ending before the
	// one before it; keep ends in order.
	for i := len(p.drafts) - 1; i >= 0; i-- {
		if p.drafts[i].spoken() {
			stop = math.Max(stop, p.drafts[i].stop)
			break
		}
	}
	p.drafts = append(p.drafts, draft{first: from, own: own, end: end, elems: elems, text: b.String(), tokens: tokens, start: start, stop: stop})
}

func (p *packer) textSize(from, end int, elems []int) int {
	n := 0
	for _, w := range p.words[from:end] {
		n += len(w.text) + 1
	}
	for _, e := range elems {
		for _, pc := range p.els[e].pieces {
			n += len(pc.text) + 2
		}
	}
	return n
}

// visualOnly adds chunks of elements alone, packed in order up to
// MaxTokens; a piece longer than that (code is never cut) is a chunk by
// itself.
func (p *packer) visualOnly(elems []int) {
	var b strings.Builder
	var in []int
	// tokens counts the chunk so far; blanks, with a blank line after its
	// last piece, which is what the next piece adds to.
	tokens, blanks := 0, 0
	flush := func() {
		if b.Len() == 0 {
			return
		}
		start, stop := math.Inf(1), math.Inf(-1)
		for _, e := range in {
			start = math.Min(start, p.els[e].Start)
			stop = math.Max(stop, p.els[e].End)
		}
		p.drafts = append(p.drafts, draft{elems: in, text: b.String(), tokens: tokens, start: start, stop: stop})
		b.Reset()
		in = nil
	}
	for _, e := range elems {
		for _, pc := range p.els[e].pieces {
			if b.Len() > 0 {
				if next := blanks + pc.tokens; next <= p.s.opts.MaxTokens {
					b.WriteString("\n\n")
					b.WriteString(pc.text)
					tokens, blanks = next, blanks+pc.blank
					if in[len(in)-1] != e {
						in = append(in, e)
					}
					continue
				}
				flush()
			}
			b.WriteString(pc.text)
			tokens, blanks, in = pc.tokens, pc.blank, []int{e}
		}
	}
	flush()
}
