package chunk

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/artifact"
)

// lectureVocab is the words of generated lectures, most frequent first:
// Spanish function words, then a few thousand Spanish-like content words
// made of syllables. Drawn with Zipf's law, a 10-hour lecture says about as
// many distinct words as real speech does (some thousands): the chunker
// counts each distinct word once, so a small vocabulary would flatter it.
var lectureVocab = func() []string {
	words := strings.Fields(`
		de la que el en y a los se del las un por con no una su para es al lo
		como más pero sus le ya o este sí porque esta entre cuando muy sin sobre
		también me hasta hay donde quien desde todo nos durante todos uno les ni
		contra otros ese eso ante ellos e esto mí antes algunos qué unos yo otro
		vamos ver aquí ahora entonces bueno tenemos hacemos usamos función variable
		valor código programa datos tipo error ejemplo archivo servidor cliente`)
	syllables := strings.Fields(`ca de lo ra men ción tra pa ri to es an con
		ble mi ta ver sa po li ne mo pro gra ma dor ti vo da se cu la re na ge`)
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for _, w := range words {
		seen[w] = true
	}
	for len(words) < 6000 {
		var w strings.Builder
		for range 2 + r.IntN(3) {
			w.WriteString(syllables[r.IntN(len(syllables))])
		}
		if !seen[w.String()] {
			seen[w.String()] = true
			words = append(words, w.String())
		}
	}
	return words
}()

// lecture generates a deterministic lesson of the given minutes: about 150
// words a minute of Spanish-like sentences, mostly one teacher with a few
// student turns, paragraphs of a few sentences, and a slide every two to
// five minutes, every third one with code.
func lecture(seed uint64, minutes int) (artifact.Transcript, artifact.Analysis) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	zipf := rand.NewZipf(r, 1.05, 2, uint64(len(lectureVocab)-1))
	var sc script
	var els []artifact.VisualElement
	nextSlide := 10.0
	speaker := "1"
	total := float64(minutes * 60)
	for sc.t < total {
		if sc.t >= nextSlide {
			els = append(els, slide(r, len(els), sc.t))
			nextSlide = sc.t + 120 + r.Float64()*180
		}
		if speaker == "1" && r.IntN(25) == 0 {
			speaker = fmt.Sprint(2 + r.IntN(2))
		} else if speaker != "1" && r.IntN(2) == 0 {
			speaker = "1"
		}
		for range 2 + r.IntN(4) {
			n := 6 + r.IntN(20)
			for i := range n {
				w := lectureVocab[zipf.Uint64()]
				switch {
				case i == 0:
					w = capitalize(w)
				case i == n-1 && r.IntN(6) == 0:
					w += "?"
				case i == n-1:
					w += "."
				case r.IntN(12) == 0:
					w += ","
				}
				// 150 words a minute: 0.3 s a word, 0.1 s between.
				sc.word(speaker, w)
			}
			sc.t += 0.2 * r.Float64()
		}
		sc.paragraph()
		sc.t += 0.5
	}
	for i := range els {
		els[i].End = sc.t
		if i+1 < len(els) {
			els[i].End = els[i+1].Start
		}
	}
	tr := sc.transcript()
	tr.DurationSeconds = sc.t
	return tr, analysis(els...)
}

func slide(r *rand.Rand, i int, at float64) artifact.VisualElement {
	e := artifact.VisualElement{Kind: artifact.VisualSlide, Start: at, Title: fmt.Sprintf("Tema %d: %s", i+1, lectureVocab[r.IntN(len(lectureVocab))])}
	var lines []string
	for range 2 + r.IntN(4) {
		var ws []string
		for range 3 + r.IntN(6) {
			ws = append(ws, lectureVocab[r.IntN(len(lectureVocab))])
		}
		lines = append(lines, "- "+strings.Join(ws, " "))
	}
	e.Text = strings.Join(lines, "\n")
	if i%3 == 2 {
		e.Kind, e.Language = artifact.VisualCode, "go"
		var code []string
		code = append(code, fmt.Sprintf("func ejemplo%d(datos []int) int {", i))
		for j := range 4 + r.IntN(12) {
			code = append(code, fmt.Sprintf("\tv%d := datos[%d] * %d", j, j, r.IntN(100)))
		}
		code = append(code, "\treturn v0", "}")
		e.Code = strings.Join(code, "\n")
	}
	return e
}

func capitalize(w string) string {
	r, n := utf8.DecodeRuneInString(w)
	return string(unicode.ToUpper(r)) + w[n:]
}
