// Package cloudrun is the part of Cloud Run's front end the one-machine
// stack needs in front of the functions process: a request that runs past its
// function's timeout is cut off, the caller gets 504, and the function's
// request context is cancelled, as the platform does when a request reaches
// the service's timeout (terraform: timeout_seconds of each function).
package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// ParseTimeouts reads FUNCTION_TIMEOUTS: "Downloader=30m,Starter=60s", by
// entry point.
func ParseTimeouts(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var bad []error
	for _, part := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		d, err := time.ParseDuration(v)
		if !ok || name == "" || err != nil || d <= 0 {
			bad = append(bad, fmt.Errorf("%q is not <EntryPoint>=<duration>", part))
			continue
		}
		out[name] = d
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("FUNCTION_TIMEOUTS: %w", errors.Join(bad...))
	}
	return out, nil
}

// Front proxies to the functions served at backend (/<EntryPoint>), cutting
// each request off at its entry point's timeout. Entry points without one
// are not limited.
func Front(backend *url.URL, timeouts map[string]time.Duration) http.Handler {
	proxy := httputil.NewSingleHostReverseProxy(backend)
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
			http.Error(w, "upstream request timeout: the function ran past its timeout", http.StatusGatewayTimeout)
			return
		}
		http.Error(w, "the function's instance did not answer: "+err.Error(), http.StatusServiceUnavailable)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(r.URL.Path, "/")
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[:i]
		}
		if d, ok := timeouts[name]; ok {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			r = r.WithContext(ctx)
		}
		proxy.ServeHTTP(w, r)
	})
}
