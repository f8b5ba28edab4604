package chunk

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/artifact"
)

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts Options
		want []string // substrings of the error; none for valid options
	}{
		{DefaultOptions(), nil},
		{Options{MaxTokens: 100, OverlapTokens: 50}, nil},
		{Options{MaxTokens: MaxMaxTokens, OverlapTokens: 0}, nil},
		{Options{MaxTokens: 99, OverlapTokens: 10}, []string{"MaxTokens 99"}},
		{Options{MaxTokens: MaxMaxTokens + 1}, []string{"MaxTokens"}},
		{Options{MaxTokens: 400, OverlapTokens: 201}, []string{"OverlapTokens 201 is more than half of MaxTokens 400"}},
		{Options{MaxTokens: 400, OverlapTokens: -1}, []string{"OverlapTokens -1 is negative"}},
		{Options{}, []string{"MaxTokens 0"}},
		{Options{MaxTokens: 50, OverlapTokens: 40}, []string{"MaxTokens 50", "OverlapTokens 40"}},
	} {
		err := tc.opts.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tc.opts, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: valid, want an error naming %q", tc.opts, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %q does not say %q", tc.opts, err, w)
			}
		}
	}
}

func TestNewSplitterChecksItsDependencies(t *testing.T) {
	t.Parallel()
	if _, err := NewSplitter(nil, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("no tokenizer: %v", err)
	}
	if _, err := NewSplitter(testTokenizer(), Options{MaxTokens: 10}); err == nil {
		t.Error("bad options accepted")
	}
}

func TestSplitLecture(t *testing.T) {
	t.Parallel()
	tr, an := lecture(1, 30)
	for _, o := range []Options{DefaultOptions(), {MaxTokens: 100, OverlapTokens: 50}, {MaxTokens: 800, OverlapTokens: 0}, {MaxTokens: 250, OverlapTokens: 1}} {
		chunks, _ := checkSplit(t, newSplitter(t, o.MaxTokens, o.OverlapTokens), tr, an)
		if len(chunks) < 5 {
			t.Errorf("%+v: %d chunks for 30 minutes", o, len(chunks))
		}
	}
}

// sayUntil has speaker say sentences until they count at least tokens.
func sayUntil(sc *script, speaker string, seed, tokens int) []string {
	var said []string
	for n := 0; n < tokens; seed++ {
		s := sentence(seed, 8+seed%9)
		sc.say(speaker, s)
		said = append(said, s)
		n += testTokenizer().Count(" " + s)
	}
	return said
}

func TestSplitEndsChunksAtSentenceEnds(t *testing.T) {
	t.Parallel()
	var sc script
	sayUntil(&sc, "", 0, 2000)
	chunks, _ := checkSplit(t, newSplitter(t, 200, 30), sc.transcript(), analysis())
	if len(chunks) < 8 {
		t.Fatalf("%d chunks", len(chunks))
	}
	for i, c := range chunks[:len(chunks)-1] {
		if !strings.HasSuffix(c.Text, ".") {
			t.Errorf("chunk %d ends inside a sentence: %q", i, c.Text[len(c.Text)-30:])
		}
	}
}

func TestSplitStartsNewSpeakerInNewChunk(t *testing.T) {
	t.Parallel()
	var sc script
	a := sayUntil(&sc, "A", 0, 250)
	sc.paragraph()
	b := sayUntil(&sc, "B", 100, 300)
	s := newSplitter(t, 400, 60)
	chunks, p := checkSplit(t, s, sc.transcript(), analysis())
	if len(chunks) != 2 {
		t.Fatalf("%d chunks, want 2", len(chunks))
	}
	if got := chunks[0].Text; got != strings.Join(a, " ") {
		t.Errorf("first chunk is not all of A's turn and only it:\n%s", got)
	}
	if d := p.drafts[1]; !strings.HasPrefix(chunks[1].Text[len(joinWords(refWords(sc.transcript())[d.first:d.own]))+1:], b[0]) {
		t.Errorf("second chunk's own words do not start with B's turn:\n%s", chunks[1].Text)
	}
	if got := chunks[1].Speakers; len(got) != 2 || got[0] != "A" || got[1] != "B" {
		t.Errorf("second chunk's speakers %v, want [A B] (A in its overlap)", got)
	}
}

func TestSplitKeepsEarlySpeakerChangeInChunk(t *testing.T) {
	t.Parallel()
	// B's question comes when the chunk is under half full: cutting there
	// would leave a chunk too small to be about anything.
	var sc script
	sayUntil(&sc, "A", 0, 40)
	sayUntil(&sc, "B", 50, 10)
	sayUntil(&sc, "A", 60, 600)
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), sc.transcript(), analysis())
	if got := chunks[0].Speakers; len(got) != 2 {
		t.Errorf("first chunk's speakers %v, want A and B", got)
	}
	if chunks[0].Tokens < 200 {
		t.Errorf("first chunk has %d tokens, under half of 400", chunks[0].Tokens)
	}
}

func TestSplitPrefersParagraphEnds(t *testing.T) {
	t.Parallel()
	var sc script
	first := sayUntil(&sc, "", 0, 250)
	sc.paragraph()
	sayUntil(&sc, "", 40, 600)
	sc.paragraph()
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), sc.transcript(), analysis())
	if got := chunks[0].Text; got != strings.Join(first, " ") {
		t.Errorf("first chunk does not end at the paragraph's end:\n%s", got)
	}
}

func TestSplitCutsOnlyOversizeSentencesBetweenWords(t *testing.T) {
	t.Parallel()
	var sc script
	sc.say("", sentence(1, 12))
	var long []string
	for i := range 900 {
		long = append(long, strings.TrimSuffix(strings.Fields(sentence(i, 3))[i%3], "."))
	}
	sc.say("", strings.Join(long, " ")+".")
	sc.say("", sentence(2, 12))
	chunks, _ := checkSplit(t, newSplitter(t, 150, 40), sc.transcript(), analysis())
	if len(chunks) < 6 {
		t.Fatalf("%d chunks", len(chunks))
	}
	if !strings.HasSuffix(chunks[0].Text, ".") || strings.Count(chunks[0].Text, ".") != 1 {
		t.Errorf("the sentence before the long one is not a chunk by itself: %q", chunks[0].Text)
	}
}

func TestSplitKeepsCodeWhole(t *testing.T) {
	t.Parallel()
	var sc script
	sayUntil(&sc, "", 0, 300)
	at := sc.t
	sayUntil(&sc, "", 20, 1200)
	code := strings.Repeat("total := suma(valores[i], factor)\n", 12)
	tr := sc.transcript()
	an := analysis(artifact.VisualElement{Kind: artifact.VisualCode, Start: at, End: at + 60, Title: "suma", Code: code, Language: "go"})
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), tr, an)
	fenced := "```go\n" + strings.TrimRight(code, "\n") + "\n```"
	holding := 0
	for i, c := range chunks {
		if strings.Contains(c.Text, fenced) {
			holding++
			if c.Tokens > 400 {
				t.Errorf("chunk %d holds the code and %d tokens", i, c.Tokens)
			}
			if !strings.HasPrefix(c.Text, tr.Words[0].Text) && c.Start > at {
				t.Errorf("chunk %d holds the code shown at %v but starts at %v", i, at, c.Start)
			}
		} else if strings.Contains(c.Text, "total := suma") {
			t.Errorf("chunk %d holds part of the code:\n%s", i, c.Text)
		}
	}
	if holding != 1 {
		t.Errorf("the code block is whole in %d chunks, want 1", holding)
	}
}

func TestSplitGivesOversizeCodeItsOwnChunk(t *testing.T) {
	t.Parallel()
	var sc script
	sayUntil(&sc, "", 0, 300)
	at := sc.t
	sayUntil(&sc, "", 20, 800)
	var code strings.Builder
	for i := range 120 {
		code.WriteString("resultado := procesar(entrada, configuración, " + strings.Repeat("x", i%7+1) + ")\n")
	}
	an := analysis(artifact.VisualElement{Kind: artifact.VisualCode, Start: at, End: at + 90, Title: "procesar", Code: code.String(), Language: "go"})
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), sc.transcript(), an)
	over := 0
	for i, c := range chunks {
		if c.Tokens <= 400 {
			continue
		}
		over++
		want := "[Código: procesar]\n```go\n" + strings.TrimRight(code.String(), "\n") + "\n```"
		if c.Text != want || c.Speakers != nil || c.Start != at || c.End != at+90 {
			t.Errorf("chunk %d over the limit (%d tokens) is not the code alone over its time on screen: [%v, %v] %.80q", i, c.Tokens, c.Start, c.End, c.Text)
		}
	}
	if over != 1 {
		t.Errorf("%d chunks over the limit, want the code's alone", over)
	}
}

func TestSplitPlacesVisualsByTime(t *testing.T) {
	t.Parallel()
	var sc script
	sayUntil(&sc, "A", 0, 250)
	sc.pause(10)
	slideAt := sc.t - 5 // appears during the pause
	sc.paragraph()
	b := sayUntil(&sc, "B", 40, 900)
	slideEnd := sc.t - 60
	tr := sc.transcript()
	slideShown := artifact.VisualElement{Kind: artifact.VisualSlide, Start: slideAt, End: slideEnd, Title: "Punteros", Text: "Un puntero guarda una dirección"}
	chunks, _ := checkSplit(t, newSplitter(t, 400, 0), tr, analysis(slideShown))

	// Anchored at B's first word, which starts a chunk (a speaker change,
	// no overlap): that chunk renders it, and starts when it appeared.
	rendered := 0
	for i, c := range chunks {
		has := strings.Contains(c.Text, "[Diapositiva: Punteros]\nUn puntero guarda una dirección")
		if has {
			rendered++
			if !strings.HasPrefix(c.Text, b[0]) || c.Start != slideAt {
				t.Errorf("chunk %d renders the slide but starts at %v with %.40q", i, c.Start, c.Text)
			}
		}
		onScreen := c.Start < slideEnd && c.End > slideAt
		if listed := len(c.Visuals) == 1; listed != onScreen {
			t.Errorf("chunk %d [%v, %v]: slide [%v, %v] listed %v", i, c.Start, c.End, slideAt, slideEnd, listed)
		}
	}
	if rendered != 1 {
		t.Errorf("slide rendered in %d chunks", rendered)
	}
}

func TestSplitWidensToVisualsShownOnlyInChunk(t *testing.T) {
	t.Parallel()
	// A slide appears during A's last sentence and leaves in the pause
	// after it, before B speaks: it is shown during A's chunk alone, which
	// then lasts until it leaves.
	var sc script
	sayUntil(&sc, "A", 0, 250)
	at := sc.words[len(sc.words)-3].Start
	lastWord := sc.words[len(sc.words)-1].End
	sc.pause(10)
	sc.paragraph()
	sayUntil(&sc, "B", 40, 300)
	an := analysis(artifact.VisualElement{Kind: artifact.VisualConcept, Start: at, End: lastWord + 5, Title: "Idea"})
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), sc.transcript(), an)
	if c := chunks[0]; !strings.HasSuffix(c.Text, "\n\n[Concepto: Idea]") || c.End != lastWord+5 {
		t.Errorf("first chunk [%v, %v] %q, want it to end with the concept, when it leaves the screen (%v)", c.Start, c.End, c.Text[len(c.Text)-40:], lastWord+5)
	}
}

func TestSplitRendersTrailingVisualsInLastChunk(t *testing.T) {
	t.Parallel()
	var sc script
	sayUntil(&sc, "", 0, 500)
	end := sc.words[len(sc.words)-1].End
	an := analysis(artifact.VisualElement{Kind: artifact.VisualSlide, Start: end + 2, End: end + 30, Title: "Resumen", Text: "Gracias"})
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), sc.transcript(), an)
	last := chunks[len(chunks)-1]
	if !strings.HasSuffix(last.Text, "\n\n[Diapositiva: Resumen]\nGracias") || last.End != end+30 {
		t.Errorf("last chunk [%v, %v] does not end with the closing slide: %q", last.Start, last.End, last.Text)
	}
}

func TestSplitLessonWithoutSpeech(t *testing.T) {
	t.Parallel()
	var els []artifact.VisualElement
	for i := range 30 {
		els = append(els, artifact.VisualElement{Kind: artifact.VisualSlide, Start: float64(i * 20), End: float64(i*20 + 20),
			Title: "Tema " + sentence(i, 2), Text: sentence(i, 20) + "\n" + sentence(i+1, 15)})
	}
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), artifact.Transcript{}, analysis(els...))
	if len(chunks) < 2 {
		t.Fatalf("%d chunks", len(chunks))
	}
	if chunks[0].Start != 0 || chunks[len(chunks)-1].End != 600 {
		t.Errorf("chunks span %v..%v, the slides 0..600", chunks[0].Start, chunks[len(chunks)-1].End)
	}
	all := ""
	for _, c := range chunks {
		all += c.Text + "\n\n"
	}
	for _, e := range els {
		if !strings.Contains(all, "[Diapositiva: "+e.Title+"]\n"+e.Text) {
			t.Errorf("slide %q is missing", e.Title)
		}
	}
}

func TestSplitCutsLongProse(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 80 {
		lines = append(lines, "- "+sentence(i, 14))
	}
	e := artifact.VisualElement{Kind: artifact.VisualDiagram, Start: 5, End: 50, Title: "Arquitectura", Description: strings.Join(lines, "\n")}
	chunks, _ := checkSplit(t, newSplitter(t, 200, 60), artifact.Transcript{}, analysis(e))
	if len(chunks) < 4 {
		t.Fatalf("%d chunks for %d lines", len(chunks), len(lines))
	}
	var got []string
	for _, c := range chunks {
		body, ok := strings.CutPrefix(c.Text, "[Diagrama: Arquitectura]\n")
		if !ok {
			t.Errorf("piece without its header: %.40q", c.Text)
		}
		got = append(got, strings.Split(strings.ReplaceAll(body, "\n\n[Diagrama: Arquitectura]", ""), "\n")...)
	}
	if strings.Join(got, "\n") != e.Description {
		t.Errorf("the prose cut into pieces is not the prose:\n%s", strings.Join(got, "\n"))
	}
}

func TestSplitCleansWords(t *testing.T) {
	t.Parallel()
	var sc script
	for _, w := range []string{"  Hola", "", "mundo\t", "\u00a0", "Nueva  York.", "caf\xe9", "\n", "fin."} {
		sc.word("", w)
	}
	chunks, _ := checkSplit(t, newSplitter(t, 400, 60), sc.transcript(), analysis())
	if want := "Hola mundo Nueva York. caf\uFFFD fin."; len(chunks) != 1 || chunks[0].Text != want {
		t.Errorf("chunks %+v, want one with %q", chunks, want)
	}
}

func TestSplitNothingToChunk(t *testing.T) {
	t.Parallel()
	s := newSplitter(t, 400, 60)
	for name, an := range map[string]artifact.Analysis{
		"no elements":           analysis(),
		"elements with nothing": analysis(artifact.VisualElement{Kind: artifact.VisualDemonstration, Start: 1, End: 2}),
	} {
		_, err := s.Split(testLesson, artifact.Transcript{Words: []artifact.Word{{Text: "  ", Start: 1, End: 2}}}, an)
		if !errors.Is(err, ErrNothingToChunk) || !strings.Contains(err.Error(), testLesson.LessonID) {
			t.Errorf("%s: %v, want ErrNothingToChunk naming the lesson", name, err)
		}
	}
}

func TestSplitRejectsBrokenArtifacts(t *testing.T) {
	t.Parallel()
	s := newSplitter(t, 400, 60)
	words := func(ws ...artifact.Word) artifact.Transcript { return artifact.Transcript{Words: ws} }
	ok := artifact.Word{Text: "hola", Start: 1, End: 2}
	for _, tc := range []struct {
		name string
		tr   artifact.Transcript
		an   artifact.Analysis
		want string
	}{
		{"end before start", words(ok, artifact.Word{Text: "x", Start: 3, End: 2}), analysis(), "word 1"},
		{"not a number", words(artifact.Word{Text: "x", Start: math.NaN(), End: 2}), analysis(), "word 0"},
		{"out of order", words(ok, artifact.Word{Text: "x", Start: 0.5, End: 2}), analysis(), "word 1"},
		{"paragraph outside", artifact.Transcript{Words: []artifact.Word{ok}, Paragraphs: []artifact.Paragraph{{FirstWord: 0, LastWord: 1}}}, analysis(), "paragraph 0"},
		{"element times", words(ok), analysis(artifact.VisualElement{Kind: "slide", Title: "t", Start: 5, End: 4}), "element 0"},
		{"another lesson", artifact.Transcript{LessonID: "other", Version: 2, Words: []artifact.Word{ok}}, analysis(), "lesson other"},
		{"another version", words(ok), artifact.Analysis{LessonID: testLesson.LessonID, Version: 1}, "v1"},
		{"a word too long", words(artifact.Word{Text: strings.Repeat("ab1", 900), Start: 1, End: 2}), analysis(), "word 0"},
	} {
		_, err := s.Split(testLesson, tc.tr, tc.an)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func TestSentenceEnd(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"fin.": true, "¿sí?": true, "¡ya!": true, "bueno…": true, `"dijo."`: true, "(nota.)": true, "así.»": true,
		"coma,": false, "palabra": false, "3.5x": false, "punto.y": false, `""`: false,
	} {
		if got := sentenceEnd(text); got != want {
			t.Errorf("sentenceEnd(%q) = %v", text, got)
		}
	}
}
