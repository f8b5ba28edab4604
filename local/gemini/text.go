package gemini

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text helpers of the enrichment engine: sentences, words, Spanish stop
// words. Plain rules on purpose: the answers must be the same on every run.

// sentenceEnd ends a sentence at . ! ? or … followed by a space or the end
// ("9.99" and "type.name" stay whole), and at blank lines.
var sentenceEnd = regexp.MustCompile(`[.!?…]+(\s+|$)|\n\s*\n`)

// sentences splits text into trimmed sentences, ending punctuation kept.
func sentences(text string) []string {
	var out []string
	rest := strings.TrimSpace(text)
	for rest != "" {
		loc := sentenceEnd.FindStringIndex(rest)
		if loc == nil {
			out = append(out, strings.Join(strings.Fields(rest), " "))
			break
		}
		if s := strings.Join(strings.Fields(rest[:loc[1]]), " "); s != "" {
			out = append(out, s)
		}
		rest = strings.TrimSpace(rest[loc[1]:])
	}
	return out
}

// token is a word of prose; brk marks a punctuation break before it, which
// no bigram spans.
type token struct {
	word string
	brk  bool
}

// tokens splits prose into lowercase words (letters, digits, '_' and inner
// '/' as in "80/20").
func tokens(text string) []token {
	var out []token
	var b strings.Builder
	brk := true
	flush := func() {
		if b.Len() > 0 {
			out = append(out, token{strings.Trim(strings.ToLower(b.String()), "/"), brk})
			b.Reset()
			brk = false
		}
	}
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || (r == '/' && b.Len() > 0):
			b.WriteRune(r)
		case unicode.IsSpace(r):
			flush()
		default:
			flush()
			brk = true
		}
	}
	flush()
	return out
}

// meaningful reports whether a prose word can be a keyword: not a stop
// word, three letters or more, not a bare number.
func meaningful(w string) bool {
	if utf8.RuneCountInString(w) < 3 || stopWords[w] {
		return false
	}
	return strings.IndexFunc(w, unicode.IsLetter) >= 0
}

// fold lowercases and drops Spanish accents, for comparisons.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case 'á', 'Á':
			return 'a'
		case 'é', 'É':
			return 'e'
		case 'í', 'Í':
			return 'i'
		case 'ó', 'Ó':
			return 'o'
		case 'ú', 'Ú', 'ü', 'Ü':
			return 'u'
		}
		return unicode.ToLower(r)
	}, s)
}

// stem is a crude Spanish stem: the folded word without a plural "s", cut
// to five letters; enough to match "variable" with "variables" and
// "condición" with "condicionales".
func stem(w string) string {
	r := []rune(fold(w))
	if len(r) > 3 && r[len(r)-1] == 's' {
		r = r[:len(r)-1]
	}
	if len(r) > 5 {
		r = r[:5]
	}
	return string(r)
}

// contentStems is the set of stems of the meaningful words of text.
func contentStems(text string) map[string]bool {
	set := map[string]bool{}
	for _, t := range tokens(text) {
		if meaningful(t.word) {
			set[stem(t.word)] = true
		}
	}
	return set
}

// capitalize upper-cases the first letter and drops closing punctuation.
func capitalize(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), ".!?…,;: ")
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return ""
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// stopWords are Spanish function words plus the filler of spoken lessons
// ("vamos a ver", "bienvenidos al curso"): words that say nothing about the
// lesson's subject.
var stopWords = func() map[string]bool {
	list := `a al algo algún alguna algunas alguno algunos ante antes aquel aquella aquí así aun aún
	bajo bastante bien cada casi como cómo con contra cual cuál cuales cuáles cualquier cuando cuándo cuanto cuánto
	de del demás dentro desde después donde dónde dos durante e el él ella ellas ellos en entonces entre era eran es esa esas
	ese eso esos esta está estaba estamos están estar estas éste este esto estos estoy etc fue fueron ha había han has hasta hay
	la las le les lo los más mas me mi mis mismo misma mismos mismas mucho mucha muchos muchas muy nada ni no nos nosotros nuestro
	nuestra nuestros nuestras nunca o os otra otras otro otros para pero poco pocos por porque pues que qué quien quién quienes
	se sea según ser si sí siempre sin sino sobre solo sólo son su sus tal también tan tanto te tiene tienen tener tenemos
	todo toda todos todas tu tú tus un una uno unos unas usted ustedes y ya yo vez veces
	ahora luego además primero primera segundo segunda tres cuatro cinco
	vamos va van voy ver vemos veremos verás vimos hacer hace hacen hacemos haces puede pueden puedes podemos poder
	usar usa usamos usan decir dice dicho sirve sirven quiere queremos necesitas necesita falta debe deben
	saber sabes recuerda recordad bienvenidos bienvenidas bienvenido hola lección lecciones curso cosa cosas forma manera
	parte ejemplo ejemplos caso casos tema temas igual`
	set := map[string]bool{}
	for _, w := range strings.Fields(list) {
		set[w] = true
	}
	return set
}()
