// Package openai is a local OpenAI API: the Files, Vector Stores, Embeddings
// and Responses (with the file_search tool) calls of DESIGN.md section 5,
// spoken on the wire so that the real SDK (github.com/openai/openai-go/v3)
// talks to it through option.WithBaseURL. The sync stage's tests, the ask
// command's tests and the one-machine stack (DESIGN.md section 6) use it.
//
// The base URL includes the /v1 prefix, as the real one does
// ("https://api.openai.com/v1"): a client configured with an OPENAI_BASE_URL
// that lacks it fails here as it would against OpenAI. Paths outside /v1 answer
// 404 "Invalid URL".
//
// What is real and what is made up:
//   - Files and vector stores keep OpenAI's objects, statuses, counts and
//     list pagination. Attaching a file starts it in_progress; it becomes
//     completed after Options.IndexingDelay (or failed with last_error, as
//     OpenAI reports a file type file_search does not read:
//     unsupported_file). Indexing cuts the text into token windows exactly as
//     the static chunking strategy says (auto = 800 tokens, 400 overlap, as
//     OpenAI reports it), counted with the cl100k_base encoding.
//   - Embeddings are deterministic feature-hashing vectors (words, word pairs
//     and character trigrams, accent-folded), L2-normalized: similar texts get
//     a higher cosine than unrelated ones, nothing more. Limits and usage are
//     OpenAI's, tokens counted with cl100k_base, the encoding of the
//     text-embedding-3 models.
//   - Responses retrieve for real (BM25 over the stored chunks of the named
//     stores' completed files, with attribute filters) and answer
//     extractively: the text says it comes from the local engine, quotes the
//     best passages and cites them with file_citation annotations whose index
//     counts Unicode code points. Usage is counted with o200k_base, the
//     encoding of the GPT-4o/4.1/5 models.
//
// Faults for tests: InjectFault / InjectFailures (429 with retry-after
// headers, 5xx) for the next N requests under a path, FailIndexing for one
// file, PauseIndexing / ResumeIndexing to hold files in_progress, Counters,
// Requests and LiveFiles to look inside.
package openai

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIPrefix is the path prefix every endpoint lives under; the base URL that
// Listen returns ends with it.
const APIPrefix = "/v1"

// DefaultIndexingDelay is how long an attached file stays in_progress when
// Options leaves IndexingDelay zero: long enough that a client must poll, short
// enough for tests.
const DefaultIndexingDelay = 50 * time.Millisecond

// Options configures a Server; every field has a default.
type Options struct {
	// IndexingDelay is how long an attached file stays in_progress before it
	// completes (default DefaultIndexingDelay; negative: it completes on the
	// first look after attaching).
	IndexingDelay time.Duration
	// APIKey, when set, is the only bearer token accepted (401
	// invalid_api_key otherwise); by default any non-empty token is.
	APIKey string
	// MaxFileBytes caps an upload (default 512 MiB, OpenAI's limit).
	MaxFileBytes int64
	// Now is the server's clock, for created_at, expiry and indexing (default
	// time.Now).
	Now func() time.Time
	// Logger receives debug records of indexing and injected faults
	// (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.IndexingDelay == 0 {
		o.IndexingDelay = DefaultIndexingDelay
	}
	if o.IndexingDelay < 0 {
		o.IndexingDelay = 0
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 512 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Server is the local OpenAI API, an http.Handler. It is safe for concurrent
// use, control methods included. All state is in memory.
type Server struct {
	opts Options
	mux  *http.ServeMux
	log  *slog.Logger

	mu        sync.Mutex
	seq       uint64
	seqOf     map[string]uint64 // every id ever issued -> creation order, so list cursors survive deletes
	files     map[string]*fileObj
	stores    map[string]*vectorStore
	pending   map[*storeFile]struct{} // in_progress attachments
	responses map[string][]byte       // resp id -> stored JSON, for GET /responses/{id}
	paused    bool
	failNext  []indexFailure
	faults    []Fault
	counters  Counters
	served    map[string]int // path (API prefix removed) -> requests
}

// NewServer returns an empty server configured by opts.
func NewServer(opts Options) *Server {
	s := &Server{
		opts:      opts.withDefaults(),
		mux:       http.NewServeMux(),
		seqOf:     map[string]uint64{},
		files:     map[string]*fileObj{},
		stores:    map[string]*vectorStore{},
		pending:   map[*storeFile]struct{}{},
		responses: map[string][]byte{},
		served:    map[string]int{},
	}
	s.log = s.opts.Logger.With("component", "local-openai")
	s.route("/files", methods{http.MethodGet: s.listFiles, http.MethodPost: s.uploadFile})
	s.route("/files/{file_id}", methods{http.MethodGet: s.getFile, http.MethodDelete: s.deleteFile})
	s.route("/files/{file_id}/content", methods{http.MethodGet: s.fileContent})
	s.route("/vector_stores", methods{http.MethodGet: s.listStores, http.MethodPost: s.createStore})
	s.route("/vector_stores/{vs_id}", methods{http.MethodGet: s.getStore, http.MethodPost: s.updateStore,
		http.MethodDelete: s.deleteStore})
	s.route("/vector_stores/{vs_id}/search", methods{http.MethodPost: s.searchStore})
	s.route("/vector_stores/{vs_id}/files", methods{http.MethodGet: s.listStoreFiles, http.MethodPost: s.attachFile})
	s.route("/vector_stores/{vs_id}/files/{file_id}", methods{http.MethodGet: s.getStoreFile,
		http.MethodPost: s.updateStoreFile, http.MethodDelete: s.detachFile})
	s.route("/vector_stores/{vs_id}/files/{file_id}/content", methods{http.MethodGet: s.storeFileContent})
	s.route("/embeddings", methods{http.MethodPost: s.embeddings})
	s.route("/responses", methods{http.MethodPost: s.createResponse})
	s.route("/responses/{resp_id}", methods{http.MethodGet: s.getResponse})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, invalidURL(r))
	})
	return s
}

type methods map[string]http.HandlerFunc

// route registers path under APIPrefix and dispatches on the method itself,
// so that a wrong method gets OpenAI's "Invalid URL" error, not the mux's
// plain-text 405.
func (s *Server) route(path string, m methods) {
	s.mux.HandleFunc(APIPrefix+path, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			writeAPIError(w, invalidURL(r))
			return
		}
		h(w, r)
	})
}

// Options returns the options in force, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Listen serves on addr (default "127.0.0.1:0", a free loopback port) and
// returns the base URL to give option.WithBaseURL, APIPrefix included
// ("http://127.0.0.1:PORT/v1"). stop closes the listener and open connections.
func (s *Server) Listen(addr string) (baseURL string, stop func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local openai: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + APIPrefix, srv.Close, nil
}

// ServeHTTP stamps the request id, counts the request, checks the bearer
// token and any injected fault, then answers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-request-id", "req_"+randomHex(16))
	w.Header().Set("openai-version", "2020-10-01")
	path, inAPI := strings.CutPrefix(r.URL.Path, APIPrefix)

	e := s.authenticate(r)
	s.mu.Lock()
	s.served[path]++
	var fault *Fault
	if e == nil && inAPI {
		fault = s.takeFault(path)
	}
	s.mu.Unlock()

	if e != nil {
		writeAPIError(w, e)
		return
	}
	if fault != nil {
		s.log.Debug("injected fault", "path", r.URL.Path, "status", fault.Status, "after_serving", fault.AfterServing)
		if fault.AfterServing {
			s.mux.ServeHTTP(&discardWriter{}, r)
		}
		writeFault(w, *fault)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authenticate(r *http.Request) *apiError {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || strings.TrimSpace(tok) == "":
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."}
	case s.opts.APIKey != "" && tok != s.opts.APIKey:
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key",
			message: "Incorrect API key provided. The local server accepts only the key it was configured with."}
	}
	return nil
}

// newID issues an id with prefix and records its creation order; s.mu is held.
func (s *Server) newID(prefix string) (string, uint64) {
	s.seq++
	id := prefix + randomBase62(24)
	s.seqOf[id] = s.seq
	return id, s.seq
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomBase62(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(fmt.Sprintf("local openai: crypto/rand: %v", err)) // never fails on supported platforms
		}
		b[i] = base62[v.Int64()]
	}
	return string(b)
}

func randomHex(n int) string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	out := make([]byte, 2*n)
	for i, c := range b {
		out[2*i], out[2*i+1] = hexdigits[c>>4], hexdigits[c&15]
	}
	return string(out)
}

// apiError is OpenAI's error body, {"error":{"message","type","param","code"}};
// empty param and code are sent as null, as OpenAI does.
type apiError struct {
	status  int
	message string
	typ     string
	param   string
	code    string
}

func (e *apiError) MarshalJSON() ([]byte, error) {
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return json.Marshal(map[string]any{"error": map[string]any{
		"message": e.message, "type": e.typ, "param": nullable(e.param), "code": nullable(e.code),
	}})
}

func badRequest(param, code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, code: code,
		message: fmt.Sprintf(format, args...)}
}

func notFound(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: param,
		message: fmt.Sprintf(format, args...)}
}

func invalidURL(r *http.Request) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error",
		message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeAPIError(w, &apiError{status: http.StatusInternalServerError, typ: "server_error",
			message: "local openai: encode answer: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeJSON reads a JSON request body into v. Unknown fields are accepted:
// a newer SDK may send parameters this server does not model, and they change
// nothing it answers.
func decodeJSON(r *http.Request, v any) *apiError {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return badRequest("", "", "Could not read the request body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON: %v)", err)
	}
	return nil
}

// listPage is OpenAI's cursor page: {"object":"list","data","first_id","last_id","has_more"}.
type listPage struct {
	Object  string  `json:"object"`
	Data    []any   `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// paginateLocked orders items by creation (order "desc", the default, or
// "asc"; seqOf gives each id's creation order), applies the after/before
// cursors and the limit, and renders the page; s.mu is held. Cursors are ids;
// an id deleted since it was handed out still marks its place, because
// seqOf keeps every id ever issued.
func (s *Server) paginateLocked(r *http.Request, ids []string, seqOf map[string]uint64, render func(id string) any, defLimit, maxLimit int) (*listPage, *apiError) {
	q := r.URL.Query()
	limit := defLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return nil, badRequest("limit", "invalid_value",
				"Invalid 'limit': expected an integer between 1 and %d, got %q.", maxLimit, v)
		}
		limit = n
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		return nil, badRequest("order", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'asc' and 'desc'.", order)
	}
	cursor := func(name string) (uint64, *apiError) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		n, ok := seqOf[v]
		if !ok {
			return 0, badRequest(name, "invalid_value", "Invalid '%s': no object with id '%s' exists or ever existed.", name, v)
		}
		return n, nil
	}
	after, err := cursor("after")
	if err != nil {
		return nil, err
	}
	before, err := cursor("before")
	if err != nil {
		return nil, err
	}
	sort.Slice(ids, func(i, j int) bool {
		if order == "asc" {
			return seqOf[ids[i]] < seqOf[ids[j]]
		}
		return seqOf[ids[i]] > seqOf[ids[j]]
	})
	// In the page's order, "after" keeps what comes later and "before" what
	// comes earlier.
	later := func(n, cur uint64) bool { return (order == "asc") == (n > cur) }
	var kept []string
	for _, id := range ids {
		n := seqOf[id]
		if after != 0 && (n == after || !later(n, after)) {
			continue
		}
		if before != 0 && (n == before || later(n, before)) {
			continue
		}
		kept = append(kept, id)
	}
	page := &listPage{Object: "list", Data: []any{}}
	if len(kept) > limit {
		page.HasMore = true
		if before != 0 && after == 0 {
			kept = kept[len(kept)-limit:] // paging backwards: the items just before the cursor
		} else {
			kept = kept[:limit]
		}
	}
	for _, id := range kept {
		page.Data = append(page.Data, render(id))
	}
	if len(kept) > 0 {
		first, last := kept[0], kept[len(kept)-1]
		page.FirstID, page.LastID = &first, &last
	}
	return page, nil
}
