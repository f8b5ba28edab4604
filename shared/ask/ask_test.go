package ask_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/ask"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// The question finds the lesson that answers it, and the citation carries
// the lesson, its version and title, the time range read from the cited
// section's own heading, and that section's text.
func TestAskCitesTheLessonAndTheTimeRange(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		question   string
		lesson     string
		start, end float64
		quote      string
	}{
		{"¿Cómo se declara una variable en Python?", "vars1", 62, 131, "se declara asignándole un valor"},
		{"¿Qué devuelve una función sin return?", "func2", 95, 181, "Sin return, la función devuelve None"},
	} {
		ans, err := e.asker.Ask(t.Context(), ask.Question{School: school, Text: tc.question})
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Citations) == 0 {
			t.Fatalf("%q: no citations in %q", tc.question, ans.Text)
		}
		c := ans.Citations[0]
		if c.LessonID != tc.lesson || c.Version != 1 || c.Title == "" || !strings.HasPrefix(c.Filename, "lesson-"+tc.lesson+"-v1") {
			t.Errorf("%q: first citation %+v", tc.question, c)
		}
		if seconds(c.Start) != tc.start || seconds(c.End) != tc.end {
			t.Errorf("%q: cited %v–%v, want %v–%v", tc.question, seconds(c.Start), seconds(c.End), tc.start, tc.end)
		}
		if !strings.Contains(c.Quote, tc.quote) || strings.Contains(c.Quote, "## [") {
			t.Errorf("%q: quote %q", tc.question, c.Quote)
		}
		if ans.Model != "gpt-5-mini" || !strings.Contains(ans.Text, tc.quote) {
			t.Errorf("%q: answer %q by %s", tc.question, ans.Text, ans.Model)
		}
	}
}

// --json prints the answer and, per citation, lessonId, version, start and
// end seconds and the quoted text.
func TestAnswerJSON(t *testing.T) {
	e := newEnv(t)
	ans, err := e.asker.Ask(t.Context(), ask.Question{School: school, Text: "¿Cómo se declara una variable?"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ans)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Answer    string `json:"answer"`
		Citations []struct {
			LessonID string   `json:"lessonId"`
			Version  int      `json:"version"`
			Start    *float64 `json:"start"`
			End      *float64 `json:"end"`
			Quote    string   `json:"quote"`
		} `json:"citations"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Answer == "" || len(got.Citations) == 0 {
		t.Fatalf("json = %s", b)
	}
	if c := got.Citations[0]; c.LessonID != "vars1" || c.Version != 1 || c.Start == nil || c.End == nil || c.Quote == "" {
		t.Errorf("json citation = %+v", c)
	}
}

// --course and --level narrow the search with attribute filters, alone or
// both; a level is accepted without its accent.
func TestFiltersNarrowTheSearch(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	only := func(q ask.Question, lesson string) {
		t.Helper()
		ans, err := e.asker.Ask(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ans.Citations {
			if c.LessonID != lesson {
				t.Errorf("%+v: cited %s, want only %s", q, c.LessonID, lesson)
			}
		}
		if lesson != "" && len(ans.Citations) == 0 {
			t.Errorf("%+v: no citations", q)
		}
	}
	// A question both lessons answer in part ("valor", "Python").
	const both = "¿Qué valor devuelve Python?"
	only(ask.Question{School: school, Text: both, Course: "c2"}, "func2")
	only(ask.Question{School: school, Text: both, Course: "c1"}, "vars1")
	only(ask.Question{School: school, Text: both, Level: "intermedio"}, "func2")
	only(ask.Question{School: school, Text: both, Level: "Basico"}, "vars1")
	only(ask.Question{School: school, Text: both, Course: "c1", Level: "intermedio"}, "")

	_, err := e.asker.Ask(ctx, ask.Question{School: school, Text: both, Level: "experto"})
	if !failure.IsPermanent(err) || !strings.Contains(err.Error(), "básico, intermedio, avanzado") {
		t.Errorf("unknown level: %v", err)
	}
}

// A school's document overrides the configuration's assistant; a school
// with no store is told so.
func TestSchoolConfiguration(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.fs.Collection(lessonstate.CollSchools).Doc(school).Set(ctx,
		map[string]any{"assistant": lessonstate.Assistant{Model: "gpt-4.1-mini"}}, firestore.MergeAll); err != nil {
		t.Fatal(err)
	}
	ans, err := e.asker.Ask(ctx, ask.Question{School: school, Text: "¿Qué es una variable?"})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Model != "gpt-4.1-mini" {
		t.Errorf("model = %s", ans.Model)
	}
	_, err = e.asker.Ask(ctx, ask.Question{School: "marketing", Text: "¿Qué es SEO?"})
	var p *failure.Permanent
	if !errors.As(err, &p) || !strings.Contains(err.Error(), `school "marketing" has no vector store`) {
		t.Errorf("school without a store: %v", err)
	}
}
