package chunk

import (
	"math"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/artifact"
)

var testEnrichment = artifact.Enrichment{
	LessonID: testLesson.LessonID, Version: testLesson.Version,
	Categories:    []artifact.Category{{ID: "prog-go", Name: "Programación en Go", Score: 0.81}, {ID: "fund", Name: "Fundamentos", Score: 0.7}},
	Keywords:      []string{"variables", "tipos", "inferencia"},
	Level:         artifact.LevelBasic,
	Summary:       "Cómo declarar variables en Go.\n\nY qué tipos tienen.",
	Objectives:    []string{"Declarar variables con var y :=", "Distinguir tipos básicos"},
	Prerequisites: []string{"Instalar Go"},
}

func TestKnowledgeHeader(t *testing.T) {
	t.Parallel()
	doc := string(Knowledge(testLesson, testEnrichment, nil))
	for _, want := range []string{
		"# Variables y tipos\n",
		"- Curso: Go desde cero\n",
		"- Módulo: Fundamentos\n",
		"- Lección: Variables y tipos\n",
		"- Nivel: básico\n",
		"- Categorías: Programación en Go, Fundamentos\n",
		"- Palabras clave: variables, tipos, inferencia\n",
		"- Enlace: https://escuela.club.hotmart.com/lesson/RE4zW6m6el\n",
		"## Resumen\n\nCómo declarar variables en Go.\n\nY qué tipos tienen.\n",
		"## Objetivos de aprendizaje\n\n- Declarar variables con var y :=\n- Distinguir tipos básicos\n",
		"## Requisitos previos\n\n- Instalar Go\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("knowledge.md lacks %q:\n%s", want, doc)
		}
	}
	if _, _, ok := ParseTimeRange(doc); ok {
		t.Error("a header alone has a time range")
	}
	if bare := string(Knowledge(Lesson{LessonID: "x1"}, artifact.Enrichment{}, nil)); bare != "# Lección x1\n\n" {
		t.Errorf("knowledge.md of a lesson with nothing known: %q", bare)
	}
}

func TestKnowledgeSectionsParseBack(t *testing.T) {
	t.Parallel()
	tr, an := lecture(7, 40)
	s := newSplitter(t, 400, 60)
	chunks, _ := checkSplit(t, s, tr, an)
	doc := string(Knowledge(testLesson, testEnrichment, chunks))
	rest := doc
	for i, c := range chunks {
		heading := Heading(c.Start, c.End)
		at := strings.Index(rest, "\n"+heading+"\n\n"+c.Text+"\n")
		if at < 0 {
			t.Fatalf("chunk %d's section is not next in knowledge.md", i)
		}
		rest = rest[at+1:]
		start, end, ok := ParseTimeRange(rest)
		if !ok || start > c.Start || c.Start >= start+1 || end < c.End || c.End <= end-1 {
			t.Errorf("chunk %d [%v, %v]: heading %q parses to [%v, %v] %v", i, c.Start, c.End, heading, start, end, ok)
		}
		// What the store retrieves may start inside a section: the time is
		// then the next heading's.
		if i+1 < len(chunks) {
			mid := rest[len(heading)+3:]
			if start, _, ok := ParseTimeRange(mid); !ok || start != math.Floor(chunks[i+1].Start) {
				t.Errorf("text inside chunk %d's section parses to %v %v, want chunk %d's start", i, start, ok, i+1)
			}
		}
	}
}

func TestParseTimeRange(t *testing.T) {
	t.Parallel()
	if got := Heading(65.4, 129.2); got != "## [00:01:05–00:02:10]" {
		t.Errorf("Heading(65.4, 129.2) = %q", got)
	}
	if got := Heading(0, 360000.5); got != "## [00:00:00–100:00:01]" {
		t.Errorf("Heading(0, 360000.5) = %q", got)
	}
	for _, tc := range []struct {
		text       string
		start, end float64
		ok         bool
	}{
		{"## [00:01:05–00:02:10]", 65, 130, true},
		{"05–00:02:10]\n\nel final de otro fragmento\n\n## [00:03:00–01:04:00]\n\ntexto", 180, 3840, true},
		{"## [00:01:05–00:02:10]\r\ntexto", 65, 130, true},
		{"## [100:00:00–100:00:05]", 360000, 360005, true},
		{"## [00:61:00–00:62:00]", 0, 0, false},
		{"## [00:00:10–00:00:05]", 0, 0, false},
		{`\## [00:00:10–00:00:20]`, 0, 0, false},
		{"## [00:00:10-00:00:20]", 0, 0, false}, // a hyphen, not an en dash
		{"texto ## [00:00:10–00:00:20]", 0, 0, false},
		{"## [00:00:10–00:00:20] más", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, end, ok := ParseTimeRange(tc.text)
		if start != tc.start || end != tc.end || ok != tc.ok {
			t.Errorf("ParseTimeRange(%q) = %v, %v, %v; want %v, %v, %v", tc.text, start, end, ok, tc.start, tc.end, tc.ok)
		}
	}
}

func TestKnowledgeEscapesTextThatLooksLikeAHeading(t *testing.T) {
	t.Parallel()
	chunks := []artifact.Chunk{{Start: 70, End: 80, Text: "mirad este archivo\n\n[Código: knowledge.md]\n```\n## [00:00:01–00:00:02]\n```"}}
	doc := string(Knowledge(testLesson, testEnrichment, chunks))
	if !strings.Contains(doc, "\n\\## [00:00:01–00:00:02]\n") {
		t.Errorf("the fake heading is not escaped:\n%s", doc)
	}
	inside := doc[strings.Index(doc, "```"):]
	if start, end, ok := ParseTimeRange(inside); ok {
		t.Errorf("text inside a chunk parses as a heading: %v %v", start, end)
	}
	if start, end, ok := ParseTimeRange(doc); !ok || start != 70 || end != 80 {
		t.Errorf("the real heading parses to %v %v %v", start, end, ok)
	}
}

func TestSectionOverheadTokens(t *testing.T) {
	t.Parallel()
	tok := testTokenizer()
	for _, h := range []string{Heading(0, 0), Heading(35999, 359999), Heading(3599.5, 3600.5)} {
		if n := tok.Count("\n" + h + "\n\n"); n > SectionOverheadTokens-4 {
			t.Errorf("%q counts %d, leaving under 4 of SectionOverheadTokens for the text's ends", h, n)
		}
	}
	tr, an := lecture(8, 30)
	chunks, _ := checkSplit(t, newSplitter(t, 300, 40), tr, an)
	doc := string(Knowledge(testLesson, testEnrichment, chunks))
	for i, c := range chunks {
		section := "\n" + Heading(c.Start, c.End) + "\n\n" + c.Text + "\n"
		if !strings.Contains(doc, section) {
			t.Fatalf("chunk %d's section is not in the document", i)
		}
		if n := tok.Count(section); n > c.Tokens+SectionOverheadTokens {
			t.Errorf("chunk %d: its section counts %d, over its %d tokens and %d of overhead", i, n, c.Tokens, SectionOverheadTokens)
		}
	}
}

func TestStoreChunking(t *testing.T) {
	t.Parallel()
	if max, overlap := StoreChunking(DefaultOptions()); max != 840 || overlap != 420 {
		t.Errorf("defaults: %d, %d; want 840, 420", max, overlap)
	}
	for m := MinMaxTokens; m <= MaxMaxTokens; m++ {
		max, overlap := StoreChunking(Options{MaxTokens: m, OverlapTokens: m / 2})
		if max < 100 || max > 4096 || overlap < 0 || overlap*2 > max || overlap < m+SectionOverheadTokens {
			t.Fatalf("MaxTokens %d: store chunking %d, %d is out of the store's limits or does not hold a section", m, max, overlap)
		}
	}
}

// TestStoreChunksHoldSections cuts a knowledge document as the vector
// store does (windows of max tokens, overlapping by overlap) and checks
// what StoreChunking promises: every section is whole in some window, and
// every window past the header has a heading to give its time.
func TestStoreChunksHoldSections(t *testing.T) {
	t.Parallel()
	tr, an := lecture(9, 40)
	opts := Options{MaxTokens: 250, OverlapTokens: 40}
	chunks, _ := checkSplit(t, newSplitter(t, opts.MaxTokens, opts.OverlapTokens), tr, an)
	doc := string(Knowledge(testLesson, testEnrichment, chunks))
	_, toks, err := testTokenizer().codec.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	max, overlap := StoreChunking(opts)
	var windows []string
	for start := 0; start < len(toks); start += max - overlap {
		windows = append(windows, strings.Join(toks[start:min(start+max, len(toks))], ""))
		if start+max >= len(toks) {
			break
		}
	}
	header := doc[:strings.Index(doc, "\n## [")]
	for i, w := range windows {
		if _, _, ok := ParseTimeRange(w); !ok && !strings.Contains(header, strings.TrimSpace(w)) {
			t.Errorf("store chunk %d has no heading:\n%s", i, w)
		}
	}
	for i, c := range chunks {
		section := Heading(c.Start, c.End) + "\n\n" + c.Text
		whole := false
		for _, w := range windows {
			whole = whole || strings.Contains(w, section)
		}
		if !whole {
			t.Errorf("chunk %d is whole in no store chunk", i)
		}
	}
}
