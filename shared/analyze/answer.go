package analyze

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/genaiclient"
)

// windowSlack is how far outside its window an element may reach: the SDK
// sends offsets in whole seconds and the model reads frames a second
// apart, so a second either way is the precision the window has.
const windowSlack = 1.0

// maxProblems bounds the element problems one reason names.
const maxProblems = 3

// readAnswer reads and checks one window's answer. Nothing is dropped or
// repaired: an answer with one bad element is a bad answer, and its error
// says what is wrong with it.
func readAnswer(resp *genai.GenerateContentResponse, w artifact.Window) ([]artifact.VisualElement, error) {
	text, err := genaiclient.AnswerText(resp)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &top); err != nil {
		return nil, fmt.Errorf("not a JSON object (%v): %s", err, excerpt(text))
	}
	raw, ok := top["elements"]
	if !ok {
		return nil, fmt.Errorf(`no "elements" property (it has %s)`, propertyNames(top))
	}
	var els []rawElement
	if err := json.Unmarshal(raw, &els); err != nil {
		return nil, fmt.Errorf(`"elements" is not a list of elements: %v`, err)
	}
	if els == nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("[]")) {
		return nil, errors.New(`"elements" is null, not a list`)
	}
	out := make([]artifact.VisualElement, 0, len(els))
	var problems []string
	for i, e := range els {
		ve, err := e.check(w)
		if err != nil {
			problems = append(problems, fmt.Sprintf("element %d%s: %v", i+1, e.label(), err))
			continue
		}
		out = append(out, ve)
	}
	if len(problems) > 0 {
		more := ""
		if len(problems) > maxProblems {
			more = fmt.Sprintf(" (and %d more)", len(problems)-maxProblems)
			problems = problems[:maxProblems]
		}
		return nil, fmt.Errorf("%s%s", strings.Join(problems, "; "), more)
	}
	return out, nil
}

// rawElement is an element as answered; start and end are pointers so
// that a missing one is told from a zero.
type rawElement struct {
	Kind        string   `json:"kind"`
	Start       *float64 `json:"start"`
	End         *float64 `json:"end"`
	Title       string   `json:"title"`
	Text        string   `json:"text"`
	Code        string   `json:"code"`
	Language    string   `json:"language"`
	Description string   `json:"description"`
}

// label names an element in a reason by its kind and title.
func (e rawElement) label() string {
	var parts []string
	if e.Kind != "" {
		parts = append(parts, e.Kind)
	}
	if t := strings.TrimSpace(e.Title); t != "" {
		parts = append(parts, fmt.Sprintf("%q", clip(t, 40)))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " ") + ")"
}

// check is the contract of one element: a known kind, a time span inside
// the window, and the content its kind is about.
func (e rawElement) check(w artifact.Window) (artifact.VisualElement, error) {
	v := artifact.VisualElement{
		Kind:        e.Kind,
		Title:       strings.TrimSpace(e.Title),
		Text:        strings.TrimSpace(e.Text),
		Code:        strings.TrimRight(e.Code, " \t\r\n"),
		Language:    strings.ToLower(strings.TrimSpace(e.Language)),
		Description: strings.TrimSpace(e.Description),
	}
	var errs []error
	if !slices.Contains(artifact.VisualKinds, e.Kind) {
		errs = append(errs, fmt.Errorf("kind %q is not one of %s", e.Kind, strings.Join(artifact.VisualKinds, ", ")))
	}
	switch {
	case e.Start == nil || e.End == nil:
		errs = append(errs, errors.New("start and end are both required"))
	default:
		v.Start, v.End = *e.Start, *e.End
		switch {
		case v.Start < 0:
			errs = append(errs, fmt.Errorf("start %s is negative", seconds(v.Start)))
		case v.End < v.Start:
			errs = append(errs, fmt.Errorf("end %s comes before start %s", seconds(v.End), seconds(v.Start)))
		case v.Start < w.Start-windowSlack || v.End > w.End+windowSlack:
			errs = append(errs, fmt.Errorf("[%s s, %s s] lies outside the window [%s s, %s s] (± %g s)",
				seconds(v.Start), seconds(v.End), seconds(w.Start), seconds(w.End), windowSlack))
		}
	}
	if need := missingContent(v); need != "" {
		errs = append(errs, errors.New(need))
	}
	return v, errors.Join(errs...)
}

// missingContent says what a kind of element needs and v lacks: a slide is
// read by its title or text, code by its code, a diagram or demonstration
// by its description, a concept by its name.
func missingContent(v artifact.VisualElement) string {
	switch v.Kind {
	case artifact.VisualSlide:
		if v.Title == "" && v.Text == "" {
			return "a slide needs its title or its text"
		}
	case artifact.VisualCode:
		if strings.TrimSpace(v.Code) == "" {
			return "a code element needs its code"
		}
	case artifact.VisualDiagram, artifact.VisualDemonstration:
		if v.Description == "" {
			return "a " + v.Kind + " needs its description"
		}
	case artifact.VisualConcept:
		if v.Title == "" {
			return "a concept needs its title"
		}
	}
	return ""
}

func propertyNames(m map[string]json.RawMessage) string {
	if len(m) == 0 {
		return "no properties"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// excerpt quotes the start of a bad answer, for the reason.
func excerpt(s string) string { return fmt.Sprintf("%q", clip(strings.TrimSpace(s), 80)) }

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
