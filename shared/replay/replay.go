// Package replay re-runs a lesson from a stage (DESIGN.md section 4): an
// operator publishes {"lessonId":"..","from":"transcribe"} on lesson-replay
// (`gcloud pubsub topics publish lesson-replay --message=...`, or `pipeline
// replay`), and the replayer resets that stage and the ones after it at the
// lesson's current version and re-emits the event that starts there. The
// stages before it keep what they did: a replay of sync makes no paid call
// but the sync's own.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
)

// Request is a lesson-replay message.
type Request struct {
	LessonID string `json:"lessonId"`
	// From is the first stage to run again: download, transcribe, analyze,
	// enrich or sync.
	From string `json:"from"`
	// Version, when set, must be the lesson's current one: a replay queued
	// before a newer version was detected does nothing.
	Version int `json:"version,omitempty"`
}

// Parse decodes and checks a lesson-replay message body, naming every
// problem at once.
func Parse(data []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: replay message is not {\"lessonId\":..,\"from\":..}: %w", events.ErrInvalid, err)
	}
	return r, r.Validate()
}

// Validate names every problem with the request.
func (r Request) Validate() error {
	var problems []error
	switch {
	case r.LessonID == "":
		problems = append(problems, errors.New("lessonId is missing"))
	case !events.ValidLessonID(r.LessonID):
		problems = append(problems, fmt.Errorf("lessonId %q is not a page id", r.LessonID))
	}
	if !slices.Contains(lessonstate.ReplayFrom, r.From) {
		problems = append(problems, fmt.Errorf("from %q is not one of %v", r.From, lessonstate.ReplayFrom))
	}
	if r.Version < 0 {
		problems = append(problems, fmt.Errorf("version %d is negative", r.Version))
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("%w: %w", events.ErrInvalid, err)
	}
	return nil
}

// Attributes are the message's Pub/Sub attributes.
func (r Request) Attributes() map[string]string {
	return map[string]string{events.AttrLessonID: r.LessonID, "from": r.From}
}

// Store resets stages.
type Store interface {
	Replay(ctx context.Context, id, from string, version int) (events.LessonEvent, error)
}

// Relay publishes what the store queued.
type Relay interface {
	Event(ctx context.Context, lessonID string, ev events.LessonEvent) error
}

// Replayer replays lessons.
type Replayer struct {
	store Store
	relay Relay
	log   *slog.Logger
}

// New returns a Replayer.
func New(store Store, relay Relay, log *slog.Logger) (*Replayer, error) {
	if err := setup.Missing("replay", map[string]any{"store": store, "relay": relay, "logger": log}); err != nil {
		return nil, err
	}
	return &Replayer{store: store, relay: relay, log: log}, nil
}

// Replay resets and re-emits. A replay that can never happen (no such
// lesson, removed, another version, no media) is a failure.Permanent naming
// why; the message is acknowledged.
func (r *Replayer) Replay(ctx context.Context, req Request) error {
	log := logging.Lesson(r.log, req.LessonID, req.Version, req.From)
	ev, err := r.store.Replay(ctx, req.LessonID, req.From, req.Version)
	switch {
	case errors.Is(err, lessonstate.ErrNotFound), errors.Is(err, lessonstate.ErrRemoved),
		errors.Is(err, lessonstate.ErrVersionStale), errors.Is(err, lessonstate.ErrNothingToReplay):
		return &failure.Permanent{Err: err}
	case err != nil:
		return fmt.Errorf("replay: %w", err)
	}
	log.InfoContext(ctx, "lesson replayed: stages reset and the event re-emitted", "from", req.From, "version", ev.Version,
		"topic", lessonstate.TopicFor(ev))
	if err := r.relay.Event(ctx, req.LessonID, ev); err != nil {
		// Queued with the reset: the sweeper's next flush sends it.
		log.WarnContext(ctx, "replay event left in the outbox", "error", err.Error())
	}
	return nil
}
