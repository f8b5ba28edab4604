// Package events defines the messages the pipeline's functions exchange over
// Pub/Sub (DESIGN.md section 3), the topic names that connect them, and the
// decoding of the CloudEvents Eventarc delivers them in.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// Topic names: the contract between functions, Terraform and the workflow.
const (
	TopicLessonDiscovered = "lesson-discovered"
	// TopicLessonDownloaded re-drives the process step: the starter reads
	// it beside the raw bucket's finalize events, which cannot be re-sent.
	TopicLessonDownloaded = "lesson-downloaded"
	TopicLessonProcessed  = "lesson-processed"
	TopicLessonEnriched   = "lesson-enriched"
	TopicLessonEvents     = "lesson-events"
	TopicLessonReplay     = "lesson-replay"
)

// Kinds of message on the lesson-events topic.
const (
	KindSynced  = "synced"
	KindFailed  = "failed"
	KindRemoved = "removed"
)

// Message attribute names. Attributes let subscriptions filter and let
// operators read a message without decoding its body.
const (
	AttrLessonID    = "lessonId"
	AttrVersion     = "version"
	AttrKind        = "kind"
	AttrTraceparent = "traceparent"
)

// LessonEvent is the body of every lesson message.
type LessonEvent struct {
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
	CourseID string `json:"courseId,omitempty"`
	RunID    string `json:"runId,omitempty"`
	// From names the first stage that must run; empty means the stage the
	// topic feeds.
	From string `json:"from,omitempty"`
	// Kind is set on lesson-events messages only (synced, failed, removed).
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Attributes returns the Pub/Sub attributes that travel with the event.
func (e LessonEvent) Attributes() map[string]string {
	a := map[string]string{AttrLessonID: e.LessonID, AttrVersion: strconv.Itoa(e.Version)}
	if e.Kind != "" {
		a[AttrKind] = e.Kind
	}
	return a
}

// lessonIDPattern is what a Hotmart page id looks like. Anything else (a
// slash, "..", spaces) would let a message choose where objects are written.
var lessonIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidLessonID reports whether id is safe to use as a document id and as an
// object path segment.
func ValidLessonID(id string) bool { return lessonIDPattern.MatchString(id) }

// ErrInvalid marks input that can never be processed: retrying it is useless.
var ErrInvalid = errors.New("invalid lesson event")

// Validate names every problem with the event at once.
func (e LessonEvent) Validate() error {
	var problems []error
	switch {
	case e.LessonID == "":
		problems = append(problems, errors.New("lessonId is missing"))
	case !ValidLessonID(e.LessonID):
		problems = append(problems, fmt.Errorf("lessonId %q is not a page id (letters, digits, '-' and '_' only)", e.LessonID))
	}
	if e.Version < 1 {
		problems = append(problems, fmt.Errorf("version %d is missing or not positive", e.Version))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(problems...))
}

// ParseLessonEvent decodes and validates a message body. Unknown fields are
// ignored so that producers can add fields before consumers know them.
func ParseLessonEvent(data []byte) (LessonEvent, error) {
	var e LessonEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return LessonEvent{}, fmt.Errorf("%w: body is not a lesson event JSON object: %w", ErrInvalid, err)
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// IsInvalid reports whether err marks input that can never be processed.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }
