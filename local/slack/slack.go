// Package slack is a local Slack incoming webhook for the one-machine stack
// and the tests: it answers as Slack does (200 "ok"; 400 invalid_payload,
// no_text or invalid_blocks for a message Slack would refuse; 404
// no_service for an unknown hook), checks Block Kit the way Slack does
// within the limits the notifier relies on, keeps every message it
// accepted, and can be told to fail the next requests (429 with
// Retry-After, 5xx, a permanent refusal).
//
// Slack's answers for incoming webhooks:
// https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks
package slack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HookPath is the path of the one webhook the server serves, shaped like
// Slack's (/services/T…/B…/secret).
const HookPath = "/services/TLOCAL0000/BLOCAL0000/local-webhook-secret"

// Message is a message the webhook accepted.
type Message struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks,omitempty"`
	// Raw is the request body as received.
	Raw      []byte    `json:"-"`
	Received time.Time `json:"-"`
}

// Block is a Block Kit block as far as the server reads it.
type Block struct {
	Type     string          `json:"type"`
	BlockID  string          `json:"block_id,omitempty"`
	Text     *Text           `json:"text,omitempty"`
	Fields   []Text          `json:"fields,omitempty"`
	Elements json.RawMessage `json:"elements,omitempty"`
}

// Text is a text object.
type Text struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// AllText is every text of the message, joined by newlines: what a test
// searches for a title, a link or a count.
func (m Message) AllText() string {
	parts := []string{m.Text}
	for _, b := range m.Blocks {
		if b.Text != nil {
			parts = append(parts, b.Text.Text)
		}
		for _, f := range b.Fields {
			parts = append(parts, f.Text)
		}
		var els []Text
		if json.Unmarshal(b.Elements, &els) == nil {
			for _, e := range els {
				parts = append(parts, e.Text)
			}
		}
	}
	return strings.Join(parts, "\n")
}

// Fault is an answer the server gives instead of accepting a message.
type Fault struct {
	Status int
	Body   string
	// RetryAfter is sent as the Retry-After header (seconds) when set.
	RetryAfter time.Duration
}

// RateLimited is Slack's answer over its rate: 429 with Retry-After.
func RateLimited(retryAfter time.Duration) Fault {
	return Fault{Status: http.StatusTooManyRequests, Body: "rate_limited", RetryAfter: retryAfter}
}

// ServerError is Slack's answer when something broke on its side.
func ServerError() Fault { return Fault{Status: http.StatusInternalServerError, Body: "rollup_error"} }

// InvalidPayload is Slack's answer to a body it cannot read.
func InvalidPayload() Fault { return Fault{Status: http.StatusBadRequest, Body: "invalid_payload"} }

// ChannelNotFound is Slack's answer when the hook's channel is gone.
func ChannelNotFound() Fault { return Fault{Status: http.StatusNotFound, Body: "channel_not_found"} }

// Request is what the server saw of one request, accepted or not.
type Request struct {
	Status int
	Answer string
}

// Server is the local webhook, an http.Handler safe for concurrent use.
type Server struct {
	mu       sync.Mutex
	messages []Message
	requests []Request
	faults   []Fault
	now      func() time.Time
}

// NewServer returns an empty server.
func NewServer() *Server { return &Server{now: time.Now} }

// Listen serves on addr (default "127.0.0.1:0", a free loopback port) and
// returns the webhook's URL. stop shuts the server.
func (s *Server) Listen(addr string) (webhookURL string, stop func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local slack: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + HookPath, srv.Close, nil
}

// FailNext makes the next requests answer with faults, one each, in order.
func (s *Server) FailNext(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Messages returns the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Requests returns every request's answer so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Reset forgets what was received and any pending fault.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages, s.requests, s.faults = nil, nil, nil
}

// maxBody bounds a request body; Slack's own limit is larger than any
// message the pipeline sends.
const maxBody = 1 << 20

// ServeHTTP answers a webhook post.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, answer, retryAfter, msg := s.handle(r)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Status: status, Answer: answer})
	if msg != nil {
		s.messages = append(s.messages, *msg)
	}
	s.mu.Unlock()
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

func (s *Server) handle(r *http.Request) (int, string, time.Duration, *Message) {
	if r.URL.Path != HookPath {
		return http.StatusNotFound, "no_service", 0, nil
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "invalid_method", 0, nil
	}
	s.mu.Lock()
	var fault *Fault
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		fault = &f
	}
	s.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return http.StatusBadRequest, "invalid_payload", 0, nil
	}
	if fault != nil {
		return fault.Status, fault.Body, fault.RetryAfter, nil
	}
	if len(body) > maxBody {
		return http.StatusRequestEntityTooLarge, "request_too_large", 0, nil
	}
	payload, err := payloadOf(r, body)
	if err != nil {
		return http.StatusBadRequest, "invalid_payload", 0, nil
	}
	var m Message
	if err := json.Unmarshal(payload, &m); err != nil {
		return http.StatusBadRequest, "invalid_payload", 0, nil
	}
	if strings.TrimSpace(m.Text) == "" && len(m.Blocks) == 0 {
		return http.StatusBadRequest, "no_text", 0, nil
	}
	if err := checkBlocks(m.Blocks); err != nil {
		return http.StatusBadRequest, "invalid_blocks", 0, nil
	}
	m.Raw, m.Received = payload, s.now()
	return http.StatusOK, "ok", 0, &m
}

// payloadOf returns the JSON of a post: the body, or its payload field
// when form-encoded (both are accepted by Slack).
func payloadOf(r *http.Request, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		return []byte(v.Get("payload")), nil
	}
	return body, nil
}

// Block Kit limits the server enforces
// (https://docs.slack.dev/reference/block-kit/blocks).
const (
	maxBlocks       = 50
	maxHeader       = 150
	maxSectionText  = 3000
	maxFields       = 10
	maxFieldText    = 2000
	maxContextElems = 10
	maxBlockID      = 255
)

var knownBlocks = []string{"header", "section", "divider", "context", "actions", "image", "rich_text", "markdown", "input", "file", "video"}

// checkBlocks refuses what Slack refuses among the blocks the pipeline
// uses; other known block types pass unchecked.
func checkBlocks(blocks []Block) error {
	if len(blocks) > maxBlocks {
		return fmt.Errorf("%d blocks, at most %d", len(blocks), maxBlocks)
	}
	ids := map[string]bool{}
	for i, b := range blocks {
		if !slices.Contains(knownBlocks, b.Type) {
			return fmt.Errorf("block %d: unknown type %q", i, b.Type)
		}
		if b.BlockID != "" {
			if len(b.BlockID) > maxBlockID || ids[b.BlockID] {
				return fmt.Errorf("block %d: block_id too long or repeated", i)
			}
			ids[b.BlockID] = true
		}
		var err error
		switch b.Type {
		case "header":
			err = checkText(b.Text, maxHeader, true)
		case "section":
			switch {
			case b.Text == nil && len(b.Fields) == 0:
				err = errors.New("section needs text or fields")
			case len(b.Fields) > maxFields:
				err = fmt.Errorf("%d fields, at most %d", len(b.Fields), maxFields)
			case b.Text != nil:
				err = checkText(b.Text, maxSectionText, false)
			}
			for _, f := range b.Fields {
				if err == nil {
					err = checkText(&f, maxFieldText, false)
				}
			}
		case "context":
			var els []json.RawMessage
			if json.Unmarshal(b.Elements, &els) != nil || len(els) == 0 || len(els) > maxContextElems {
				err = fmt.Errorf("context needs 1 to %d elements", maxContextElems)
			}
		}
		if err != nil {
			return fmt.Errorf("block %d (%s): %w", i, b.Type, err)
		}
	}
	return nil
}

func checkText(t *Text, limit int, plainOnly bool) error {
	switch {
	case t == nil:
		return errors.New("text is missing")
	case t.Type != "plain_text" && (plainOnly || t.Type != "mrkdwn"):
		return fmt.Errorf("text type %q", t.Type)
	case t.Text == "":
		return errors.New("text is empty")
	case len([]rune(t.Text)) > limit:
		return fmt.Errorf("text of %d characters, at most %d", len([]rune(t.Text)), limit)
	}
	return nil
}

// Refuse answers status as Slack's webhooks do: 429 rate_limited with
// Retry-After (one second), a 5xx rollup_error. For a fault layer in front
// of the server (local/chaos).
func Refuse(w http.ResponseWriter, status int) {
	f := ServerError()
	f.Status = status
	if status == http.StatusTooManyRequests {
		f = RateLimited(time.Second)
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(f.Status)
	io.WriteString(w, f.Body)
}
