package ask_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/ask"
)

func at(v float64) *float64 { return &v }

// The arithmetic: a question counts as found when its lesson is among the
// answer's first three citations, and as a time hit when a citation of
// that lesson spans its second; a question that could not be asked counts
// as missed. Thresholds are checked on the two shares.
func TestEvaluateArithmetic(t *testing.T) {
	t.Parallel()
	cite := func(lesson string, start, end float64) ask.Citation {
		return ask.Citation{LessonID: lesson, Version: 1, Start: at(start), End: at(end)}
	}
	answers := map[string]ask.Answer{
		// Found, and 75 s is in a cited range of the lesson.
		"q1": {Citations: []ask.Citation{cite("A", 60, 120)}},
		// Found third; its second is cited only for another lesson.
		"q2": {Citations: []ask.Citation{cite("X", 0, 500), cite("Y", 0, 10), cite("B", 10, 20)}},
		// Cited fourth only: not found; but a cited range of C holds 15 s.
		"q3": {Citations: []ask.Citation{cite("X", 0, 1), cite("Y", 0, 1), cite("Z", 0, 1), cite("C", 10, 20)}},
		// Found, untimed.
		"q4": {Citations: []ask.Citation{cite("D", 0, 1)}},
	}
	f, err := ask.ParseEval([]byte(`
school: programacion
questions:
  - {question: q1, lesson: A, second: 75}
  - {question: q2, lesson: B, second: 400}
  - {question: q3, lesson: C, second: 15}
  - {question: q4, lesson: D}
  - {question: q5, lesson: E, school: marketing}
`))
	if err != nil {
		t.Fatal(err)
	}
	var schools []string
	rep, err := ask.Evaluate(t.Context(), func(_ context.Context, q ask.Question) (ask.Answer, error) {
		schools = append(schools, q.School)
		if a, ok := answers[q.Text]; ok {
			return a, nil
		}
		return ask.Answer{}, errors.New("openai: 503")
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(schools, ",") != "programacion,programacion,programacion,programacion,marketing" {
		t.Errorf("schools asked = %v", schools)
	}
	if rep.Questions != 5 || rep.Found != 3 || rep.FoundRate != 0.6 || rep.Timed != 3 || rep.TimeHits != 2 ||
		rep.TimeRate != 2.0/3 || rep.Errors != 1 {
		t.Errorf("report = %+v", rep)
	}
	wantFound := []bool{true, true, false, true, false}
	wantTime := []bool{true, false, true, false, false}
	for i, r := range rep.Results {
		if r.Found != wantFound[i] || r.TimeHit != wantTime[i] {
			t.Errorf("question %d: found %v time %v", i+1, r.Found, r.TimeHit)
		}
	}
	if got := rep.Results[2].Cited; strings.Join(got, ",") != "X,Y,Z" {
		t.Errorf("q3 cited = %v", got)
	}
	if rep.Results[4].Error == "" {
		t.Error("the failed question has no error")
	}

	for _, tc := range []struct {
		threshold, timeThreshold float64
		short                    int
	}{
		{0.6, 0, 0}, {0.61, 0, 1}, {0, 0.66, 0}, {0, 0.67, 1}, {0.9, 0.9, 2}, {0, 0, 0},
	} {
		if got := rep.Shortfalls(tc.threshold, tc.timeThreshold); len(got) != tc.short {
			t.Errorf("thresholds %v/%v: %v", tc.threshold, tc.timeThreshold, got)
		}
	}
}

func TestParseEvalNamesEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ask.ParseEval([]byte(`
questions:
  - {question: "", lesson: A}
  - {question: q, school: s, lesson: B, second: -3, level: experto}
`))
	for _, want := range []string{"question 1 has no question, school (its own or the file's)", "question 2: second -3", "question 2: ask: level \"experto\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if _, err := ask.ParseEval([]byte("school: s\nquestions:\n  - {question: q, lesson: A, secnd: 3}\n")); err == nil {
		t.Error("a misspelt key was accepted")
	}
	if _, err := ask.ParseEval([]byte("school: s\n")); err == nil || !strings.Contains(err.Error(), "no questions") {
		t.Errorf("empty file: %v", err)
	}
}

// Against the local OpenAI server, as against OpenAI: the lessons are found
// and their seconds cited; a wrong expectation shows as a miss.
func TestEvaluateAgainstTheLocalServer(t *testing.T) {
	e := newEnv(t)
	f, err := ask.ParseEval([]byte(`
school: programacion
questions:
  - question: ¿Cómo se declara una variable en Python?
    lesson: vars1
    second: 75
  - question: ¿Qué devuelve una función sin return?
    lesson: func2
    second: 100
  - question: ¿Con qué palabra se define una función?
    lesson: vars1
  - question: ¿Cuáles son los tipos básicos?
    lesson: vars1
    second: 20
    level: basico
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ask.Evaluate(t.Context(), e.asker.Ask, f)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Questions != 4 || rep.Found != 3 || rep.Timed != 3 || rep.TimeHits != 2 || rep.Errors != 0 {
		for _, r := range rep.Results {
			t.Logf("%+v", r)
		}
		t.Fatalf("report = %+v", rep)
	}
	if r := rep.Results[2]; r.Found || len(r.Cited) == 0 || r.Cited[0] != "func2" {
		t.Errorf("the wrong expectation: %+v", r)
	}
	if len(rep.Shortfalls(0.75, 0)) != 0 || len(rep.Shortfalls(0.8, 0)) != 1 {
		t.Errorf("shortfalls = %v / %v", rep.Shortfalls(0.75, 0), rep.Shortfalls(0.8, 0))
	}
}
