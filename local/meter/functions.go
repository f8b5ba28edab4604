package meter

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Functions is a reverse proxy in front of the functions process that
// times every request by entry point (the first path segment: /Downloader
// is "Downloader"): the busy time a Cloud Run instance with concurrency 1
// bills, measured at the door. A request the process could not answer
// (killed, restarting) is answered 502, as Cloud Run's front end does.
type Functions struct {
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	busy     map[string]time.Duration
	requests map[string]int
	failed   map[string]int
}

// FunctionCounts is what Functions measured.
type FunctionCounts struct {
	// Seconds is the requests' summed duration, by entry point.
	Seconds map[string]float64
	// Requests counts requests by entry point; Failed those answered 5xx
	// or not at all.
	Requests, Failed map[string]int
}

// Sub returns c minus before.
func (c FunctionCounts) Sub(before FunctionCounts) FunctionCounts {
	o := FunctionCounts{Seconds: map[string]float64{}, Requests: map[string]int{}, Failed: map[string]int{}}
	for k, v := range c.Seconds {
		o.Seconds[k] = v - before.Seconds[k]
	}
	for k, v := range c.Requests {
		o.Requests[k] = v - before.Requests[k]
	}
	for k, v := range c.Failed {
		o.Failed[k] = v - before.Failed[k]
	}
	return o
}

// StartFunctions listens on a free loopback port and forwards to target, the
// functions process's base URL ("http://127.0.0.1:PORT").
func StartFunctions(target string) (*Functions, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("meter: functions target %q is not a URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("meter: listen: %w", err)
	}
	f := &Functions{ln: ln, busy: map[string]time.Duration{}, requests: map[string]int{}, failed: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "functions unreachable: "+err.Error(), http.StatusBadGateway)
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		rp.ServeHTTP(sw, r)
		d := time.Since(start)
		f.mu.Lock()
		f.busy[entry] += d
		f.requests[entry]++
		if sw.status >= 500 || sw.status == 0 {
			f.failed[entry]++
		}
		f.mu.Unlock()
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// URL is the proxy's base URL, to call the functions through.
func (f *Functions) URL() string { return "http://" + f.ln.Addr().String() }

// Counts returns what was measured so far.
func (f *Functions) Counts() FunctionCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FunctionCounts{Seconds: map[string]float64{}, Requests: maps.Clone(f.requests), Failed: maps.Clone(f.failed)}
	for k, d := range f.busy {
		c.Seconds[k] = d.Seconds()
	}
	return c
}

// Close stops the proxy and drops its connections.
func (f *Functions) Close() { _ = f.srv.Close() }

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}
