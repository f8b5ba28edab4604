package openai

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is an error answer given instead of serving a request. The SDK
// retries 408, 409, 429 and 5xx answers (and connection errors) twice by
// default, waiting what retry-after-ms or retry-after say (up to two minutes;
// a longer wait ends the retries) or else 0.5 s doubling per attempt, capped at
// 8 s, minus up to 25 % jitter (openai-go v3 internal/requestconfig: shouldRetry,
// retryDelay). So a fault of Count 3 outlasts the default client; Count 2 is
// absorbed by it.
type Fault struct {
	// Status is the HTTP status to answer: 429, or 500, 502, 503, ...
	Status int
	// PathPrefix limits the fault to requests whose path, APIPrefix removed,
	// starts with it ("/embeddings", "/vector_stores", "/files"; a leading
	// APIPrefix is ignored); empty matches every request.
	PathPrefix string
	// Count is how many matching requests get the fault (default 1).
	Count int
	// RetryAfter is sent as retry-after (whole seconds, rounded up) and
	// retry-after-ms, which the SDK prefers; zero sends neither, and the SDK
	// falls back to its own backoff (about half a second first).
	RetryAfter time.Duration
	// AfterServing carries the request out and then replaces its answer by
	// the fault: an answer lost on the way back. The SDK's retry then repeats
	// the operation, as it would against OpenAI (a retried upload makes a
	// second file), which is what idempotency tests need.
	AfterServing bool
}

// InjectFault queues f: the next f.Count requests matching f.PathPrefix get
// it. Faults queue in the order given; a request takes the first that
// matches.
func (s *Server) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	f.PathPrefix = strings.TrimPrefix(f.PathPrefix, APIPrefix)
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// InjectFailures makes the next n requests whose path (APIPrefix removed)
// starts with pathPrefix answer status, with no retry-after header; as the
// local Hotmart's method of the same name.
func (s *Server) InjectFailures(pathPrefix string, status, n int) {
	if n <= 0 {
		return
	}
	s.InjectFault(Fault{Status: status, PathPrefix: pathPrefix, Count: n})
}

// takeFault pops one use of the first fault matching path; s.mu is held.
func (s *Server) takeFault(path string) *Fault {
	for i := range s.faults {
		f := &s.faults[i]
		if !strings.HasPrefix(path, f.PathPrefix) {
			continue
		}
		taken := *f
		f.Count--
		if f.Count == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		s.counters.Faults++
		return &taken
	}
	return nil
}

// writeFault answers f with OpenAI's bodies and, for 429, its rate-limit
// headers.
func writeFault(w http.ResponseWriter, f Fault) {
	h := w.Header()
	if f.RetryAfter > 0 {
		h.Set("retry-after", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		h.Set("retry-after-ms", strconv.FormatInt(f.RetryAfter.Milliseconds(), 10))
	}
	e := &apiError{status: f.Status}
	switch {
	case f.Status == http.StatusTooManyRequests:
		reset := f.RetryAfter
		if reset <= 0 {
			reset = time.Second
		}
		h.Set("x-ratelimit-limit-requests", "5000")
		h.Set("x-ratelimit-remaining-requests", "0")
		h.Set("x-ratelimit-reset-requests", reset.String())
		h.Set("x-ratelimit-limit-tokens", "5000000")
		h.Set("x-ratelimit-remaining-tokens", "4999000")
		h.Set("x-ratelimit-reset-tokens", "12ms")
		e.typ, e.code = "requests", "rate_limit_exceeded"
		e.message = fmt.Sprintf("Rate limit reached for requests per min (RPM): Limit 5000, Used 5000, Requested 1. Please try again in %s. (local OpenAI: injected fault)", reset)
	case f.Status == http.StatusServiceUnavailable:
		e.typ = "server_error"
		e.message = "The engine is currently overloaded, please try again later. (local OpenAI: injected fault)"
	case f.Status >= 500:
		e.typ = "server_error"
		e.message = "The server had an error while processing your request. Sorry about that! (local OpenAI: injected fault)"
	default:
		e.typ = "invalid_request_error"
		e.message = fmt.Sprintf("local OpenAI: injected fault %d", f.Status)
	}
	writeAPIError(w, e)
}

// indexFailure makes one indexing end failed.
type indexFailure struct {
	match   string // file id or filename
	code    string
	message string
}

// FailIndexing makes the next indexing of a file whose id or filename equals
// idOrFilename end failed with last_error {code, message} (code as OpenAI's:
// server_error, unsupported_file, invalid_file; default server_error). It
// applies when the indexing finishes, so it may be set after the file was
// attached, and it is used once: a second attachment indexes normally.
// Filenames let a test name a file before the code under test uploads it
// (lesson-<id>-v<n>.md).
func (s *Server) FailIndexing(idOrFilename, code, message string) {
	if code == "" {
		code = "server_error"
	}
	if message == "" {
		message = "An internal error occurred while indexing the file. (local OpenAI: injected fault)"
	}
	s.mu.Lock()
	s.failNext = append(s.failNext, indexFailure{match: idOrFilename, code: code, message: message})
	s.mu.Unlock()
}

// PauseIndexing holds every attached file in_progress, whatever its delay,
// until ResumeIndexing: a test can stop the code under test between "attached"
// and "indexed".
func (s *Server) PauseIndexing() {
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
}

// ResumeIndexing lets held files finish: each completes (or fails) once its
// own delay has passed, at the next look.
func (s *Server) ResumeIndexing() {
	s.mu.Lock()
	s.paused = false
	s.mu.Unlock()
}

// Counters counts what the server did. Operations count when they succeeded;
// injected faults count in Faults only.
type Counters struct {
	Uploads          int // files created (POST /files)
	FileDeletes      int // files deleted (DELETE /files/{id})
	StoresCreated    int
	StoresDeleted    int
	Attaches         int // files attached to a vector store (new attachments only)
	StoreFileDeletes int // attachments removed by DELETE /vector_stores/{id}/files/{file_id}
	AttributeUpdates int // POST /vector_stores/{id}/files/{file_id}
	EmbeddingCalls   int
	EmbeddingInputs  int
	ResponseCalls    int
	Searches         int // POST /vector_stores/{id}/search
	Faults           int // answers given by injected faults
}

// Counters returns a snapshot of the counters.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}

// Requests counts the requests received whose path, APIPrefix removed,
// starts with pathPrefix, however they were answered (faults and retries
// included).
func (s *Server) Requests(pathPrefix string) int {
	pathPrefix = strings.TrimPrefix(pathPrefix, APIPrefix)
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

// discardWriter is the ResponseWriter an AfterServing fault serves the
// request into.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// Refuse answers status as OpenAI does when it refuses a request: for 429
// its rate-limit headers and rate_limit_exceeded body, for 5xx its
// server_error body; retry-after and retry-after-ms when retryAfter is set.
// For a fault layer in front of the server (local/chaos).
func Refuse(w http.ResponseWriter, status int, retryAfter time.Duration) {
	writeFault(w, Fault{Status: status, RetryAfter: retryAfter})
}
