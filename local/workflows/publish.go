package workflows

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// publish is the googleapis.pubsub.v1.projects.topics.publish connector:
// body {messages: [{data: base64, attributes: {...}}]} gives
// {messageIds: [...]}. Pub/Sub API errors raise HttpError maps, as the
// connector's REST calls do.
func (f *frame) publish(ctx context.Context, st *step, args map[string]any) (any, error) {
	topic, ok := args["topic"].(string)
	parts := strings.Split(topic, "/")
	if !ok || len(parts) != 4 || parts[0] != "projects" || parts[2] != "topics" || parts[1] == "" || parts[3] == "" {
		return nil, badRequest("topic must be projects/PROJECT/topics/TOPIC, got %v", args["topic"])
	}
	body, ok := args["body"].(map[string]any)
	if !ok {
		return nil, badRequest("body must be a map with messages")
	}
	list, ok := body["messages"].([]any)
	if !ok || len(list) == 0 {
		return nil, badRequest("body.messages must be a non-empty list")
	}
	for k := range body {
		if k != "messages" {
			return nil, f.refuse(st, "publish body field %q %s", k, notSupported)
		}
	}
	var msgs []PubSubMessage
	for i, m := range list {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil, badRequest("messages[%d] must be a map", i)
		}
		var msg PubSubMessage
		for k, v := range mm {
			switch k {
			case "data":
				s, ok := v.(string)
				if !ok {
					return nil, badRequest("messages[%d].data must be a base64 string, got %s", i, typeName(v))
				}
				data, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return nil, badRequest("messages[%d].data is not valid base64: %v", i, err)
				}
				msg.Data = data
			case "attributes":
				am, ok := v.(map[string]any)
				if !ok && v != nil {
					return nil, badRequest("messages[%d].attributes must be a map of strings", i)
				}
				msg.Attributes = map[string]string{}
				for ak, av := range am {
					s, ok := av.(string)
					if !ok {
						return nil, badRequest("messages[%d].attributes.%s must be a string, got %s", i, ak, typeName(av))
					}
					msg.Attributes[ak] = s
				}
			default:
				return nil, f.refuse(st, "publish message field %q %s", k, notSupported)
			}
		}
		if len(msg.Data) == 0 && len(msg.Attributes) == 0 {
			return nil, badRequest("messages[%d] has neither data nor attributes", i)
		}
		msgs = append(msgs, msg)
	}
	ids, err := f.x.r.publish(ctx, topic, msgs)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, publishError(topic, err)
	}
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return map[string]any{"messageIds": out}, nil
}

func badRequest(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return raise(map[string]any{
		"message": "HTTP server responded with error code 400",
		"code":    400,
		"headers": map[string]any{},
		"body":    map[string]any{"error": map[string]any{"code": 400, "message": msg, "status": "INVALID_ARGUMENT"}},
		"tags":    []any{"HttpError"},
	})
}

var grpcToHTTP = map[codes.Code]int{
	codes.InvalidArgument: 400, codes.FailedPrecondition: 400, codes.OutOfRange: 400,
	codes.Unauthenticated: 401, codes.PermissionDenied: 403, codes.NotFound: 404,
	codes.AlreadyExists: 409, codes.Aborted: 409, codes.ResourceExhausted: 429,
	codes.Canceled: 499, codes.Unimplemented: 501, codes.Unavailable: 503,
	codes.DeadlineExceeded: 504,
}

func publishError(topic string, err error) error {
	st, _ := status.FromError(err)
	code, ok := grpcToHTTP[st.Code()]
	if !ok {
		code = 500
	}
	return raise(map[string]any{
		"message": fmt.Sprintf("HTTP server responded with error code %d", code),
		"code":    code,
		"headers": map[string]any{},
		"body": map[string]any{"error": map[string]any{
			"code": code, "message": fmt.Sprintf("publish to %s: %s", topic, st.Message()), "status": st.Code().String(),
		}},
		"tags": []any{"HttpError"},
	})
}

// publish sends msgs through Options.Publish or the Pub/Sub client.
func (r *Runner) publish(ctx context.Context, topic string, msgs []PubSubMessage) ([]string, error) {
	if r.opts.Publish != nil {
		return r.opts.Publish(ctx, topic, msgs)
	}
	if r.opts.PubSub == nil {
		return nil, status.Error(codes.FailedPrecondition, "the local Workflows runner has no Pub/Sub client (Options.PubSub)")
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "the local Workflows runner is closed")
	}
	p, ok := r.publishers[topic]
	if !ok {
		p = r.opts.PubSub.Publisher(topic)
		r.publishers[topic] = p
	}
	r.mu.Unlock()
	results := make([]*pubsub.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = p.Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: m.Attributes})
	}
	ids := make([]string, len(msgs))
	for i, res := range results {
		id, err := res.Get(ctx)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}
