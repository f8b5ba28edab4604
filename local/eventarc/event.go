package eventarc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/coursekb/pipeline/shared/events"
)

// pushMessage and pushBody are the data of a messagePublished CloudEvent,
// the shape events.PubSubMessage decodes.
type pushMessage struct {
	Data        []byte            `json:"data,omitempty"` // base64
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	PublishTime string            `json:"publishTime"`
	OrderingKey string            `json:"orderingKey,omitempty"`
}

type pushBody struct {
	Message      pushMessage `json:"message"`
	Subscription string      `json:"subscription"`
}

// Attributes of a Cloud Storage notification (JSON_API_V1 payload):
// https://cloud.google.com/storage/docs/pubsub-notifications#attributes
const (
	gcsEventType      = "eventType"
	gcsBucketID       = "bucketId"
	gcsObjectID       = "objectId"
	gcsGeneration     = "objectGeneration"
	gcsEventTime      = "eventTime"
	gcsObjectFinalize = "OBJECT_FINALIZE"
)

// timeFormat is how timestamps are written (RFC 3339, UTC, as Pub/Sub does).
const timeFormat = time.RFC3339Nano

// request builds the binary-mode CloudEvent request for m on route r, and
// fills in d's event type and lesson id. It returns a nil request and no
// error for a message that is not an event for r's target (to be
// acknowledged unsent).
func (b *Bus) request(ctx context.Context, r Route, m *pubsub.Message, d *Delivery) (*http.Request, error) {
	var (
		body            []byte
		ceType, source  string
		subject, ceTime string
		err             error
	)
	if r.Storage {
		if m.Attributes[gcsEventType] != gcsObjectFinalize {
			return nil, nil
		}
		bucket := m.Attributes[gcsBucketID]
		ceType, source = events.TypeStorageFinalize, "//storage.googleapis.com/projects/_/buckets/"+bucket
		subject = "objects/" + m.Attributes[gcsObjectID]
		ceTime = m.Attributes[gcsEventTime]
		body = m.Data
		if len(bytes.TrimSpace(body)) == 0 { // payload format NONE: the attributes are all there is
			body, err = json.Marshal(map[string]string{
				"bucket": bucket, "name": m.Attributes[gcsObjectID], "generation": m.Attributes[gcsGeneration],
			})
		}
		var obj events.StorageObject
		if json.Unmarshal(body, &obj) == nil && obj.Metadata[events.AttrLessonID] != "" {
			d.LessonID = obj.Metadata[events.AttrLessonID]
		}
	} else {
		ceType = events.TypePubSubPublished
		source = "//pubsub.googleapis.com/" + resourceName(b.projectID, "topics", r.Topic)
		body, err = json.Marshal(pushBody{
			Message: pushMessage{
				Data:        m.Data,
				Attributes:  m.Attributes,
				MessageID:   m.ID,
				PublishTime: m.PublishTime.UTC().Format(timeFormat),
				OrderingKey: m.OrderingKey,
			},
			Subscription: resourceName(b.projectID, "subscriptions", r.Subscription),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	if ceTime == "" {
		ceTime = m.PublishTime.UTC().Format(timeFormat)
	}
	d.EventType = ceType

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", m.ID)
	h.Set("Ce-Source", source)
	h.Set("Ce-Type", ceType)
	h.Set("Ce-Time", ceTime)
	if subject != "" {
		h.Set("Ce-Subject", subject)
	}
	// The lesson's trace continues in the function (DESIGN.md section 3).
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := m.Attributes[k]; v != "" {
			h.Set(k, v)
		}
	}
	return req, nil
}
