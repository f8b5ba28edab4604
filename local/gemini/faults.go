package gemini

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Match selects requests for faults and counters; a zero field matches
// every request.
type Match struct {
	Lesson string      // page id
	Kind   RequestKind // Analysis or Enrichment
}

func (m Match) matches(kind RequestKind, lesson string) bool {
	return (m.Lesson == "" || m.Lesson == lesson) && (m.Kind == "" || m.Kind == kind)
}

// Breakage is how an answer breaks the response schema while staying JSON.
type Breakage int

const (
	// BreakMissing drops the required top-level property: the elements come
	// as "items" instead of "elements"; an enrichment has no "keywords".
	BreakMissing Breakage = iota + 1
	// BreakEnum puts a value outside its enum: an element of kind
	// "animation"; the level "experto".
	BreakEnum
	// BreakValue gives a value the contract forbids: an element whose end
	// comes before its start; keywords as one string instead of an array.
	BreakValue
)

var breakNames = map[Breakage]string{BreakMissing: "missing", BreakEnum: "enum", BreakValue: "value"}

func (b Breakage) String() string {
	if n, ok := breakNames[b]; ok {
		return n
	}
	return fmt.Sprintf("Breakage(%d)", int(b))
}

type faultType int

const (
	faultStatus faultType = iota
	faultNonJSON
	faultSchema
)

// fault is one injection, used up after left requests.
type fault struct {
	typ      faultType
	m        Match
	left     int
	status   int
	breakage Breakage
}

// FailNext makes the next n requests matching m answer status with Vertex's
// error body for it: 503 UNAVAILABLE, 429 RESOURCE_EXHAUSTED (with the
// headers Vertex sends: no Retry-After), 500 INTERNAL... The status comes
// before any validation, as a front end's would. Injections of one type are
// used in the order given.
func (s *Server) FailNext(m Match, status, n int) {
	s.inject(&fault{typ: faultStatus, m: m, left: n, status: status})
}

// NonJSONNext makes the next n valid requests matching m answer 200 with a
// candidate whose text is prose, not JSON.
func (s *Server) NonJSONNext(m Match, n int) {
	s.inject(&fault{typ: faultNonJSON, m: m, left: n})
}

// BreakSchemaNext makes the next n valid requests matching m answer 200
// with JSON that breaks the response schema as b says.
func (s *Server) BreakSchemaNext(m Match, b Breakage, n int) {
	s.inject(&fault{typ: faultSchema, m: m, left: n, breakage: b})
}

// BreakSchemaAlways makes every valid request for a lesson, of either kind,
// answer JSON that breaks the schema, in turn each way a Breakage can: a
// Gemini answer that never fits. ClearFaults ends it.
func (s *Server) BreakSchemaAlways(lessonID string) {
	s.mu.Lock()
	if _, ok := s.neverFits[lessonID]; !ok {
		s.neverFits[lessonID] = 0
	}
	s.mu.Unlock()
}

// ClearFaults drops every injection not yet used, and every
// BreakSchemaAlways (Options.NeverFits included).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	clear(s.neverFits)
	s.mu.Unlock()
}

func (s *Server) inject(f *fault) {
	if f.left <= 0 {
		return
	}
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// takeFault uses up one request of the first injection of typ matching c.
func (s *Server) takeFault(c *call, typ faultType) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.typ != typ || !f.m.matches(c.kind, c.lesson) {
			continue
		}
		f.left--
		if f.left <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f
	}
	return nil
}

// schemaBreak says whether, and how, c's answer breaks the schema: an
// injection first, then the lesson's BreakSchemaAlways.
func (s *Server) schemaBreak(c *call) (Breakage, bool) {
	if f := s.takeFault(c, faultSchema); f != nil {
		return f.breakage, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.neverFits[c.lesson]
	if !ok || c.lesson == "" {
		return 0, false
	}
	s.neverFits[c.lesson] = n + 1
	return BreakMissing + Breakage(n%3), true
}

// breakSchema spoils a good answer as b says.
func breakSchema(kind RequestKind, good string, b Breakage) string {
	var v map[string]any
	if err := json.Unmarshal([]byte(good), &v); err != nil {
		return good
	}
	switch kind {
	case Analysis:
		els, _ := v["elements"].([]any)
		if len(els) == 0 {
			els = []any{map[string]any{"kind": "slide", "start": 5.0, "end": 8.0, "title": "?"}}
		}
		first, _ := els[0].(map[string]any)
		switch b {
		case BreakMissing:
			delete(v, "elements")
			v["items"] = els
		case BreakEnum:
			first["kind"] = "animation"
		case BreakValue:
			start, _ := first["start"].(float64)
			first["end"] = start - 3
		}
		if b != BreakMissing {
			v["elements"] = els
		}
	case Enrichment:
		switch b {
		case BreakMissing:
			delete(v, "keywords")
		case BreakEnum:
			v["level"] = "experto"
		case BreakValue:
			var kws []string
			for _, k := range v["keywords"].([]any) {
				kws = append(kws, fmt.Sprint(k))
			}
			v["keywords"] = strings.Join(kws, ", ")
		}
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// nonJSON is the chatty prose a model gives when it ignores the JSON mode.
func nonJSON(c *call) string {
	switch c.kind {
	case Analysis:
		return fmt.Sprintf("Claro. En el fragmento del vídeo entre %gs y %gs aparecen diapositivas de la lección «%s» con su explicación. ¿Quieres que te lo devuelva en formato JSON?",
			c.window.Start, c.window.End, c.page.Name)
	default:
		return fmt.Sprintf("Aquí tienes un resumen de la lección «%s»: trata los conceptos principales del tema con ejemplos. Palabras clave: ver la transcripción.",
			section(c.prompt, MarkerTitle))
	}
}
