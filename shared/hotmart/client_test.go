package hotmart_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	localhotmart "github.com/coursekb/pipeline/local/hotmart"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/hotmart"
)

// served is one request the local server answered.
type served struct {
	path   string
	status int
	at     time.Time
}

// env is a client talking over HTTP to a local Hotmart server.
type env struct {
	server *localhotmart.Server
	client *hotmart.Client
	cat    sample.Catalog

	mu    sync.Mutex
	log   []served
	after func(r *http.Request, status int) // runs after each response, if set
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

func (e *env) served(prefix string) []served {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []served
	for _, s := range e.log {
		if strings.HasPrefix(s.path, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// newEnv starts a local server on cat (the sample when empty) and a client
// with fast retries; edit adjusts the client config.
func newEnv(t *testing.T, cat sample.Catalog, opts localhotmart.Options, edit func(*hotmart.Config)) *env {
	t.Helper()
	if len(cat.Products) == 0 {
		cat = loadSample(t)
	}
	e := &env{server: localhotmart.NewServer(cat, opts), cat: cat}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		e.server.ServeHTTP(sw, r)
		e.mu.Lock()
		e.log = append(e.log, served{path: r.URL.Path, status: sw.status, at: arrived})
		after := e.after
		e.mu.Unlock()
		if after != nil {
			after(r, sw.status)
		}
	}))
	t.Cleanup(ts.Close)
	o := e.server.Options()
	cfg := hotmart.Config{
		BaseURL: ts.URL, TokenURL: ts.URL + localhotmart.TokenPath,
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, BasicToken: o.BasicToken,
		RequestsPerMinute: 60_000, RetryBaseDelay: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := hotmart.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

func loadSample(t *testing.T) sample.Catalog {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// bigCatalog is the sample plus copies of its first product, n in all.
func bigCatalog(t *testing.T, n int) sample.Catalog {
	cat := loadSample(t)
	for i := len(cat.Products); i < n; i++ {
		p := cat.Products[0]
		p.ID = 4200000 + int64(i)
		p.Name = fmt.Sprintf("Copia %d", i)
		p.ClubSubdomain = fmt.Sprintf("copia-%d", i)
		cat.Products = append(cat.Products, p)
	}
	return cat
}

func TestProductsFollowsTheCursor(t *testing.T) {
	t.Parallel()
	cat := bigCatalog(t, 4)
	e := newEnv(t, cat, localhotmart.Options{ProductsPageSize: 1}, nil)
	got, _, err := e.client.Products(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cat.Products) {
		t.Fatalf("got %d products, want %d", len(got), len(cat.Products))
	}
	for i, p := range cat.Products {
		g := got[i]
		if g.ID != p.ID || g.Name != p.Name || g.Ucode != p.Ucode || g.Status != p.Status || g.Format != p.Format {
			t.Errorf("product %d = %+v, want %+v", i, g, p)
		}
		if g.CreatedAt.IsZero() || g.CreatedAt.Year() < 2020 {
			t.Errorf("product %d CreatedAt = %v, want a date from epoch milliseconds", i, g.CreatedAt)
		}
	}
	if n := e.server.Requests(localhotmart.ProductsPath); n != 4 {
		t.Errorf("served %d product pages, want 4 (one per product)", n)
	}
}

// walk reads the whole structure, products then modules then pages, the
// pages of all modules concurrently.
func walk(ctx context.Context, c *hotmart.Client, between func()) (int, error) {
	products, _, err := c.Products(ctx)
	if err != nil {
		return 0, err
	}
	type job struct {
		product int64
		module  string
	}
	var jobs []job
	for _, p := range products {
		// The detector knows subdomains from its catalog; here the sample does.
		sub := map[int64]string{4100001: "python-desde-cero"}[p.ID]
		if sub == "" {
			continue
		}
		mods, _, err := c.Modules(ctx, sub)
		if err != nil {
			return 0, err
		}
		for _, m := range mods {
			jobs = append(jobs, job{p.ID, m.ID})
		}
	}
	between()
	var wg sync.WaitGroup
	var pages atomic.Int64
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Go(func() {
			ps, _, err := c.Pages(ctx, j.product, j.module)
			errs[i] = err
			pages.Add(int64(len(ps)))
		})
	}
	wg.Wait()
	return int(pages.Load()), errors.Join(errs...)
}

func TestExpiredTokenIsRefreshedOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(e *env) (between func())
	}{
		{"between calls, pages fetched concurrently", func(e *env) func() { return e.server.ExpireTokens }},
		{"in the middle of the products cursor", func(e *env) func() {
			e.after = func(r *http.Request, _ int) {
				if r.URL.Path == localhotmart.ProductsPath && r.URL.Query().Get("page_token") == "" {
					e.server.ExpireTokens()
				}
			}
			return func() {}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, bigCatalog(t, 3), localhotmart.Options{ProductsPageSize: 1}, nil)
			between := tt.setup(e)
			pages, err := walk(t.Context(), e.client, between)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, m := range e.cat.Products[0].Modules {
				want += len(m.Pages)
			}
			if pages != want {
				t.Errorf("walk found %d pages, want %d", pages, want)
			}
			if n := e.server.Requests(localhotmart.TokenPath); n != 2 {
				t.Errorf("token fetched %d times, want 2 (first, then one refresh)", n)
			}
			if n := len(filterStatus(e.served("/"), http.StatusUnauthorized)); n == 0 {
				t.Errorf("no request was refused: the test did not expire a token in use")
			}
		})
	}
}

// A token answer without expires_in is assumed to live a while: a walk
// fetches it once, not before every call.
func TestTokenWithoutLifetimeIsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, bigCatalog(t, 2), localhotmart.Options{OmitExpiresIn: true}, nil)
	if _, err := walk(t.Context(), e.client, func() {}); err != nil {
		t.Fatal(err)
	}
	if n := e.server.Requests(localhotmart.TokenPath); n != 1 {
		t.Fatalf("token fetched %d times for one walk, want 1", n)
	}
}

func filterStatus(s []served, status int) []served {
	var out []served
	for _, x := range s {
		if x.status == status {
			out = append(out, x)
		}
	}
	return out
}

func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		n        int
		minWait  time.Duration // the least the call must have taken
		requests int           // products requests served
	}{
		{"one 500", http.StatusInternalServerError, 1, 0, 2},
		{"two 503", http.StatusServiceUnavailable, 2, 0, 3},
		{"429 burst with RateLimit-Reset 1", http.StatusTooManyRequests, 2, 1800 * time.Millisecond, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, nil)
			e.server.InjectFailures(localhotmart.ProductsPath, tt.status, tt.n)
			start := time.Now()
			got, _, err := e.client.Products(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(e.cat.Products) {
				t.Errorf("got %d products, want %d", len(got), len(e.cat.Products))
			}
			if took := time.Since(start); took < tt.minWait {
				t.Errorf("took %v, want at least %v (the server's RateLimit-Reset)", took, tt.minWait)
			}
			if n := e.server.Requests(localhotmart.ProductsPath); n != tt.requests {
				t.Errorf("served %d products requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestRetriesStopAtMaxAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, func(c *hotmart.Config) { c.MaxAttempts = 3 })
	e.server.InjectFailures(localhotmart.ModulesPath, http.StatusBadGateway, 10)
	_, _, err := e.client.Modules(t.Context(), "python-desde-cero")
	var apiErr *hotmart.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want an APIError", err)
	}
	var retryable *failure.Retryable
	if !errors.As(err, &retryable) || failure.IsPermanent(err) {
		t.Errorf("err = %v, want failure.Retryable", err)
	}
	if apiErr.Status != http.StatusBadGateway || apiErr.Attempts != 3 {
		t.Errorf("status %d after %d attempts, want 502 after 3", apiErr.Status, apiErr.Attempts)
	}
	if n := e.server.Requests(localhotmart.ModulesPath); n != 3 {
		t.Errorf("served %d modules requests, want 3", n)
	}
}

func TestNonRetryableFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      func(s *localhotmart.Server)
		call       func(ctx context.Context, c *hotmart.Client) error
		path       string // requests counted
		status     int
		code       string
		inMessage  []string
		notMessage string
	}{
		{
			name:  "malformed products body",
			setup: func(s *localhotmart.Server) { s.InjectMalformed(localhotmart.ProductsPath, 5) },
			call:  func(ctx context.Context, c *hotmart.Client) error { _, _, err := c.Products(ctx); return err },
			path:  localhotmart.ProductsPath, status: 200, code: hotmart.CodeMalformed,
			inMessage: []string{"list products", "malformed body", `"trunc`},
		},
		{
			name:  "malformed pages body",
			setup: func(s *localhotmart.Server) { s.InjectMalformed("/club/api/v2/", 5) },
			call: func(ctx context.Context, c *hotmart.Client) error {
				_, _, err := c.Pages(ctx, 4100001, "pyM1fund01")
				return err
			},
			path: "/club/api/v2/", status: 200, code: hotmart.CodeMalformed,
			inMessage: []string{"list pages of module pyM1fund01", "malformed body"},
		},
		{
			name: "unknown module",
			call: func(ctx context.Context, c *hotmart.Client) error {
				_, _, err := c.Pages(ctx, 4100001, "nope")
				return err
			},
			path: "/club/api/v2/", status: 404, code: "not_found",
			inMessage: []string{"list pages of module nope", "404", `no module "nope"`},
		},
		{
			name: "module id is one escaped path segment",
			call: func(ctx context.Context, c *hotmart.Client) error {
				_, _, err := c.Pages(ctx, 4100001, "a/../b c")
				return err
			},
			path: "/club/api/v2/", status: 404, code: "not_found",
			inMessage: []string{`no module "a/../b c"`, "a%2F..%2Fb%20c"},
		},
		{
			name: "unknown club",
			call: func(ctx context.Context, c *hotmart.Client) error {
				_, _, err := c.Modules(ctx, "nope")
				return err
			},
			path: localhotmart.ModulesPath, status: 404, code: "not_found",
			inMessage: []string{`list modules of club "nope"`, "subdomain=nope"},
		},
		{
			name: "bad request",
			setup: func(s *localhotmart.Server) {
				s.InjectFailures(localhotmart.ModulesPath, http.StatusBadRequest, 5)
			},
			call: func(ctx context.Context, c *hotmart.Client) error {
				_, _, err := c.Modules(ctx, "python-desde-cero")
				return err
			},
			path: localhotmart.ModulesPath, status: 400, code: "bad_request",
			inMessage: []string{"injected failure"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, nil)
			if tt.setup != nil {
				tt.setup(e.server)
			}
			err := tt.call(t.Context(), e.client)
			t.Logf("error: %v", err)
			var apiErr *hotmart.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an APIError", err)
			}
			if !failure.IsPermanent(err) {
				t.Errorf("err = %v, want failure.Permanent", err)
			}
			if apiErr.Status != tt.status || apiErr.Code != tt.code || apiErr.Attempts != 1 {
				t.Errorf("status %d code %q attempts %d, want %d %q 1", apiErr.Status, apiErr.Code, apiErr.Attempts, tt.status, tt.code)
			}
			for _, s := range tt.inMessage {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q does not contain %q", err, s)
				}
			}
			if n := e.server.Requests(tt.path); n != 1 {
				t.Errorf("served %d requests under %s, want 1 (no retry)", n, tt.path)
			}
		})
	}
}

func TestWrongCredentialsArePermanentAndSecretStaysOut(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-do-not-log"
	e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, func(c *hotmart.Config) { c.ClientSecret = secret })
	_, _, err := e.client.Products(t.Context())
	var apiErr *hotmart.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Call != "fetch access token" {
		t.Fatalf("err = %v, want a 401 APIError from the token call", err)
	}
	if !failure.IsPermanent(err) {
		t.Errorf("err = %v, want failure.Permanent", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("message %q shows the client secret", err)
	}
	if !strings.Contains(err.Error(), "list products") {
		t.Errorf("message %q does not name the call", err)
	}
	if n := e.server.Requests(localhotmart.TokenPath); n != 1 {
		t.Errorf("token endpoint called %d times, want 1", n)
	}
	if n := e.server.Requests(localhotmart.ProductsPath); n != 0 {
		t.Errorf("products called %d times without a token, want 0", n)
	}
}

// The server says its window is used up (RateLimit-Remaining 0,
// RateLimit-Reset 1): the next call waits for the reset instead of
// collecting a 429.
func TestRemainingZeroPausesUntilReset(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := newEnv(t, sample.Catalog{}, localhotmart.Options{RequestsPerMinute: 3, Now: now}, nil)
	ctx := t.Context()
	if _, _, err := e.client.Products(ctx); err != nil { // token + products: 2 of 3
		t.Fatal(err)
	}
	// Move the server's clock to 0.7 s before its window ends.
	windowStart := e.served("/")[0].at
	offset.Store(int64(60*time.Second - 700*time.Millisecond - time.Since(windowStart)))
	if _, _, err := e.client.Modules(ctx, "python-desde-cero"); err != nil { // 3 of 3: Remaining 0, Reset 1
		t.Fatal(err)
	}
	if _, _, err := e.client.Modules(ctx, "python-desde-cero"); err != nil {
		t.Fatal(err)
	}
	log := e.served("/")
	if n := len(filterStatus(log, http.StatusTooManyRequests)); n != 0 {
		t.Errorf("the server answered %d requests 429: the client did not pause until RateLimit-Reset", n)
	}
	if len(log) != 4 {
		t.Fatalf("served %d requests, want 4", len(log))
	}
	if gap := log[3].at.Sub(log[2].at); gap < 900*time.Millisecond {
		t.Errorf("request after Remaining 0 came %v later, want about the 1 s reset", gap)
	}
}

func TestClientLimiterSpacesRequests(t *testing.T) {
	t.Parallel()
	const perMinute = 600 // one every 100 ms
	e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, func(c *hotmart.Config) { c.RequestsPerMinute = perMinute })
	for range 4 {
		if _, _, err := e.client.Modules(t.Context(), "python-desde-cero"); err != nil {
			t.Fatal(err)
		}
	}
	log := e.served("/")
	if len(log) != 5 {
		t.Fatalf("served %d requests, want 5 (token + 4)", len(log))
	}
	// Departures are 100 ms apart. One arrival may be late and the next on
	// time (a busy machine), so the span of all of them is what is sure.
	if span := log[len(log)-1].at.Sub(log[0].at); span < 350*time.Millisecond {
		t.Errorf("5 requests arrived within %v, want about 400 ms (one every 100 ms)", span)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  hotmart.Config
		want []string
	}{
		{"empty", hotmart.Config{}, []string{"BaseURL", "TokenURL", "ClientID", "ClientSecret", "BasicToken"}},
		{"bad values", hotmart.Config{
			BaseURL: "developers.hotmart.com", TokenURL: "https://x/token", ClientID: "a", ClientSecret: "b",
			BasicToken: "c", RequestsPerMinute: -1, MaxAttempts: -2,
		}, []string{"BaseURL", "absolute", "RequestsPerMinute", "MaxAttempts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := hotmart.New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
	if _, err := hotmart.New(hotmart.Config{BaseURL: "https://developers.hotmart.com",
		TokenURL: "https://api-sec-vlc.hotmart.com/security/oauth/token", ClientID: "a", ClientSecret: "b", BasicToken: "c"}); err != nil {
		t.Errorf("New refused a valid config: %v", err)
	}
}

// Many calls refused at once with the same expired token share one refresh.
func TestConcurrentRefusalsShareOneRefresh(t *testing.T) {
	t.Parallel()
	// No client-side spacing, so the refusals really overlap.
	e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, func(c *hotmart.Config) { c.RequestsPerMinute = 1 << 30 })
	ctx := t.Context()
	if _, _, err := e.client.Products(ctx); err != nil {
		t.Fatal(err)
	}
	e.server.ExpireTokens()
	const callers = 16
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { _, _, errs[i] = e.client.Modules(ctx, "python-desde-cero") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := e.server.Requests(localhotmart.TokenPath); n != 2 {
		t.Errorf("token fetched %d times, want 2 (first, then one shared refresh)", n)
	}
}

// A host that does not answer: retried, then a retryable error that names
// the call and keeps the client secret (a query parameter of the token URL)
// out of the message.
func TestTransportErrorsAreRetriedThenRetryable(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	dead := ts.URL
	ts.Close()
	const secret = "s3cr3t-do-not-log"
	var logs syncBuffer
	c, err := hotmart.New(hotmart.Config{
		BaseURL: dead, TokenURL: dead + localhotmart.TokenPath, ClientID: "id", ClientSecret: secret,
		BasicToken: "b", MaxAttempts: 2, RetryBaseDelay: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Modules(t.Context(), "python-desde-cero")
	t.Logf("error: %v", err)
	var retryable *failure.Retryable
	if !errors.As(err, &retryable) {
		t.Fatalf("err = %v, want failure.Retryable", err)
	}
	for _, want := range []string{"list modules of club", "fetch access token", "2 attempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("message %q shows the client secret", err)
	}
	if n := strings.Count(logs.String(), "retrying"); n != 1 {
		t.Errorf("%d retries logged, want 1 (the token call's second attempt; the resource call adds none)", n)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
