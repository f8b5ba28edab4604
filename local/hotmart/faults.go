package hotmart

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
)

// Faults are the ways a real account misbehaves that are not HTTP errors:
// answers whose body is broken or shaped wrongly, elements whose fields have
// the wrong JSON type, a cursor that never ends. Unlike injected failures
// they last until ClearFaults, as a broken course on Hotmart does until
// someone fixes it.

// Fault is a way the server answers a resource wrongly.
type Fault int

const (
	// FaultTruncated answers 200 with the first half of the real body: JSON
	// that ends early, as a connection cut mid-answer leaves it.
	FaultTruncated Fault = iota + 1
	// FaultObjectForArray answers an object where an array belongs: the real
	// array wrapped as {"items":[...]}.
	FaultObjectForArray
	// FaultNull answers 200 with the body null.
	FaultNull
	// FaultLoopingCursor makes the products list's last page point back at
	// its first page (next_page_token of offset 0) instead of ending: every
	// product arrives before the repeat can be noticed.
	FaultLoopingCursor
)

func (f Fault) String() string {
	switch f {
	case FaultTruncated:
		return "truncated body"
	case FaultObjectForArray:
		return "object where an array belongs"
	case FaultNull:
		return "null body"
	case FaultLoopingCursor:
		return "looping cursor"
	}
	return "fault " + strconv.Itoa(int(f))
}

// PagesPathOf is the path of a module's pages call, for SetFault and
// Requests.
func PagesPathOf(moduleID string) string {
	return "/club/api/v2/modules/" + url.PathEscape(moduleID) + "/pages"
}

type fault struct {
	path  string // exact path
	fault Fault
}

// SetFault makes every answer on path (exact, e.g. ModulesPath or
// PagesPathOf(moduleID)) have fault f, until ClearFaults. FaultLoopingCursor
// applies to ProductsPath only.
func (s *Server) SetFault(path string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{path: path, fault: f})
}

// SetPageField makes every answer that lists page pageID send field as raw
// JSON instead of its value ("page_id" as 12345, "name" as null, ...), until
// ClearFaults. The page is matched by the id the catalog gives it.
func (s *Server) SetPageField(pageID, field string, raw json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pageFields == nil {
		s.pageFields = map[string]map[string]json.RawMessage{}
	}
	if s.pageFields[pageID] == nil {
		s.pageFields[pageID] = map[string]json.RawMessage{}
	}
	s.pageFields[pageID][field] = append(json.RawMessage(nil), raw...)
}

// ClearFaults ends every fault and page field override.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.pageFields = nil
}

// faultFor returns the body fault set for path, if any.
func (s *Server) faultFor(path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.path == path && f.fault != FaultLoopingCursor {
			return f.fault, true
		}
	}
	return 0, false
}

func (s *Server) looping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.fault == FaultLoopingCursor && f.path == ProductsPath {
			return true
		}
	}
	return false
}

// pageOverrides returns the field overrides of pageID; nil when none.
func (s *Server) pageOverrides(pageID string) map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pageFields[pageID]
}

// serveFaulty answers r through the mux, then breaks a 200 body as f says.
func (s *Server) serveFaulty(w http.ResponseWriter, r *http.Request, f Fault) {
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		switch f {
		case FaultTruncated:
			body = body[:len(body)/2]
		case FaultObjectForArray:
			body = append(append([]byte(`{"items":`), body...), '}')
		case FaultNull:
			body = []byte("null")
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// withOverrides encodes a page with its field overrides applied.
func withOverrides(pg pageJSON, fields map[string]json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(pg)
	if len(fields) == 0 {
		return b
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	for k, v := range fields {
		m[k] = v
	}
	out, _ := json.Marshal(m)
	return out
}
