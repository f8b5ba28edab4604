// Package hotmart is the client of the Hotmart API the detector reads course
// structure from: products, then each product's Club modules, then each
// module's pages (DESIGN.md section 5).
//
// The client authenticates with OAuth client credentials and caches the
// token, keeps under Hotmart's per-application rate limit on its own side and
// obeys the server's RateLimit headers, and retries 429s, 5xx and transport
// errors with exponential backoff and jitter. Every failure is an error that
// names the call that failed, marked failure.Permanent or failure.Retryable so
// a handler knows whether a redelivery can help. Lists are decoded element by
// element (lenient.go): an element that does not fit is left out and named,
// never the whole list lost to it. The same paths are served by local/hotmart
// for tests and the offline demo.
package hotmart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultRequestsPerMinute = 450 // Hotmart allows 500 per minute per application
	DefaultMaxAttempts       = 5
	DefaultRetryBaseDelay    = 500 * time.Millisecond
	maxRetryDelay            = 30 * time.Second
	maxPause                 = 5 * time.Minute // ceiling on a RateLimit-Reset we obey
	maxBodyBytes             = 32 << 20
)

// Config configures a Client. BaseURL, TokenURL and the three credentials are
// required; the rest have defaults.
type Config struct {
	// BaseURL is https://developers.hotmart.com (production),
	// https://sandbox.hotmart.com (sandbox) or a local server.
	BaseURL string
	// TokenURL is https://api-sec-vlc.hotmart.com/security/oauth/token, or a
	// local server's /security/oauth/token.
	TokenURL                           string
	ClientID, ClientSecret, BasicToken string
	// RequestsPerMinute is the client-side rate limit (default 450, under
	// Hotmart's 500, leaving room for other tools sharing the credentials).
	RequestsPerMinute int
	// MaxAttempts bounds the attempts of one call, the first included
	// (default 5).
	MaxAttempts int
	// RetryBaseDelay is the first backoff delay; later ones grow 1.5 times
	// each, with ±50% jitter, up to 30 s (default 500 ms). Tests lower it.
	RetryBaseDelay time.Duration
	// HTTPClient sends the requests (default: a client with a one-minute
	// timeout).
	HTTPClient *http.Client
	// Logger gets a debug record per request and a warning per retry
	// (default slog.Default()).
	Logger *slog.Logger
}

// Client calls the Hotmart API. It is safe for concurrent use; create one per
// process instance and share it.
type Client struct {
	baseURL     string
	tokenURL    *url.URL
	cfg         Config
	http        *http.Client
	log         *slog.Logger
	limiter     *rate.Limiter
	maxAttempts int
	now         func() time.Time

	// tokenSem admits one token fetch at a time; concurrent callers wait
	// for it and reuse its token.
	tokenSem chan struct{}
	tokenMu  sync.Mutex
	token    string
	tokenExp time.Time // refresh from here on (a margin before real expiry)

	pauseMu    sync.Mutex
	pauseUntil time.Time // no request leaves before this (server said the window is used up)
}

// New checks cfg and returns a client. It names every missing or malformed
// field in one error.
func New(cfg Config) (*Client, error) {
	var problems []string
	required := []struct{ name, value string }{
		{"BaseURL", cfg.BaseURL}, {"TokenURL", cfg.TokenURL},
		{"ClientID", cfg.ClientID}, {"ClientSecret", cfg.ClientSecret}, {"BasicToken", cfg.BasicToken},
	}
	var missing []string
	for _, f := range required {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", "))
	}
	if cfg.BaseURL != "" {
		if err := checkURL(cfg.BaseURL); err != nil {
			problems = append(problems, "BaseURL "+err.Error())
		}
	}
	var tokenURL *url.URL
	if cfg.TokenURL != "" {
		if err := checkURL(cfg.TokenURL); err != nil {
			problems = append(problems, "TokenURL "+err.Error())
		} else {
			tokenURL, _ = url.Parse(cfg.TokenURL)
		}
	}
	if cfg.RequestsPerMinute < 0 {
		problems = append(problems, fmt.Sprintf("RequestsPerMinute %d is negative", cfg.RequestsPerMinute))
	}
	if cfg.MaxAttempts < 0 {
		problems = append(problems, fmt.Sprintf("MaxAttempts %d is negative", cfg.MaxAttempts))
	}
	if cfg.RetryBaseDelay < 0 {
		problems = append(problems, fmt.Sprintf("RetryBaseDelay %s is negative", cfg.RetryBaseDelay))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("hotmart: config: %s", strings.Join(problems, "; "))
	}
	if cfg.RequestsPerMinute == 0 {
		cfg.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryBaseDelay == 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{
		baseURL:  strings.TrimRight(cfg.BaseURL, "/"),
		tokenURL: tokenURL,
		cfg:      cfg,
		http:     hc,
		log:      log.With("component", "hotmart"),
		// Burst 1: requests are spread evenly, so no 60-second span
		// (and so no fixed server window) sees more than the limit + 1.
		limiter:     rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), 1),
		maxAttempts: cfg.MaxAttempts,
		now:         time.Now,
		tokenSem:    make(chan struct{}, 1),
	}, nil
}

// seconds is how durations are logged, here and in every log line of the
// detect stage: a number of seconds (millisecond precision) under a key
// ending in "Seconds", which Cloud Logging shows and filters as a number.
// slog would write a time.Duration as raw nanoseconds.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// request is one logical call: what it is, and how to send it.
type request struct {
	call   string // what the call does, for errors and logs: "list pages of module m1"
	method string
	url    string // sent
	logURL string // shown: the URL without secrets
	bearer bool   // resource call with the cached token; else the token call itself
}

// do runs req with retries and decodes a 2xx JSON body into out.
func (c *Client) do(ctx context.Context, req request, out any) error {
	attempts := 0
	op := func() (struct{}, error) {
		err := c.attempt(ctx, req, out, &attempts)
		if err != nil && !retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.RetryBaseDelay,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         maxRetryDelay,
	}
	_, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(bo),
		backoff.WithMaxTries(uint(c.maxAttempts)),
		backoff.WithMaxElapsedTime(0), // bounded by MaxAttempts and ctx
		backoff.WithNotify(func(err error, wait time.Duration) {
			// The rate-limit pause, when longer, stretches the wait.
			wait = max(wait, time.Until(c.pausedUntil()))
			c.log.WarnContext(ctx, "hotmart call failed, retrying",
				"call", req.call, "attempt", attempts, "maxAttempts", c.maxAttempts,
				"waitSeconds", seconds(wait), "error", err)
		}))
	if err == nil {
		return nil
	}
	return c.classify(req, err, attempts)
}

// attempt is one try of req; for a resource call a 401 gets a new token and
// one immediate resend within the same attempt.
func (c *Client) attempt(ctx context.Context, req request, out any, attempts *int) error {
	refreshed := false
	for {
		authz := "Basic " + c.cfg.BasicToken
		var tok string
		if req.bearer {
			var err error
			if tok, err = c.accessToken(ctx); err != nil {
				return &tokenError{err: err}
			}
			authz = "Bearer " + tok
		}
		*attempts++
		resp, body, err := c.roundTrip(ctx, req, authz, *attempts)
		if err != nil {
			return &transportError{err: err}
		}
		if req.bearer && resp.StatusCode == http.StatusUnauthorized && !refreshed {
			refreshed = true
			c.invalidate(tok)
			c.log.DebugContext(ctx, "hotmart token refused, fetching a new one", "call", req.call)
			continue
		}
		err = decode(req, resp, body, out)
		if apiErr, ok := err.(*APIError); ok {
			apiErr.Attempts = *attempts
		}
		return err
	}
}

// roundTrip waits for the rate limits, sends one request and reads its body.
func (c *Client) roundTrip(ctx context.Context, req request, authz string, attempt int) (*http.Response, []byte, error) {
	if err := c.waitTurn(ctx, req); err != nil {
		return nil, nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, req.url, nil)
	if err != nil {
		return nil, nil, err
	}
	hr.Header.Set("Authorization", authz)
	hr.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := c.http.Do(hr)
	if err != nil {
		c.log.DebugContext(ctx, "hotmart request", "call", req.call, "method", req.method,
			"url", req.logURL, "attempt", attempt, "durationSeconds", seconds(time.Since(start)), "error", err)
		return nil, nil, sanitize(err, req)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	c.log.DebugContext(ctx, "hotmart request", "call", req.call, "method", req.method,
		"url", req.logURL, "attempt", attempt, "status", resp.StatusCode, "durationSeconds", seconds(time.Since(start)),
		"rateLimitRemaining", resp.Header.Get("RateLimit-Remaining"))
	c.observeRateLimit(resp)
	if err != nil {
		return nil, nil, fmt.Errorf("read response body: %w", err)
	}
	return resp, body, nil
}

// sanitize keeps the token URL's secrets out of transport errors, which
// quote the URL they failed on.
func sanitize(err error, req request) error {
	var ue *url.Error
	if errors.As(err, &ue) && req.logURL != req.url {
		return &url.Error{Op: ue.Op, URL: req.logURL, Err: ue.Err}
	}
	return err
}

// waitTurn blocks until the server's window has room (RateLimit-Reset after
// RateLimit-Remaining 0 or a 429) and the client-side limiter allows a request.
func (c *Client) waitTurn(ctx context.Context, req request) error {
	for {
		d := time.Until(c.pausedUntil())
		if d <= 0 {
			break
		}
		c.log.DebugContext(ctx, "hotmart rate limit reached, pausing", "call", req.call, "pauseSeconds", seconds(d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
	return c.limiter.Wait(ctx)
}

func (c *Client) pausedUntil() time.Time {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	return c.pauseUntil
}

// observeRateLimit pauses every call until the server's window resets when
// it says none is left, or answers 429.
func (c *Client) observeRateLimit(resp *http.Response) {
	var wait time.Duration
	reset, hasReset := parseReset(resp.Header.Get("RateLimit-Reset"), c.now())
	if strings.TrimSpace(resp.Header.Get("RateLimit-Remaining")) == "0" && hasReset {
		wait = reset
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		if hasReset {
			wait = max(wait, reset)
		}
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
			wait = max(wait, ra)
		}
	}
	if wait <= 0 {
		return
	}
	wait = min(wait, maxPause)
	until := time.Now().Add(wait)
	c.pauseMu.Lock()
	if until.After(c.pauseUntil) {
		c.pauseUntil = until
	}
	c.pauseMu.Unlock()
}

// parseReset reads RateLimit-Reset: seconds until the window resets. A value
// that can only be a Unix time is read as one.
func parseReset(v string, now time.Time) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	if f > 1e9 {
		return time.Unix(int64(f), 0).Sub(now), true
	}
	return time.Duration(f * float64(time.Second)), true
}

// parseRetryAfter reads Retry-After: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}
