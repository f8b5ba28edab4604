// Package hotmart is a local Hotmart API: the OAuth token endpoint and the
// products, Club modules and Club pages calls of DESIGN.md section 5, served
// from a sample.Catalog with Hotmart's field names, errors and rate-limit
// headers. The tests of shared/hotmart and the one-machine demo both use it;
// its control methods let a test rename pages between detection runs, expire
// tokens and inject failures.
package hotmart

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coursekb/pipeline/local/sample"
)

// Paths the server answers, as on Hotmart (the token endpoint lives on its
// own host there, on the same one here).
const (
	TokenPath    = "/security/oauth/token"
	ProductsPath = "/products/api/v1/products"
	ModulesPath  = "/club/api/v1/modules"
	PagesPath    = "/club/api/v2/modules/{module_id}/pages"
)

// Default credentials, used when Options leaves them empty.
const (
	DefaultClientID     = "local-client-id"
	DefaultClientSecret = "local-client-secret"
)

// Options configures a Server; every field has a default.
type Options struct {
	// ClientID and ClientSecret are the accepted credentials (defaults
	// DefaultClientID, DefaultClientSecret); BasicToken the accepted Basic
	// token (default, as on Hotmart: base64 of "id:secret").
	ClientID, ClientSecret, BasicToken string
	// TokenTTL is how long an issued token is valid (default one hour).
	TokenTTL time.Duration
	// OmitExpiresIn leaves expires_in out of token answers, as some
	// gateways in front of OAuth servers do.
	OmitExpiresIn bool
	// ProductsPageSize caps the products per page (default 50).
	ProductsPageSize int
	// RequestsPerMinute is the rate limit of the fixed one-minute window
	// (default 500, Hotmart's).
	RequestsPerMinute int
	// Now is the server's clock, for token expiry and the rate window
	// (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.ClientSecret == "" {
		o.ClientSecret = DefaultClientSecret
	}
	if o.BasicToken == "" {
		o.BasicToken = base64.StdEncoding.EncodeToString([]byte(o.ClientID + ":" + o.ClientSecret))
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.ProductsPageSize <= 0 {
		o.ProductsPageSize = 50
	}
	if o.RequestsPerMinute <= 0 {
		o.RequestsPerMinute = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server is the local Hotmart API, an http.Handler. It is safe for
// concurrent use, control methods included.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu          sync.Mutex
	cat         sample.Catalog
	tokens      map[string]time.Time // token -> expiry
	windowStart time.Time
	windowCount int
	injections  []injection
	served      map[string]int // path -> requests
	faults      []fault
	pageFields  map[string]map[string]json.RawMessage // page id -> field -> raw JSON sent instead
}

type injection struct {
	prefix    string
	status    int  // when not malformed
	malformed bool // 200 with a broken JSON body
	left      int
}

// NewServer serves cat with opts.
func NewServer(cat sample.Catalog, opts Options) *Server {
	s := &Server{
		opts:   opts.withDefaults(),
		mux:    http.NewServeMux(),
		cat:    cloneCatalog(cat),
		tokens: map[string]time.Time{},
		served: map[string]int{},
	}
	s.mux.HandleFunc(TokenPath, s.handleToken)
	s.mux.HandleFunc(ProductsPath, s.authorized(s.handleProducts))
	s.mux.HandleFunc(ModulesPath, s.authorized(s.handleModules))
	s.mux.HandleFunc(PagesPath, s.authorized(s.handlePages))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such resource: "+r.URL.Path)
	})
	return s
}

// Options returns the options in force, defaults filled in: what a client
// needs to log in.
func (s *Server) Options() Options { return s.opts }

// SetCatalog replaces what the server serves, e.g. to rename, add or remove
// pages between two detection runs.
func (s *Server) SetCatalog(cat sample.Catalog) {
	c := cloneCatalog(cat)
	s.mu.Lock()
	s.cat = c
	s.mu.Unlock()
}

// ExpireTokens makes every token issued so far invalid: the next resource
// call with one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// InjectFailures makes the next n requests whose path starts with pathPrefix
// answer status with a JSON error body. A 429 also says RateLimit-Remaining 0
// and RateLimit-Reset 1. Injections queue in the order given.
func (s *Server) InjectFailures(pathPrefix string, status, n int) {
	s.inject(injection{prefix: pathPrefix, status: status, left: n})
}

// InjectMalformed makes the next n requests whose path starts with
// pathPrefix answer 200 with a body that is not valid JSON.
func (s *Server) InjectMalformed(pathPrefix string, n int) {
	s.inject(injection{prefix: pathPrefix, malformed: true, left: n})
}

func (s *Server) inject(in injection) {
	if in.left <= 0 {
		return
	}
	s.mu.Lock()
	s.injections = append(s.injections, in)
	s.mu.Unlock()
}

// Requests counts the requests received whose path starts with pathPrefix,
// whatever they were answered.
func (s *Server) Requests(pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.served {
		if strings.HasPrefix(p, pathPrefix) {
			n += c
		}
	}
	return n
}

// Listen serves on addr (default "127.0.0.1:0", a free loopback port) and
// returns the base URL; the token URL is url + TokenPath. close stops it.
func (s *Server) Listen(addr string) (url string, close func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local hotmart: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), srv.Close, nil
}

// ServeHTTP counts the request, applies the rate limit and any injected
// failure, then answers it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.opts.Now()
	s.mu.Lock()
	s.served[r.URL.Path]++
	if s.windowStart.IsZero() || !now.Before(s.windowStart.Add(time.Minute)) {
		s.windowStart, s.windowCount = now, 0
	}
	limited := s.windowCount >= s.opts.RequestsPerMinute
	if !limited {
		s.windowCount++
	}
	remaining := s.opts.RequestsPerMinute - s.windowCount
	reset := int(math.Ceil(s.windowStart.Add(time.Minute).Sub(now).Seconds()))
	var inj *injection
	if !limited {
		inj = s.takeInjection(r.URL.Path)
	}
	s.mu.Unlock()

	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(s.opts.RequestsPerMinute))
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(reset))
	switch {
	case limited:
		writeError(w, http.StatusTooManyRequests, "too_many_requests",
			fmt.Sprintf("rate limit of %d requests per minute exceeded", s.opts.RequestsPerMinute))
	case inj != nil && inj.malformed:
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"items":[{"id":1117869,"name":"trunc`))
	case inj != nil:
		if inj.status == http.StatusTooManyRequests {
			h.Set("RateLimit-Remaining", "0")
			h.Set("RateLimit-Reset", "1")
		}
		writeError(w, inj.status, errorCode(inj.status), "injected failure")
	default:
		if f, ok := s.faultFor(r.URL.Path); ok {
			s.serveFaulty(w, r, f)
			return
		}
		s.mux.ServeHTTP(w, r)
	}
}

// takeInjection pops the first injection matching path; s.mu is held.
func (s *Server) takeInjection(path string) *injection {
	for i := range s.injections {
		in := &s.injections[i]
		if !strings.HasPrefix(path, in.prefix) {
			continue
		}
		taken := *in
		in.left--
		if in.left == 0 {
			s.injections = append(s.injections[:i], s.injections[i+1:]...)
		}
		return &taken
	}
	return nil
}

func errorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	q := r.URL.Query()
	if g := q.Get("grant_type"); g != "client_credentials" {
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", g))
		return
	}
	basic, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	if !ok || !equal(basic, s.opts.BasicToken) || !equal(q.Get("client_id"), s.opts.ClientID) ||
		!equal(q.Get("client_secret"), s.opts.ClientSecret) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "Bad credentials")
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = s.opts.Now().Add(s.opts.TokenTTL)
	s.mu.Unlock()
	answer := map[string]any{
		"access_token": tok, "token_type": "bearer", "expires_in": max(int(s.opts.TokenTTL/time.Second), 1),
		"scope": "read write", "jti": hex.EncodeToString(b[:8]),
	}
	if s.opts.OmitExpiresIn {
		delete(answer, "expires_in")
	}
	writeJSON(w, http.StatusOK, answer)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authorized admits GET requests with a valid, unexpired bearer token.
func (s *Server) authorized(next func(http.ResponseWriter, *http.Request, sample.Catalog)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, known := s.tokens[tok]
		valid := ok && known && s.opts.Now().Before(exp)
		cat := s.cat
		s.mu.Unlock()
		if !valid {
			writeError(w, http.StatusUnauthorized, "invalid_token", "Access token expired or invalid")
			return
		}
		next(w, r, cat)
	}
}

// Wire shapes (DESIGN.md section 5). They repeat the client's on purpose: a
// server sharing the client's structs would share a misspelled JSON tag too,
// and the tests could not catch it.
type (
	productJSON struct {
		ID        int64  `json:"id"`
		Name      string `json:"name"`
		Ucode     string `json:"ucode"`
		Status    string `json:"status"`
		Format    string `json:"format"`
		CreatedAt int64  `json:"created_at"`
	}
	pageInfoJSON struct {
		NextPageToken  string `json:"next_page_token,omitempty"`
		ResultsPerPage int    `json:"results_per_page"`
		TotalResults   int    `json:"total_results"`
	}
	moduleJSON struct {
		ModuleID   string `json:"module_id"`
		Name       string `json:"name"`
		Sequence   int    `json:"sequence"`
		IsExtra    bool   `json:"is_extra"`
		IsPublic   bool   `json:"is_public"`
		TotalPages int    `json:"total_pages"`
	}
	pageJSON struct {
		PageID    string `json:"page_id"`
		Name      string `json:"name"`
		Type      string `json:"type"`
		PageOrder int    `json:"page_order"`
		Published bool   `json:"published"`
		HasMedia  bool   `json:"has_media"`
	}
)

// createdAt gives a product a stable creation date (the sample has none):
// it depends on the id only, so reordering the catalog does not move it.
func createdAt(id int64) int64 {
	base := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	return base.Add(time.Duration(id%100_000) * time.Minute).UnixMilli()
}

func (s *Server) handleProducts(w http.ResponseWriter, r *http.Request, cat sample.Catalog) {
	q := r.URL.Query()
	size := s.opts.ProductsPageSize
	if v := q.Get("max_results"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("max_results %q is not a positive integer", v))
			return
		}
		size = min(size, n)
	}
	offset := 0
	if v := q.Get("page_token"); v != "" {
		n, err := decodePageToken(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("page_token %q is not valid", v))
			return
		}
		offset = n
	}
	var all []productJSON
	for _, p := range cat.Products {
		if st := q.Get("status"); st != "" && !strings.EqualFold(st, p.Status) {
			continue
		}
		if f := q.Get("format"); f != "" && !strings.EqualFold(f, p.Format) {
			continue
		}
		all = append(all, productJSON{ID: p.ID, Name: p.Name, Ucode: p.Ucode, Status: p.Status,
			Format: p.Format, CreatedAt: createdAt(p.ID)})
	}
	offset = min(offset, len(all))
	end := min(offset+size, len(all))
	info := pageInfoJSON{ResultsPerPage: size, TotalResults: len(all)}
	switch {
	case end < len(all):
		info.NextPageToken = encodePageToken(end)
	case s.looping():
		info.NextPageToken = encodePageToken(0) // back to the first page, for ever
	}
	items := append([]productJSON{}, all[offset:end]...)
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "page_info": info})
}

// Page tokens are opaque to clients; here they carry the next offset.
func encodePageToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodePageToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, errors.New("not a page token")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("not a page token")
	}
	return n, nil
}

func (s *Server) handleModules(w http.ResponseWriter, r *http.Request, cat sample.Catalog) {
	sub := r.URL.Query().Get("subdomain")
	if sub == "" {
		writeError(w, http.StatusBadRequest, "invalid_parameter", "subdomain is required")
		return
	}
	for _, p := range cat.Products {
		if p.ClubSubdomain != sub {
			continue
		}
		out := make([]moduleJSON, 0, len(p.Modules))
		for _, m := range p.Modules {
			out = append(out, moduleJSON{ModuleID: m.ModuleID, Name: m.Name, Sequence: m.Sequence,
				IsExtra: m.IsExtra, IsPublic: m.IsPublic, TotalPages: len(m.Pages)})
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no club with subdomain %q", sub))
}

func (s *Server) handlePages(w http.ResponseWriter, r *http.Request, cat sample.Catalog) {
	moduleID := r.PathValue("module_id")
	v := r.URL.Query().Get("product_id")
	productID, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("product_id %q is not a product id", v))
		return
	}
	for _, p := range cat.Products {
		if p.ID != productID {
			continue
		}
		for _, m := range p.Modules {
			if m.ModuleID != moduleID {
				continue
			}
			out := make([]json.RawMessage, 0, len(m.Pages))
			for _, pg := range m.Pages {
				out = append(out, withOverrides(pageJSON{PageID: pg.PageID, Name: pg.Name, Type: pg.Type,
					PageOrder: pg.PageOrder, Published: pg.Published, HasMedia: pg.HasMedia}, s.pageOverrides(pg.PageID)))
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no module %q in product %d", moduleID, productID))
		return
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no product %d", productID))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// cloneCatalog copies the slices of cat, so a caller changing its catalog
// after handing it over cannot race with requests.
func cloneCatalog(cat sample.Catalog) sample.Catalog {
	out := cat
	out.Products = make([]sample.Product, len(cat.Products))
	for i, p := range cat.Products {
		p.Modules = make([]sample.Module, len(p.Modules))
		for j, m := range cat.Products[i].Modules {
			m.Pages = append([]sample.Page(nil), m.Pages...)
			p.Modules[j] = m
		}
		out.Products[i] = p
	}
	return out
}
