package chunk

import (
	"fmt"
	"strings"
)

// Options size the chunks. Tokens are the embedding model's (see Tokenizer).
type Options struct {
	// MaxTokens bounds a chunk's whole Text: spoken words, overlap and
	// visual elements alike. A visual element's code longer than this is
	// the one exception: it is never cut, and becomes a chunk of its own.
	MaxTokens int `json:"maxTokens"`
	// OverlapTokens is how much of a spoken chunk's end the next spoken
	// chunk repeats, in whole words (see the package comment for the exact
	// rule). At most MaxTokens/2.
	OverlapTokens int `json:"overlapTokens"`
}

// Limits of MaxTokens. The least is the vector store's least chunk size;
// the most keeps StoreChunking (two sections per store chunk) within the
// store's 4096.
const (
	MinMaxTokens = 100
	MaxMaxTokens = storeMaxTokens/2 - SectionOverheadTokens
)

// DefaultOptions are 400-token chunks with 60 tokens of overlap: a chunk is
// about two minutes of speech, small enough that a retrieved chunk is about
// one thing, and its citation's time range is worth jumping to.
func DefaultOptions() Options {
	return Options{MaxTokens: 400, OverlapTokens: 60}
}

// Validate names every option that is out of range.
func (o Options) Validate() error {
	var bad []string
	if o.MaxTokens < MinMaxTokens || o.MaxTokens > MaxMaxTokens {
		bad = append(bad, fmt.Sprintf("MaxTokens %d is outside %d..%d", o.MaxTokens, MinMaxTokens, MaxMaxTokens))
	}
	if o.OverlapTokens < 0 {
		bad = append(bad, fmt.Sprintf("OverlapTokens %d is negative", o.OverlapTokens))
	}
	if o.OverlapTokens > o.MaxTokens/2 {
		bad = append(bad, fmt.Sprintf("OverlapTokens %d is more than half of MaxTokens %d", o.OverlapTokens, o.MaxTokens))
	}
	if len(bad) > 0 {
		return fmt.Errorf("chunk options: %s", strings.Join(bad, "; "))
	}
	return nil
}
