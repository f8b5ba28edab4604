package openai

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// BM25 parameters, the usual ones.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// hit is one chunk of one store's completed file, and its score once ranked.
type hit struct {
	storeID    string
	fileID     string
	filename   string
	attributes map[string]any
	chunkIndex int
	chunk      *chunk
	score      float64 // 0..1
}

// candidatesLocked gathers the chunks of the completed files of the named
// stores that pass filter; s.mu is held and the stores settled. Attribute
// maps are replaced whole on update, never mutated, so hits may keep them.
func (s *Server) candidatesLocked(storeIDs []string, f *filter) []hit {
	var out []hit
	for _, id := range storeIDs {
		vs := s.stores[id]
		if vs == nil {
			continue
		}
		for _, sf := range vs.files {
			if sf.status != "completed" || (f != nil && !f.match(sf.attributes)) {
				continue
			}
			for i, c := range sf.chunks {
				out = append(out, hit{storeID: id, fileID: sf.fileID, filename: sf.filename,
					attributes: sf.attributes, chunkIndex: i, chunk: c})
			}
		}
	}
	return out
}

// rank scores candidates against query with BM25 over the candidate set and
// returns the best limit hits scoring above threshold, best first. Chunks
// sharing no term with the query are never returned. The BM25 score s is
// mapped into 0..1 as 1-exp(-s/Σidf): a chunk holding each query term once,
// at average length, scores about 0.63.
func rank(query string, cands []hit, limit int, threshold float64) []hit {
	qterms := uniq(terms(query))
	if len(qterms) == 0 || len(cands) == 0 {
		return nil
	}
	df := map[string]int{}
	total := 0
	for _, c := range cands {
		total += c.chunk.length
		for _, t := range qterms {
			if c.chunk.tf[t] > 0 {
				df[t]++
			}
		}
	}
	n := float64(len(cands))
	avgLen := math.Max(float64(total)/n, 1)
	idf := map[string]float64{}
	var idfSum float64
	for _, t := range qterms {
		idf[t] = math.Log(1 + (n-float64(df[t])+0.5)/(float64(df[t])+0.5))
		idfSum += idf[t]
	}
	var out []hit
	for _, c := range cands {
		var sc float64
		for _, t := range qterms {
			tf := float64(c.chunk.tf[t])
			if tf == 0 {
				continue
			}
			sc += idf[t] * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*float64(c.chunk.length)/avgLen))
		}
		if sc <= 0 {
			continue
		}
		c.score = math.Round((1-math.Exp(-sc/idfSum))*1e6) / 1e6
		if c.score < threshold {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.fileID != b.fileID {
			return a.fileID < b.fileID
		}
		return a.chunkIndex < b.chunkIndex
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// filter is a ComparisonFilter (eq, ne, gt, gte, lt, lte, in, nin on an
// attribute key) or a CompoundFilter (and, or over filters, nestable), as
// openai-go's shared.ComparisonFilterParam and shared.CompoundFilterParam
// define them.
type filter struct {
	typ   string
	key   string
	value any // string, float64, bool; []any of string and float64 for in, nin
	subs  []*filter
}

var comparisonOps = map[string]bool{"eq": true, "ne": true, "gt": true, "gte": true, "lt": true, "lte": true,
	"in": true, "nin": true}

// parseFilter validates a filters object; param names it in errors
// ("filters", "tools[0].filters"). JSON null or absent gives nil.
func parseFilter(raw json.RawMessage, param string) (*filter, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var obj struct {
		Type    string            `json:"type"`
		Key     *string           `json:"key"`
		Value   json.RawMessage   `json:"value"`
		Filters []json.RawMessage `json:"filters"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, badRequest(param, "invalid_type", "Invalid type for '%s': expected a comparison or compound filter object.", param)
	}
	switch {
	case obj.Type == "and" || obj.Type == "or":
		if len(obj.Filters) == 0 {
			return nil, badRequest(param+".filters", "", "Missing required parameter: '%s.filters'.", param)
		}
		f := &filter{typ: obj.Type}
		for i, sub := range obj.Filters {
			sf, e := parseFilter(sub, param+".filters["+strconv.Itoa(i)+"]")
			if e != nil {
				return nil, e
			}
			if sf == nil {
				return nil, badRequest(param+".filters["+strconv.Itoa(i)+"]", "invalid_type", "Invalid type for '%s.filters[%d]': expected a filter object, but got null instead.", param, i)
			}
			f.subs = append(f.subs, sf)
		}
		return f, nil
	case comparisonOps[obj.Type]:
	default:
		return nil, badRequest(param+".type", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'and', and 'or'.", obj.Type)
	}
	if obj.Key == nil {
		return nil, badRequest(param+".key", "", "Missing required parameter: '%s.key'.", param)
	}
	if len(obj.Value) == 0 {
		return nil, badRequest(param+".value", "", "Missing required parameter: '%s.value'.", param)
	}
	var v any
	if err := json.Unmarshal(obj.Value, &v); err != nil {
		return nil, badRequest(param+".value", "invalid_type", "Invalid type for '%s.value'.", param)
	}
	switch v := v.(type) {
	case string, float64, bool:
		if obj.Type == "in" || obj.Type == "nin" {
			return nil, badRequest(param+".value", "invalid_type",
				"Invalid type for '%s.value': '%s' expects an array of strings or numbers.", param, obj.Type)
		}
	case []any:
		if obj.Type != "in" && obj.Type != "nin" {
			return nil, badRequest(param+".value", "invalid_type",
				"Invalid type for '%s.value': an array is allowed with 'in' and 'nin' only.", param)
		}
		for i, item := range v {
			switch item.(type) {
			case string, float64:
			default:
				return nil, badRequest(param+".value", "invalid_type",
					"Invalid type for '%s.value[%d]': expected a string or a number, but got %s instead.", param, i, jsonKind(item))
			}
		}
	default:
		return nil, badRequest(param+".value", "invalid_type",
			"Invalid type for '%s.value': expected a string, number, boolean or array, but got %s instead.", param, jsonKind(v))
	}
	return &filter{typ: obj.Type, key: *obj.Key, value: v}, nil
}

// match reports whether attributes pass f. A comparison on a key the file
// does not have fails, whatever its operator (ne and nin included): a filter
// only ever selects files that carry the attribute it names.
func (f *filter) match(attrs map[string]any) bool {
	switch f.typ {
	case "and":
		for _, sf := range f.subs {
			if !sf.match(attrs) {
				return false
			}
		}
		return true
	case "or":
		for _, sf := range f.subs {
			if sf.match(attrs) {
				return true
			}
		}
		return false
	}
	a, ok := attrs[f.key]
	if !ok {
		return false
	}
	switch f.typ {
	case "eq":
		return a == f.value
	case "ne":
		return a != f.value
	case "in", "nin":
		in := false
		for _, item := range f.value.([]any) {
			if a == item {
				in = true
				break
			}
		}
		return in == (f.typ == "in")
	}
	c, ok := compare(a, f.value)
	if !ok {
		return false
	}
	switch f.typ {
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	default: // lte
		return c <= 0
	}
}

// compare orders two numbers or two strings; other pairs do not compare.
func compare(a, b any) (int, bool) {
	switch a := a.(type) {
	case float64:
		if b, ok := b.(float64); ok {
			switch {
			case a < b:
				return -1, true
			case a > b:
				return 1, true
			}
			return 0, true
		}
	case string:
		if b, ok := b.(string); ok {
			return strings.Compare(a, b), true
		}
	}
	return 0, false
}

// maxNumResults validates max_num_results (1..50, default 10).
func maxNumResults(v *int64, param string) (int, *apiError) {
	if v == nil {
		return 10, nil
	}
	if *v < 1 || *v > 50 {
		return 0, badRequest(param, "invalid_value",
			"Invalid '%s': expected an integer between 1 and 50, but got %d instead.", param, *v)
	}
	return int(*v), nil
}

type rankingOptions struct {
	Ranker         string   `json:"ranker"`
	ScoreThreshold *float64 `json:"score_threshold"`
}

func (ro *rankingOptions) threshold(param string) (float64, *apiError) {
	if ro == nil || ro.ScoreThreshold == nil {
		return 0, nil
	}
	if t := *ro.ScoreThreshold; t < 0 || t > 1 {
		return 0, badRequest(param+".score_threshold", "invalid_value",
			"Invalid '%s.score_threshold': expected a number between 0 and 1, but got %g instead.", param, t)
	}
	return *ro.ScoreThreshold, nil
}

// searchStore is POST /vector_stores/{id}/search: the same retrieval as
// file_search, answered as a search results page.
func (s *Server) searchStore(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("vs_id")
	var req struct {
		Query          json.RawMessage `json:"query"`
		Filters        json.RawMessage `json:"filters"`
		MaxNumResults  *int64          `json:"max_num_results"`
		RankingOptions *rankingOptions `json:"ranking_options"`
		RewriteQuery   bool            `json:"rewrite_query"`
	}
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	var queries []string
	var one string
	if err := json.Unmarshal(req.Query, &one); err == nil {
		queries = []string{one}
	} else if err := json.Unmarshal(req.Query, &queries); err != nil || len(queries) == 0 {
		writeAPIError(w, badRequest("query", "", "Missing required parameter: 'query' (a string or an array of strings)."))
		return
	}
	f, e := parseFilter(req.Filters, "filters")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	limit, e := maxNumResults(req.MaxNumResults, "max_num_results")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	threshold, e := req.RankingOptions.threshold("ranking_options")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.mu.Lock()
	s.settleLocked()
	vs := s.stores[id]
	var cands []hit
	switch {
	case vs == nil:
		e = noSuchStore(id)
	case s.expiredLocked(vs):
		e = badRequest("", "", "Vector store %s is expired.", id)
	default:
		cands = s.candidatesLocked([]string{id}, f)
		vs.lastActiveAt = s.opts.Now().Unix()
		s.counters.Searches++
	}
	s.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	data := []any{}
	for _, h := range rank(strings.Join(queries, " "), cands, limit, threshold) {
		data = append(data, map[string]any{
			"file_id": h.fileID, "filename": h.filename, "score": h.score, "attributes": attrsJSON(h.attributes),
			"content": []map[string]string{{"type": "text", "text": h.chunk.text}},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "vector_store.search_results.page",
		"search_query": queries, "data": data, "has_more": false, "next_page": nil})
}

func attrsJSON(a map[string]any) map[string]any {
	if a == nil {
		return map[string]any{}
	}
	return a
}
