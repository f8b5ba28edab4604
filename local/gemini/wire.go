package gemini

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Wire shapes of Vertex AI's generateContent, as google.golang.org/genai
// v1.77.0 sends and reads them. They repeat the SDK's on purpose instead of
// decoding into genai types: a server sharing the client's structs would share
// their mistakes, and the tests could not catch them.

type generateRequest struct {
	Contents          []content         `json:"contents"`
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
}

type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

type part struct {
	Text          string         `json:"text,omitempty"`
	FileData      *fileData      `json:"fileData,omitempty"`
	InlineData    *inlineData    `json:"inlineData,omitempty"`
	VideoMetadata *videoMetadata `json:"videoMetadata,omitempty"`
}

type fileData struct {
	FileURI  string `json:"fileUri"`
	MIMEType string `json:"mimeType"`
}

type inlineData struct {
	MIMEType string `json:"mimeType"`
	Data     string `json:"data"`
}

// videoMetadata's offsets are protobuf Durations in JSON ("120s", "1.5s").
// The SDK formats them with "%.0fs": it sends whole seconds only.
type videoMetadata struct {
	StartOffset string   `json:"startOffset,omitempty"`
	EndOffset   string   `json:"endOffset,omitempty"`
	FPS         *float64 `json:"fps,omitempty"`
}

type generationConfig struct {
	ResponseMIMEType   string          `json:"responseMimeType,omitempty"`
	ResponseSchema     json.RawMessage `json:"responseSchema,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	MediaResolution    string          `json:"mediaResolution,omitempty"`
}

type generateResponse struct {
	Candidates    []candidate   `json:"candidates"`
	UsageMetadata usageMetadata `json:"usageMetadata"`
	ModelVersion  string        `json:"modelVersion"`
	CreateTime    string        `json:"createTime,omitempty"`
	ResponseID    string        `json:"responseId,omitempty"`
}

type candidate struct {
	Content      content `json:"content"`
	FinishReason string  `json:"finishReason"`
	Index        int     `json:"index"`
}

type usageMetadata struct {
	PromptTokenCount        int             `json:"promptTokenCount"`
	CandidatesTokenCount    int             `json:"candidatesTokenCount"`
	TotalTokenCount         int             `json:"totalTokenCount"`
	TrafficType             string          `json:"trafficType,omitempty"`
	PromptTokensDetails     []modalityCount `json:"promptTokensDetails,omitempty"`
	CandidatesTokensDetails []modalityCount `json:"candidatesTokensDetails,omitempty"`
}

type modalityCount struct {
	Modality   string `json:"modality"`
	TokenCount int    `json:"tokenCount"`
}

// element is one visual element as the analysis answer carries it; the
// property names are the ones the analysis schema names (artifact.VisualElement).
type element struct {
	Kind        string  `json:"kind"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Title       string  `json:"title,omitempty"`
	Text        string  `json:"text,omitempty"`
	Code        string  `json:"code,omitempty"`
	Language    string  `json:"language,omitempty"`
	Description string  `json:"description,omitempty"`
}

type analysisAnswer struct {
	Elements []element `json:"elements"`
}

type enrichmentAnswer struct {
	Keywords      []string `json:"keywords"`
	Level         string   `json:"level"`
	Summary       string   `json:"summary"`
	Objectives    []string `json:"objectives"`
	Prerequisites []string `json:"prerequisites"`
}

// apiError is the body of every Vertex AI error (google.rpc.Status as JSON):
// {"error":{"code":404,"message":"...","status":"NOT_FOUND"}}. The SDK turns it
// into a genai.APIError with the same three fields.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Status  string           `json:"status"`
	Details []map[string]any `json:"details,omitempty"`
}

// statusName is the google.rpc.Code name Vertex pairs with an HTTP status.
func statusName(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if code >= 500 {
		return "INTERNAL"
	}
	return "UNKNOWN"
}

// defaultMessage is what Vertex says with a status when nothing more specific
// applies (the 429 text is Vertex's own, link included).
func defaultMessage(code int) string {
	switch code {
	case http.StatusTooManyRequests:
		return "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
	case http.StatusServiceUnavailable:
		return "The service is currently unavailable."
	case http.StatusGatewayTimeout:
		return "The request timed out. Please try again."
	case http.StatusInternalServerError:
		return "Internal error encountered."
	}
	return http.StatusText(code)
}

// writeError answers a Vertex error. The headers are the ones Google's front
// end puts on every JSON error; Vertex sends no Retry-After, not even with a
// 429 (a RetryInfo detail in the body is the only hint it gives).
func writeError(w http.ResponseWriter, code int, message string, details ...map[string]any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Vary", "Origin, X-Origin, Referer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-XSS-Protection", "0")
	w.WriteHeader(code)
	b, _ := json.Marshal(apiError{Error: apiErrorBody{Code: code, Message: message, Status: statusName(code), Details: details}})
	w.Write(b)
}

// badRequest is a refusal: an HTTP status (mostly 400 INVALID_ARGUMENT)
// and a message naming the problem.
type badRequest struct {
	code int
	msg  string
}

func (e *badRequest) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &badRequest{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &badRequest{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// parseDuration reads a protobuf Duration in its JSON form: decimal seconds
// with an "s" suffix ("120s", "1.5s").
func parseDuration(field, s string) (float64, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "s")
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, invalid("Invalid value at '%s' (type.googleapis.com/google.protobuf.Duration), %q: want seconds such as \"120s\"", field, s)
	}
	return v, nil
}

// textTokens estimates the tokens of a text as Gemini counts them, about one
// per four bytes.
func textTokens(s string) int { return (len(s) + 3) / 4 }

// Refuse answers status as Vertex does when it refuses a request before
// looking at it (429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 500 INTERNAL...):
// its error body and headers, no Retry-After. For a fault layer in front of
// the server (local/chaos).
func Refuse(w http.ResponseWriter, status int) {
	writeError(w, status, defaultMessage(status))
}
