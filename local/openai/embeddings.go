package openai

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"unicode/utf8"
)

// Embedding limits of DESIGN.md section 5. OpenAI's API reference says 8192
// tokens an input; the design (and the cl100k_base context of the
// text-embedding-3 models) says 8191, and a client within 8191 is within both.
const (
	MaxEmbeddingInputTokens   = 8191
	MaxEmbeddingInputs        = 2048
	MaxEmbeddingRequestTokens = 300_000
)

// embeddingModel is a model's native dimensions and whether it takes the
// dimensions parameter.
type embeddingModel struct {
	dims          int
	sizeParameter bool
}

var embeddingModels = map[string]embeddingModel{
	"text-embedding-3-small": {dims: 1536, sizeParameter: true},
	"text-embedding-3-large": {dims: 3072, sizeParameter: true},
	"text-embedding-ada-002": {dims: 1536},
}

type embeddingsReq struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int64          `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
	User           string          `json:"user"`
}

// embeddingInput is one input, as text, with its token count.
type embeddingInput struct {
	text   string
	tokens int
}

// embeddings is POST /embeddings. Inputs may be a string, strings, a token
// array or token arrays (cl100k_base ids), as the SDK's
// EmbeddingNewParamsInputUnion allows. openai-go sends no encoding_format
// unless asked, so answers are float arrays by default; with base64 they are
// little-endian float32 bytes, which the SDK decodes back into Embedding.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingsReq
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	if req.Model == "" {
		writeAPIError(w, badRequest("model", "", "you must provide a model parameter"))
		return
	}
	model, ok := embeddingModels[req.Model]
	if !ok {
		writeAPIError(w, &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found",
			message: "The model `" + req.Model + "` does not exist or you do not have access to it."})
		return
	}
	dims := model.dims
	if req.Dimensions != nil {
		switch d := *req.Dimensions; {
		case !model.sizeParameter:
			writeAPIError(w, badRequest("dimensions", "", "This model does not support specifying dimensions."))
			return
		case d < 1:
			writeAPIError(w, badRequest("dimensions", "integer_below_min_value",
				"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got %d instead.", d))
			return
		case d > int64(model.dims):
			writeAPIError(w, badRequest("dimensions", "integer_above_max_value",
				"Invalid 'dimensions': integer above maximum value. Expected a value <= %d, but got %d instead.", model.dims, d))
			return
		default:
			dims = int(d)
		}
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		writeAPIError(w, badRequest("encoding_format", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'float' and 'base64'.", req.EncodingFormat))
		return
	}
	inputs, e := parseEmbeddingInput(req.Input)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	total := 0
	for i, in := range inputs {
		if in.tokens > MaxEmbeddingInputTokens {
			writeAPIError(w, badRequest("", "",
				"Invalid 'input[%d]': maximum context length is %d tokens, but this input has %d tokens.", i, MaxEmbeddingInputTokens, in.tokens))
			return
		}
		total += in.tokens
	}
	if total > MaxEmbeddingRequestTokens {
		writeAPIError(w, &apiError{status: http.StatusBadRequest, typ: "max_tokens_per_request", code: "max_tokens_per_request",
			message: fmt.Sprintf("Requested %d tokens, max %d tokens per request", total, MaxEmbeddingRequestTokens)})
		return
	}

	data := make([]map[string]any, len(inputs))
	for i, in := range inputs {
		vec := embed(in.text, model.dims, dims)
		var out any = vec
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			out = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": out}
	}
	s.mu.Lock()
	s.counters.EmbeddingCalls++
	s.counters.EmbeddingInputs += len(inputs)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": total, "total_tokens": total}})
}

// parseEmbeddingInput reads input: a string, an array of strings, an array
// of token ids or an array of token-id arrays; each input counted in
// cl100k_base tokens.
func parseEmbeddingInput(raw json.RawMessage) ([]embeddingInput, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest("input", "", "Missing required parameter: 'input'.")
	}
	var (
		one    string
		many   []string
		ids    []int64
		idList [][]int64
		out    []embeddingInput
	)
	fromText := func(texts []string) *apiError {
		for i, t := range texts {
			if t == "" || !utf8.ValidString(t) {
				return badRequest("input", "invalid_value",
					"Invalid 'input[%d]': expected a non-empty UTF-8 string. The input cannot be an empty string.", i)
			}
			n, err := countTokens(embeddingCodec, t)
			if err != nil {
				return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "local engine: " + err.Error()}
			}
			out = append(out, embeddingInput{text: t, tokens: n})
		}
		return nil
	}
	fromIDs := func(lists [][]int64) *apiError {
		for i, l := range lists {
			if len(l) == 0 {
				return badRequest("input", "invalid_value", "Invalid 'input[%d]': a token array cannot be empty.", i)
			}
			text, err := decodeTokens(l)
			if err != nil {
				return badRequest("input", "invalid_value", "Invalid 'input[%d]': %v.", i, err)
			}
			out = append(out, embeddingInput{text: text, tokens: len(l)})
		}
		return nil
	}
	var e *apiError
	switch {
	case json.Unmarshal(raw, &one) == nil:
		e = fromText([]string{one})
	case json.Unmarshal(raw, &many) == nil:
		if e = checkInputCount(len(many)); e == nil {
			e = fromText(many)
		}
	case json.Unmarshal(raw, &ids) == nil:
		e = fromIDs([][]int64{ids})
	case json.Unmarshal(raw, &idList) == nil:
		if e = checkInputCount(len(idList)); e == nil {
			e = fromIDs(idList)
		}
	default:
		e = badRequest("input", "invalid_type",
			"Invalid type for 'input': expected a string, an array of strings, an array of tokens or an array of token arrays.")
	}
	if e != nil {
		return nil, e
	}
	return out, nil
}

func checkInputCount(n int) *apiError {
	switch {
	case n == 0:
		return badRequest("input", "empty_array", "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	case n > MaxEmbeddingInputs:
		return badRequest("input", "array_above_max_length",
			"Invalid 'input': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", MaxEmbeddingInputs, n)
	}
	return nil
}

// embed is the local engine's embedding: feature hashing of the text's
// accent-folded word stems (weight 1; stop words 0.2), adjacent word pairs
// (0.5) and character trigrams of content words (0.25) into the model's native
// dimensions, then, as text-embedding-3 does with the dimensions parameter,
// the first dims values re-normalized. It is deterministic, and texts sharing
// words or word pieces get a higher cosine than texts sharing none.
func embed(text string, native, dims int) []float32 {
	v := make([]float64, native)
	add := func(kind byte, feature string, weight float64) {
		h := fnv1a(kind, feature)
		if h>>63 == 1 {
			weight = -weight // signed hashing keeps collisions from adding up
		}
		v[h%uint64(native)] += weight
	}
	ws := words(text)
	for i, w := range ws {
		if stopWords[w] {
			add('w', w, 0.2)
		} else {
			st := stem(w)
			add('w', st, 1)
			rs := []rune(" " + st + " ")
			for j := 0; j+3 <= len(rs); j++ {
				add('c', string(rs[j:j+3]), 0.25)
			}
		}
		if i > 0 {
			add('b', stem(ws[i-1])+" "+stem(w), 0.5)
		}
	}
	v = v[:dims]
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	out := make([]float32, dims)
	if norm == 0 {
		// No word at all ("!!!"): still a unit vector, and still a function of
		// the text.
		out[fnv1a('r', text)%uint64(dims)] = 1
		return out
	}
	norm = math.Sqrt(norm)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}

// fnv1a is 64-bit FNV-1a over a kind byte and a feature, so a word and a
// trigram with the same letters land apart.
func fnv1a(kind byte, s string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	h = (h ^ uint64(kind)) * prime
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	return h
}
