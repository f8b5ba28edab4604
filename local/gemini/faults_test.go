package gemini_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/gemini"
)

// The SDK does not retry on its own: two injected 503s fail two calls and
// the third succeeds.
func TestFailNextWithoutSDKRetries(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	f.srv.FailNext(gemini.Match{}, 503, 2)
	for i := range 2 {
		_, err := analyze(f, "pyL1vars001", 0, 0, nil)
		if ae := apiError(t, err); ae.Code != 503 || ae.Status != "UNAVAILABLE" {
			t.Errorf("call %d: %+v, want 503 UNAVAILABLE", i+1, ae)
		}
	}
	if _, err := analyze(f, "pyL1vars001", 0, 0, nil); err != nil {
		t.Fatalf("third call: %v", err)
	}
	statuses := []int{}
	for _, rq := range f.srv.Received() {
		statuses = append(statuses, rq.Status)
	}
	if want := []int{503, 503, 200}; !slices.Equal(statuses, want) {
		t.Errorf("statuses = %v, want %v", statuses, want)
	}
}

// With HTTPOptions.RetryOptions the SDK retries 503 itself: one call, three
// requests.
func TestFailNextWithSDKRetries(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	f.srv.FailNext(gemini.Match{Lesson: "pyL1vars001"}, 503, 2)
	attempts, delay, jitter := int32(3), 0.001, 0.0
	cfg := &genai.GenerateContentConfig{HTTPOptions: &genai.HTTPOptions{RetryOptions: &genai.HTTPRetryOptions{
		Attempts: &attempts, InitialDelay: &delay, MaxDelay: &delay, Jitter: &jitter,
	}}}
	resp, err := analyze(f, "pyL1vars001", 0, 0, cfg)
	if err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if _, err := checkAnalysis(resp.Text()); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count(gemini.Match{Lesson: "pyL1vars001"}); n != 3 {
		t.Errorf("requests = %d, want 3 (two 503s, then the answer)", n)
	}
}

// A 429 is Vertex's: RESOURCE_EXHAUSTED, its message, a JSON body, and no
// Retry-After header.
func TestResourceExhausted(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	f.srv.FailNext(gemini.Match{Kind: gemini.Enrichment}, 429, 1)

	// An analysis is not selected by the injection.
	if _, err := analyze(f, "pyL1vars001", 0, 0, nil); err != nil {
		t.Fatalf("analysis: %v", err)
	}
	code, header, raw := post(t, f, generatePath(model), "Bearer "+gemini.LocalToken, map[string]any{
		"contents":         []any{map[string]any{"role": "user", "parts": []any{map[string]any{"text": gemini.MarkerTitle + " Condicionales"}}}},
		"generationConfig": map[string]any{"responseMimeType": "application/json", "responseSchema": enrichmentSchema()},
	})
	if code != 429 {
		t.Fatalf("status %d, want 429: %s", code, raw)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if ra := header.Get("Retry-After"); ra != "" {
		t.Errorf("Retry-After = %q; Vertex sends none", ra)
	}
	var body struct{ Error genai.APIError }
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.Code != 429 || body.Error.Status != "RESOURCE_EXHAUSTED" || !strings.Contains(body.Error.Message, "Resource exhausted") {
		t.Errorf("body = %+v", body.Error)
	}
	// The enrichment found its lesson by title, without a LECCIÓN: line.
	if rq := f.srv.Received()[1]; rq.Lesson != "pyL2cond002" || rq.Fault != "status" {
		t.Errorf("received %+v, want lesson pyL2cond002 and the status fault", rq)
	}
}

// A fault for one lesson leaves the others alone.
func TestFaultForOneLesson(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	f.srv.FailNext(gemini.Match{Lesson: "pyL2cond002"}, 500, 1)
	if _, err := analyze(f, "pyL1vars001", 0, 0, nil); err != nil {
		t.Errorf("other lesson: %v", err)
	}
	_, err := analyze(f, "pyL2cond002", 0, 0, nil)
	if ae := apiError(t, err); ae.Code != 500 || ae.Status != "INTERNAL" {
		t.Errorf("the lesson: %+v, want 500 INTERNAL", ae)
	}
	if _, err := analyze(f, "pyL2cond002", 0, 0, nil); err != nil {
		t.Errorf("the lesson, again: %v", err)
	}
}

func TestNonJSON(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	f.srv.NonJSONNext(gemini.Match{Kind: gemini.Analysis}, 1)
	resp, err := analyze(f, "pyL1vars001", 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if json.Valid([]byte(resp.Text())) {
		t.Errorf("answer %q is JSON", resp.Text())
	}
	if !strings.Contains(resp.ModelVersion, "local engine") || resp.UsageMetadata == nil {
		t.Errorf("a non-JSON answer is still a whole response: %+v", resp)
	}
	resp, err = analyze(f, "pyL1vars001", 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkAnalysis(resp.Text()); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	if rq := f.srv.Received()[0]; rq.Status != 200 || rq.Fault != "non-json" {
		t.Errorf("received %+v, want 200 with the non-json fault", rq)
	}
}

// Each breakage is caught by a validator of the contract, and used once.
func TestBreakSchemaNext(t *testing.T) {
	t.Parallel()
	cat := loadSample(t)
	tests := []struct {
		b               gemini.Breakage
		analysis, enrch string // what the validator says
	}{
		{gemini.BreakMissing, `no "elements"`, `no "keywords"`},
		{gemini.BreakEnum, `kind "animation" outside the enum`, `level "experto" outside the enum`},
		{gemini.BreakValue, "before start", "cannot unmarshal string"},
	}
	for _, tc := range tests {
		t.Run(tc.b.String(), func(t *testing.T) {
			t.Parallel()
			f := start(t, gemini.Options{})
			f.srv.BreakSchemaNext(gemini.Match{}, tc.b, 2)

			resp, err := analyze(f, "pyL1vars001", 0, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := checkAnalysis(resp.Text()); err == nil || !strings.Contains(err.Error(), tc.analysis) {
				t.Errorf("analysis %s: validator says %v, want %q", resp.Text(), err, tc.analysis)
			}
			resp, err = enrichText(f, lessonPrompt(t, cat, "pyL1vars001"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := checkEnrichment(resp.Text()); err == nil || !strings.Contains(err.Error(), tc.enrch) {
				t.Errorf("enrichment %s: validator says %v, want %q", resp.Text(), err, tc.enrch)
			}
			resp, err = analyze(f, "pyL1vars001", 0, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := checkAnalysis(resp.Text()); err != nil {
				t.Errorf("after the two breakages: %v", err)
			}
		})
	}
}

// A lesson whose answers never fit: every answer breaks, each way in turn,
// for both kinds; other lessons are answered well; ClearFaults ends it.
func TestNeverFits(t *testing.T) {
	t.Parallel()
	cat := loadSample(t)
	f := start(t, gemini.Options{NeverFits: []string{"pyL3func004"}})
	seen := map[string]bool{}
	for range 3 {
		resp, err := analyze(f, "pyL3func004", 0, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = checkAnalysis(resp.Text())
		if err == nil {
			t.Fatalf("answer %s fits the schema", resp.Text())
		}
		seen[err.Error()] = true
	}
	if len(seen) != 3 {
		t.Errorf("breakages seen = %v, want three different ones", seen)
	}
	resp, err := enrichText(f, lessonPrompt(t, cat, "pyL3func004"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkEnrichment(resp.Text()); err == nil {
		t.Errorf("enrichment %s fits the schema", resp.Text())
	}
	resp, err = analyze(f, "pyL1vars001", 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkAnalysis(resp.Text()); err != nil {
		t.Errorf("another lesson: %v", err)
	}

	f.srv.ClearFaults()
	f.srv.BreakSchemaAlways("mkL1pers005")
	if resp, err = analyze(f, "pyL3func004", 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := checkAnalysis(resp.Text()); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
	if resp, err = analyze(f, "mkL1pers005", 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := checkAnalysis(resp.Text()); err == nil {
		t.Error("BreakSchemaAlways: the answer fits")
	}
	if n := f.srv.Count(gemini.Match{Lesson: "pyL3func004", Kind: gemini.Analysis}); n != 4 {
		t.Errorf("Count = %d, want 4", n)
	}
}
