package taxonomy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/failure"
)

// Limits of the embeddings endpoint (DESIGN.md section 5) and of Firestore
// vector search.
const (
	MaxInputTokens   = 8191
	MaxInputs        = 2048
	MaxRequestTokens = 300_000
	// MaxDimensions is the most Firestore vector search indexes.
	MaxDimensions = 2048
)

// nativeDimensions are the text-embedding-3 models' full sizes; the
// dimensions parameter shortens them (and the API refuses more).
var nativeDimensions = map[string]int{
	"text-embedding-3-small": 1536,
	"text-embedding-3-large": 3072,
}

// EmbedderConfig says how to reach OpenAI and which embedding space to use.
type EmbedderConfig struct {
	// APIKey is required (Secret Manager fills it in production); BaseURL
	// points the client elsewhere (the local OpenAI of tests and the
	// one-machine stack) and includes /v1, as the real one does.
	APIKey  string
	BaseURL string
	// MaxRetries is how often the SDK itself retries 408, 409, 429 and 5xx
	// within one call, honouring Retry-After; RequestTimeout bounds each try.
	MaxRetries     int
	RequestTimeout time.Duration
	// Model is text-embedding-3-small or text-embedding-3-large, and
	// Dimensions the vectors' length: at most the model's own and at most
	// MaxDimensions, which Firestore vector search indexes.
	Model      string
	Dimensions int
}

// Validate names every bad setting.
func (c EmbedderConfig) Validate() error {
	var errs []error
	if c.APIKey == "" {
		errs = append(errs, errors.New("OPENAI_API_KEY is empty"))
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("OPENAI_BASE_URL %q is not an http(s) URL", c.BaseURL))
		}
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("OPENAI_MAX_RETRIES is %d: want 0 or more", c.MaxRetries))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("OPENAI_REQUEST_TIMEOUT is %s: want a positive duration", c.RequestTimeout))
	}
	native, ok := nativeDimensions[c.Model]
	if !ok {
		known := make([]string, 0, len(nativeDimensions))
		for m := range nativeDimensions {
			known = append(known, m)
		}
		slices.Sort(known)
		errs = append(errs, fmt.Errorf("EMBEDDING_MODEL %q: want one of %s", c.Model, strings.Join(known, ", ")))
	}
	switch {
	case c.Dimensions < 1 || c.Dimensions > MaxDimensions:
		errs = append(errs, fmt.Errorf("EMBEDDING_DIMENSIONS is %d: want 1 to %d, what Firestore vector search indexes", c.Dimensions, MaxDimensions))
	case ok && c.Dimensions > native:
		errs = append(errs, fmt.Errorf("EMBEDDING_DIMENSIONS is %d: %s has %d", c.Dimensions, c.Model, native))
	}
	return errors.Join(errs...)
}

// Embedder embeds texts with one OpenAI model and size. It is safe for
// concurrent use.
type Embedder struct {
	client openai.Client
	model  string
	dims   int
	tok    *chunk.Tokenizer
}

// NewEmbedder returns an embedder configured by c, counting tokens with tok
// (the model's encoding: chunk.NewTokenizer(c.Model)).
func NewEmbedder(c EmbedderConfig, tok *chunk.Tokenizer) (*Embedder, error) {
	if tok == nil {
		return nil, errors.New("embedder: no tokenizer")
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("embedder: %w", err)
	}
	opts := []option.RequestOption{
		// Every setting explicit: the SDK's own reading of OPENAI_* from
		// the environment changes nothing.
		option.WithAPIKey(c.APIKey),
		option.WithMaxRetries(c.MaxRetries),
		option.WithRequestTimeout(c.RequestTimeout),
	}
	if c.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(c.BaseURL))
	}
	return &Embedder{client: openai.NewClient(opts...), model: c.Model, dims: c.Dimensions, tok: tok}, nil
}

// Model is the embedding model's id.
func (e *Embedder) Model() string { return e.model }

// Dimensions is the vectors' length.
func (e *Embedder) Dimensions() int { return e.dims }

// Tokenizer counts tokens as the model does.
func (e *Embedder) Tokenizer() *chunk.Tokenizer { return e.tok }

// Embeddings are the vectors of some texts, in their order, and the tokens
// OpenAI billed for them.
type Embeddings struct {
	Vectors [][]float32
	Tokens  int64
}

// EmbedTexts embeds each text (at most MaxInputTokens tokens, not empty) as
// one input, in as few requests as the endpoint's limits allow.
func (e *Embedder) EmbedTexts(ctx context.Context, texts []string) (Embeddings, error) {
	counts := make([]int, len(texts))
	for i, t := range texts {
		counts[i] = e.tok.Count(t)
		if strings.TrimSpace(t) == "" || counts[i] > MaxInputTokens {
			return Embeddings{}, failure.Permanentf("embed: input %d has %d tokens: want 1 to %d", i, counts[i], MaxInputTokens)
		}
	}
	out := Embeddings{Vectors: make([][]float32, 0, len(texts))}
	for _, b := range batches(counts) {
		vs, billed, err := e.request(ctx, texts[b[0]:b[1]])
		out.Tokens += billed
		if err != nil {
			return out, err
		}
		out.Vectors = append(out.Vectors, vs...)
	}
	return out, nil
}

// batches cuts inputs with these token counts into [from, to) runs that a
// request may hold: at most MaxInputs inputs and MaxRequestTokens tokens.
func batches(counts []int) [][2]int {
	var out [][2]int
	from, tokens := 0, 0
	for i, n := range counts {
		if i > from && (i-from == MaxInputs || tokens+n > MaxRequestTokens) {
			out = append(out, [2]int{from, i})
			from, tokens = i, 0
		}
		tokens += n
	}
	if from < len(counts) {
		out = append(out, [2]int{from, len(counts)})
	}
	return out
}

func (e *Embedder) request(ctx context.Context, texts []string) ([][]float32, int64, error) {
	resp, err := e.client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model:      openai.EmbeddingModel(e.model),
		Input:      openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
		Dimensions: openai.Int(int64(e.dims)),
	})
	if err != nil {
		return nil, 0, apiFailure("embeddings", err)
	}
	billed := resp.Usage.PromptTokens
	if len(resp.Data) != len(texts) {
		return nil, billed, failure.Retryablef("embeddings: %d vectors for %d inputs", len(resp.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range resp.Data {
		i := int(d.Index)
		if i < 0 || i >= len(out) || out[i] != nil {
			return nil, billed, failure.Retryablef("embeddings: answer has a bad or repeated index %d", d.Index)
		}
		if len(d.Embedding) != e.dims {
			return nil, billed, failure.Permanentf("embeddings: %s answered %d dimensions, asked for %d", e.model, len(d.Embedding), e.dims)
		}
		v := make([]float32, e.dims)
		for j, x := range d.Embedding {
			v[j] = float32(x)
		}
		out[i] = v
	}
	return out, billed, nil
}

// Pooled is one embedding standing for a text of any length.
type Pooled struct {
	Vector []float32
	// Parts is how many inputs the text was cut into; TextTokens its
	// tokens; BilledTokens what OpenAI charged.
	Parts        int
	TextTokens   int
	BilledTokens int64
}

// EmbedLong embeds a text of any length: cut into parts of at most
// MaxInputTokens tokens (at line breaks, else spaces), each embedded, and
// pooled by their mean weighted by tokens, L2-normalized, so that each
// token of the text weighs the same whichever part it fell in.
func (e *Embedder) EmbedLong(ctx context.Context, text string) (Pooled, error) {
	parts := SplitParts(e.tok, text, MaxInputTokens)
	if len(parts) == 0 {
		return Pooled{}, failure.Permanentf("embed: the text is empty")
	}
	texts := make([]string, len(parts))
	weights := make([]float64, len(parts))
	p := Pooled{Parts: len(parts)}
	for i, part := range parts {
		texts[i] = part.Text
		weights[i] = float64(part.Tokens)
		p.TextTokens += part.Tokens
	}
	embs, err := e.EmbedTexts(ctx, texts)
	p.BilledTokens = embs.Tokens
	if err != nil {
		return p, err
	}
	p.Vector, err = Pool(embs.Vectors, weights)
	if err != nil {
		return p, failure.Permanentf("embed: %w", err)
	}
	return p, nil
}

// Pool is the weighted mean of vectors, L2-normalized.
func Pool(vectors [][]float32, weights []float64) ([]float32, error) {
	if len(vectors) == 0 || len(vectors) != len(weights) {
		return nil, fmt.Errorf("pool %d vectors with %d weights", len(vectors), len(weights))
	}
	sum := make([]float64, len(vectors[0]))
	for i, v := range vectors {
		if len(v) != len(sum) {
			return nil, fmt.Errorf("pool: vector %d has %d dimensions, vector 0 has %d", i, len(v), len(sum))
		}
		for j, x := range v {
			sum[j] += weights[i] * float64(x)
		}
	}
	var norm float64
	for _, x := range sum {
		norm += x * x
	}
	if norm == 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return nil, errors.New("pool: the mean vector has no direction")
	}
	norm = math.Sqrt(norm)
	out := make([]float32, len(sum))
	for j, x := range sum {
		out[j] = float32(x / norm)
	}
	return out, nil
}

// Part is a piece of a text and its tokens.
type Part struct {
	Text   string
	Tokens int
}

// SplitParts cuts text into parts of at most max tokens: whole lines while
// they fit, a line too long cut at spaces, a word too long cut between
// runes. Each part's count is the tokenizer's count of the part itself, so
// the limit holds exactly, whatever tokens joining pieces makes.
func SplitParts(tok *chunk.Tokenizer, text string, max int) []Part {
	var pieces []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		pieces = append(pieces, fitPieces(tok, line, max)...)
	}
	var parts []Part
	var cur []string
	estimate := 0
	flush := func() {
		if len(cur) > 0 {
			parts = append(parts, verified(tok, cur, "\n", max)...)
			cur, estimate = nil, 0
		}
	}
	for _, p := range pieces {
		n := tok.Count(p) + 1 // the line break joining it
		if estimate+n > max {
			flush()
		}
		cur = append(cur, p)
		estimate += n
	}
	flush()
	return parts
}

// fitPieces cuts one line into pieces of at most max tokens each: words
// packed while their estimated count fits (each word counted alone, plus
// one for the space before it), each piece then checked as it is.
func fitPieces(tok *chunk.Tokenizer, line string, max int) []string {
	if tok.Count(line) <= max {
		return []string{line}
	}
	var out []string
	var cur []string
	estimate := 0
	flush := func() {
		if len(cur) > 0 {
			for _, p := range verified(tok, cur, " ", max) {
				out = append(out, p.Text)
			}
			cur, estimate = nil, 0
		}
	}
	for _, w := range strings.Fields(line) {
		n := tok.Count(w)
		if n > max {
			flush()
			out = append(out, runePieces(tok, w, max)...)
			continue
		}
		if estimate+n+1 > max {
			flush()
		}
		cur = append(cur, w)
		estimate += n + 1
	}
	flush()
	return out
}

// runePieces cuts a word with no spaces (a long URL, an encoded blob) into
// pieces of at most max tokens, halving until each fits.
func runePieces(tok *chunk.Tokenizer, w string, max int) []string {
	if tok.Count(w) <= max {
		return []string{w}
	}
	r := []rune(w)
	if len(r) < 2 {
		return []string{w}
	}
	return append(runePieces(tok, string(r[:len(r)/2]), max), runePieces(tok, string(r[len(r)/2:]), max)...)
}

// verified joins pieces with sep into one part, or, if the joined text
// counts more than max after all, into two halves, recursively.
func verified(tok *chunk.Tokenizer, pieces []string, sep string, max int) []Part {
	text := strings.Join(pieces, sep)
	n := tok.Count(text)
	if n <= max || len(pieces) == 1 {
		return []Part{{Text: text, Tokens: n}}
	}
	h := len(pieces) / 2
	return append(verified(tok, pieces[:h], sep, max), verified(tok, pieces[h:], sep, max)...)
}

// apiFailure classifies a failed OpenAI call. The SDK has already retried
// 408, 409, 429 and 5xx: what is left of those, 401 and 403 (a key or
// grant fixed without touching the lesson) and transport errors are
// retryable; any other 4xx (a bad model, dimensions, an input too long)
// would be refused again.
func apiFailure(what string, err error) error {
	var e *openai.Error
	if !errors.As(err, &e) {
		return failure.Retryablef("openai %s: %w", what, err)
	}
	msg := fmt.Sprintf("openai %s: %d", what, e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch c := e.StatusCode; {
	case c == 401 || c == 403 || c == 408 || c == 409 || c == 429 || c >= 500:
		return failure.Retryablef("%s", msg)
	}
	return failure.Permanentf("%s", msg)
}
