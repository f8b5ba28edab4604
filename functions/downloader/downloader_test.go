package downloader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/media"
	"github.com/coursekb/pipeline/shared/transfer"
)

func messagePublished(t *testing.T, data any) event.Event {
	t.Helper()
	ce := event.New()
	ce.SetID("m-1")
	ce.SetType(events.TypePubSubPublished)
	ce.SetSource("//pubsub.googleapis.com/projects/p/topics/lesson-discovered")
	if err := ce.SetData("application/json", data); err != nil {
		t.Fatal(err)
	}
	return ce
}

// untouched fails the test when the stage reaches any of its collaborators.
type untouched struct{ t *testing.T }

func (u untouched) Claim(context.Context, string, string, int, time.Duration) (lessonstate.Claim, error) {
	u.t.Error("bad input reached the store")
	return lessonstate.Claim{}, errors.New("untouched")
}
func (u untouched) Complete(context.Context, string, string, int, string, map[string]string) error {
	u.t.Error("bad input reached the store")
	return errors.New("untouched")
}
func (u untouched) Fail(context.Context, string, string, int, string, string, bool) (lessonstate.Failure, error) {
	u.t.Error("bad input reached the store")
	return lessonstate.Failure{}, errors.New("untouched")
}
func (u untouched) FromURL(context.Context, transfer.Source, transfer.Dest) (transfer.Result, error) {
	u.t.Error("bad input reached the copier")
	return transfer.Result{}, errors.New("untouched")
}
func (u untouched) FromObject(context.Context, string, string, transfer.Dest, transfer.Source) (transfer.Result, error) {
	u.t.Error("bad input reached the copier")
	return transfer.Result{}, errors.New("untouched")
}
func (u untouched) Entry(context.Context, string, bool) (media.Entry, error) {
	u.t.Error("bad input reached the media source")
	return media.Entry{}, errors.New("untouched")
}
func (u untouched) Event(context.Context, string, events.LessonEvent) error {
	u.t.Error("bad input was announced")
	return errors.New("untouched")
}

func untouchedStage(t *testing.T) *download.Stage {
	u := untouched{t}
	st, err := download.New(download.Deps{Store: u, Copier: u, Links: u, Announcer: u, RawBucket: "raw", Lease: time.Minute,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Input that can never succeed is acknowledged (nil) and logged with the
// reason, before the stage is reached: the stage's collaborators fail the
// test if anything reaches them.
func TestHandleRejectsBadInput(t *testing.T) {
	wrap := func(body string) map[string]any {
		return map[string]any{"message": map[string]any{"data": []byte(body), "messageId": "m-1"}, "subscription": "s"}
	}
	tests := []struct {
		name string
		data any
		log  string
	}{
		{"event data is not a Pub/Sub message", json.RawMessage(`"hello"`), "is not a Pub/Sub message"},
		{"message body is not JSON", wrap(`not json`), "not a lesson event JSON object"},
		{"missing lesson id and version", wrap(`{}`), "lessonId is missing"},
		{"slash in lesson id", wrap(`{"lessonId":"a/b","version":1}`), `lessonId \"a/b\" is not a page id`},
		{"dot-dot lesson id", wrap(`{"lessonId":"..","version":2}`), `lessonId \"..\" is not a page id`},
		{"negative version", wrap(`{"lessonId":"RE4zW6m6el","version":-1}`), "version -1 is missing or not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h, err := New(untouchedStage(t), logging.New(&logs, "info", "p"))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Handle(context.Background(), messagePublished(t, tt.data)); err != nil {
				t.Fatalf("bad input must be acknowledged, got %v", err)
			}
			if !strings.Contains(logs.String(), tt.log) || !strings.Contains(logs.String(), `"severity":"ERROR"`) {
				t.Errorf("log %s does not say %q at ERROR", logs.String(), tt.log)
			}
			if !strings.Contains(logs.String(), `"stage":"download"`) {
				t.Errorf("log %s does not name the stage", logs.String())
			}
		})
	}
}
