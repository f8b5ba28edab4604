package hotmart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/failure"
)

// APIError is a call Hotmart answered with an error status, or with a body
// that is not the JSON the call expects. Calls return it wrapped in
// failure.Permanent (a 4xx other than 401 and 429, a malformed body, wrong
// credentials at the token endpoint) or failure.Retryable (a resource call's
// 401 after a fresh token, 429 and 5xx once MaxAttempts are spent); errors.As
// finds it through both.
type APIError struct {
	Call        string // what the call was doing: "list pages of module m1 of product 4100001"
	Method, URL string // the URL without secrets
	Status      int    // HTTP status; 2xx when the body was malformed
	Code        string // "error" of the body, or "malformed_response"
	Description string // "error_description" of the body, or what was wrong with it
	Attempts    int    // requests sent for this call
}

// CodeMalformed is the Code of an APIError for a body that is not the
// expected JSON.
const CodeMalformed = "malformed_response"

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hotmart: %s: %s %s: ", e.Call, e.Method, e.URL)
	if e.Code == CodeMalformed {
		fmt.Fprintf(&b, "HTTP %d with a malformed body: %s", e.Status, e.Description)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Description != "" {
			b.WriteString(": " + e.Description)
		}
	}
	fmt.Fprintf(&b, " (%d attempt%s)", e.Attempts, plural(e.Attempts))
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// retryableStatus reports whether another attempt of the same request may
// get a different answer.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// transportError is a request that got no HTTP answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// tokenError is a resource call that could not get a token; the token call
// has already spent its own retries.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// retryable decides whether backoff tries the request again.
func retryable(err error) bool {
	var apiErr *APIError
	var te *transportError
	var tokErr *tokenError
	switch {
	case errors.As(err, &tokErr): // wraps the token call's own, spent, retries
		return false
	case errors.As(err, &apiErr):
		return retryableStatus(apiErr.Status)
	case errors.As(err, &te):
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return false
}

// classify turns the last error of a call into what callers get: named
// after the call and marked permanent or retryable.
func (c *Client) classify(req request, err error, attempts int) error {
	var apiErr *APIError
	var te *tokenError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("hotmart: %s: %w", req.call, te.err)
	case errors.As(err, &apiErr):
		apiErr.Attempts = attempts
		// A resource call's 401 survived a fresh token: Hotmart may be
		// mid-rotation, a later run can pass. The token endpoint's 401 means
		// wrong credentials, which no retry fixes.
		if retryableStatus(apiErr.Status) || (apiErr.Status == http.StatusUnauthorized && req.bearer) {
			return &failure.Retryable{Err: apiErr}
		}
		return &failure.Permanent{Err: apiErr}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("hotmart: %s: %s %s: stopped after %d attempt%s: %w",
			req.call, req.method, req.logURL, attempts, plural(attempts), err)
	}
	return &failure.Retryable{Err: fmt.Errorf("hotmart: %s: %s %s: no answer after %d attempt%s: %w",
		req.call, req.method, req.logURL, attempts, plural(attempts), err)}
}

// errorBody is Hotmart's error answer.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// decode reads a response: a 2xx body into out, anything else into an
// APIError.
func decode(req request, resp *http.Response, body []byte, out any) error {
	apiErr := &APIError{Call: req.call, Method: req.method, URL: req.logURL, Status: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			apiErr.Code = CodeMalformed
			apiErr.Description = fmt.Sprintf("%v; body starts %s", err, snippet(body))
			return apiErr
		}
		return nil
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err == nil && (eb.Error != "" || eb.Description != "") {
		apiErr.Code, apiErr.Description = eb.Error, eb.Description
	} else if len(body) > 0 {
		apiErr.Description = "body " + snippet(body)
	}
	return apiErr
}

// snippet quotes the start of a body for an error message.
func snippet(body []byte) string {
	const n = 120
	if len(body) == 0 {
		return "(empty)"
	}
	if len(body) <= n {
		return fmt.Sprintf("%q", body)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", body[:cut], len(body))
}
