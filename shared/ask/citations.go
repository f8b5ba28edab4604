package ask

import (
	"encoding/json"
	"strings"
	"unicode"

	"github.com/openai/openai-go/v3/responses"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// retrieved is one chunk file_search retrieved.
type retrieved struct {
	fileID, filename, text string
	score                  float64
	attrs                  map[string]any
}

// citations reads the answer's file_citation annotations, in the order they
// appear, each matched to a retrieved chunk (see the package comment). A
// section cited more than once is listed once. question helps place a
// citation of the document's header (keywords, summary: no moment of the
// video) on the timed section of that file that best answers it.
func citations(resp *responses.Response, question string) []Citation {
	var results []retrieved
	for _, item := range resp.Output {
		if item.Type != "file_search_call" {
			continue
		}
		for _, r := range item.AsFileSearchCall().Results {
			rr := retrieved{fileID: r.FileID, filename: r.Filename, text: r.Text, score: r.Score, attrs: map[string]any{}}
			for k, v := range r.Attributes {
				var val any
				if json.Unmarshal([]byte(v.RawJSON()), &val) == nil {
					rr.attrs[k] = val
				}
			}
			results = append(results, rr)
		}
	}
	out := []Citation{}
	seen := map[string]bool{}
	for _, item := range resp.Output {
		if item.Type != "message" {
			continue
		}
		for _, part := range item.AsMessage().Content {
			if part.Type != "output_text" {
				continue
			}
			// A citation's index counts Unicode code points; the passage
			// it ends starts where the one before ended. Citations sharing
			// an index cite the same passage.
			text := []rune(part.Text)
			prev, passage := 0, ""
			for _, ann := range part.Annotations {
				if ann.Type != "file_citation" {
					continue
				}
				fc := ann.AsFileCitation()
				idx := min(max(int(fc.Index), prev), len(text))
				if idx > prev {
					passage = string(text[prev:idx])
				}
				prev = idx
				c := cite(results, fc.FileID, fc.Filename, passage, question)
				key := c.FileID + "\x00" + c.Quote
				if !seen[key] {
					seen[key] = true
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// cite builds the citation of fileID for passage: of the file's retrieved
// chunks, the section sharing the most words with the passage (the first,
// best ranked, of equals). When that section has no time range (the
// document's header), the time range is the one of the file's timed section
// sharing the most words with the passage and the question: a citation
// points at a moment of the lesson's video whenever one was retrieved.
func cite(results []retrieved, fileID, filename, passage, question string) Citation {
	c := Citation{FileID: fileID, Filename: filename}
	words := terms(passage)
	var best *retrieved
	var bestSec section
	bestScore := -1
	for i := range results {
		r := &results[i]
		if r.fileID != fileID {
			continue
		}
		sec, score := bestSection(sections(r.text), words)
		if score > bestScore {
			best, bestSec, bestScore = r, sec, score
		}
	}
	if best == nil {
		// Nothing retrieved of the file (results were not included): the
		// name still says which lesson.
		c.LessonID, c.Version, _ = vectorsync.ParseFileName(filename)
		return c
	}
	c.Score = best.score
	if c.Filename == "" {
		c.Filename = best.filename
	}
	c.LessonID, _ = best.attrs[vectorsync.AttrLesson].(string)
	if v, ok := best.attrs[vectorsync.AttrVersion].(float64); ok {
		c.Version = int(v)
	}
	if c.LessonID == "" || c.Version == 0 {
		c.LessonID, c.Version, _ = vectorsync.ParseFileName(c.Filename)
	}
	c.Title, _ = best.attrs[vectorsync.AttrTitle].(string)
	c.Quote = strings.TrimSpace(bestSec.text)
	if !bestSec.timed && isHeader(bestSec.text) {
		if timed, ok := bestTimed(results, fileID, terms(passage+" "+question)); ok {
			bestSec = timed
		}
	}
	if bestSec.timed {
		start, end := bestSec.start, bestSec.end
		c.Start, c.End = &start, &end
	}
	return c
}

// isHeader reports whether an untimed section is (part of) the knowledge
// document's header: the only place with headings other than the time
// ranges (chunk text has its headings escaped) and with its field lines. An
// untimed section that is not is the tail of a section the store's window
// cut: its moment is unknown, and no other section's is borrowed.
func isHeader(text string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "## ") {
			return true
		}
		for _, field := range headerFields {
			if strings.HasPrefix(line, "- "+field+": ") {
				return true
			}
		}
	}
	return false
}

// headerFields are the field names of chunk.Knowledge's header.
var headerFields = []string{"Curso", "Módulo", "Lección", "Nivel", "Categorías", "Palabras clave", "Enlace"}

// bestTimed is the timed section of fileID's retrieved chunks sharing the
// most of words (the first, best ranked, of equals).
func bestTimed(results []retrieved, fileID string, words map[string]bool) (section, bool) {
	var best section
	bestScore, found := -1, false
	for _, r := range results {
		if r.fileID != fileID {
			continue
		}
		for _, sec := range sections(r.text) {
			if !sec.timed {
				continue
			}
			n := 0
			for w := range terms(sec.text) {
				if words[w] {
					n++
				}
			}
			if n > bestScore {
				best, bestScore, found = sec, n, true
			}
		}
	}
	return best, found
}

// section is a run of a retrieved chunk's text: under one of the
// knowledge document's chunk headings (timed), or before the first one (the
// document's header, or the tail of a section the store's window cut).
type section struct {
	start, end float64
	timed      bool
	text       string
}

// sections cuts a retrieved chunk at its headings, the lines
// chunk.ParseTimeRange reads.
func sections(text string) []section {
	var out []section
	cur := section{}
	var b strings.Builder
	flush := func() {
		cur.text = b.String()
		if cur.timed || strings.TrimSpace(cur.text) != "" {
			out = append(out, cur)
		}
		b.Reset()
	}
	for line := range strings.SplitSeq(text, "\n") {
		if start, end, ok := chunk.ParseTimeRange(line); ok {
			flush()
			cur = section{start: start, end: end, timed: true}
			continue
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	flush()
	return out
}

// bestSection is the section holding the most of words, and how many. When
// none holds any, it is the first timed section — the chunk's own heading,
// as chunk.ParseTimeRange reads it — else the first.
func bestSection(secs []section, words map[string]bool) (section, int) {
	best, bestScore := -1, 0
	for i, s := range secs {
		n := 0
		for w := range terms(s.text) {
			if words[w] {
				n++
			}
		}
		if n > bestScore {
			best, bestScore = i, n
		}
	}
	if best >= 0 {
		return secs[best], bestScore
	}
	for _, s := range secs {
		if s.timed {
			return s, 0
		}
	}
	if len(secs) > 0 {
		return secs[0], 0
	}
	return section{}, 0
}

// terms are the distinct lowercased words of three letters or more: short
// words match everywhere and decide nothing.
func terms(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len([]rune(w)) >= 3 {
			out[w] = true
		}
	}
	return out
}
