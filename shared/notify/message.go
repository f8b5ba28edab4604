package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Kinds of notification.
const (
	KindDigest     = "digest"
	KindFailure    = "failure"
	KindDeadLetter = "dead-letter"
)

// Message is one notification, before any channel renders it: Slack as
// Block Kit, e-mail as text and HTML, the log as both. Its text is plain;
// each renderer escapes it for its format.
type Message struct {
	// Key identifies the notification for idempotency (DigestKey,
	// FailureKey, DeadLetterKey); Message-IDs derive from it.
	Key  string
	Kind string
	// Title is the Slack header and the e-mail subject.
	Title string
	// Summary is one line: Slack's fallback text, the e-mail's first line.
	Summary string
	Fields  []Field
	// Body is preformatted text shown as is (a dead letter's data).
	Body     string
	Sections []Section
	Links    []Link
	// Footer is small print: when, which run, which project.
	Footer string
	// LessonID is set on a failure, and on a dead letter whose lesson could
	// be read, for the log lines about it.
	LessonID string
	RunID    string
}

// Field is a label and its value.
type Field struct {
	Label string
	Value string
	// URL, when set, links the value.
	URL string
}

// Section is a titled list of lessons.
type Section struct {
	Title string
	Items []Item
	// More counts the items left out to keep the message short.
	More int
}

// Item is one line of a section.
type Item struct {
	Text string
	// URL, when set, links Text.
	URL string
	// Detail follows the text: course and module, stage and reason.
	Detail string
	Links  []Link
}

// Link is a named URL.
type Link struct {
	Text string
	URL  string
}

// DigestKey is the key of a run's digest.
func DigestKey(runID string) string { return "digest/" + runID }

// FailureKey is the key of a lesson version's failure at stage.
func FailureKey(lessonID string, version int, stage string) string {
	if stage == "" {
		stage = "unknown-stage"
	}
	return "failure/" + lessonID + "/v" + strconv.Itoa(version) + "/" + stage
}

// DeadLetterKey is the key of a dead letter: the subscription it could not
// be delivered on and the message id it has on the dead-letter topic, which
// every redelivery of it keeps.
func DeadLetterKey(sourceSubscription, messageID string) string {
	return "dead-letter/" + sourceSubscription + "/" + messageID
}

// keyHash is a short, stable, id-safe digest of a key: Firestore document
// ids and Message-IDs are made from it, since keys may hold '/' and any
// subscription name.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// truncate cuts s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n == 1 {
		return "…"
	}
	return strings.TrimRight(string(r[:n-1]), " ") + "…"
}
