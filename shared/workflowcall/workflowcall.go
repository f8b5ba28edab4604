// Package workflowcall is the HTTP contract between the lesson-pipeline
// workflow (workflows/lesson-pipeline.yaml) and the functions it calls, the
// transcriber and the analyzer: one JSON request shape, one answer shape,
// and one mapping from the stages' errors to the status codes the
// workflow's retry policy reads.
//
//	200 {"done":…}      the call did what it could; read done/operation/uri/stale
//	422 {"error":…}     a permanent failure: the stage is failed (and announced); do not retry
//	400 {"error":…}     the request itself is wrong; do not retry
//	503 {"error":…}     retryable; Retry-After says when; the workflow retries with backoff
package workflowcall

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
)

// Actions of a request.
const (
	// ActionStart starts the stage's work (the transcriber's recognition).
	ActionStart = "start"
	// ActionPoll asks whether started work is done, and finishes it if so.
	ActionPoll = "poll"
	// ActionRun does the whole stage in one call (the analyzer).
	ActionRun = "run"
	// ActionFail records that the workflow gave up on the stage (it timed
	// out, or its calls kept failing), with Reason.
	ActionFail = "fail"
)

// Request is what the workflow posts.
type Request struct {
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
	Action   string `json:"action"`
	// Operation is the long-running operation a poll asks about.
	Operation string `json:"operation,omitempty"`
	// Reason is why the workflow gave up (ActionFail).
	Reason string `json:"reason,omitempty"`
	// Transient says the workflow gave up because its calls kept failing
	// in ways that may pass (429, 5xx, dropped connections, timeouts), not
	// because the stage cannot succeed (ActionFail): the function records
	// a failed attempt, and the stage fails for good only when it is out
	// of attempts.
	Transient bool `json:"transient,omitempty"`
	// Execution names the workflow execution, for the logs.
	Execution string `json:"execution,omitempty"`
}

// Response is what the functions answer with 200.
type Response struct {
	// Done: the stage is finished for this version (done or skipped).
	Done bool `json:"done"`
	// Stale: the lesson moved on (a newer version, or removed); the
	// workflow stops without publishing anything.
	Stale bool `json:"stale,omitempty"`
	// Skipped: the stage was switched off; Done is true too.
	Skipped bool `json:"skipped,omitempty"`
	// Operation is the long-running operation to poll while not done.
	Operation string `json:"operation,omitempty"`
	// URI is the stage's artifact once done (transcript.json, analysis.json).
	URI string `json:"uri,omitempty"`
	// Reason explains a skip or a failure recorded by ActionFail.
	Reason string `json:"reason,omitempty"`
}

// maxBody bounds a request body: the requests are a few hundred bytes.
const maxBody = 64 << 10

// Decode reads and checks a request; its error is a failure.Permanent naming
// every problem.
func Decode(r *http.Request, actions ...string) (Request, error) {
	var req Request
	if r.Method != http.MethodPost {
		return req, &failure.Permanent{Err: &BadRequestError{Err: fmt.Errorf("method %s: the workflow posts", r.Method)}}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return req, failure.Retryablef("read request: %w", err)
	}
	if len(b) > maxBody {
		return req, &failure.Permanent{Err: &BadRequestError{Err: fmt.Errorf("request body over %d bytes", maxBody)}}
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return req, &failure.Permanent{Err: &BadRequestError{Err: fmt.Errorf("request is not a JSON object of the workflow contract: %w", err)}}
	}
	var problems []error
	if err := (events.LessonEvent{LessonID: req.LessonID, Version: req.Version}).Validate(); err != nil {
		problems = append(problems, err)
	}
	known := false
	for _, a := range actions {
		known = known || a == req.Action
	}
	if !known {
		problems = append(problems, fmt.Errorf("action %q is not one of %v", req.Action, actions))
	}
	if req.Action == ActionPoll && req.Operation == "" {
		problems = append(problems, errors.New("a poll names no operation"))
	}
	if err := errors.Join(problems...); err != nil {
		return req, &failure.Permanent{Err: &BadRequestError{Err: err}}
	}
	return req, nil
}

// BadRequestError is Decode's refusal of a request: a bug in the workflow
// or a stray caller, never worth a retry.
type BadRequestError struct{ Err error }

func (e *BadRequestError) Error() string { return "bad request: " + e.Err.Error() }
func (e *BadRequestError) Unwrap() error { return e.Err }

// RetryAfter is how long the workflow should wait before retrying a
// retryable failure; its own backoff grows from there.
const RetryAfter = 5

// Write answers resp (err nil), or the error's status: 400 for a bad
// request, 422 for another permanent failure, 503 otherwise.
func Write(w http.ResponseWriter, resp Response, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err == nil {
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	status := http.StatusServiceUnavailable
	switch {
	case IsBadRequest(err):
		status = http.StatusBadRequest
	case failure.IsPermanent(err):
		status = http.StatusUnprocessableEntity
	default:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// IsBadRequest reports whether err is Decode's refusal of a request.
func IsBadRequest(err error) bool {
	var b *BadRequestError
	return errors.As(err, &b)
}
