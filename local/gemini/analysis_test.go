package gemini_test

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/shared/artifact"
)

func TestAnalyzeWholeLesson(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	dur, ok := f.srv.Duration("pyL1vars001")
	if !ok {
		t.Fatal("no video for pyL1vars001")
	}

	resp, err := analyze(f, "pyL1vars001", 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := model + " (local engine)"; resp.ModelVersion != want {
		t.Errorf("modelVersion = %q, want %q", resp.ModelVersion, want)
	}
	if len(resp.Candidates) != 1 || resp.Candidates[0].FinishReason != genai.FinishReasonStop {
		t.Fatalf("candidates = %+v, want one that stopped", resp.Candidates)
	}
	els, err := checkAnalysis(resp.Text())
	if err != nil {
		t.Fatalf("answer breaks the schema: %v\n%s", err, resp.Text())
	}
	type span struct {
		kind, title string
		start, end  float64
	}
	var got []span
	for _, e := range els {
		got = append(got, span{e.Kind, e.Title, e.Start, e.End})
	}
	want := []span{
		{artifact.VisualSlide, "Variables y tipos de datos", 0, 14},
		{artifact.VisualConcept, "Variables y tipos de datos", 0, 14},
		{artifact.VisualSlide, "Tipos básicos", 14, dur},
		{artifact.VisualCode, "Tipos básicos", 14, dur},
		{artifact.VisualConcept, "Tipos básicos", 14, dur},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("elements =\n%v\nwant\n%v", got, want)
	}
	code := els[3]
	if code.Language != "python" || !strings.Contains(code.Code, "print(type(precio))") {
		t.Errorf("code element = %+v, want the slide's Python code", code)
	}
	if els[0].Text != "Una variable es un nombre para un valor" {
		t.Errorf("slide text = %q", els[0].Text)
	}
	if !strings.Contains(els[4].Description, "tipos básicos") {
		t.Errorf("concept description = %q, want the narration's sentence on it", els[4].Description)
	}
}

func TestAnalyzeUsageMetadata(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{Durations: map[string]float64{"pyL2cond002": 16.131}})
	resp, err := analyze(f, "pyL2cond002", 0, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := resp.UsageMetadata
	if u == nil {
		t.Fatal("no usage metadata")
	}
	byModality := map[genai.MediaModality]int32{}
	for _, d := range u.PromptTokensDetails {
		byModality[d.Modality] = d.TokenCount
	}
	// Ten seconds at 1 fps: 258 tokens a frame, 32 a second of audio.
	if byModality[genai.MediaModalityVideo] != 2580 || byModality[genai.MediaModalityAudio] != 320 {
		t.Errorf("prompt details = %v, want VIDEO 2580 and AUDIO 320", byModality)
	}
	if text := byModality[genai.MediaModalityText]; text <= 0 || u.PromptTokenCount != 2580+320+text {
		t.Errorf("promptTokenCount = %d with TEXT %d, want video + audio + text", u.PromptTokenCount, text)
	}
	if want := int32((len(resp.Text()) + 3) / 4); u.CandidatesTokenCount != want {
		t.Errorf("candidatesTokenCount = %d, want %d (a token per four bytes)", u.CandidatesTokenCount, want)
	}
	if u.TotalTokenCount != u.PromptTokenCount+u.CandidatesTokenCount {
		t.Errorf("totalTokenCount = %d, want %d", u.TotalTokenCount, u.PromptTokenCount+u.CandidatesTokenCount)
	}
}

// A frame costs what the model charges at the request's media resolution:
// the cost report multiplies these counts by list prices.
func TestAnalyzeFramePriceFollowsMediaResolution(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{Durations: map[string]float64{"pyL2cond002": 16.131}})
	// Ten seconds at 1 fps: ten frames.
	for _, tc := range []struct {
		model string
		res   genai.MediaResolution
		want  int32
	}{
		{"gemini-3.5-flash", genai.MediaResolutionLow, 700},
		{"gemini-3.5-flash", genai.MediaResolutionMedium, 700},
		{"gemini-3.5-flash", genai.MediaResolutionHigh, 2800},
		{"gemini-3.5-flash", "", 2580},
		{"gemini-2.5-flash", genai.MediaResolutionLow, 660},
		{"gemini-2.5-flash", genai.MediaResolutionMedium, 2580},
		{"gemini-2.5-flash", "", 2580},
	} {
		resp, err := analyzeOn(f, tc.model, "pyL2cond002", 0, 10*time.Second, &genai.GenerateContentConfig{MediaResolution: tc.res})
		if err != nil {
			t.Fatalf("%s at %q: %v", tc.model, tc.res, err)
		}
		var video int32 = -1
		for _, d := range resp.UsageMetadata.PromptTokensDetails {
			if d.Modality == genai.MediaModalityVideo {
				video = d.TokenCount
			}
		}
		if video != tc.want {
			t.Errorf("%s at resolution %q: VIDEO %d tokens, want %d", tc.model, tc.res, video, tc.want)
		}
	}
}

// Two windows in turn clip the elements at their border and, merged, give
// every slide once: what the analyze stage does with a long lesson.
func TestAnalyzeInWindows(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	const lesson = "pyL1vars001"
	dur, _ := f.srv.Duration(lesson)

	var merged []artifact.VisualElement
	for _, w := range [][2]time.Duration{{0, 10 * time.Second}, {10 * time.Second, 0}} {
		resp, err := analyze(f, lesson, w[0], w[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		els, err := checkAnalysis(resp.Text())
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := w[0].Seconds(), w[1].Seconds()
		if hi == 0 {
			hi = dur
		}
		for _, e := range els {
			if e.Start < lo || e.End > hi {
				t.Errorf("window [%g, %g): element %s %q spans [%g, %g), outside it", lo, hi, e.Kind, e.Title, e.Start, e.End)
			}
		}
		merged = mergeWindows(merged, els)
	}
	if want := []artifact.Window{{Start: 0, End: 10}, {Start: 10, End: dur}}; !reflect.DeepEqual(f.srv.Windows(lesson), want) {
		t.Errorf("windows received = %v, want %v", f.srv.Windows(lesson), want)
	}

	resp, err := analyze(f, lesson, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := checkAnalysis(resp.Text())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(merged, whole) {
		t.Errorf("windows merged =\n%+v\nwant the whole lesson's\n%+v", merged, whole)
	}
	slides := 0
	for _, e := range merged {
		if e.Kind == artifact.VisualSlide {
			slides++
		}
	}
	if slides != 2 {
		t.Errorf("merged windows hold %d slides, want each of the 2 once", slides)
	}
}

// mergeWindows appends a window's elements, joining an element cut at the
// border with its continuation, as the analyze stage would.
func mergeWindows(acc, next []artifact.VisualElement) []artifact.VisualElement {
	for _, e := range next {
		joined := false
		for i := range acc {
			a := &acc[i]
			if a.Kind == e.Kind && a.Title == e.Title && a.Text == e.Text && a.Code == e.Code && math.Abs(a.End-e.Start) < 1e-9 {
				a.End, joined = e.End, true
				break
			}
		}
		if !joined {
			acc = append(acc, e)
		}
	}
	slices.SortStableFunc(acc, func(a, b artifact.VisualElement) int {
		if a.Start != b.Start {
			if a.Start < b.Start {
				return -1
			}
			return 1
		}
		return slices.Index(artifact.VisualKinds, a.Kind) - slices.Index(artifact.VisualKinds, b.Kind)
	})
	return acc
}

// A three-hour lesson does not fit one request; 45-minute windows do, and
// the server keeps their order.
func TestAnalyzeLongLessonNeedsWindows(t *testing.T) {
	t.Parallel()
	const lesson, hours = "mkL1pers005", 3
	f := start(t, gemini.Options{Durations: map[string]float64{lesson: hours * 3600}})

	_, err := analyze(f, lesson, 0, 0, nil)
	if ae := apiError(t, err); ae.Code != 400 || ae.Status != "INVALID_ARGUMENT" || !strings.Contains(ae.Message, "windows") {
		t.Errorf("whole 3 h lesson: %v, want 400 asking for windows", ae)
	}

	var want []artifact.Window
	var last []artifact.VisualElement
	for from := time.Duration(0); from < hours*time.Hour; from += 45 * time.Minute {
		resp, err := analyze(f, lesson, from, from+45*time.Minute, nil)
		if err != nil {
			t.Fatalf("window from %v: %v", from, err)
		}
		if last, err = checkAnalysis(resp.Text()); err != nil {
			t.Fatal(err)
		}
		want = append(want, artifact.Window{Start: from.Seconds(), End: (from + 45*time.Minute).Seconds()})
	}
	got := f.srv.Windows(lesson)
	if !reflect.DeepEqual(got[1:], want) {
		t.Errorf("windows = %v, want the refused whole then %v", got, want)
	}
	// The last slide lasts to the end of the video.
	if n := len(last); n == 0 || last[n-1].End != hours*3600 {
		t.Errorf("last window's elements = %+v, want the last slide up to %d s", last, hours*3600)
	}
}

// The engine keeps to the kinds the schema's enum allows, as Gemini does,
// and reads a JSON Schema as well as an OpenAPI one.
func TestAnalyzeFollowsSchema(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	resp, err := analyze(f, "pyL3func004", 0, 0, &genai.GenerateContentConfig{ResponseSchema: analysisSchema(artifact.VisualSlide, artifact.VisualCode)})
	if err != nil {
		t.Fatal(err)
	}
	els, err := checkAnalysis(resp.Text())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range els {
		if e.Kind != artifact.VisualSlide && e.Kind != artifact.VisualCode {
			t.Errorf("element of kind %q outside the schema's enum", e.Kind)
		}
	}

	jsonSchema := map[string]any{
		"type":     "object",
		"required": []string{"elements"},
		"properties": map[string]any{"elements": map[string]any{
			"type":  "array",
			"items": map[string]any{"type": "object", "properties": map[string]any{"kind": map[string]any{"type": "string", "enum": artifact.VisualKinds}}},
		}},
	}
	resp, err = analyze(f, "pyL3func004", 0, 0, &genai.GenerateContentConfig{ResponseJsonSchema: jsonSchema})
	if err != nil {
		t.Fatal(err)
	}
	els, err = checkAnalysis(resp.Text())
	if err != nil {
		t.Fatal(err)
	}
	var concept *artifact.VisualElement
	for i := range els {
		if els[i].Kind == artifact.VisualConcept && els[i].Start == 9 {
			concept = &els[i]
		}
	}
	// "Ejemplo con valor por defecto" presents the concept after "Ejemplo con".
	if concept == nil || concept.Title != "Valor por defecto" {
		t.Errorf("concept of the second slide = %+v, want «Valor por defecto»", concept)
	}
}

// The sample videos are as long as espeak-ng takes to say the narration:
// these are the lengths of the generated videos (local/sample.Generate).
func TestEstimateDuration(t *testing.T) {
	t.Parallel()
	measured := map[string]float64{
		"pyL1vars001": 22.086, "pyL2cond002": 16.131, "pyL3func004": 14.761,
		"mkL1pers005": 15.652, "mkL2cale006": 12.190,
	}
	cat := loadSample(t)
	for id, want := range measured {
		_, pg := page(t, cat, id)
		if got := gemini.EstimateDuration(pg.Narration); math.Abs(got-want)/want > 0.05 {
			t.Errorf("EstimateDuration(%s) = %.3f, measured %.3f: off by more than 5%%", id, got, want)
		}
	}
}

func TestSetDuration(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	f.srv.SetDuration("pyL2cond002", 16.131)
	if d, ok := f.srv.Duration("pyL2cond002"); !ok || d != 16.131 {
		t.Errorf("Duration = %g, %v; want 16.131 as set", d, ok)
	}
	if _, ok := f.srv.Duration("pyQ1quiz003"); ok {
		t.Error("a quiz has a video")
	}
	resp, err := analyze(f, "pyL2cond002", 10*time.Second, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	els, _ := checkAnalysis(resp.Text())
	if len(els) == 0 || els[0].End != 16.131 {
		t.Errorf("elements = %+v, want the last slide to end at 16.131", els)
	}
}
