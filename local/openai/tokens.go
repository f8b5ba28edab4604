package openai

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// Two encodings, each where OpenAI uses it: cl100k_base is the encoding of
// the text-embedding-3 models, so embedding usage and limits and the chunk
// windows of file_search (which embeds chunks with those models) are counted
// with it; o200k_base is the encoding of the GPT-4o/4.1/5 models that answer
// Responses, so Responses usage is counted with it. Each codec loads its
// vocabulary once, on first use.
var (
	embeddingCodec = sync.OnceValues(func() (tokenizer.Codec, error) { return tokenizer.Get(tokenizer.Cl100kBase) })
	responseCodec  = sync.OnceValues(func() (tokenizer.Codec, error) { return tokenizer.Get(tokenizer.O200kBase) })
)

func countTokens(get func() (tokenizer.Codec, error), text string) (int, error) {
	c, err := get()
	if err != nil {
		return 0, fmt.Errorf("load tokenizer: %w", err)
	}
	n, err := c.Count(text)
	if err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}

// decodeTokens turns cl100k_base token ids (an embeddings input given as
// tokens) back into text.
func decodeTokens(ids []int64) (string, error) {
	c, err := embeddingCodec()
	if err != nil {
		return "", fmt.Errorf("load tokenizer: %w", err)
	}
	u := make([]uint, len(ids))
	for i, id := range ids {
		if id < 0 {
			return "", fmt.Errorf("token %d is negative", id)
		}
		u[i] = uint(id)
	}
	text, err := c.Decode(u)
	if err != nil {
		return "", fmt.Errorf("decode tokens: %w", err)
	}
	return text, nil
}

// chunkText cuts text into windows of maxTokens cl100k_base tokens, each
// starting maxTokens-overlap tokens after the previous one, as the static
// chunking strategy does. Windows are cut on token boundaries moved to whole
// characters, so every chunk is a substring of text and valid UTF-8 (a token
// may hold half of an accented letter).
func chunkText(text string, maxTokens, overlap int) ([]string, error) {
	if text == "" {
		return nil, nil
	}
	c, err := embeddingCodec()
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	_, pieces, err := c.Encode(text)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	offsets := make([]int, len(pieces)+1) // byte offset where token i starts
	for i, p := range pieces {
		offsets[i+1] = offsets[i] + len(p)
	}
	if offsets[len(pieces)] != len(text) {
		return nil, fmt.Errorf("tokenize: tokens cover %d of %d bytes", offsets[len(pieces)], len(text))
	}
	toRuneStart := func(off int) int {
		for off < len(text) && !utf8.RuneStart(text[off]) {
			off++
		}
		return off
	}
	step := max(maxTokens-overlap, 1)
	var chunks []string
	for start := 0; start < len(pieces); start += step {
		end := min(start+maxTokens, len(pieces))
		from, to := toRuneStart(offsets[start]), toRuneStart(offsets[end])
		if from < to {
			chunks = append(chunks, text[from:to])
		}
		if end == len(pieces) {
			break
		}
	}
	return chunks, nil
}
