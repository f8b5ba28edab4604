package hotmart_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/hotmart"
	"github.com/coursekb/pipeline/local/sample"
)

func loadSample(t *testing.T) sample.Catalog {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// start runs s on a loopback port, as the demo does.
func start(t *testing.T, s *hotmart.Server) string {
	t.Helper()
	base, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	return base
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func send(t *testing.T, method, u, authz string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body) // arrays and broken bodies leave body nil
	return a
}

func tokenURL(base string, o hotmart.Options) string {
	return base + hotmart.TokenPath + "?" + url.Values{"grant_type": {"client_credentials"},
		"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}}.Encode()
}

func login(t *testing.T, base string, s *hotmart.Server) string {
	t.Helper()
	a := send(t, http.MethodPost, tokenURL(base, s.Options()), "Basic "+s.Options().BasicToken)
	tok, _ := a.body["access_token"].(string)
	if a.status != http.StatusOK || tok == "" {
		t.Fatalf("login: %d %s", a.status, a.raw)
	}
	return "Bearer " + tok
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := hotmart.NewServer(loadSample(t), hotmart.Options{ClientID: "id", ClientSecret: "secret", TokenTTL: 2 * time.Hour})
	base := start(t, s)
	o := s.Options()
	if o.BasicToken != "aWQ6c2VjcmV0" { // base64("id:secret"), as Hotmart's
		t.Errorf("default BasicToken = %q", o.BasicToken)
	}
	good := tokenURL(base, o)
	tests := []struct {
		name, method, url, authz string
		status                   int
		code                     string
	}{
		{"good", http.MethodPost, good, "Basic " + o.BasicToken, 200, ""},
		{"wrong secret", http.MethodPost, strings.Replace(good, "secret", "guess", 1), "Basic " + o.BasicToken, 401, "unauthorized"},
		{"wrong basic token", http.MethodPost, good, "Basic d3Jvbmc=", 401, "unauthorized"},
		{"no authorization", http.MethodPost, good, "", 401, "unauthorized"},
		{"other grant", http.MethodPost, strings.Replace(good, "client_credentials", "password", 1), "Basic " + o.BasicToken, 400, "unsupported_grant_type"},
		{"GET", http.MethodGet, good, "Basic " + o.BasicToken, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := send(t, tt.method, tt.url, tt.authz)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.raw)
			}
			if tt.code != "" {
				if a.body["error"] != tt.code || a.body["error_description"] == "" {
					t.Errorf("body %s, want error %q with a description", a.raw, tt.code)
				}
				return
			}
			if tok, _ := a.body["access_token"].(string); tok == "" || a.body["expires_in"] != float64(7200) {
				t.Errorf("body %s, want access_token and expires_in 7200", a.raw)
			}
		})
	}
}

func TestResourceCallsNeedAValidToken(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := hotmart.NewServer(loadSample(t), hotmart.Options{TokenTTL: time.Hour, Now: clock})
	base := start(t, s)
	modules := base + hotmart.ModulesPath + "?subdomain=python-desde-cero"
	bearer := login(t, base, s)

	if a := send(t, http.MethodGet, modules, bearer); a.status != 200 {
		t.Fatalf("with a fresh token: %d %s", a.status, a.raw)
	}
	for name, authz := range map[string]string{"none": "", "unknown": "Bearer nope", "basic": "Basic " + s.Options().BasicToken} {
		if a := send(t, http.MethodGet, modules, authz); a.status != 401 || a.body["error"] != "invalid_token" {
			t.Errorf("%s: %d %s, want 401 invalid_token", name, a.status, a.raw)
		}
	}
	now.Add(int64(time.Hour))
	if a := send(t, http.MethodGet, modules, bearer); a.status != 401 || a.body["error"] != "invalid_token" {
		t.Errorf("after TokenTTL: %d %s, want 401 invalid_token", a.status, a.raw)
	}
	bearer = login(t, base, s)
	s.ExpireTokens()
	if a := send(t, http.MethodGet, modules, bearer); a.status != 401 {
		t.Errorf("after ExpireTokens: %d %s, want 401", a.status, a.raw)
	}
}

func TestResources(t *testing.T) {
	t.Parallel()
	cat := loadSample(t)
	s := hotmart.NewServer(cat, hotmart.Options{ProductsPageSize: 1})
	base := start(t, s)
	bearer := login(t, base, s)

	// Products, one per page, each page pointing at the next.
	var ids []float64
	next := ""
	for page := 0; page < 5; page++ {
		u := base + hotmart.ProductsPath + "?max_results=50"
		if next != "" {
			u += "&page_token=" + url.QueryEscape(next)
		}
		a := send(t, http.MethodGet, u, bearer)
		if a.status != 200 {
			t.Fatalf("products page %d: %d %s", page, a.status, a.raw)
		}
		items := a.body["items"].([]any)
		info := a.body["page_info"].(map[string]any)
		for _, it := range items {
			p := it.(map[string]any)
			for _, k := range []string{"id", "name", "ucode", "status", "format", "created_at"} {
				if _, ok := p[k]; !ok {
					t.Errorf("product %s has no %q", a.raw, k)
				}
			}
			if ms := p["created_at"].(float64); ms < 1e12 {
				t.Errorf("created_at %v is not epoch milliseconds", ms)
			}
			ids = append(ids, p["id"].(float64))
		}
		if info["results_per_page"] != float64(1) {
			t.Errorf("results_per_page = %v, want 1", info["results_per_page"])
		}
		next, _ = info["next_page_token"].(string)
		if next == "" {
			break
		}
	}
	if len(ids) != len(cat.Products) || ids[0] != float64(cat.Products[0].ID) {
		t.Errorf("walked products %v, want the %d of the catalog in order", ids, len(cat.Products))
	}

	// Modules and pages: bare arrays with Hotmart's field names.
	p := cat.Products[0]
	a := send(t, http.MethodGet, base+hotmart.ModulesPath+"?subdomain="+p.ClubSubdomain, bearer)
	var mods []map[string]any
	if err := json.Unmarshal(a.raw, &mods); err != nil || len(mods) != len(p.Modules) {
		t.Fatalf("modules: %d %s", a.status, a.raw)
	}
	if mods[0]["module_id"] != p.Modules[0].ModuleID || mods[0]["total_pages"] != float64(len(p.Modules[0].Pages)) {
		t.Errorf("module %v, want %s with total_pages %d", mods[0], p.Modules[0].ModuleID, len(p.Modules[0].Pages))
	}
	pagesURL := base + "/club/api/v2/modules/" + p.Modules[0].ModuleID + "/pages?product_id=4100001"
	a = send(t, http.MethodGet, pagesURL, bearer)
	var pages []map[string]any
	if err := json.Unmarshal(a.raw, &pages); err != nil || len(pages) != len(p.Modules[0].Pages) {
		t.Fatalf("pages: %d %s", a.status, a.raw)
	}
	want := p.Modules[0].Pages[0]
	got := pages[0]
	if got["page_id"] != want.PageID || got["name"] != want.Name || got["type"] != want.Type ||
		got["page_order"] != float64(want.PageOrder) || got["published"] != want.Published || got["has_media"] != want.HasMedia {
		t.Errorf("page %v, want %+v", got, want)
	}

	// SetCatalog: a renamed page shows on the next call.
	renamed := loadSample(t)
	renamed.Products[0].Modules[0].Pages[0].Name = "Renamed"
	s.SetCatalog(renamed)
	a = send(t, http.MethodGet, pagesURL, bearer)
	if !strings.Contains(string(a.raw), `"name":"Renamed"`) {
		t.Errorf("after SetCatalog: %s", a.raw)
	}

	// Unknown things are JSON 404s; bad parameters JSON 400s.
	for _, tc := range []struct {
		path   string
		status int
	}{
		{hotmart.ModulesPath + "?subdomain=nope", 404},
		{"/club/api/v2/modules/nope/pages?product_id=4100001", 404},
		{"/club/api/v2/modules/pyM1fund01/pages?product_id=1", 404},
		{"/club/api/v2/modules/pyM1fund01/pages", 400},
		{hotmart.ModulesPath, 400},
		{hotmart.ProductsPath + "?page_token=garbage", 400},
		{"/no/such/path", 404},
	} {
		a := send(t, http.MethodGet, base+tc.path, bearer)
		if a.status != tc.status || a.body["error"] == nil || a.body["error_description"] == nil {
			t.Errorf("GET %s: %d %s, want %d with a JSON error", tc.path, a.status, a.raw, tc.status)
		}
	}
}

func TestRateLimitWindow(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := hotmart.NewServer(loadSample(t), hotmart.Options{RequestsPerMinute: 3, Now: clock})
	base := start(t, s)
	u := base + hotmart.ProductsPath // unauthenticated: still counted, still has headers

	steps := []struct {
		advance          time.Duration
		status           int
		remaining, reset string
	}{
		{0, 401, "2", "60"},
		{10 * time.Second, 401, "1", "50"},
		{0, 401, "0", "50"},
		{0, 429, "0", "50"},
		{49500 * time.Millisecond, 429, "0", "1"},
		{500 * time.Millisecond, 401, "2", "60"}, // a new window
	}
	for i, st := range steps {
		now.Add(int64(st.advance))
		a := send(t, http.MethodGet, u, "")
		h := a.header
		if a.status != st.status || h.Get("RateLimit-Limit") != "3" ||
			h.Get("RateLimit-Remaining") != st.remaining || h.Get("RateLimit-Reset") != st.reset {
			t.Errorf("step %d: %d Limit=%s Remaining=%s Reset=%s, want %d 3 %s %s", i, a.status,
				h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("RateLimit-Reset"),
				st.status, st.remaining, st.reset)
		}
		if a.status == 429 && a.body["error"] != "too_many_requests" {
			t.Errorf("step %d: 429 body %s", i, a.raw)
		}
	}
	if n := s.Requests(hotmart.ProductsPath); n != len(steps) {
		t.Errorf("Requests = %d, want %d", n, len(steps))
	}
}

func TestInjections(t *testing.T) {
	t.Parallel()
	s := hotmart.NewServer(loadSample(t), hotmart.Options{})
	base := start(t, s)
	bearer := login(t, base, s)
	modules := base + hotmart.ModulesPath + "?subdomain=python-desde-cero"
	products := base + hotmart.ProductsPath

	s.InjectFailures("/club/", http.StatusTooManyRequests, 1)
	s.InjectFailures("/club/", http.StatusInternalServerError, 1)
	s.InjectMalformed(hotmart.ProductsPath, 1)

	if a := send(t, http.MethodGet, products, bearer); a.status != 200 || json.Valid(a.raw) {
		t.Errorf("injected malformed: %d %s, want 200 with broken JSON", a.status, a.raw)
	}
	if a := send(t, http.MethodGet, products, bearer); a.status != 200 || !json.Valid(a.raw) {
		t.Errorf("after the injection: %d %s", a.status, a.raw)
	}
	a := send(t, http.MethodGet, modules, bearer)
	if a.status != 429 || a.header.Get("RateLimit-Remaining") != "0" || a.header.Get("RateLimit-Reset") != "1" || a.body["error"] == nil {
		t.Errorf("injected 429: %d %v %s", a.status, a.header, a.raw)
	}
	if a := send(t, http.MethodGet, modules, bearer); a.status != 500 || a.body["error"] == nil {
		t.Errorf("injected 500: %d %s", a.status, a.raw)
	}
	if a := send(t, http.MethodGet, modules, bearer); a.status != 200 {
		t.Errorf("after the injections: %d %s", a.status, a.raw)
	}
	if n := s.Requests("/club/"); n != 3 {
		t.Errorf("Requests(/club/) = %d, want 3", n)
	}
	if n := s.Requests("/"); n != 6 {
		t.Errorf("Requests(/) = %d, want 6 (token + 5)", n)
	}
}

// Faults last until cleared, as a broken course on Hotmart does, and touch
// only the path they are set on.
func TestFaults(t *testing.T) {
	t.Parallel()
	s := hotmart.NewServer(loadSample(t), hotmart.Options{ProductsPageSize: 1})
	base := start(t, s)
	bearer := login(t, base, s)
	pages := func(module string) answer {
		return send(t, http.MethodGet, base+hotmart.PagesPathOf(module)+"?product_id=4100001", bearer)
	}
	healthy := pages("pyM1fund01").raw

	s.SetFault(hotmart.PagesPathOf("pyM1fund01"), hotmart.FaultTruncated)
	for range 2 {
		if a := pages("pyM1fund01"); a.status != 200 || json.Valid(a.raw) || !strings.HasPrefix(string(healthy), string(a.raw)) {
			t.Errorf("truncated: %d %s", a.status, a.raw)
		}
	}
	if a := pages("pyM2func01"); a.status != 200 || !json.Valid(a.raw) {
		t.Errorf("a sibling module is broken too: %d %s", a.status, a.raw)
	}
	s.ClearFaults()

	s.SetFault(hotmart.PagesPathOf("pyM1fund01"), hotmart.FaultObjectForArray)
	if a := pages("pyM1fund01"); string(a.raw) != `{"items":`+string(healthy)+`}` {
		t.Errorf("object for array: %s", a.raw)
	}
	s.ClearFaults()
	s.SetFault(hotmart.ModulesPath, hotmart.FaultNull)
	if a := send(t, http.MethodGet, base+hotmart.ModulesPath+"?subdomain=python-desde-cero", bearer); string(a.raw) != "null" {
		t.Errorf("null: %s", a.raw)
	}
	s.ClearFaults()

	// A page field sent as another JSON type, in every answer listing it.
	s.SetPageField("pyL1vars001", "page_id", json.RawMessage(`12345`))
	s.SetPageField("pyL1vars001", "name", json.RawMessage(`null`))
	var got []map[string]any
	if err := json.Unmarshal(pages("pyM1fund01").raw, &got); err != nil || got[0]["page_id"] != 12345.0 || got[0]["name"] != nil || got[1]["page_id"] != "pyL2cond002" {
		t.Errorf("overridden fields: %v %v", got, err)
	}
	s.ClearFaults()
	if a := pages("pyM1fund01"); string(a.raw) != string(healthy) {
		t.Errorf("after ClearFaults: %s", a.raw)
	}

	// A looping cursor: the last of the sample's two pages points back at
	// the first, whose next token is then a repeat.
	s.SetFault(hotmart.ProductsPath, hotmart.FaultLoopingCursor)
	tok := ""
	var tokens []string
	for range 3 {
		u := base + hotmart.ProductsPath
		if tok != "" {
			u += "?page_token=" + tok
		}
		a := send(t, http.MethodGet, u, bearer)
		info, _ := a.body["page_info"].(map[string]any)
		tok, _ = info["next_page_token"].(string)
		tokens = append(tokens, tok)
	}
	if tokens[0] == "" || tokens[1] == "" || tokens[1] == tokens[0] || tokens[2] != tokens[0] {
		t.Errorf("tokens %q: want the last page to lead back to the first, whose next token repeats", tokens)
	}
}
