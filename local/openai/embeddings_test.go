package openai_test

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tiktoken-go/tokenizer"

	localopenai "github.com/coursekb/pipeline/local/openai"
)

func embedStrings(model string, dims int64, texts ...string) openai.EmbeddingNewParams {
	p := openai.EmbeddingNewParams{Model: model, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts}}
	if dims > 0 {
		p.Dimensions = openai.Int(dims)
	}
	return p
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	// The SDK sends no encoding_format unless asked (unlike the Python and
	// Node SDKs, which ask for base64): record what it sends.
	var bodies []string
	record := func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			bodies = append(bodies, string(b))
		}
		return next(r)
	}
	srv, c := start(t, localopenai.Options{}, option.WithMiddleware(record))
	ctx := t.Context()

	texts := []string{
		"¿Cómo se declara una variable en Python?",
		"En Python una variable se declara asignándole un valor con el signo igual.",
		"Receta de tortilla de patatas con cebolla y huevos.",
	}
	res, err := c.Embeddings.New(ctx, embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, texts...))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(bodies[0], "encoding_format") {
		t.Errorf("the SDK asked for an encoding format by default: %s", bodies[0])
	}
	if len(res.Data) != 3 || res.Model != "text-embedding-3-small" || res.Object != "list" {
		t.Fatalf("answer = %+v", res)
	}
	enc, _ := tokenizer.Get(tokenizer.Cl100kBase)
	wantTokens := 0
	for i, d := range res.Data {
		if d.Index != int64(i) || len(d.Embedding) != 1536 || math.Abs(norm(d.Embedding)-1) > 1e-5 {
			t.Errorf("embedding %d: index %d, %d dims, norm %v", i, d.Index, len(d.Embedding), norm(d.Embedding))
		}
		n, _ := enc.Count(texts[i])
		wantTokens += n
	}
	if res.Usage.PromptTokens != int64(wantTokens) || res.Usage.TotalTokens != int64(wantTokens) {
		t.Errorf("usage = %+v, want %d tokens", res.Usage, wantTokens)
	}
	question, answer, unrelated := res.Data[0].Embedding, res.Data[1].Embedding, res.Data[2].Embedding
	if near, far := cosine(question, answer), cosine(question, unrelated); near <= far+0.1 {
		t.Errorf("cosine(question, answer) = %.3f, cosine(question, unrelated) = %.3f: want the first clearly higher", near, far)
	}

	// Deterministic: the same text gives the same vector, in any batch.
	again, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: openai.EmbeddingModelTextEmbedding3Small,
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(texts[0])}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range question {
		if again.Data[0].Embedding[i] != question[i] {
			t.Fatalf("value %d differs between calls", i)
		}
	}

	// dimensions shortens and re-normalizes; large has 3072 by default.
	short, err := c.Embeddings.New(ctx, embedStrings(openai.EmbeddingModelTextEmbedding3Small, 256, texts[0]))
	if err != nil || len(short.Data[0].Embedding) != 256 || math.Abs(norm(short.Data[0].Embedding)-1) > 1e-5 {
		t.Fatalf("256 dims: %v, %v", short, err)
	}
	large, err := c.Embeddings.New(ctx, embedStrings(openai.EmbeddingModelTextEmbedding3Large, 0, texts[0]))
	if err != nil || len(large.Data[0].Embedding) != 3072 {
		t.Fatalf("large: %v", err)
	}

	// base64, when asked, decodes in the SDK to the same float32 values.
	b64 := embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, texts[0])
	b64.EncodingFormat = openai.EmbeddingNewParamsEncodingFormatBase64
	res64, err := c.Embeddings.New(ctx, b64)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res64.RawJSON(), `"embedding":"`) {
		t.Errorf("base64 answer is not a string: %.200s", res64.RawJSON())
	}
	for i := range question {
		if res64.Data[0].Embedding[i] != float64(float32(question[i])) {
			t.Fatalf("base64 value %d = %v, float answer %v", i, res64.Data[0].Embedding[i], question[i])
		}
	}

	// Token-array input is read as cl100k_base ids.
	ids, _, _ := enc.Encode(texts[0])
	toks := make([]int64, len(ids))
	for i, id := range ids {
		toks[i] = int64(id)
	}
	byTokens, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: openai.EmbeddingModelTextEmbedding3Small,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokens: toks}})
	if err != nil || byTokens.Data[0].Embedding[0] != question[0] || byTokens.Usage.PromptTokens != int64(len(toks)) {
		t.Errorf("token input: %v, %v", byTokens, err)
	}
	if cn := srv.Counters(); cn.EmbeddingCalls != 6 || cn.EmbeddingInputs != 8 {
		t.Errorf("counters = %+v", cn)
	}
}

func TestEmbeddingLimits(t *testing.T) {
	t.Parallel()
	_, c := start(t, localopenai.Options{})
	ctx := t.Context()

	// One input of 8192 tokens: "hello" and each " hello" are one token.
	long := "hello" + strings.Repeat(" hello", localopenai.MaxEmbeddingInputTokens)
	enc, _ := tokenizer.Get(tokenizer.Cl100kBase)
	if n, _ := enc.Count(long); n != localopenai.MaxEmbeddingInputTokens+1 {
		t.Fatalf("test text has %d tokens", n)
	}
	atLimit := "hello" + strings.Repeat(" hello", localopenai.MaxEmbeddingInputTokens-1)
	tooMany := make([]string, localopenai.MaxEmbeddingInputs+1)
	for i := range tooMany {
		tooMany[i] = "hola"
	}
	perRequest := make([]string, localopenai.MaxEmbeddingRequestTokens/localopenai.MaxEmbeddingInputTokens+1)
	for i := range perRequest {
		perRequest[i] = atLimit
	}
	cases := []struct {
		name       string
		params     openai.EmbeddingNewParams
		wantStatus int
		wantType   string
		wantCode   string
	}{
		{"input above 8191 tokens", embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, "corto", long),
			400, "invalid_request_error", ""},
		{"2049 inputs", embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, tooMany...),
			400, "invalid_request_error", "array_above_max_length"},
		{"above 300k tokens a request", embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, perRequest...),
			400, "max_tokens_per_request", "max_tokens_per_request"},
		{"empty string", embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, ""),
			400, "invalid_request_error", "invalid_value"},
		{"dimensions above the model's", embedStrings(openai.EmbeddingModelTextEmbedding3Small, 1537, "x"),
			400, "invalid_request_error", "integer_above_max_value"},
		{"dimensions on ada-002", embedStrings(openai.EmbeddingModelTextEmbeddingAda002, 256, "x"),
			400, "invalid_request_error", ""},
		{"unknown model", embedStrings("text-embedding-9", 0, "x"),
			404, "invalid_request_error", "model_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Embeddings.New(ctx, tc.params)
			e := apiError(t, err)
			if e.StatusCode != tc.wantStatus || e.Type != tc.wantType || e.Code != tc.wantCode || e.Message == "" {
				t.Errorf("got %d type=%q code=%q message=%q", e.StatusCode, e.Type, e.Code, e.Message)
			}
		})
	}
	// At the limits, it embeds.
	res, err := c.Embeddings.New(ctx, embedStrings(openai.EmbeddingModelTextEmbedding3Small, 8, atLimit))
	if err != nil || res.Usage.TotalTokens != localopenai.MaxEmbeddingInputTokens {
		t.Errorf("8191 tokens: %v, %v", res, err)
	}
}
