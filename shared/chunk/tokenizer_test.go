package chunk

import (
	"strings"
	"testing"
)

func TestTokenizer(t *testing.T) {
	t.Parallel()
	for _, model := range []string{"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"} {
		tok, err := NewTokenizer(model)
		if err != nil || tok.Encoding() != "cl100k_base" {
			t.Errorf("%s: %v, %v", model, tok, err)
		}
	}
	if _, err := NewTokenizer("text-embedding-4"); err == nil || !strings.Contains(err.Error(), "text-embedding-4") {
		t.Errorf("unknown model: %v", err)
	}
	// Counts published for cl100k_base (OpenAI's tiktoken examples).
	for text, want := range map[string]int{"": 0, "hello world": 2, "tiktoken is great!": 6} {
		if got := testTokenizer().Count(text); got != want {
			t.Errorf("Count(%q) = %d, want %d", text, got, want)
		}
	}
}

// TestWordsCountAsTheirSum checks the property the chunker's arithmetic
// rests on (see cleanWord) on words chosen to tempt the encoding's split
// pattern across the spaces: contractions, digits, punctuation runs,
// combining marks, replacement characters, special-token text.
func TestWordsCountAsTheirSum(t *testing.T) {
	t.Parallel()
	tok := testTokenizer()
	words := []string{"Hola", "'s", "123", "4567", "¿Qué", "...", "“hola”", "e\u0301", "\uFFFD", "日本語", "🙂🙂",
		"a\u00a0b", "<|endoftext|>", "'LL", "-", "x'", "--flag=1", "\t", "fin.\u2028", "n\u0303", "100%", "ok?!"}
	var cleaned []string
	for _, w := range words {
		if w = cleanWord(w); w != "" {
			cleaned = append(cleaned, w)
		}
	}
	for i := range cleaned {
		for j := i + 1; j <= len(cleaned); j++ {
			run := cleaned[i:j]
			sum := tok.Count(run[0])
			for _, w := range run[1:] {
				sum += tok.Count(" " + w)
			}
			if got := tok.Count(strings.Join(run, " ")); got != sum {
				t.Fatalf("%q counts %d, its words %d", strings.Join(run, " "), got, sum)
			}
		}
	}
}

func TestCleanWord(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"hola": "hola", " hola ": "hola", "a  b": "a b", "a\tb": "a b", "\u00a0": "", "": "", "caf\xe9": "caf\uFFFD", "a\nb": "a b",
	} {
		if got := cleanWord(in); got != want {
			t.Errorf("cleanWord(%q) = %q, want %q", in, got, want)
		}
	}
}
