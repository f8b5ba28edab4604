package openai

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// words splits text into lower-cased, accent-folded runs of letters and
// digits: "¿Qué es una función?" gives [que es una funcion]. Folding makes a
// question typed without accents (common in Spanish on a phone) match the
// accented lesson text.
func words(text string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, r := range norm.NFD.String(text) {
		switch {
		case unicode.Is(unicode.Mn, r): // a combining accent, dropped
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		default:
			flush()
		}
	}
	flush()
	return out
}

// terms are the words that carry meaning for retrieval: stop words dropped,
// plurals folded by stem.
func terms(text string) []string {
	ws := words(text)
	out := ws[:0]
	for _, w := range ws {
		if stopWords[w] {
			continue
		}
		out = append(out, stem(w))
	}
	return out
}

// stem is a deliberately light stemmer for Spanish and English: it drops a
// final "s" and then a final "e", so funciones/función, variables/variable,
// clases/clase and types/type meet at one stem. It never shortens a word
// below three letters.
func stem(w string) string {
	if len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
		w = w[:len(w)-1]
	}
	if len(w) > 4 && strings.HasSuffix(w, "e") {
		w = w[:len(w)-1]
	}
	return w
}

// stopWords are common Spanish and English function words, accent-folded.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
		a al algo como con cual cuales cuando de del donde e el ella ellos en entre era es esa ese eso esta
		estas este esto estos fue ha hay la las le les lo los mas me mi muy no nos o para pero por que
		se sea ser si sin sobre son su sus te tiene tu un una unas uno unos y ya yo hace hacer puedo
		the an of to in on and or is are was were be been what how which who whom when where why do does
		did it its this that these those for with as at by from about can could i you we they he she
		my your our their me us them there here not no if then than so into out up`) {
		m[w] = true
	}
	return m
}()
