package gemini

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/artifact"
)

// secondsPerChar is how long espeak-ng's Spanish voice, at its default rate,
// takes per character of narration: measured on the five sample videos
// (local/sample.Generate), it predicts each one's length within 4%, far
// better than a words-per-minute rate, which misses by up to 12%.
const secondsPerChar = 0.0594

// EstimateDuration is how long a text-to-speech voice takes to say
// narration, in seconds: the length the sample's video has when nobody has
// told the server (Options.Durations) the real one.
func EstimateDuration(narration string) float64 {
	n := utf8.RuneCountInString(strings.Join(strings.Fields(narration), " "))
	return round3(float64(n) * secondsPerChar)
}

// analyze answers a video window from the catalog: each slide is a slide
// element from its At to the next slide's (or the video's end), a slide with
// code adds a code element, and each slide's title is a concept presented
// over the same span (a generic title such as "Ejemplo" presents none).
// Elements are clipped to the window [w.Start, w.End),
// keep absolute times, and come sorted by start, then kind.
func analyze(pg sample.Page, duration float64, w artifact.Window, kinds map[string]bool) []element {
	sentences := timedSentences(pg.Narration, duration)
	var all []element
	for i, sl := range pg.Slides {
		start, end := sl.At, duration
		if i+1 < len(pg.Slides) {
			end = math.Min(pg.Slides[i+1].At, duration)
		}
		if end <= start {
			continue
		}
		all = append(all, element{
			Kind: artifact.VisualSlide, Start: start, End: end,
			Title: sl.Title, Text: strings.TrimSpace(sl.Text),
			Description: slideDescription(sl),
		})
		if code := strings.TrimRight(sl.Code, " \n"); code != "" {
			lang := codeLanguage(code)
			all = append(all, element{
				Kind: artifact.VisualCode, Start: start, End: end,
				Title: sl.Title, Code: code, Language: lang,
				Description: codeDescription(lang),
			})
		}
		if concept, ok := subject(sl.Title); ok {
			all = append(all, element{
				Kind: artifact.VisualConcept, Start: start, End: end,
				Title: concept, Text: strings.TrimSpace(sl.Text),
				Description: conceptDescription(sl, start, end, sentences),
			})
		}
	}

	out := []element{} // an empty window answers [], not null
	for _, e := range all {
		if kinds != nil && !kinds[e.Kind] {
			continue
		}
		e.Start, e.End = math.Max(e.Start, w.Start), math.Min(e.End, w.End)
		if e.End-e.Start < 0.001 {
			continue
		}
		e.Start, e.End = round3(e.Start), round3(e.End)
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b element) int {
		if a.Start != b.Start {
			return cmpFloat(a.Start, b.Start)
		}
		return slices.Index(artifact.VisualKinds, a.Kind) - slices.Index(artifact.VisualKinds, b.Kind)
	})
	return out
}

func slideDescription(sl sample.Slide) string {
	d := "Diapositiva «" + sl.Title + "»"
	if sl.Code != "" {
		d += " con un fragmento de código"
	}
	return d
}

func codeDescription(lang string) string {
	if lang == "" {
		return "Código en pantalla"
	}
	return "Código " + displayLanguage[lang] + " en pantalla"
}

var displayLanguage = map[string]string{"python": "Python", "javascript": "JavaScript", "sql": "SQL", "shell": "de shell"}

// Cues of a language in code on screen; the first language with a match
// wins, so the more specific come first.
var languageCues = []struct {
	lang string
	re   *regexp.Regexp
}{
	{"python", regexp.MustCompile(`(?m)^\s*(def|class)\s+\w+.*:\s*$|^\s*(if|elif|else|for|while|try|except|with)\b.*:\s*$|\bprint\(|^\s*(import|from)\s+\w+|\b(True|False|None)\b|\bf"|\bself\.`)},
	{"javascript", regexp.MustCompile(`\b(const|let|function)\s+\w+|=>|console\.log\(`)},
	{"sql", regexp.MustCompile(`(?i)\bselect\b.+\bfrom\b`)},
	{"shell", regexp.MustCompile(`(?m)^\s*\$\s+\w+`)},
}

// codeLanguage names the language of code on screen, "" when no cue fits.
func codeLanguage(code string) string {
	for _, c := range languageCues {
		if c.re.MatchString(code) {
			return c.lang
		}
	}
	return ""
}

// timedSentence is a sentence of the narration with the span a voice
// reading it at an even pace would take.
type timedSentence struct {
	text       string
	start, end float64
}

func timedSentences(narration string, duration float64) []timedSentence {
	ss := sentences(narration)
	total := 0
	for _, s := range ss {
		total += utf8.RuneCountInString(s)
	}
	if total == 0 {
		return nil
	}
	out := make([]timedSentence, len(ss))
	at := 0
	for i, s := range ss {
		n := utf8.RuneCountInString(s)
		out[i] = timedSentence{s, duration * float64(at) / float64(total), duration * float64(at+n) / float64(total)}
		at += n
	}
	return out
}

// conceptDescription is what the narration says about a slide's concept:
// among the sentences spoken while the slide is on screen, the one sharing
// most words with its title (the first one on a tie), else the slide text.
func conceptDescription(sl sample.Slide, start, end float64, ss []timedSentence) string {
	title := contentStems(sl.Title + " " + sl.Text)
	best, bestScore := "", -1
	for _, s := range ss {
		if s.end <= start || s.start >= end {
			continue
		}
		score := 0
		for st := range contentStems(s.text) {
			if title[st] {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = s.text, score
		}
	}
	if best == "" {
		return strings.TrimSpace(sl.Text)
	}
	return best
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
