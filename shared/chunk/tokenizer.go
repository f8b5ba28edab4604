package chunk

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tiktoken-go/tokenizer"
)

// embeddingEncodings maps the embedding models this project may use to the
// encoding they read text in; OpenAI's vector store counts chunk sizes in it.
var embeddingEncodings = map[string]tokenizer.Encoding{
	"text-embedding-3-small": tokenizer.Cl100kBase,
	"text-embedding-3-large": tokenizer.Cl100kBase,
	"text-embedding-ada-002": tokenizer.Cl100kBase,
}

// Tokenizer counts tokens as an OpenAI embedding model sees them. It is safe
// for concurrent use; make one per process, since building it compiles the
// encoding's split pattern.
type Tokenizer struct {
	codec tokenizer.Codec
}

// NewTokenizer returns the tokenizer of an embedding model
// (text-embedding-3-small, text-embedding-3-large, text-embedding-ada-002).
func NewTokenizer(embeddingModel string) (*Tokenizer, error) {
	enc, ok := embeddingEncodings[embeddingModel]
	if !ok {
		known := make([]string, 0, len(embeddingEncodings))
		for m := range embeddingEncodings {
			known = append(known, m)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("tokenizer: unknown embedding model %q (known: %s)", embeddingModel, strings.Join(known, ", "))
	}
	codec, err := tokenizer.Get(enc)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: encoding %s of %s: %w", enc, embeddingModel, err)
	}
	return &Tokenizer{codec: codec}, nil
}

// Encoding names the encoding (cl100k_base).
func (t *Tokenizer) Encoding() string { return t.codec.GetName() }

// Count is the number of tokens in s.
func (t *Tokenizer) Count(s string) int {
	n, err := t.codec.Count(s)
	if err != nil {
		// The codec fails only in its strict UTF-8 mode, which is not used
		// here, or when its split pattern times out, which it has no
		// timeout to do: an error here is a broken dependency.
		panic(fmt.Sprintf("tokenizer: count: %v", err))
	}
	return n
}
