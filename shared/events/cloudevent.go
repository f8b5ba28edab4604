package events

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/event"
)

// CloudEvent types Eventarc delivers.
const (
	TypePubSubPublished = "google.cloud.pubsub.topic.v1.messagePublished"
	TypeStorageFinalize = "google.cloud.storage.object.v1.finalized"
)

// PubSubMessage is the data of a messagePublished CloudEvent:
// https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/pubsub/v1/data.proto
// Only the fields the pipeline reads are declared; the rest are ignored.
type PubSubMessage struct {
	Message struct {
		Data        []byte            `json:"data"` // base64 in JSON; encoding/json decodes it
		Attributes  map[string]string `json:"attributes"`
		MessageID   string            `json:"messageId"`
		PublishTime string            `json:"publishTime"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// DecodePubSub extracts the Pub/Sub message from a messagePublished event.
func DecodePubSub(ce event.Event) (PubSubMessage, error) {
	var m PubSubMessage
	if err := json.Unmarshal(ce.Data(), &m); err != nil {
		return m, fmt.Errorf("%w: cloud event %s data is not a Pub/Sub message: %w", ErrInvalid, ce.ID(), err)
	}
	return m, nil
}

// LessonFromCloudEvent decodes and validates the lesson event carried by a
// messagePublished CloudEvent, returning the message attributes too (they
// carry the trace context).
func LessonFromCloudEvent(ce event.Event) (LessonEvent, map[string]string, error) {
	m, err := DecodePubSub(ce)
	if err != nil {
		return LessonEvent{}, nil, err
	}
	le, err := ParseLessonEvent(m.Message.Data)
	return le, m.Message.Attributes, err
}

// StorageObject is the data of an object.v1.finalized CloudEvent (the JSON
// API object resource): https://cloud.google.com/storage/docs/json_api/v1/objects
// Numbers arrive as strings there; FlexInt accepts both.
type StorageObject struct {
	Bucket      string            `json:"bucket"`
	Name        string            `json:"name"`
	Generation  FlexInt           `json:"generation"`
	Size        FlexInt           `json:"size"`
	MD5Hash     string            `json:"md5Hash"`
	CRC32C      string            `json:"crc32c"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
}

// FlexInt decodes a JSON number or a string holding one.
type FlexInt int64

func (f *FlexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*f = FlexInt(n)
	return nil
}
