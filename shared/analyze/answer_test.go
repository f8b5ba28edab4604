package analyze

import (
	"strings"
	"testing"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
)

func answerOf(text string) *genai.GenerateContentResponse {
	return &genai.GenerateContentResponse{Candidates: []*genai.Candidate{{
		Content:      genai.NewContentFromText(text, genai.RoleModel),
		FinishReason: genai.FinishReasonStop,
	}}}
}

// Every answer is held to the contract; what is wrong is named, element by
// element, and nothing is dropped quietly.
func TestReadAnswer(t *testing.T) {
	t.Parallel()
	w := artifact.Window{Start: 10, End: 20}
	for _, tc := range []struct {
		name, text string
		says       string // "" for a good answer
	}{
		{"good", `{"elements":[{"kind":"slide","start":10,"end":14,"title":"T"},{"kind":"code","start":9.2,"end":20.8,"code":"x = 1\n"}]}`, ""},
		{"empty list", `{"elements":[]}`, ""},
		{"prose", `Claro, aquí tienes el análisis.`, "not a JSON object"},
		{"json in fences", "```json\n{\"elements\":[]}\n```", "not a JSON object"},
		{"missing elements", `{"items":[]}`, `no "elements" property (it has items)`},
		{"null elements", `{"elements":null}`, `"elements" is null`},
		{"not a list", `{"elements":"slide"}`, `"elements" is not a list`},
		{"unknown kind", `{"elements":[{"kind":"animation","start":11,"end":12,"title":"T"}]}`, `element 1 (animation "T"): kind "animation" is not one of slide, code`},
		{"no times", `{"elements":[{"kind":"slide","title":"T"}]}`, "start and end are both required"},
		{"end before start", `{"elements":[{"kind":"slide","start":15,"end":12,"title":"T"}]}`, "end 12 comes before start 15"},
		{"negative", `{"elements":[{"kind":"slide","start":-1,"end":2,"title":"T"}]}`, "start -1 is negative"},
		{"outside window", `{"elements":[{"kind":"slide","start":2,"end":5,"title":"T"}]}`, "[2 s, 5 s] lies outside the window [10 s, 20 s]"},
		{"relative times", `{"elements":[{"kind":"slide","start":0,"end":3,"title":"T"}]}`, "lies outside the window"},
		{"empty slide", `{"elements":[{"kind":"slide","start":11,"end":12}]}`, "a slide needs its title or its text"},
		{"empty code", `{"elements":[{"kind":"code","start":11,"end":12,"code":"  \n"}]}`, "a code element needs its code"},
		{"empty diagram", `{"elements":[{"kind":"diagram","start":11,"end":12,"title":"D"}]}`, "a diagram needs its description"},
		{"empty demonstration", `{"elements":[{"kind":"demonstration","start":11,"end":12}]}`, "a demonstration needs its description"},
		{"untitled concept", `{"elements":[{"kind":"concept","start":11,"end":12,"description":"d"}]}`, "a concept needs its title"},
		{"second element bad", `{"elements":[{"kind":"slide","start":11,"end":12,"title":"A"},{"kind":"slide","start":13,"end":12,"title":"B"}]}`, `element 2 (slide "B")`},
		{"many bad", `{"elements":[{"kind":"x","start":11,"end":12,"title":"A"},{"kind":"x","start":11,"end":12,"title":"A"},{"kind":"x","start":11,"end":12,"title":"A"},{"kind":"x","start":11,"end":12,"title":"A"},{"kind":"x","start":11,"end":12,"title":"A"}]}`, "(and 2 more)"},
	} {
		els, err := readAnswer(answerOf(tc.text), w)
		switch {
		case tc.says == "" && err != nil:
			t.Errorf("%s: %v, want a good answer", tc.name, err)
		case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.says)
		case tc.says != "" && els != nil:
			t.Errorf("%s: a bad answer gave elements %+v", tc.name, els)
		}
	}

	els, err := readAnswer(answerOf(`{"elements":[{"kind":"code","start":10,"end":12,"code":"  x = 1\n\n","language":" Python ","title":" T "}]}`), w)
	if err != nil || len(els) != 1 {
		t.Fatal(els, err)
	}
	if e := els[0]; e.Code != "  x = 1" || e.Language != "python" || e.Title != "T" {
		t.Errorf("element %+v: want indentation kept, trailing lines and spaces trimmed, the language lower-case", e)
	}
}
