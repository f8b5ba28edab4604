package slack

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, u, contentType, body string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Post(u, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// The webhook answers as Slack does: ok for a message with text or valid
// blocks (JSON or form-encoded payload), invalid_payload for a body it
// cannot read, no_text for a message with nothing to show, invalid_blocks
// for blocks Slack would refuse, no_service for another hook. It keeps the
// messages it accepted, and only those.
func TestWebhookAnswersAsSlack(t *testing.T) {
	s := NewServer()
	hook, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	long := strings.Repeat("x", 151)
	cases := []struct {
		name, contentType, body string
		status                  int
		answer                  string
	}{
		{"text", "application/json", `{"text":"hello"}`, 200, "ok"},
		{"blocks", "application/json", `{"text":"fallback","blocks":[{"type":"header","text":{"type":"plain_text","text":"Title"}},{"type":"section","text":{"type":"mrkdwn","text":"*bold*"},"fields":[{"type":"mrkdwn","text":"a"}]},{"type":"divider"},{"type":"context","elements":[{"type":"mrkdwn","text":"foot"}]}]}`, 200, "ok"},
		{"form payload", "application/x-www-form-urlencoded", "payload=" + url.QueryEscape(`{"text":"form"}`), 200, "ok"},
		{"not JSON", "application/json", `{"text":`, 400, "invalid_payload"},
		{"no text", "application/json", `{"text":"  "}`, 400, "no_text"},
		{"header too long", "application/json", `{"blocks":[{"type":"header","text":{"type":"plain_text","text":"` + long + `"}}]}`, 400, "invalid_blocks"},
		{"header in mrkdwn", "application/json", `{"blocks":[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]}`, 400, "invalid_blocks"},
		{"empty section", "application/json", `{"blocks":[{"type":"section"}]}`, 400, "invalid_blocks"},
		{"eleven fields", "application/json", `{"blocks":[{"type":"section","fields":[` + strings.Repeat(`{"type":"mrkdwn","text":"f"},`, 10) + `{"type":"mrkdwn","text":"f"}]}]}`, 400, "invalid_blocks"},
		{"unknown block", "application/json", `{"blocks":[{"type":"banner"}]}`, 400, "invalid_blocks"},
		{"empty context", "application/json", `{"blocks":[{"type":"context","elements":[]}]}`, 400, "invalid_blocks"},
	}
	for _, c := range cases {
		status, answer, _ := post(t, hook, c.contentType, c.body)
		if status != c.status || answer != c.answer {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, answer, c.status, c.answer)
		}
	}
	if status, answer, _ := post(t, strings.TrimSuffix(hook, "secret")+"wrong", "application/json", `{"text":"x"}`); status != 404 || answer != "no_service" {
		t.Errorf("another hook: %d %q", status, answer)
	}
	msgs := s.Messages()
	if len(msgs) != 3 || msgs[0].Text != "hello" || msgs[2].Text != "form" || len(msgs[1].Blocks) != 4 {
		t.Errorf("kept %+v, want the 3 accepted", msgs)
	}
	if !strings.Contains(msgs[1].AllText(), "*bold*\na\nfoot") {
		t.Errorf("AllText %q", msgs[1].AllText())
	}
}

// Faults answer the next requests in order, then the webhook accepts
// again; a rate limit carries Retry-After.
func TestFaults(t *testing.T) {
	s := NewServer()
	hook, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	s.FailNext(RateLimited(2*time.Second), ServerError(), ChannelNotFound())
	status, answer, h := post(t, hook, "application/json", `{"text":"1"}`)
	if status != 429 || answer != "rate_limited" || h.Get("Retry-After") != "2" {
		t.Errorf("first: %d %q Retry-After %q", status, answer, h.Get("Retry-After"))
	}
	if status, answer, _ := post(t, hook, "application/json", `{"text":"2"}`); status != 500 || answer != "rollup_error" {
		t.Errorf("second: %d %q", status, answer)
	}
	if status, answer, _ := post(t, hook, "application/json", `{"text":"3"}`); status != 404 || answer != "channel_not_found" {
		t.Errorf("third: %d %q", status, answer)
	}
	if status, _, _ := post(t, hook, "application/json", `{"text":"4"}`); status != 200 {
		t.Errorf("fourth: %d", status)
	}
	if msgs, reqs := s.Messages(), s.Requests(); len(msgs) != 1 || msgs[0].Text != "4" || len(reqs) != 4 {
		t.Errorf("messages %+v, requests %+v", msgs, reqs)
	}
}
