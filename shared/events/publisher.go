package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel/attribute"

	"github.com/coursekb/pipeline/shared/tracing"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("events: publisher is closed")

// Publisher publishes lesson events with their attributes and the caller's
// trace context. It keeps one pubsub.Publisher per topic (each has its own
// batching goroutines), so create one Publisher per process and share it.
// It is safe for concurrent use.
type Publisher struct {
	client *pubsub.Client

	mu     sync.Mutex
	topics map[string]*pubsub.Publisher
	closed bool
}

// NewPublisher returns a Publisher over client. Close it before closing
// client.
func NewPublisher(client *pubsub.Client) *Publisher {
	return &Publisher{client: client, topics: map[string]*pubsub.Publisher{}}
}

// Publish validates ev, publishes it as JSON to topic (a topic id such as
// TopicLessonProcessed, or a full projects/P/topics/T name) with
// ev.Attributes() and the trace context of ctx, and waits until the server
// has accepted it. An invalid event is refused with ErrInvalid: it could
// only poison the subscriber.
func (p *Publisher) Publish(ctx context.Context, topic string, ev LessonEvent) (messageID string, err error) {
	if err := ev.Validate(); err != nil {
		return "", fmt.Errorf("publish to %s: %w", topic, err)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("publish to %s: encode lesson event: %w", topic, err)
	}
	return p.publish(ctx, topic, data, ev.Attributes())
}

// PublishRaw publishes data with attrs as they are, for outbox entries that
// were encoded when they were written. The trace context of ctx is added
// unless attrs already carry a traceparent: an outbox entry keeps the trace
// of the work that wrote it, not that of the relay sending it. attrs is not
// modified.
func (p *Publisher) PublishRaw(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	return p.publish(ctx, topic, data, maps.Clone(attrs))
}

func (p *Publisher) publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	pub, err := p.publisher(topic)
	if err != nil {
		return "", err
	}
	ctx, span := tracing.Start(ctx, "publish "+topic,
		attribute.String("messaging.system", "gcp_pubsub"),
		attribute.String("messaging.destination.name", topic),
		attribute.String("lessonId", attrs[AttrLessonID]))
	defer span.End()
	if attrs == nil {
		attrs = map[string]string{}
	}
	if _, ok := attrs[AttrTraceparent]; !ok {
		tracing.Inject(ctx, attrs)
	}
	id, err := pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs}).Get(ctx)
	if err != nil {
		span.RecordError(err)
		return "", fmt.Errorf("publish to %s: %w", topic, err)
	}
	span.SetAttributes(attribute.String("messaging.message.id", id))
	return id, nil
}

// publisher returns topic's pubsub.Publisher, creating it the first time.
func (p *Publisher) publisher(topic string) (*pubsub.Publisher, error) {
	if topic == "" {
		return nil, errors.New("events: publish: topic is empty")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPublisherClosed
	}
	pub, ok := p.topics[topic]
	if !ok {
		pub = p.client.Publisher(topic)
		p.topics[topic] = pub
	}
	return pub, nil
}

// Close flushes and stops every topic's publisher. Publishes in flight
// finish; later ones fail with ErrPublisherClosed. It does not close the
// client.
func (p *Publisher) Close() {
	p.mu.Lock()
	p.closed = true
	pubs := p.topics
	p.topics = map[string]*pubsub.Publisher{}
	p.mu.Unlock()
	for _, pub := range pubs {
		pub.Stop()
	}
}
