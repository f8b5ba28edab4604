package eventarc

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Setup creates what routes need in projectID, as Terraform does in the
// cloud: each topic and dead-letter topic, each route's subscription with
// its dead-letter policy (and filter), a subscription "<dead-letter
// topic>-sub" per dead-letter topic so dead letters can be observed, and one
// "<dead-letter topic>-hold" that keeps them for an operator's redrive, as
// Terraform's holding subscriptions do. Existing topics are kept;
// an existing route subscription gets the route's dead-letter policy, so a
// rerun against a long-lived emulator does not keep a stale one.
//
// No retry policy is set: the Bus waits each route's backoff itself (see
// the package comment for what the emulator would do with one).
func Setup(ctx context.Context, client *pubsub.Client, projectID string, routes []Route) error {
	routes, err := prepare(routes)
	if err != nil {
		return err
	}
	topics := map[string]bool{}
	for _, r := range routes {
		for _, t := range []string{r.Topic, r.DeadLetterTopic} {
			name := resourceName(projectID, "topics", t)
			if topics[name] {
				continue
			}
			topics[name] = true
			if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name}); err != nil && status.Code(err) != codes.AlreadyExists {
				return fmt.Errorf("eventarc: create topic %s: %w", name, err)
			}
		}
	}
	dlqSubs := map[string]bool{}
	for _, r := range routes {
		dlq := resourceName(projectID, "topics", r.DeadLetterTopic)
		sub := &pubsubpb.Subscription{
			Name:   resourceName(projectID, "subscriptions", r.Subscription),
			Topic:  resourceName(projectID, "topics", r.Topic),
			Filter: r.Filter,
			DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{
				DeadLetterTopic:     dlq,
				MaxDeliveryAttempts: int32(r.MaxDeliveryAttempts),
			},
		}
		_, err := client.SubscriptionAdminClient.CreateSubscription(ctx, sub)
		if status.Code(err) == codes.AlreadyExists {
			_, err = client.SubscriptionAdminClient.UpdateSubscription(ctx, &pubsubpb.UpdateSubscriptionRequest{
				Subscription: sub,
				UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"dead_letter_policy"}},
			})
		}
		if err != nil {
			return fmt.Errorf("eventarc: route %s: subscription %s: %w", r.Name, sub.Name, err)
		}
		if dlqSubs[dlq] {
			continue
		}
		dlqSubs[dlq] = true
		for _, name := range []string{deadLetterSubscription(projectID, r), HoldSubscription(projectID, r)} {
			if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: name, Topic: dlq}); err != nil && status.Code(err) != codes.AlreadyExists {
				return fmt.Errorf("eventarc: route %s: dead-letter subscription %s: %w", r.Name, name, err)
			}
		}
	}
	return nil
}

// HoldSubscription names the subscription that keeps r's dead letters until
// an operator moves them back (pipeline redrive).
func HoldSubscription(projectID string, r Route) string {
	return resourceName(projectID, "subscriptions", lastSegment(r.DeadLetterTopic)+"-hold")
}

// deadLetterSubscription names the subscription Setup makes on r's
// dead-letter topic for observing.
func deadLetterSubscription(projectID string, r Route) string {
	return resourceName(projectID, "subscriptions", lastSegment(r.DeadLetterTopic)+"-sub")
}
