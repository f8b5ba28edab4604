package gemini

import (
	"regexp"
	"slices"
	"strings"
)

// Keyword weights by where a word appears: the title says what the lesson
// is about more surely than any one sentence does.
const (
	weightTitle      = 3
	weightSlideTitle = 2
	weightProse      = 1
	weightCode       = 1
	maxKeywords      = 8
	minKeywords      = 5
)

// term is a keyword candidate: a word or a two-word phrase.
type term struct {
	surface string // as first written, lowercase
	score   float64
	first   int // order of first appearance, for ties
	parts   []string
}

type keywordCounter struct {
	terms map[string]*term // by folded form
	seen  int
	// code holds the identifiers of the code on screen: in prose they count
	// however short ("if", "def").
	code map[string]bool
}

func (k *keywordCounter) add(key, surface string, parts []string, w float64) {
	t, ok := k.terms[key]
	if !ok {
		t = &term{surface: surface, first: k.seen, parts: parts}
		k.terms[key] = t
		k.seen++
	}
	t.score += w
}

// prose counts the meaningful words of text and the pairs of them written
// side by side with nothing between ("buyer persona", "tipos básicos").
func (k *keywordCounter) prose(text string, w float64) {
	toks := tokens(text)
	keep := func(w string) bool { return meaningful(w) || k.code[w] }
	for i, t := range toks {
		if !keep(t.word) {
			continue
		}
		k.add(fold(t.word), t.word, nil, w)
		if i > 0 && !t.brk && keep(toks[i-1].word) {
			a, b := fold(toks[i-1].word), fold(t.word)
			k.add(a+" "+b, toks[i-1].word+" "+t.word, []string{a, b}, w)
		}
	}
}

var (
	codeNoise  = regexp.MustCompile(`"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#.*|//.*`)
	identifier = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
)

// identifiers are the names in code, string literals and comments dropped.
func identifiers(src string) []string {
	var out []string
	for _, id := range identifier.FindAllString(codeNoise.ReplaceAllString(src, " "), -1) {
		if len(id) >= 2 {
			out = append(out, strings.ToLower(id))
		}
	}
	return out
}

// keywords ranks the lesson's terms: weighted counts, plurals merged into
// their singular, phrases kept when they recur (and then standing for the
// words they are made of), ties broken by first appearance.
func keywords(title, transcript string, visuals []element) []string {
	k := &keywordCounter{terms: map[string]*term{}, code: map[string]bool{}}
	for _, v := range visuals {
		for _, id := range identifiers(v.Code) {
			k.code[id] = true
		}
	}
	k.prose(title, weightTitle)
	for _, v := range visuals {
		if t, ok := subject(v.Title); ok { // "Resumen" says nothing
			k.prose(t, weightSlideTitle)
		}
	}
	k.prose(transcript, weightProse)
	for _, v := range visuals {
		k.prose(v.Text, weightProse)
		// Names on screen are what a learner searches for.
		for _, id := range identifiers(v.Code) {
			k.add(id, id, nil, weightCode)
		}
	}

	// Merge plurals into singulars: "variables" into "variable",
	// "valores" into "valor"; phrases word by word.
	canon := func(w string) string {
		for _, suf := range []string{"s", "es"} {
			if base, ok := strings.CutSuffix(w, suf); ok && len(base) >= 3 {
				if t, ok := k.terms[base]; ok && t.parts == nil {
					return base
				}
			}
		}
		return w
	}
	merged := map[string]*term{}
	keys := make([]string, 0, len(k.terms))
	for key := range k.terms {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int { return k.terms[a].first - k.terms[b].first })
	for _, key := range keys {
		t := k.terms[key]
		ck := canon(key)
		if t.parts != nil {
			t.parts = []string{canon(t.parts[0]), canon(t.parts[1])}
			ck = t.parts[0] + " " + t.parts[1]
		}
		m, ok := merged[ck]
		if !ok {
			cp := *t
			merged[ck] = &cp
			continue
		}
		m.score += t.score
		m.first = min(m.first, t.first)
		if ck == key { // the singular's own spelling wins
			m.surface = t.surface
		}
	}

	// A phrase seen once is chance; seen twice it is a term, and its words
	// are not keywords on their own unless they also stand alone as often.
	var ranked []*term
	covered := map[string]float64{}
	for _, t := range merged {
		if t.parts != nil && t.score >= 2 {
			t.score *= 1.5
			ranked = append(ranked, t)
			for _, p := range t.parts {
				covered[p] = max(covered[p], t.score/1.5)
			}
		}
	}
	for key, t := range merged {
		if t.parts == nil && t.score > covered[key] {
			ranked = append(ranked, t)
		}
	}
	slices.SortFunc(ranked, func(a, b *term) int {
		if a.score != b.score {
			return cmpFloat(b.score, a.score)
		}
		return a.first - b.first
	})
	out := []string{}
	for _, t := range ranked {
		if len(out) >= maxKeywords || (t.score < 2 && len(out) >= minKeywords) {
			break
		}
		out = append(out, t.surface)
	}
	return out
}
