package tfcheck

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/config"
)

// subscription is one entry of local.subscriptions.
type subscription struct {
	Name, Function, Topic, Filter string
	MaxAttempts                   int64
	DeadLetter                    bool
}

func decodeSubscriptions(t *testing.T, e *Eval, local string) map[string]subscription {
	t.Helper()
	v, err := e.Local(local)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]subscription{}
	for it := v.ElementIterator(); it.Next(); {
		k, s := it.Element()
		n, _ := num(attr(s, "max_attempts"))
		out[k.AsString()] = subscription{
			Name: k.AsString(), Function: str(attr(s, "function")), Topic: str(attr(s, "topic")),
			Filter: str(attr(s, "filter")), MaxAttempts: n, DeadLetter: boolean(attr(s, "dead_letter")),
		}
	}
	return out
}

func stringMap(t *testing.T, e *Eval, local string) map[string]string {
	t.Helper()
	v, err := e.Local(local)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, s := it.Element()
		out[k.AsString()] = str(s)
	}
	return out
}

// deliverySpan is how long Pub/Sub keeps redelivering a message nacked on
// every attempt: the waits between attempts start at minBackoff and double
// up to maxBackoff (local/eventarc models the same schedule).
func deliverySpan(attempts int64, minBackoff, maxBackoff time.Duration) time.Duration {
	var total time.Duration
	wait := minBackoff
	for i := int64(1); i < attempts; i++ {
		total += min(wait, maxBackoff)
		wait *= 2
	}
	return total
}

func durationVar(t *testing.T, e *Eval, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(str(e.Vars[name]))
	if err != nil {
		t.Fatalf("var.%s = %q is not a duration: %v", name, str(e.Vars[name]), err)
	}
	return d
}

// TestSubscriptions checks every push subscription of ours (DESIGN.md
// section 2, "Dead letters") against the specs and the local stack: named
// <topic>-<function>; a dead-letter topic <subscription>-dlq and a delivery
// limit well above the stages' MAX_ATTEMPTS, except the notifier's reads of
// dead-letter topics, which have none; every dead-letter topic read by the
// notifier or held by a pull subscription; OIDC push to the function's URL
// with the /projects/P/topics/T suffix functions-framework-go reads.
func TestSubscriptions(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	specs := decodeSpecs(t, e)
	subs := decodeSubscriptions(t, e, "subscriptions")
	dlqs := stringMap(t, e, "dead_letter_topics")
	held := heldTopics(t, cfg, e)

	maxAttempts := int64(5)
	if n, err := strconv.Atoi(str(specs["downloader"].Env["MAX_ATTEMPTS"])); err == nil {
		maxAttempts = int64(n)
	}

	// Every spec subscription is there, and every subscription comes from a spec.
	for name, s := range specs {
		for _, want := range s.Subscriptions {
			key := want.Topic + "-" + name
			got, ok := subs[key]
			switch {
			case !ok:
				t.Errorf("function %s asks for a subscription to %s, but local.subscriptions has no %s", name, want.Topic, key)
			case got.Function != name || got.Topic != want.Topic || got.Filter != want.Filter || got.DeadLetter != want.DeadLetter:
				t.Errorf("subscription %s is %+v; the spec of %s says %+v", key, got, name, want)
			}
		}
	}
	for key, s := range subs {
		if want := s.Topic + "-" + s.Function; key != want {
			t.Errorf("subscription %s: want the name <topic>-<function>, %s", key, want)
		}
		sp, ok := specs[s.Function]
		if !ok {
			t.Errorf("subscription %s feeds %q, which is not a function", key, s.Function)
			continue
		}
		switch {
		case s.DeadLetter:
			dlq := key + "-dlq"
			if dlqs[dlq] != key {
				t.Errorf("subscription %s: its dead-letter topic should be %s, and local.dead_letter_topics maps it to %q", key, dlq, dlqs[dlq])
			}
			if s.MaxAttempts < 2*maxAttempts || s.MaxAttempts > 100 {
				t.Errorf("subscription %s: %d deliveries; Pub/Sub's limit must sit well above MAX_ATTEMPTS (%d): at least twice it, at most 100", key, s.MaxAttempts, maxAttempts)
			}
		case dlqs[s.Topic] == "":
			t.Errorf("subscription %s has no dead-letter policy but reads %s, which is not a dead-letter topic", key, s.Topic)
		case !sp.DeadLetters:
			t.Errorf("subscription %s reads a dead-letter topic, but %s's spec does not set dead_letters", key, s.Function)
		}
	}

	// Every dead-letter topic is read by each function with dead_letters but
	// the one it comes from (the alarm), and kept by <topic>-hold for
	// `pipeline redrive` (shared/redrive reads <topic>-hold).
	for dlq, source := range dlqs {
		from := subs[source].Function
		for name, sp := range specs {
			if !sp.DeadLetters {
				continue
			}
			_, ok := subs[dlq+"-"+name]
			switch {
			case name == from && ok:
				t.Errorf("%s reads its own dead letters (%s): a message that fails there would only come back", name, dlq)
			case name != from && !ok:
				t.Errorf("dead-letter topic %s: %s reads every dead-letter topic but has no subscription %s-%s", dlq, name, dlq, name)
			}
		}
		if !slices.Contains(held, dlq) {
			t.Errorf("dead-letter topic %s has no %s-hold pull subscription: pipeline redrive would find nothing to move back", dlq, dlq)
		}
	}
	for _, h := range held {
		if dlqs[h] == "" {
			t.Errorf("google_pubsub_subscription.dead_letter_hold holds %s, which is not a dead-letter topic", h)
		}
	}

	// The notifier nacks a run's digest until the run ends or
	// NOTIFY_RUN_WAIT passes: the redeliveries must last that long.
	minB, maxB := durationVar(t, e, "retry_minimum_backoff"), durationVar(t, e, "retry_maximum_backoff")
	if maxB > 600*time.Second {
		t.Errorf("var.retry_maximum_backoff %s: Pub/Sub allows at most 600s", maxB)
	}
	runWait := time.Duration(0)
	if fields, ok := configFields("notifier"); ok {
		runWait, _ = time.ParseDuration(fields["NOTIFY_RUN_WAIT"].Default)
	}
	if v := str(specs["notifier"].Env["NOTIFY_RUN_WAIT"]); v != "" {
		runWait, _ = time.ParseDuration(v)
	}
	for key, s := range subs {
		if reflect.TypeOf(functionConfigs[s.Function]) != reflect.TypeOf(config.Notifier{}) || s.Topic != "lesson-events" {
			continue
		}
		if span := deliverySpan(s.MaxAttempts, minB, maxB); span < runWait {
			t.Errorf("subscription %s: %d deliveries span %s, less than NOTIFY_RUN_WAIT %s: a digest would be dead-lettered before its run is waited for", key, s.MaxAttempts, span, runWait)
		}
	}

	checkPushResource(t, cfg)
	checkPubSubAgentGrants(t, cfg, e, subs, dlqs)
}

// heldTopics are the topics google_pubsub_subscription.dead_letter_hold
// keeps, checked to be <topic>-hold pull subscriptions that keep messages.
func heldTopics(t *testing.T, cfg *Config, e *Eval) []string {
	t.Helper()
	r := cfg.Find("resource", "google_pubsub_subscription", "dead_letter_hold")
	if r == nil {
		t.Fatal("no google_pubsub_subscription.dead_letter_hold")
	}
	if hasBlock(r.Block.Body, "push_config") != nil || hasBlock(r.Block.Body, "dead_letter_policy") != nil {
		t.Errorf("%s must be a pull subscription with no dead-letter policy (the end of the line)", r.Addr())
	}
	if r.Attr("message_retention_duration") == nil {
		t.Errorf("%s must set message_retention_duration: it keeps dead letters for an operator", r.Addr())
	}
	insts, err := e.Instances(r)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range insts {
		if v, err := e.Value(in, r.Attr("name").Expr); err != nil || str(v) != in.Key+"-hold" {
			t.Errorf("%s[%q]: want the name %s-hold (what pipeline redrive reads)", r.Addr(), in.Key, in.Key)
		}
		out = append(out, in.Key)
	}
	return out
}

func checkPushResource(t *testing.T, cfg *Config) {
	t.Helper()
	push := cfg.Find("resource", "google_pubsub_subscription", "push")
	if push == nil {
		t.Fatal("no google_pubsub_subscription.push")
	}
	if got := cfg.Text(push.Attr("for_each").Expr.Range()); got != "local.subscriptions" {
		t.Errorf("google_pubsub_subscription.push: for_each = %s, want local.subscriptions", got)
	}
	body := push.Block.Body
	pc := hasBlock(body, "push_config")
	if pc == nil || pc.Attributes["push_endpoint"] == nil {
		t.Fatal("google_pubsub_subscription.push has no push_config.push_endpoint")
	}
	if ep := cfg.Text(pc.Attributes["push_endpoint"].Expr.Range()); !strings.Contains(ep, "/projects/${var.project_id}/topics/${each.value.topic}") {
		t.Errorf("push_endpoint %s lacks the /projects/${var.project_id}/topics/${each.value.topic} suffix functions-framework-go reads the event's source from", ep)
	}
	if hasBlock(pc, "oidc_token") == nil {
		t.Error("google_pubsub_subscription.push pushes without an oidc_token: the functions are private")
	}
	if hasBlock(body, "retry_policy") == nil {
		t.Error("google_pubsub_subscription.push has no retry_policy: nacked messages would be redelivered at once")
	}
	dlp := dynamicBlock(body, "dead_letter_policy")
	if dlp == nil || !strings.Contains(cfg.Text(dlp.Attributes["for_each"].Expr.Range()), "each.value.dead_letter") {
		t.Error("google_pubsub_subscription.push: want a dynamic dead_letter_policy on each.value.dead_letter")
	}
	if a := body.Attributes["ack_deadline_seconds"]; a == nil || !strings.Contains(cfg.Text(a.Expr.Range()), "600") {
		t.Error("google_pubsub_subscription.push: ack_deadline_seconds must follow the function's timeout, at most 600 s")
	}
	for _, r := range cfg.OfType("google_pubsub_subscription") {
		if r.Name != "push" && hasBlock(r.Block.Body, "push_config") != nil {
			t.Errorf("%s pushes: every push subscription belongs in google_pubsub_subscription.push (one map, one set of checks)", r.Addr())
		}
	}
}

// dynamicBlock returns the dynamic block of that type, itself (not its
// content).
func dynamicBlock(body *hclsyntax.Body, name string) *hclsyntax.Body {
	for _, b := range body.Blocks {
		if b.Type == "dynamic" && len(b.Labels) == 1 && b.Labels[0] == name {
			return b.Body
		}
	}
	return nil
}

// checkPubSubAgentGrants: dead-lettering needs the Pub/Sub service agent to
// publish to each dead-letter topic and to subscribe to each subscription
// that has one.
func checkPubSubAgentGrants(t *testing.T, cfg *Config, e *Eval, subs map[string]subscription, dlqs map[string]string) {
	t.Helper()
	agent := cfg.Locals["pubsub_agent"]
	if agent == nil || !strings.Contains(cfg.Text(agent.Expr.Range()), "@gcp-sa-pubsub.iam.gserviceaccount.com") {
		t.Fatal("local.pubsub_agent must name service-<number>@gcp-sa-pubsub.iam.gserviceaccount.com")
	}
	grantKeys := func(typ, role string) []string {
		var out []string
		for _, r := range cfg.OfType(typ) {
			m, rl := r.Attr("member"), r.Attr("role")
			if m == nil || rl == nil || cfg.Text(m.Expr.Range()) != "local.pubsub_agent" {
				continue
			}
			if v, err := e.Value(Instance{}, rl.Expr); err != nil || str(v) != role {
				continue
			}
			insts, err := e.Instances(r)
			if err != nil {
				t.Error(err)
			}
			out = append(out, keys(insts)...)
		}
		slices.Sort(out)
		return out
	}
	wantPub := keysOf(dlqs)
	if got := grantKeys("google_pubsub_topic_iam_member", "roles/pubsub.publisher"); !slices.Equal(got, wantPub) {
		t.Errorf("the Pub/Sub service agent may publish to %v; the dead-letter topics are %v", got, wantPub)
	}
	var wantSub []string
	for k, s := range subs {
		if s.DeadLetter {
			wantSub = append(wantSub, k)
		}
	}
	slices.Sort(wantSub)
	if got := grantKeys("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber"); !slices.Equal(got, wantSub) {
		t.Errorf("the Pub/Sub service agent subscribes to %v; the subscriptions with a dead-letter topic are %v", got, wantSub)
	}
}

// TestSubscriptionsMatchTheLocalStack compares Terraform's subscriptions
// with the local stack's routes (local/stack Routes), which stand for them
// on one machine. Topics, filters, functions and the delivery limit are the
// same; the names differ in a documented way (docs/deploy.md): Terraform
// names a subscription <topic>-<function> and its dead-letter topic
// <topic>-<function>-dlq; the stack names them <route>-<topic> and
// <topic>-<route>-dlq, where the route is the function's name, or
// syncer-removed for the syncer's removals. The notifier's reads of
// dead-letter topics are <dead-letter topic>-notifier on both sides.
// Routes Terraform has and the stack lacks are listed, not failed: the stack
// grows one stage at a time.
func TestSubscriptionsMatchTheLocalStack(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	subs := decodeSubscriptions(t, e, "subscriptions")
	if n, _ := num(e.Vars["max_delivery_attempts"]); n != stack.DefaultMaxDeliveryAttempts {
		t.Errorf("var.max_delivery_attempts defaults to %d, the local stack delivers %d times (stack.DefaultMaxDeliveryAttempts)", n, stack.DefaultMaxDeliveryAttempts)
	}
	routes := stack.Routes("http://functions", stack.Options{})
	function := func(target string) string { return strings.ToLower(target[strings.LastIndex(target, "/")+1:]) }

	// The local dead-letter topic names, mapped to Terraform's; the storage
	// route's has none in the cloud (Eventarc's own subscription).
	dlqName := map[string]string{}
	for _, r := range routes {
		if r.Storage {
			dlqName[r.DeadLetterTopic] = ""
			continue
		}
		fn := function(r.Target)
		if !strings.HasPrefix(r.Name, fn) {
			t.Errorf("local route %s feeds %s: its name must start with the function's (the documented mapping)", r.Name, fn)
		}
		dlqName[r.DeadLetterTopic] = r.Topic + "-" + fn + "-dlq"
	}
	seen := map[string]bool{}
	for _, r := range routes {
		if r.Storage {
			continue
		}
		fn := function(r.Target)
		topic, isDLQ := dlqName[r.Topic]
		switch {
		case isDLQ && topic == "":
			continue // dead letters of the storage route: none in the cloud
		case !isDLQ:
			topic = r.Topic
		}
		key := topic + "-" + fn
		s, ok := subs[key]
		if !ok {
			t.Errorf("the local stack routes %s to %s (subscription %s); Terraform has no subscription %s", r.Topic, fn, r.Subscription, key)
			continue
		}
		seen[key] = true
		if s.Filter != r.Filter {
			t.Errorf("subscription %s: filter %q in Terraform, %q in the local stack", key, s.Filter, r.Filter)
		}
		switch {
		case isDLQ:
			if s.DeadLetter {
				t.Errorf("subscription %s reads dead letters; it must have no dead-letter policy of its own", key)
			}
			if r.Subscription != r.Topic+"-"+fn {
				t.Errorf("the local stack reads dead-letter topic %s as %s: want <dead-letter topic>-<function>", r.Topic, r.Subscription)
			}
		case s.DeadLetter && dlqName[r.DeadLetterTopic] != key+"-dlq":
			t.Errorf("subscription %s: dead-letter topic %s in Terraform, %s in the local stack", key, key+"-dlq", r.DeadLetterTopic)
		}
	}
	var notLocal []string
	for key := range subs {
		if !seen[key] {
			notLocal = append(notLocal, key)
		}
	}
	slices.Sort(notLocal)
	if len(notLocal) > 0 {
		t.Logf("subscriptions the local stack does not route yet: %v", notLocal)
	}
}
