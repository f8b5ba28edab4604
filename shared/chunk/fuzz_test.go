package chunk

import (
	"errors"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/artifact"
)

// FuzzSplit cuts lessons written by the fuzzer and checks every rule of
// the package comment (checkSplit): above all, that the chunks' spoken
// texts without their overlaps are the transcript's words, each once, in
// order; that each overlap is exactly the rule's; and that each chunk's
// Tokens is a fresh count of its text.
//
// The program's bytes are instructions (see fuzzLesson); vocab, split at
// "|", supplies word texts, which may hold anything, invalid UTF-8 and
// whitespace included.
//
// Run: go test -run '^$' -fuzz FuzzSplit -fuzztime 1m ./shared/chunk/
func FuzzSplit(f *testing.F) {
	tr, _ := lecture(3, 4)
	var lect []byte
	for i, w := range tr.Words {
		lect = append(lect, byte(i%9*16+i%10))
		if strings.HasSuffix(w.Text, ".") {
			lect = append(lect, 9)
		}
		if i%200 == 0 {
			lect = append(lect, 0x3d, 0x5e)
		}
	}
	f.Add(uint16(300), uint16(60), lect, "")
	f.Add(uint16(0), uint16(50), []byte{1, 2, 3, 9, 10, 4, 5, 9, 11, 6, 7, 8, 9, 13, 14, 0xfe, 0x2d}, "hola|mundo.|¿qué tal?|  a  b |\xff\xfe|")
	f.Add(uint16(100), uint16(0), []byte{}, "")
	f.Add(uint16(0), uint16(0), []byte{0x1d, 0x2e, 0x3d}, "")
	f.Add(uint16(500), uint16(10), []byte(strings.Repeat("\x01\x02\x03\x04\x05\x06\x07\x08", 200)), "sin|puntuación|nunca")
	f.Add(uint16(77), uint16(999), []byte(strings.Repeat("\x19\x1a\x2b\x0c\xdd\x0f\x09", 60)), "x|y.|z?|\t|\u00a0|'s|...|[|]|```")
	f.Fuzz(func(t *testing.T, maxTokens, overlap uint16, prog []byte, vocab string) {
		opts := Options{MaxTokens: MinMaxTokens + int(maxTokens)%500}
		opts.OverlapTokens = int(overlap) % (opts.MaxTokens/2 + 1)
		s, err := NewSplitter(testTokenizer(), opts)
		if err != nil {
			t.Fatal(err)
		}
		tr, an := fuzzLesson(prog, vocab)
		if len(refWords(tr)) == 0 && !anyContent(an) {
			if _, err := s.Split(testLesson, tr, an); !errors.Is(err, ErrNothingToChunk) {
				t.Fatalf("a lesson with nothing to say: %v", err)
			}
			return
		}
		checkSplit(t, s, tr, an)
	})
}

func anyContent(an artifact.Analysis) bool {
	for _, e := range an.Elements {
		if hasContent(e) {
			return true
		}
	}
	return false
}

// fuzzLesson writes a lesson from a program: each byte's low four bits say
// what happens, its high four bits which word or how much.
//
//	0-8   a word (9 ends a sentence with it)
//	10    the next speaker takes over
//	11    a paragraph ends
//	12    a pause of up to 15 s
//	13    a slide appears, of up to 15 lines (nothing on it for 0)
//	14    code appears, of up to 225 lines (longer than any chunk)
//	15    a word that is only whitespace, or a slide shown after the others
//
// Words are at most 16 bytes, as speech has them: no word then outgrows a
// chunk beside its overlap, which is an error of its own.
func fuzzLesson(prog []byte, vocab string) (artifact.Transcript, artifact.Analysis) {
	pool := strings.Split(vocab, "|")
	builtin := strings.Fields("la variable guarda un valor, que el programa usa después y cada función recibe parámetros")
	pick := func(i int) string {
		if i%2 == 1 && len(pool) > 0 && vocab != "" {
			w := pool[(i/2)%len(pool)]
			return w[:min(len(w), 16)]
		}
		return builtin[i%len(builtin)]
	}
	var sc script
	var els []artifact.VisualElement
	speakers := []string{"", "A", "B"}
	speaker := 0
	for i, b := range prog {
		op, arg := b&15, int(b>>4)
		switch {
		case op <= 8:
			sc.word(speakers[speaker], pick(arg*9+int(op)+i))
		case op == 9:
			sc.word(speakers[speaker], pick(arg+i)+".")
		case op == 10:
			speaker = (speaker + 1) % len(speakers)
		case op == 11:
			sc.paragraph()
		case op == 12:
			sc.pause(float64(arg))
		case op == 13:
			e := artifact.VisualElement{Kind: artifact.VisualKinds[arg%len(artifact.VisualKinds)], Start: sc.t - 0.2, End: sc.t + float64(arg*7)}
			if arg > 0 {
				e.Title = pick(arg + i)
				var lines []string
				for j := range arg {
					lines = append(lines, pick(j)+" "+pick(j+arg)+" "+pick(j*arg+i))
				}
				e.Text = strings.Join(lines, "\n")
			}
			els = append(els, e)
		case op == 14:
			var code strings.Builder
			for j := range arg * arg {
				code.WriteString("\tv" + pick(j) + " := " + pick(j+i) + "\n")
			}
			els = append(els, artifact.VisualElement{Kind: artifact.VisualCode, Start: sc.t, End: sc.t + 30, Title: pick(i), Code: code.String(), Language: "go"})
		case arg%2 == 0:
			sc.word(speakers[speaker], strings.Repeat(" ", arg%3))
		default:
			els = append(els, artifact.VisualElement{Kind: artifact.VisualSlide, Start: sc.t + float64(arg), End: sc.t + float64(arg) + 10, Title: pick(i)})
		}
	}
	for i := range els {
		els[i].Start = max(els[i].Start, 0)
		els[i].End = max(els[i].End, els[i].Start)
	}
	sc.paragraph()
	return sc.transcript(), analysis(els...)
}
