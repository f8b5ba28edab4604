package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/shared/events"
)

// Attributes Pub/Sub adds to a message it moves to a dead-letter topic:
// https://cloud.google.com/pubsub/docs/handling-failures#track-delivery-attempts
const (
	AttrDeadLetterSubscription = "CloudPubSubDeadLetterSourceSubscription"
	AttrDeadLetterProject      = "CloudPubSubDeadLetterSourceSubscriptionProject"
	AttrDeadLetterDeliveries   = "CloudPubSubDeadLetterSourceDeliveryCount"
	AttrDeadLetterPublishTime  = "CloudPubSubDeadLetterSourceTopicPublishTime"
	deadLetterPrefix           = "CloudPubSubDeadLetterSource"
)

// Input is what one CloudEvent asks of the notifier: exactly one of Lesson
// and DeadLetter is set.
type Input struct {
	EventID    string
	Lesson     *events.LessonEvent
	DeadLetter *DeadLetter
	// Attributes are the message's, which carry the trace context.
	Attributes map[string]string
}

// DeadLetter is a message that exhausted a subscription's delivery
// attempts, as the dead-letter topic delivered it.
type DeadLetter struct {
	// SourceSubscription is the subscription that gave up on it, as Pub/Sub
	// names it in the attribute; "topic:<name>" when the attribute is
	// missing (someone published to a dead-letter topic by hand).
	SourceSubscription string
	SourceProject      string
	// DeliveryCount is how often it was delivered before; 0 if unknown.
	DeliveryCount int
	// MessageID is its id on the dead-letter topic: the same on every
	// redelivery of this dead letter.
	MessageID string
	// Topic is the dead-letter topic it arrived on, when the event says.
	Topic string
	// PublishTime is when it was first published to its source topic.
	PublishTime string
	Data        []byte
	// Attributes are the original message's, without the dead-letter ones.
	Attributes map[string]string
	// LessonID and Version are read from the data or the attributes when
	// they can be; empty and 0 otherwise.
	LessonID string
	Version  int
}

// Decode reads a messagePublished CloudEvent from lesson-events or a
// dead-letter topic. An error wraps events.ErrInvalid: the event can never
// be used, and retrying it is useless. A dead letter is never invalid
// because of its data, which may be anything.
func Decode(ce event.Event) (Input, error) {
	in := Input{EventID: ce.ID()}
	if ce.Type() != events.TypePubSubPublished {
		return in, fmt.Errorf("%w: cloud event %s has type %q, not %s", events.ErrInvalid, ce.ID(), ce.Type(), events.TypePubSubPublished)
	}
	m, err := events.DecodePubSub(ce)
	if err != nil {
		return in, err
	}
	in.Attributes = m.Message.Attributes
	topic := topicOf(ce.Source())
	_, dead := m.Message.Attributes[AttrDeadLetterSubscription]
	if dead || (topic != "" && topic != events.TopicLessonEvents) {
		dl := deadLetter(m, topic)
		if dl.MessageID == "" {
			dl.MessageID = ce.ID()
		}
		if dl.MessageID == "" {
			return in, fmt.Errorf("%w: dead letter from %s has no message id", events.ErrInvalid, dl.SourceSubscription)
		}
		in.DeadLetter = &dl
		return in, nil
	}
	ev, err := events.ParseLessonEvent(m.Message.Data)
	if err != nil {
		return in, fmt.Errorf("lesson-events message %s: %w", m.Message.MessageID, err)
	}
	switch ev.Kind {
	case events.KindSynced, events.KindFailed, events.KindRemoved:
	default:
		return in, fmt.Errorf("%w: lesson-events message %s has kind %q, not synced, failed or removed", events.ErrInvalid, m.Message.MessageID, ev.Kind)
	}
	in.Lesson = &ev
	return in, nil
}

func deadLetter(m events.PubSubMessage, topic string) DeadLetter {
	a := m.Message.Attributes
	dl := DeadLetter{
		SourceSubscription: a[AttrDeadLetterSubscription],
		SourceProject:      a[AttrDeadLetterProject],
		MessageID:          m.Message.MessageID,
		Topic:              topic,
		PublishTime:        a[AttrDeadLetterPublishTime],
		Data:               m.Message.Data,
		Attributes:         map[string]string{},
	}
	if dl.SourceSubscription == "" {
		dl.SourceSubscription = "topic:" + topic
	}
	dl.DeliveryCount, _ = strconv.Atoi(a[AttrDeadLetterDeliveries])
	maps.Copy(dl.Attributes, a)
	maps.DeleteFunc(dl.Attributes, func(k, _ string) bool { return strings.HasPrefix(k, deadLetterPrefix) })
	dl.LessonID, dl.Version = lessonOf(m.Message.Data, a)
	return dl
}

// lessonOf reads which lesson a dead letter was about: from its data when
// that is a lesson event (valid or not), else from its attributes. Only an
// id that is a safe page id is returned: it is used to read the lesson.
func lessonOf(data []byte, attrs map[string]string) (string, int) {
	var ev events.LessonEvent
	if json.Unmarshal(data, &ev) == nil && events.ValidLessonID(ev.LessonID) {
		return ev.LessonID, ev.Version
	}
	if id := attrs[events.AttrLessonID]; events.ValidLessonID(id) {
		v, _ := strconv.Atoi(attrs[events.AttrVersion])
		return id, v
	}
	return "", 0
}

// topicOf returns the topic id of a Pub/Sub CloudEvent source
// ("//pubsub.googleapis.com/projects/P/topics/T"), or "" when the source
// does not name one.
func topicOf(source string) string {
	_, topic, ok := strings.Cut(source, "/topics/")
	if !ok || strings.Contains(topic, "/") {
		return ""
	}
	return topic
}
