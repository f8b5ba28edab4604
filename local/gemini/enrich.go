package gemini

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/coursekb/pipeline/shared/artifact"
)

// Limits of the enrichment answer's lists.
const (
	maxObjectives    = 5
	maxPrerequisites = 5
)

// enrich answers a text enrichment from the prompt's sections alone (see
// the Marker constants): the same prompt always gets the same answer.
func enrich(prompt string) (enrichmentAnswer, error) {
	title, hasTitle := sectionOK(prompt, MarkerTitle)
	transcript, hasTranscript := sectionOK(prompt, MarkerTranscript)
	if !hasTitle && !hasTranscript {
		return enrichmentAnswer{}, invalid("the prompt has none of the sections the local Gemini engine reads: start lines with %q and %q (gemini.MarkerTitle, gemini.MarkerTranscript)", MarkerTitle, MarkerTranscript)
	}
	visuals := parseVisuals(section(prompt, MarkerVisuals))
	ss := sentences(transcript)
	return enrichmentAnswer{
		Keywords:      keywords(title, transcript, visuals),
		Level:         level(title, transcript, section(prompt, MarkerModule)),
		Summary:       summary(title, ss, visuals),
		Objectives:    objectives(title, ss, visuals),
		Prerequisites: prerequisites(title, ss, transcript, section(prompt, MarkerEarlier)),
	}, nil
}

// Level cues, matched on folded text.
var (
	advancedCue     = regexp.MustCompile(`\b(avanzad[oa]s?|en profundidad|expert[oa]s?|optimizacion|concurrencia|metaprogramacion)\b`)
	intermediateCue = regexp.MustCompile(`\b(intermedi[oa]s?|profundiz\w*)\b`)
	firstNumber     = regexp.MustCompile(`[0-9]+`)
)

// level reads the lesson's level from words that say it, then from how deep
// in the course its module is (modules 3–4 intermediate, 5 on advanced);
// a first lesson with no cue is basic.
func level(title, transcript, module string) string {
	text := fold(title + " " + transcript)
	switch {
	case advancedCue.MatchString(text):
		return artifact.LevelAdvanced
	case intermediateCue.MatchString(text):
		return artifact.LevelIntermediate
	}
	if n, err := strconv.Atoi(firstNumber.FindString(module)); err == nil {
		switch {
		case n >= 5:
			return artifact.LevelAdvanced
		case n >= 3:
			return artifact.LevelIntermediate
		}
	}
	return artifact.LevelBasic
}

// summaryMin is the length under which the first sentence is a greeting or
// a lead-in rather than a summary, and the second one joins it.
const summaryMin = 60

// summary is the transcript's first sentence, or its first two when the
// first is short; without a transcript, the title and the first slide.
func summary(title string, ss []string, visuals []element) string {
	if len(ss) > 0 {
		s := ss[0]
		if len([]rune(s)) < summaryMin && len(ss) > 1 {
			s += " " + ss[1]
		}
		return s
	}
	for _, v := range visuals {
		if v.Text != "" {
			return "Lección «" + title + "»: " + capitalize(v.Text) + "."
		}
	}
	return "Lección «" + title + "»."
}

var objectiveCue = regexp.MustCompile(`(?i)\b(?:vamos a|aprenderás a|aprenderemos a|veremos|verás cómo)\s+(.+)`)

// genericLead matches slide titles that name no subject of their own
// ("Ejemplo", "Resumen"), and the lead-in of those naming one after it
// ("Ejemplo con valor por defecto").
var genericLead = regexp.MustCompile(`(?i)^(?:ejemplos?|ejercicios?|resumen|introducción|introduccion|conclusión|conclusion|conclusiones|preguntas?|repaso)(?:\s*$|\s*:\s*|\s+(?:con|de|del|sobre|sobre el|sobre la)\s+)`)

// subject is what a slide title is about: the title without a generic
// lead-in, and false when nothing is left.
func subject(title string) (string, bool) {
	t := strings.TrimSpace(title)
	if loc := genericLead.FindStringIndex(t); loc != nil {
		t = capitalize(t[loc[1]:])
	}
	return t, t != ""
}

// objectives are what the lesson announces ("vamos a ver qué es una
// variable" gives "Ver qué es una variable"), then the subjects of its
// slides other than the title and generic ones.
func objectives(title string, ss []string, visuals []element) []string {
	out := []string{}
	seen := map[string]bool{}
	addObj := func(o string) {
		if k := fold(o); o != "" && !seen[k] && len(out) < maxObjectives {
			seen[k] = true
			out = append(out, o)
		}
	}
	for _, s := range ss {
		if m := objectiveCue.FindStringSubmatch(s); m != nil {
			addObj(capitalize(m[1]))
		}
	}
	for _, v := range visuals {
		if v.Kind != artifact.VisualSlide && v.Kind != artifact.VisualConcept {
			continue
		}
		t, ok := subject(v.Title)
		if !ok || fold(t) == fold(strings.TrimSpace(title)) {
			continue
		}
		addObj("Entender «" + t + "»")
	}
	if len(out) == 0 && strings.TrimSpace(title) != "" {
		addObj("Entender «" + strings.TrimSpace(title) + "»")
	}
	return out
}

// prerequisiteCue captures what a sentence says the learner already knows.
var prerequisiteCue = regexp.MustCompile(`(?i)\b(?:recuerda(?:d)?|como ya vimos|ya vimos|como vimos|en la lección anterior(?: vimos)?|ya sabes|ya conoces)(?:\s+que)?\s*,?\s+(.+)`)

// prerequisites are what the transcript reminds of ("recuerda que…", "ya
// vimos…") and the earlier lessons it mentions: those at least half of
// whose title words (and one at least) it uses.
func prerequisites(title string, ss []string, transcript, earlier string) []string {
	out := []string{}
	seen := map[string]bool{}
	addPre := func(p string) {
		if k := fold(p); p != "" && !seen[k] && len(out) < maxPrerequisites {
			seen[k] = true
			out = append(out, p)
		}
	}
	for _, s := range ss {
		if m := prerequisiteCue.FindStringSubmatch(s); m != nil {
			addPre(capitalize(m[1]))
		}
	}
	said := contentStems(transcript)
	for _, l := range strings.FieldsFunc(earlier, func(r rune) bool { return r == '\n' || r == ';' }) {
		t := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "-*•0123456789.) "))
		if fold(t) == fold(strings.TrimSpace(title)) {
			continue // the lesson itself
		}
		words := contentStems(t)
		hits := 0
		for w := range words {
			if said[w] {
				hits++
			}
		}
		if len(words) > 0 && hits > 0 && 2*hits >= len(words) {
			addPre(t)
		}
	}
	return out
}
