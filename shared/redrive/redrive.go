// Package redrive moves dead-lettered messages back where they came from,
// after the fault that put them there is fixed (DESIGN.md section 2: a dead
// letter is an alarm, kept on a holding subscription until an operator acts).
// Each message goes back to the topic of the subscription that gave up on
// it, with its data and attributes as they were, minus Pub/Sub's
// CloudPubSubDeadLetter* attributes; it is acknowledged on the holding
// subscription only once the republish is accepted, so a crash re-sends
// rather than loses (every consumer is idempotent).
package redrive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// AttrSourceSubscription names the subscription a dead letter came from.
const AttrSourceSubscription = "CloudPubSubDeadLetterSourceSubscription"

// Options bound a redrive.
type Options struct {
	// Limit is the most messages moved (default 1000).
	Limit int
	// DryRun lists what would move and moves nothing.
	DryRun bool
	// Wait is how long an empty pull waits for messages (default 5 s).
	Wait time.Duration
}

// Moved is one message moved, or that would be.
type Moved struct {
	MessageID string `json:"messageId"`
	LessonID  string `json:"lessonId,omitempty"`
	From      string `json:"fromSubscription"`
	To        string `json:"toTopic"`
}

// Run moves the messages held on holdSubscription (projects/P/subscriptions/S
// or an id in project) back to their source topics.
func Run(ctx context.Context, client *pubsub.Client, project, holdSubscription string, opts Options) ([]Moved, error) {
	if opts.Limit <= 0 {
		opts.Limit = 1000
	}
	if opts.Wait <= 0 {
		opts.Wait = 5 * time.Second
	}
	hold := name(project, "subscriptions", holdSubscription)
	topics := map[string]string{} // source subscription → its topic
	var moved []Moved
	for len(moved) < opts.Limit {
		pctx, cancel := context.WithTimeout(ctx, opts.Wait)
		resp, err := client.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{
			Subscription: hold, MaxMessages: int32(min(100, opts.Limit-len(moved))),
		})
		cancel()
		if errors.Is(pctx.Err(), context.DeadlineExceeded) || (err == nil && len(resp.GetReceivedMessages()) == 0) {
			return moved, nil // nothing more held
		}
		if err != nil {
			return moved, fmt.Errorf("redrive: pull %s: %w", hold, err)
		}
		var acks []string
		for _, rm := range resp.GetReceivedMessages() {
			m := rm.GetMessage()
			source := m.GetAttributes()[AttrSourceSubscription]
			if source == "" {
				return moved, fmt.Errorf("redrive: message %s on %s says no source subscription (%s): not a dead letter", m.GetMessageId(), hold, AttrSourceSubscription)
			}
			topic, ok := topics[source]
			if !ok {
				sub, err := client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name(project, "subscriptions", source)})
				if err != nil {
					return moved, fmt.Errorf("redrive: source subscription %s: %w", source, err)
				}
				topic, topics[source] = sub.GetTopic(), sub.GetTopic()
			}
			mv := Moved{MessageID: m.GetMessageId(), LessonID: m.GetAttributes()["lessonId"], From: source, To: topic}
			if !opts.DryRun {
				attrs := map[string]string{}
				for k, v := range m.GetAttributes() {
					if !strings.HasPrefix(k, "CloudPubSubDeadLetter") {
						attrs[k] = v
					}
				}
				if _, err := client.TopicAdminClient.Publish(ctx, &pubsubpb.PublishRequest{
					Topic: topic, Messages: []*pubsubpb.PubsubMessage{{Data: m.GetData(), Attributes: attrs}},
				}); err != nil {
					return moved, fmt.Errorf("redrive: republish %s to %s: %w", m.GetMessageId(), topic, err)
				}
				acks = append(acks, rm.GetAckId())
			}
			moved = append(moved, mv)
		}
		if opts.DryRun {
			// Hand them back at once so a real run finds them.
			ids := make([]string, 0, len(resp.GetReceivedMessages()))
			for _, rm := range resp.GetReceivedMessages() {
				ids = append(ids, rm.GetAckId())
			}
			_ = client.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: hold, AckIds: ids, AckDeadlineSeconds: 0})
			return moved, nil
		}
		if err := client.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: hold, AckIds: acks}); err != nil {
			return moved, fmt.Errorf("redrive: acknowledge on %s (the messages were republished; they may come twice): %w", hold, err)
		}
	}
	return moved, nil
}

func name(project, kind, id string) string {
	if strings.HasPrefix(id, "projects/") {
		return id
	}
	return "projects/" + project + "/" + kind + "/" + id
}
