package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
)

// Channel names, as records and logs know them.
const (
	ChannelSlack = "slack"
	ChannelEmail = "email"
	ChannelLog   = "log"
)

// Sender delivers a message on one channel. An error wrapping
// failure.Permanent means the channel refused it for good (it is recorded
// and not tried again); any other error may pass on a later attempt.
type Sender interface {
	Channel() string
	Send(ctx context.Context, m Message) error
}

// Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks).
const (
	slackMaxBlocks     = 50
	slackHeaderChars   = 150
	slackSectionChars  = 3000
	slackFieldChars    = 2000
	slackMaxFields     = 10
	slackMaxContextEls = 10
)

// SlackPayload is the body of an incoming-webhook request: Text is the
// fallback notifications and old clients show, Blocks the message.
type SlackPayload struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks,omitempty"`
}

// SlackBlock is a header, section, divider or context block.
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Fields   []SlackText `json:"fields,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a plain_text or mrkdwn text object.
type SlackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

func mrkdwn(s string) SlackText { return SlackText{Type: "mrkdwn", Text: s} }

// SlackMessage renders m as Block Kit within Slack's limits: a header, the
// summary with its fields, the body, a section per list, the links and the
// footer.
func SlackMessage(m Message) SlackPayload {
	p := SlackPayload{Text: truncate(m.Title+"\n"+m.Summary, slackSectionChars)}
	p.Blocks = append(p.Blocks, SlackBlock{Type: "header",
		Text: &SlackText{Type: "plain_text", Text: truncate(m.Title, slackHeaderChars), Emoji: true}})
	intro := SlackBlock{Type: "section", Text: ptr(mrkdwn(truncate(slackEscape(m.Summary), slackSectionChars)))}
	for i, f := range m.Fields {
		if i == slackMaxFields {
			break
		}
		v := slackEscape(f.Value)
		if f.URL != "" {
			v = slackLink(f.URL, f.Value)
		}
		intro.Fields = append(intro.Fields, mrkdwn(truncate("*"+slackEscape(f.Label)+"*\n"+v, slackFieldChars)))
	}
	p.Blocks = append(p.Blocks, intro)
	if m.Body != "" {
		// Code blocks show data as it is; the fence must survive the cut.
		body := truncate(slackEscape(m.Body), slackSectionChars-8)
		p.Blocks = append(p.Blocks, SlackBlock{Type: "section", Text: ptr(mrkdwn("```" + body + "```"))})
	}
	for _, s := range m.Sections {
		if len(p.Blocks) >= slackMaxBlocks-3 {
			break
		}
		p.Blocks = append(p.Blocks, SlackBlock{Type: "divider"},
			SlackBlock{Type: "section", Text: ptr(mrkdwn(slackSection(s)))})
	}
	if len(m.Links) > 0 {
		ctx := SlackBlock{Type: "context"}
		for i, l := range m.Links {
			if i == slackMaxContextEls {
				break
			}
			ctx.Elements = append(ctx.Elements, mrkdwn(slackLink(l.URL, l.Text)))
		}
		p.Blocks = append(p.Blocks, ctx)
	}
	if m.Footer != "" {
		p.Blocks = append(p.Blocks, SlackBlock{Type: "context",
			Elements: []SlackText{mrkdwn(truncate(slackEscape(m.Footer), slackSectionChars))}})
	}
	return p
}

// slackSection is a list as mrkdwn, as many items as fit in a section,
// counting the rest.
func slackSection(s Section) string {
	head := "*" + slackEscape(s.Title) + "*"
	var b strings.Builder
	b.WriteString(head)
	more := s.More
	for i, it := range s.Items {
		line := "\n• " + slackItem(it)
		// Leave room for the "and N more" line.
		if b.Len()+len(line) > slackSectionChars-40 {
			more += len(s.Items) - i
			break
		}
		b.WriteString(line)
	}
	if more > 0 {
		fmt.Fprintf(&b, "\n_…and %d more_", more)
	}
	return b.String()
}

func slackItem(it Item) string {
	text := slackEscape(truncate(it.Text, 200))
	if it.URL != "" {
		text = slackLink(it.URL, truncate(it.Text, 200))
	}
	if it.Detail != "" {
		text += " — " + slackEscape(truncate(it.Detail, 500))
	}
	for _, l := range it.Links {
		text += " · " + slackLink(l.URL, l.Text)
	}
	return text
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to
// (https://docs.slack.dev/messaging/formatting-message-text#escaping).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackLink is <url|text>, with the separators escaped out of both.
func slackLink(u, text string) string {
	u = strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(u)
	return "<" + u + "|" + strings.ReplaceAll(slackEscape(text), "|", "¦") + ">"
}

func ptr[T any](v T) *T { return &v }

// SlackSender posts to an incoming webhook.
type SlackSender struct {
	url    string
	client *http.Client
	// attempts bounds the posts of one Send; maxWait the Retry-After it
	// waits for inline. A longer wait is left to Pub/Sub's redelivery.
	attempts int
	maxWait  time.Duration
}

// NewSlack returns a sender to webhookURL. client nil means a client with a
// 30 s timeout.
func NewSlack(webhookURL string, client *http.Client) (*SlackSender, error) {
	u, err := url.Parse(webhookURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// The URL is a secret: never repeat it.
		return nil, errors.New("slack: the webhook URL is not an http(s) URL")
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &SlackSender{url: webhookURL, client: client, attempts: 3, maxWait: 10 * time.Second}, nil
}

// Channel is ChannelSlack.
func (s *SlackSender) Channel() string { return ChannelSlack }

// Send posts m as Block Kit. Slack answers 200 "ok"; 429 with Retry-After
// when over its rate (about one message a second per webhook), waited for
// inline when short; 5xx when something broke on its side; other 4xx
// (invalid_payload, no_text, invalid_blocks, channel_not_found,
// channel_is_archived, action_prohibited, no_service) refuse the message
// for good.
func (s *SlackSender) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(SlackMessage(m))
	if err != nil {
		return failure.Permanentf("slack: encode message: %w", err)
	}
	backoff := 500 * time.Millisecond
	var last error
	for attempt := 1; attempt <= s.attempts; attempt++ {
		status, answer, retryAfter, err := s.post(ctx, body)
		var wait time.Duration
		switch {
		case err != nil:
			last = fmt.Errorf("slack: post: %w", err)
			wait = backoff
		case status == http.StatusOK:
			return nil
		case status == http.StatusTooManyRequests:
			last = fmt.Errorf("slack: rate limited (429 %s), retry after %s", answer, retryAfter)
			wait = retryAfter
		case status >= 500:
			last = fmt.Errorf("slack: %d %s", status, answer)
			wait = backoff
		default:
			return failure.Permanentf("slack refused the message: %d %s", status, answer)
		}
		if attempt == s.attempts || wait > s.maxWait {
			break
		}
		if err := sleep(ctx, wait); err != nil {
			break
		}
		backoff *= 2
	}
	return failure.Retryablef("%w", last)
}

// post sends one request and reads Slack's answer.
func (s *SlackSender) post(ctx context.Context, body []byte) (status int, answer string, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, "", 0, errors.New("build request to the webhook")
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error names the URL, which is a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	retryAfter = time.Second
	if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs >= 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), retryAfter, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
