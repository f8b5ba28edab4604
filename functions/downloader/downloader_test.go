package downloader

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/logging"
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

// Input that can never succeed is acknowledged (nil) and logged with the
// reason, before the stage is reached: the handler here has no stage, so a
// test that reached it would panic.
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
			h := New(nil, logging.New(&logs, "info", "p"))
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
