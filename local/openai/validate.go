package openai

import (
	"encoding/json"
	"fmt"
	"sort"
	"unicode/utf8"
)

type expiresAfterReq struct {
	Anchor string `json:"anchor"`
	Days   int64  `json:"days"`
}

// validateExpiresAfter checks an expires_after object; raw "null" removes it.
func validateExpiresAfter(raw json.RawMessage) (days int64, set bool, e *apiError) {
	if len(raw) == 0 {
		return 0, false, nil
	}
	if string(raw) == "null" {
		return 0, true, nil
	}
	var ea expiresAfterReq
	if err := json.Unmarshal(raw, &ea); err != nil {
		return 0, false, badRequest("expires_after", "invalid_type", "Invalid type for 'expires_after': expected an object.")
	}
	if ea.Anchor != "last_active_at" {
		return 0, false, badRequest("expires_after.anchor", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'last_active_at'.", ea.Anchor)
	}
	if ea.Days < 1 || ea.Days > 365 {
		return 0, false, badRequest("expires_after.days", "invalid_value",
			"Invalid 'expires_after.days': expected an integer between 1 and 365, but got %d instead.", ea.Days)
	}
	return ea.Days, true, nil
}

// validateMetadata applies OpenAI's metadata limits: 16 keys, keys up to 64
// characters, string values up to 512.
func validateMetadata(m map[string]string) *apiError {
	if len(m) > 16 {
		return badRequest("metadata", "object_above_max_properties",
			"Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with %d properties instead.", len(m))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if n := utf8.RuneCountInString(k); n > 64 {
			return badRequest("metadata", "object_property_name_too_long",
				"Invalid 'metadata': property name '%s' too long. Expected a property name with maximum length 64, but got a name with length %d instead.", k, n)
		}
		if n := utf8.RuneCountInString(m[k]); n > 512 {
			return badRequest("metadata."+k, "string_above_max_length",
				"Invalid 'metadata.%s': string too long. Expected a string with maximum length 512, but got a string with length %d instead.", k, n)
		}
	}
	return nil
}

// chunkingStrategy is a validated chunking_strategy; auto is OpenAI's 800
// tokens with 400 overlap, and is reported as that static strategy.
type chunkingStrategy struct{ maxTokens, overlap int }

var autoChunking = chunkingStrategy{maxTokens: 800, overlap: 400}

// parseChunkingStrategy validates chunking_strategy: auto, or static with
// max_chunk_size_tokens in 100..4096 and chunk_overlap_tokens in 0..half of
// it.
func parseChunkingStrategy(raw json.RawMessage) (chunkingStrategy, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return autoChunking, nil
	}
	var cs struct {
		Type   string `json:"type"`
		Static *struct {
			MaxChunkSizeTokens *int64 `json:"max_chunk_size_tokens"`
			ChunkOverlapTokens *int64 `json:"chunk_overlap_tokens"`
		} `json:"static"`
	}
	if err := json.Unmarshal(raw, &cs); err != nil {
		return chunkingStrategy{}, badRequest("chunking_strategy", "invalid_type",
			"Invalid type for 'chunking_strategy': expected an object with type 'auto' or 'static'.")
	}
	switch cs.Type {
	case "auto":
		return autoChunking, nil
	case "static":
	default:
		return chunkingStrategy{}, badRequest("chunking_strategy.type", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'auto' and 'static'.", cs.Type)
	}
	if cs.Static == nil {
		return chunkingStrategy{}, badRequest("chunking_strategy.static", "",
			"Missing required parameter: 'chunking_strategy.static'.")
	}
	if cs.Static.MaxChunkSizeTokens == nil {
		return chunkingStrategy{}, badRequest("chunking_strategy.static.max_chunk_size_tokens", "",
			"Missing required parameter: 'chunking_strategy.static.max_chunk_size_tokens'.")
	}
	if cs.Static.ChunkOverlapTokens == nil {
		return chunkingStrategy{}, badRequest("chunking_strategy.static.chunk_overlap_tokens", "",
			"Missing required parameter: 'chunking_strategy.static.chunk_overlap_tokens'.")
	}
	size, overlap := *cs.Static.MaxChunkSizeTokens, *cs.Static.ChunkOverlapTokens
	switch {
	case size < 100:
		return chunkingStrategy{}, badRequest("chunking_strategy.static.max_chunk_size_tokens", "integer_below_min_value",
			"Invalid 'chunking_strategy.static.max_chunk_size_tokens': integer below minimum value. Expected a value >= 100, but got %d instead.", size)
	case size > 4096:
		return chunkingStrategy{}, badRequest("chunking_strategy.static.max_chunk_size_tokens", "integer_above_max_value",
			"Invalid 'chunking_strategy.static.max_chunk_size_tokens': integer above maximum value. Expected a value <= 4096, but got %d instead.", size)
	case overlap < 0:
		return chunkingStrategy{}, badRequest("chunking_strategy.static.chunk_overlap_tokens", "integer_below_min_value",
			"Invalid 'chunking_strategy.static.chunk_overlap_tokens': integer below minimum value. Expected a value >= 0, but got %d instead.", overlap)
	case overlap > size/2:
		return chunkingStrategy{}, badRequest("chunking_strategy.static.chunk_overlap_tokens", "invalid_value",
			"Invalid 'chunking_strategy.static.chunk_overlap_tokens': chunk_overlap_tokens must not exceed half of max_chunk_size_tokens (%d > %d / 2).", overlap, size)
	}
	return chunkingStrategy{maxTokens: int(size), overlap: int(overlap)}, nil
}

// parseAttributes validates attributes as OpenAI does: at most 16 keys, keys
// up to 64 characters, values strings up to 512 characters, numbers or
// booleans. param names the field in errors ("attributes"). JSON null or
// absent gives nil.
func parseAttributes(raw json.RawMessage, param string) (map[string]any, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, badRequest(param, "invalid_type", "Invalid type for '%s': expected an object.", param)
	}
	if len(m) > 16 {
		return nil, badRequest(param, "object_above_max_properties",
			"Invalid '%s': too many properties. Expected an object with at most 16 properties, but got an object with %d properties instead.", param, len(m))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // so the first problem named is the same on every run
	out := make(map[string]any, len(m))
	for _, k := range keys {
		if n := utf8.RuneCountInString(k); n > 64 {
			return nil, badRequest(param, "object_property_name_too_long",
				"Invalid '%s': property name '%s' too long. Expected a property name with maximum length 64, but got a name with length %d instead.", param, k, n)
		}
		var v any
		if err := json.Unmarshal(m[k], &v); err != nil {
			return nil, badRequest(param+"."+k, "invalid_type", "Invalid type for '%s.%s': %v.", param, k, err)
		}
		switch v := v.(type) {
		case string:
			if n := utf8.RuneCountInString(v); n > 512 {
				return nil, badRequest(param+"."+k, "string_above_max_length",
					"Invalid '%s.%s': string too long. Expected a string with maximum length 512, but got a string with length %d instead.", param, k, n)
			}
		case float64, bool:
		default:
			return nil, badRequest(param+"."+k, "invalid_type",
				"Invalid type for '%s.%s': expected one of a string, a number, or a boolean, but got %s instead.", param, k, jsonKind(v))
		}
		out[k] = v
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
