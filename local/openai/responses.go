package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AnswerHeading is the first line of every answer the local engine writes,
// so that nobody mistakes a local answer for a model's.
const AnswerHeading = "[Local OpenAI engine: extractive answer from file_search, no language model]"

// NoResultsAnswer follows AnswerHeading when retrieval found nothing.
const NoResultsAnswer = "Nothing in the searched vector stores matches this question."

// maxQuoted is how many retrieved chunks the answer quotes and cites.
const maxQuoted = 3

type responsesReq struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       *string           `json:"instructions"`
	Tools              []json.RawMessage `json:"tools"`
	Include            []string          `json:"include"`
	Stream             bool              `json:"stream"`
	Background         bool              `json:"background"`
	Store              *bool             `json:"store"`
	Metadata           map[string]string `json:"metadata"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	PreviousResponseID *string           `json:"previous_response_id"`
}

// fileSearchTool is a validated file_search tool.
type fileSearchTool struct {
	storeIDs  []string
	filter    *filter
	limit     int
	threshold float64
	echo      map[string]any // as the response's tools list shows it
}

// Values of include that OpenAI accepts (openai-go ResponseIncludable).
var includables = map[string]bool{
	"file_search_call.results": true, "web_search_call.results": true, "web_search_call.action.sources": true,
	"message.input_image.image_url": true, "computer_call_output.output.image_url": true,
	"code_interpreter_call.outputs": true, "reasoning.encrypted_content": true, "message.output_text.logprobs": true,
}

// createResponse is POST /responses: file_search retrieval and an extractive
// answer, in the Response object openai-go decodes (OutputText works: it
// concatenates the message's output_text parts).
func (s *Server) createResponse(w http.ResponseWriter, r *http.Request) {
	var req responsesReq
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	switch {
	case req.Model == "":
		writeAPIError(w, badRequest("model", "", "Missing required parameter: 'model'."))
		return
	case req.Stream:
		writeAPIError(w, badRequest("stream", "unsupported_parameter", "The local OpenAI engine does not stream responses; call without stream."))
		return
	case req.Background:
		writeAPIError(w, badRequest("background", "unsupported_parameter", "The local OpenAI engine does not run background responses."))
		return
	}
	includeResults := false
	for i, inc := range req.Include {
		if !includables[inc] {
			writeAPIError(w, badRequest("include["+strconv.Itoa(i)+"]", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'file_search_call.results', 'web_search_call.results', 'web_search_call.action.sources', 'message.input_image.image_url', 'computer_call_output.output.image_url', 'code_interpreter_call.outputs', 'reasoning.encrypted_content', and 'message.output_text.logprobs'.", inc))
			return
		}
		includeResults = includeResults || inc == "file_search_call.results"
	}
	question, inputTexts, e := parseResponseInput(req.Input)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	var tools []fileSearchTool
	for i, raw := range req.Tools {
		t, e := parseFileSearchTool(raw, "tools["+strconv.Itoa(i)+"]")
		if e != nil {
			writeAPIError(w, e)
			return
		}
		tools = append(tools, t)
	}

	// Retrieve, per tool, under the lock; rank outside it.
	type toolCands struct {
		tool  fileSearchTool
		cands []hit
	}
	var found []toolCands
	s.mu.Lock()
	s.settleLocked()
	for i, t := range tools {
		for _, id := range t.storeIDs {
			vs := s.stores[id]
			if vs == nil {
				s.mu.Unlock()
				writeAPIError(w, notFound("tools["+strconv.Itoa(i)+"].vector_store_ids", "Vector store with id '%s' not found.", id))
				return
			}
			if s.expiredLocked(vs) {
				s.mu.Unlock()
				writeAPIError(w, badRequest("tools["+strconv.Itoa(i)+"].vector_store_ids", "", "Vector store %s is expired.", id))
				return
			}
		}
		found = append(found, toolCands{tool: t, cands: s.candidatesLocked(t.storeIDs, t.filter)})
		for _, id := range t.storeIDs {
			s.stores[id].lastActiveAt = s.opts.Now().Unix()
		}
	}
	s.mu.Unlock()

	var output []any
	var hits []hit
	if len(tools) > 0 {
		for _, f := range found {
			hits = append(hits, rank(question, f.cands, f.tool.limit, f.tool.threshold)...)
		}
		sort.SliceStable(hits, func(i, j int) bool { return hits[i].score > hits[j].score })
		call := map[string]any{"id": "fs_" + randomHex(24), "type": "file_search_call", "status": "completed",
			"queries": []string{question}, "results": nil}
		if includeResults {
			results := []any{}
			for _, h := range hits {
				results = append(results, map[string]any{"file_id": h.fileID, "filename": h.filename,
					"score": h.score, "text": h.chunk.text, "attributes": attrsJSON(h.attributes)})
			}
			call["results"] = results
		}
		output = append(output, call)
	}
	text, annotations := extractiveAnswer(question, hits, len(tools) > 0)
	output = append(output, map[string]any{
		"id": "msg_" + randomHex(24), "type": "message", "role": "assistant", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []any{}}},
	})

	usage, err := responseUsage(req.Instructions, inputTexts, hits, text)
	if err != nil {
		writeAPIError(w, &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "local engine: " + err.Error()})
		return
	}
	now := s.opts.Now().Unix()
	var echoTools []any
	for _, t := range tools {
		echoTools = append(echoTools, t.echo)
	}
	resp := map[string]any{
		"id": "resp_" + randomHex(24), "object": "response", "created_at": now, "completed_at": now,
		"status": "completed", "background": false, "error": nil, "incomplete_details": nil,
		"instructions": req.Instructions, "max_output_tokens": req.MaxOutputTokens, "max_tool_calls": nil,
		"model": req.Model, "output": output, "parallel_tool_calls": true,
		"previous_response_id": req.PreviousResponseID, "reasoning": map[string]any{"effort": nil, "summary": nil},
		"service_tier": "default", "store": req.Store == nil || *req.Store,
		"temperature": orDefault(req.Temperature, 1), "top_p": orDefault(req.TopP, 1),
		"text":        map[string]any{"format": map[string]any{"type": "text"}, "verbosity": "medium"},
		"tool_choice": "auto", "tools": orEmptyList(echoTools), "truncation": "disabled",
		"usage": usage, "user": nil, "metadata": orEmpty(req.Metadata),
	}
	b, err := json.Marshal(resp)
	if err != nil {
		writeAPIError(w, &apiError{status: http.StatusInternalServerError, typ: "server_error", message: "local engine: encode response: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.counters.ResponseCalls++
	if req.Store == nil || *req.Store {
		s.responses[resp["id"].(string)] = b
	}
	s.mu.Unlock()
	s.log.Debug("response", "model", req.Model, "hits", len(hits), "question", question)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// getResponse is GET /responses/{id}, for stored responses.
func (s *Server) getResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("resp_id")
	s.mu.Lock()
	b, ok := s.responses[id]
	s.mu.Unlock()
	if !ok {
		writeAPIError(w, notFound("", "Response with id '%s' not found.", id))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func orDefault(v *float64, d float64) float64 {
	if v == nil {
		return d
	}
	return *v
}

func orEmptyList(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// parseResponseInput reads input, a string or a list of input items, and
// returns the question (the last user message's text) and every text the
// model would read, for usage.
func parseResponseInput(raw json.RawMessage) (question string, texts []string, e *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, badRequest("input", "", "Missing required parameter: 'input'.")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one, []string{one}, nil
	}
	var items []struct {
		Type    string          `json:"type"`
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return "", nil, badRequest("input", "invalid_type", "Invalid type for 'input': expected a string or an array of input items.")
	}
	for i, it := range items {
		if it.Type != "" && it.Type != "message" {
			continue // tool outputs and item references carry no question
		}
		var text string
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		switch {
		case json.Unmarshal(it.Content, &text) == nil:
		case json.Unmarshal(it.Content, &parts) == nil:
			var b strings.Builder
			for _, p := range parts {
				if p.Type == "input_text" || p.Type == "output_text" || p.Type == "text" {
					if b.Len() > 0 {
						b.WriteString("\n")
					}
					b.WriteString(p.Text)
				}
			}
			text = b.String()
		default:
			return "", nil, badRequest(fmt.Sprintf("input[%d].content", i), "invalid_type",
				"Invalid type for 'input[%d].content': expected a string or an array of content parts.", i)
		}
		texts = append(texts, text)
		if it.Role == "user" {
			question = text
		}
	}
	return question, texts, nil
}

// parseFileSearchTool validates one tool; only file_search is served.
func parseFileSearchTool(raw json.RawMessage, param string) (fileSearchTool, *apiError) {
	var t struct {
		Type           string          `json:"type"`
		VectorStoreIDs []string        `json:"vector_store_ids"`
		Filters        json.RawMessage `json:"filters"`
		MaxNumResults  *int64          `json:"max_num_results"`
		RankingOptions *rankingOptions `json:"ranking_options"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return fileSearchTool{}, badRequest(param, "invalid_type", "Invalid type for '%s': expected a tool object.", param)
	}
	if t.Type != "file_search" {
		return fileSearchTool{}, badRequest(param+".type", "unsupported_value",
			"The local OpenAI engine serves only the 'file_search' tool, not '%s'.", t.Type)
	}
	if len(t.VectorStoreIDs) == 0 {
		return fileSearchTool{}, badRequest(param+".vector_store_ids", "", "Missing required parameter: '%s.vector_store_ids'.", param)
	}
	f, e := parseFilter(t.Filters, param+".filters")
	if e != nil {
		return fileSearchTool{}, e
	}
	limit, e := maxNumResults(t.MaxNumResults, param+".max_num_results")
	if e != nil {
		return fileSearchTool{}, e
	}
	threshold, e := t.RankingOptions.threshold(param + ".ranking_options")
	if e != nil {
		return fileSearchTool{}, e
	}
	ranker := "auto"
	if t.RankingOptions != nil && t.RankingOptions.Ranker != "" {
		ranker = t.RankingOptions.Ranker
	}
	var filters any
	if len(t.Filters) > 0 {
		filters = t.Filters
	}
	return fileSearchTool{storeIDs: t.VectorStoreIDs, filter: f, limit: limit, threshold: threshold,
		echo: map[string]any{"type": "file_search", "vector_store_ids": t.VectorStoreIDs, "filters": filters,
			"max_num_results": limit, "ranking_options": map[string]any{"ranker": ranker, "score_threshold": threshold}},
	}, nil
}

// extractiveAnswer writes the local engine's answer: AnswerHeading, then the
// best passage of each of the top chunks (up to maxQuoted, those scoring at
// least half the best) as a bullet, each followed by a file_citation whose
// index is the position (in Unicode code points) just after the passage.
func extractiveAnswer(question string, hits []hit, searched bool) (string, []any) {
	var b strings.Builder
	b.WriteString(AnswerHeading)
	b.WriteString("\n\n")
	annotations := []any{}
	switch {
	case !searched:
		b.WriteString("No file_search tool was given; the local engine answers only from vector store retrieval.")
		return b.String(), annotations
	case len(hits) == 0:
		b.WriteString(NoResultsAnswer)
		return b.String(), annotations
	}
	qterms := map[string]bool{}
	for _, t := range terms(question) {
		qterms[t] = true
	}
	for i, h := range hits[:min(len(hits), maxQuoted)] {
		if i > 0 && h.score < hits[0].score/2 {
			break // a passage far weaker than the best would only add noise
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("- ")
		b.WriteString(bestPassage(h.chunk.text, qterms))
		annotations = append(annotations, map[string]any{"type": "file_citation", "file_id": h.fileID,
			"filename": h.filename, "index": utf8.RuneCountInString(b.String())})
	}
	return b.String(), annotations
}

// bestPassage picks the sentence of text that holds the most query terms
// (the first such; headings only when nothing else matches), with the next
// sentence when it is short and not a heading, cut to about 320 characters.
func bestPassage(text string, qterms map[string]bool) string {
	sentences := splitSentences(text)
	if len(sentences) == 0 {
		return ""
	}
	best, bestScore := 0, -1
	for i, s := range sentences {
		seen := map[string]bool{}
		for _, t := range terms(s.text) {
			if qterms[t] {
				seen[t] = true
			}
		}
		score := 2 * len(seen)
		if !s.heading {
			score++ // a sentence beats a heading holding as many terms
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	passage := sentences[best].text
	if next := best + 1; utf8.RuneCountInString(passage) < 120 && next < len(sentences) && !sentences[next].heading {
		passage += " " + sentences[next].text
	}
	if rs := []rune(passage); len(rs) > 320 {
		passage = strings.TrimSpace(string(rs[:320])) + "…"
	}
	return passage
}

type sentence struct {
	text    string
	heading bool // a markdown heading line
}

// splitSentences cuts text at line breaks and after ". ", "? ", "! ", with
// markdown heading, quote and list markers trimmed.
func splitSentences(text string) []sentence {
	var out []sentence
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		heading := strings.HasPrefix(line, "#")
		line = strings.TrimSpace(strings.TrimLeft(line, "#>-* "))
		for line != "" {
			cut := -1
			for i := 0; i+1 < len(line); i++ {
				if (line[i] == '.' || line[i] == '?' || line[i] == '!') && line[i+1] == ' ' {
					cut = i + 1
					break
				}
			}
			if cut < 0 {
				out = append(out, sentence{text: line, heading: heading})
				break
			}
			out = append(out, sentence{text: strings.TrimSpace(line[:cut]), heading: heading})
			line = strings.TrimSpace(line[cut:])
		}
	}
	return out
}

// responseUsage counts, in o200k_base tokens, what the model would read
// (instructions, input, retrieved chunks) and what it wrote.
func responseUsage(instructions *string, inputs []string, hits []hit, answer string) (map[string]any, error) {
	in := 0
	add := func(t string) error {
		n, err := countTokens(responseCodec, t)
		in += n
		return err
	}
	if instructions != nil {
		if err := add(*instructions); err != nil {
			return nil, err
		}
	}
	for _, t := range inputs {
		if err := add(t); err != nil {
			return nil, err
		}
	}
	for _, h := range hits {
		if err := add(h.chunk.text); err != nil {
			return nil, err
		}
	}
	out, err := countTokens(responseCodec, answer)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"input_tokens": in, "input_tokens_details": map[string]any{"cached_tokens": 0},
		"output_tokens": out, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
		"total_tokens": in + out,
	}, nil
}
