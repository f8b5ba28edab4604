package enrich

import (
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

// Answer is Gemini's description of a lesson, checked.
type Answer struct {
	Keywords      []string `json:"keywords"`
	Level         string   `json:"level"`
	Summary       string   `json:"summary"`
	Objectives    []string `json:"objectives"`
	Prerequisites []string `json:"prerequisites"`
}

// Lengths past which a text is not what was asked for.
const (
	maxItemRunes    = 300
	maxSummaryRunes = 2000
)

// readAnswer reads and checks one answer. Whitespace is tidied and a
// keyword repeated (whatever its case) is kept once; nothing else is
// repaired: an answer that breaks the contract is a bad answer, and the
// error says how.
func readAnswer(resp *genai.GenerateContentResponse) (Answer, error) {
	text, err := genaiclient.AnswerText(resp)
	if err != nil {
		return Answer{}, err
	}
	return checkAnswer(text)
}

// checkAnswer is the contract of an answer's JSON text.
func checkAnswer(text string) (Answer, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &top); err != nil {
		return Answer{}, fmt.Errorf("not a JSON object (%v): %s", err, excerpt(text))
	}
	var a Answer
	var errs []error
	field := func(name string, into any) bool {
		raw, ok := top[name]
		if !ok || string(raw) == "null" {
			errs = append(errs, fmt.Errorf("no %q (the answer has %s)", name, propertyNames(top)))
			return false
		}
		if err := json.Unmarshal(raw, into); err != nil {
			errs = append(errs, fmt.Errorf("%q is not %s: %s", name, kindOf(into), excerpt(string(raw))))
			return false
		}
		return true
	}
	var keywords, objectives, prerequisites []string
	if field("keywords", &keywords) {
		a.Keywords = dedupe(tidy(keywords))
		if n := len(a.Keywords); n < MinKeywords || n > MaxKeywords {
			errs = append(errs, fmt.Errorf("%d distinct keywords: want %d to %d", n, MinKeywords, MaxKeywords))
		}
		errs = append(errs, checkItems("keywords", keywords)...)
	}
	if field("level", &a.Level) && !slices.Contains(artifact.Levels, a.Level) {
		errs = append(errs, fmt.Errorf("level %q is not one of %s", a.Level, strings.Join(artifact.Levels, ", ")))
	}
	if field("summary", &a.Summary) {
		a.Summary = strings.TrimSpace(a.Summary)
		if n := utf8.RuneCountInString(a.Summary); n == 0 || n > maxSummaryRunes {
			errs = append(errs, fmt.Errorf("the summary has %d characters: want 1 to %d", n, maxSummaryRunes))
		}
	}
	if field("objectives", &objectives) {
		a.Objectives = tidy(objectives)
		if n := len(a.Objectives); n < 1 || n > MaxObjectives {
			errs = append(errs, fmt.Errorf("%d objectives: want 1 to %d", n, MaxObjectives))
		}
		errs = append(errs, checkItems("objectives", objectives)...)
	}
	if field("prerequisites", &prerequisites) {
		a.Prerequisites = tidy(prerequisites)
		if n := len(a.Prerequisites); n > MaxPrerequisites {
			errs = append(errs, fmt.Errorf("%d prerequisites: want at most %d", n, MaxPrerequisites))
		}
		errs = append(errs, checkItems("prerequisites", prerequisites)...)
	}
	if len(errs) > 0 {
		return Answer{}, errors.Join(errs...)
	}
	return a, nil
}

// checkItems names the empty and the overlong items of a list.
func checkItems(name string, items []string) []error {
	var errs []error
	for i, it := range items {
		switch n := utf8.RuneCountInString(strings.TrimSpace(it)); {
		case n == 0:
			errs = append(errs, fmt.Errorf("%s[%d] is empty", name, i))
		case n > maxItemRunes:
			errs = append(errs, fmt.Errorf("%s[%d] has %d characters: want at most %d", name, i, n, maxItemRunes))
		}
	}
	return errs
}

// tidy collapses each item's whitespace, leaving out the empty ones
// (checkItems reports them).
func tidy(items []string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it = oneLine(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// dedupe keeps the first of items equal but for case.
func dedupe(items []string) []string {
	seen := map[string]bool{}
	out := items[:0:0]
	for _, it := range items {
		k := strings.ToLower(it)
		if !seen[k] {
			seen[k] = true
			out = append(out, it)
		}
	}
	return out
}

func kindOf(v any) string {
	if _, ok := v.(*string); ok {
		return "a string"
	}
	return "a list of strings"
}

func propertyNames(m map[string]json.RawMessage) string {
	if len(m) == 0 {
		return "no properties"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// excerpt quotes the start of a bad answer, for the reason.
func excerpt(s string) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 80 {
		s = string([]rune(s)[:80]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
