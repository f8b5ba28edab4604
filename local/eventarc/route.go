// Package eventarc is the local Eventarc of the one-machine run (DESIGN.md
// section 6). It pulls subscriptions of the Pub/Sub emulator and delivers
// each message to a function over HTTP as a binary-mode CloudEvent, as
// Eventarc and Pub/Sub push do in the cloud: acknowledged on a 2xx answer,
// otherwise redelivered after an exponential backoff until the
// subscription's dead-letter policy moves it to the dead-letter topic. Cloud
// Storage notifications become object.v1.finalized events.
//
// What the emulator does itself (measured with the Google Cloud CLI's
// emulator): it honours a subscription's dead-letter policy (after
// MaxDeliveryAttempts nacks the message is published to the dead-letter
// topic with the CloudPubSubDeadLetterSource* attributes, and
// Message.DeliveryAttempt counts up from 1); it applies a retry policy only
// coarsely (the first redelivery after a nack is immediate, later ones wait
// whole seconds, about 2 to 4 s whatever the configured backoff). So the Bus
// waits the backoff itself before each nack, and Setup leaves the retry
// policy off the emulator's subscriptions so the two delays do not add up.
package eventarc

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults of a Route, those of Pub/Sub.
const (
	DefaultMaxDeliveryAttempts = 5
	DefaultMinBackoff          = 10 * time.Second
	DefaultMaxBackoff          = 600 * time.Second
	// DefaultAckDeadline is Pub/Sub's longest: how long a push waits for
	// the function's answer before the message counts as not acknowledged.
	DefaultAckDeadline = 600 * time.Second
)

// Route connects a topic to a function, as one Eventarc trigger fed by a
// subscription of ours with a dead-letter topic (DESIGN.md section 2).
type Route struct {
	// Name names the function, e.g. "downloader"; it appears in logs and
	// Delivery reports.
	Name string
	// Topic is the topic id (or projects/P/topics/T name) the route reads.
	Topic string
	// Subscription is the subscription id; default "<Name>-sub".
	Subscription string
	// Target is the function's URL; events are POSTed to it.
	Target string
	// DeadLetterTopic receives messages that failed MaxDeliveryAttempts
	// times; default "<Subscription>-dlq". Setup gives it a subscription
	// "<DeadLetterTopic>-sub" so dead letters can be read.
	DeadLetterTopic string
	// MaxDeliveryAttempts is 5 to 100 as in Pub/Sub; default 5.
	MaxDeliveryAttempts int
	// MinBackoff and MaxBackoff bound the exponential wait before a
	// redelivery: MinBackoff after the first failure, doubling, at most
	// MaxBackoff. Defaults 10 s and 600 s as in Pub/Sub.
	MinBackoff, MaxBackoff time.Duration
	// Storage says the topic carries Cloud Storage notifications (JSON_API_V1
	// payload): OBJECT_FINALIZE becomes a
	// google.cloud.storage.object.v1.finalized event, other event types are
	// acknowledged and dropped.
	Storage bool
	// Filter is the subscription's filter ("attributes.kind = \"removed\""):
	// only matching messages are delivered, as in Pub/Sub.
	Filter string
	// AckDeadline bounds each delivery attempt, as a push subscription's
	// ack deadline does: a function that has not answered by then has
	// failed this attempt and the message is redelivered. Default 600 s.
	AckDeadline time.Duration
}

// withDefaults returns r with empty fields defaulted, or an error naming what
// is wrong with it.
func (r Route) withDefaults() (Route, error) {
	if r.Subscription == "" {
		r.Subscription = r.Name + "-sub"
	}
	if r.DeadLetterTopic == "" {
		r.DeadLetterTopic = lastSegment(r.Subscription) + "-dlq"
	}
	if r.MaxDeliveryAttempts == 0 {
		r.MaxDeliveryAttempts = DefaultMaxDeliveryAttempts
	}
	if r.MinBackoff == 0 && r.MaxBackoff == 0 {
		r.MinBackoff, r.MaxBackoff = DefaultMinBackoff, DefaultMaxBackoff
	}
	if r.AckDeadline == 0 {
		r.AckDeadline = DefaultAckDeadline
	}
	var problems []error
	if r.Name == "" {
		problems = append(problems, errors.New("Name is empty"))
	}
	if r.Topic == "" {
		problems = append(problems, errors.New("Topic is empty"))
	}
	if u, err := url.Parse(r.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Errorf("Target %q is not an http(s) URL", r.Target))
	}
	if r.MaxDeliveryAttempts < 5 || r.MaxDeliveryAttempts > 100 {
		problems = append(problems, fmt.Errorf("MaxDeliveryAttempts %d is outside 5..100", r.MaxDeliveryAttempts))
	}
	if r.MinBackoff < 0 || r.MaxBackoff < r.MinBackoff || r.MaxBackoff > DefaultMaxBackoff {
		problems = append(problems, fmt.Errorf("backoff %s..%s is not 0 <= min <= max <= 600s", r.MinBackoff, r.MaxBackoff))
	}
	if r.AckDeadline < 0 || r.AckDeadline > DefaultAckDeadline {
		problems = append(problems, fmt.Errorf("AckDeadline %s is outside 0..600s", r.AckDeadline))
	}
	if len(problems) > 0 {
		return r, fmt.Errorf("eventarc: route %q: %w", r.Name, errors.Join(problems...))
	}
	return r, nil
}

// prepare defaults and validates routes, refusing two routes on one
// subscription (a subscription has one receiver).
func prepare(routes []Route) ([]Route, error) {
	if len(routes) == 0 {
		return nil, errors.New("eventarc: no routes")
	}
	out := make([]Route, len(routes))
	seen := map[string]string{}
	var problems []error
	for i, r := range routes {
		r, err := r.withDefaults()
		if err != nil {
			problems = append(problems, err)
		}
		sub := lastSegment(r.Subscription)
		if other, ok := seen[sub]; ok {
			problems = append(problems, fmt.Errorf("eventarc: routes %q and %q share subscription %s", other, r.Name, sub))
		}
		seen[sub] = r.Name
		out[i] = r
	}
	return out, errors.Join(problems...)
}

// backoff is the wait after a failed delivery attempt (1-based).
func (r Route) backoff(attempt int) time.Duration {
	d := r.MinBackoff
	for i := 1; i < attempt && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// resourceName returns projects/P/<kind>/ID, or name when it is already
// fully qualified.
func resourceName(projectID, kind, name string) string {
	if strings.HasPrefix(name, "projects/") {
		return name
	}
	return "projects/" + projectID + "/" + kind + "/" + name
}

func lastSegment(name string) string { return name[strings.LastIndex(name, "/")+1:] }
