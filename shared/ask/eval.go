package ask

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/goccy/go-yaml"
)

// A producer's own quality check (`pipeline eval FILE.yaml`): questions
// whose answer the producer knows — the lesson that answers each, and
// optionally the second of its video where it is said — asked as a student
// would, and scored on what the answer cites. The file:
//
//	school: programacion          # default school of every question
//	questions:
//	  - question: ¿Cómo se declara una variable en Python?
//	    lesson: RE4zW6m6el        # the Hotmart page id of the lesson
//	    second: 75                # optional
//	  - question: ¿Qué es SEO?
//	    school: marketing         # a question's own school
//	    course: "4100002"         # optional filters, as `pipeline ask`
//	    level: básico
//	    lesson: K2mX9vD0aa

// TopCitations is how many of an answer's first citations may hold the
// expected lesson for the question to count as found.
const TopCitations = 3

// EvalFile is an evaluation file.
type EvalFile struct {
	School    string         `yaml:"school" json:"school,omitempty"`
	Questions []EvalQuestion `yaml:"questions" json:"questions"`
}

// EvalQuestion is one question with its known answer.
type EvalQuestion struct {
	Question string `yaml:"question" json:"question"`
	School   string `yaml:"school" json:"school,omitempty"`
	Course   string `yaml:"course" json:"course,omitempty"`
	Level    string `yaml:"level" json:"level,omitempty"`
	// Lesson is the id of the lesson that answers it.
	Lesson string `yaml:"lesson" json:"lesson"`
	// Second, when set, is a moment of the lesson's video where the
	// answer is said: a cited time range of the lesson must hold it.
	Second *float64 `yaml:"second" json:"second,omitempty"`
}

// ParseEval reads an evaluation file, naming every problem in it at once.
// Each question gets the file's school unless it names its own.
func ParseEval(b []byte) (EvalFile, error) {
	var f EvalFile
	if err := yaml.UnmarshalWithOptions(b, &f, yaml.DisallowUnknownField()); err != nil {
		return EvalFile{}, fmt.Errorf("evaluation file: %w", err)
	}
	var bad []string
	if len(f.Questions) == 0 {
		bad = append(bad, "no questions")
	}
	for i := range f.Questions {
		q := &f.Questions[i]
		if q.School == "" {
			q.School = f.School
		}
		var miss []string
		if strings.TrimSpace(q.Question) == "" {
			miss = append(miss, "question")
		}
		if q.School == "" {
			miss = append(miss, "school (its own or the file's)")
		}
		if q.Lesson == "" {
			miss = append(miss, "lesson")
		}
		if len(miss) > 0 {
			bad = append(bad, fmt.Sprintf("question %d has no %s", i+1, strings.Join(miss, ", ")))
		}
		if q.Second != nil && (*q.Second < 0 || math.IsNaN(*q.Second) || math.IsInf(*q.Second, 0)) {
			bad = append(bad, fmt.Sprintf("question %d: second %v is not a moment of a video", i+1, *q.Second))
		}
		if q.Level != "" {
			if _, err := NormalizeLevel(q.Level); err != nil {
				bad = append(bad, fmt.Sprintf("question %d: %v", i+1, err))
			}
		}
	}
	if len(bad) > 0 {
		return EvalFile{}, fmt.Errorf("evaluation file: %s", strings.Join(bad, "; "))
	}
	return f, nil
}

// EvalResult is how one question did.
type EvalResult struct {
	EvalQuestion
	// Cited are the lessons of the answer's first TopCitations citations,
	// in order.
	Cited []string `json:"cited"`
	// Found: the expected lesson is among them.
	Found bool `json:"found"`
	// TimeHit (for a question with a second): a citation of the expected
	// lesson spans that second.
	TimeHit bool   `json:"timeHit"`
	Answer  string `json:"answer,omitempty"`
	// Error is why the question could not be asked; it counts as missed.
	Error string `json:"error,omitempty"`
}

// EvalReport is a whole evaluation.
type EvalReport struct {
	Results   []EvalResult `json:"results"`
	Questions int          `json:"questions"`
	Found     int          `json:"found"`
	// FoundRate is Found / Questions.
	FoundRate float64 `json:"foundRate"`
	// Timed counts the questions with a second; TimeHits those whose
	// second a citation spans; TimeRate is TimeHits / Timed (0 when none
	// is timed).
	Timed    int     `json:"timed"`
	TimeHits int     `json:"timeHits"`
	TimeRate float64 `json:"timeRate"`
	Errors   int     `json:"errors"`
}

// Evaluate asks every question of f, one after the other (an assistant's
// rate limits are the producer's), with ask, and scores the answers. A
// question whose asking fails is reported with its error and counts as
// missed; the evaluation stops only when ctx ends.
func Evaluate(ctx context.Context, ask func(context.Context, Question) (Answer, error), f EvalFile) (EvalReport, error) {
	var r EvalReport
	for _, q := range f.Questions {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		res := EvalResult{EvalQuestion: q}
		ans, err := ask(ctx, Question{School: q.School, Course: q.Course, Level: q.Level, Text: q.Question})
		if err != nil {
			if ctx.Err() != nil {
				return r, errors.Join(ctx.Err(), err)
			}
			res.Error = err.Error()
		} else {
			res.Answer = ans.Text
			score(&res, ans)
		}
		r.add(res)
	}
	return r, nil
}

// score marks what the answer's citations show.
func score(res *EvalResult, ans Answer) {
	for i, c := range ans.Citations {
		if i < TopCitations {
			res.Cited = append(res.Cited, c.LessonID)
			if c.LessonID == res.Lesson {
				res.Found = true
			}
		}
		if res.Second != nil && c.LessonID == res.Lesson && c.Start != nil && c.End != nil &&
			*c.Start <= *res.Second && *res.Second <= *c.End {
			res.TimeHit = true
		}
	}
}

func (r *EvalReport) add(res EvalResult) {
	r.Results = append(r.Results, res)
	r.Questions++
	if res.Found {
		r.Found++
	}
	if res.Second != nil {
		r.Timed++
		if res.TimeHit {
			r.TimeHits++
		}
	}
	if res.Error != "" {
		r.Errors++
	}
	r.FoundRate = float64(r.Found) / float64(r.Questions)
	if r.Timed > 0 {
		r.TimeRate = float64(r.TimeHits) / float64(r.Timed)
	}
}

// Shortfalls says how the report falls short of the thresholds (fractions
// 0..1; a zero threshold checks nothing): the share of questions whose
// lesson was found, and of timed questions whose second was cited. None
// means it passed.
func (r EvalReport) Shortfalls(threshold, timeThreshold float64) []string {
	var out []string
	if threshold > 0 && r.FoundRate < threshold {
		out = append(out, fmt.Sprintf("lesson found in the top %d citations for %d of %d questions (%.0f%%), below %.0f%%",
			TopCitations, r.Found, r.Questions, 100*r.FoundRate, 100*threshold))
	}
	if timeThreshold > 0 && r.Timed > 0 && r.TimeRate < timeThreshold {
		out = append(out, fmt.Sprintf("cited time range holds the second for %d of %d timed questions (%.0f%%), below %.0f%%",
			r.TimeHits, r.Timed, 100*r.TimeRate, 100*timeThreshold))
	}
	return out
}
