package tfcheck

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/coursekb/pipeline/functions/starter"
	"github.com/coursekb/pipeline/shared/analyze"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/enrich"
	"github.com/coursekb/pipeline/shared/transcribe"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// functionConfigs maps each function to the configuration struct it loads
// (its NewFromEnv). Every registered function must be listed.
var functionConfigs = map[string]any{
	"detector":    config.Detector{},
	"downloader":  config.Downloader{},
	"sweeper":     config.Sweeper{},
	"starter":     starter.Config{},
	"transcriber": transcribe.Config{},
	"analyzer":    analyze.Config{},
	"enricher":    enrich.Config{},
	"syncer":      vectorsync.Config{},
	"notifier":    config.Notifier{},
	"replayer":    config.Common{},
}

// leases are, per function, the variable holding how long a claim on its
// stage lasts: a claim must outlast the function's timeout, or a
// redelivery would start the same work a second time.
var leases = map[string]string{
	"downloader":  "DOWNLOAD_LEASE",
	"transcriber": "TRANSCRIBE_EXTRACT_LEASE",
	"analyzer":    "ANALYZE_LEASE",
	"enricher":    "ENRICH_LEASE",
	"syncer":      "SYNC_LEASE",
}

// envField is one variable a configuration struct reads.
type envField struct {
	Required bool
	Default  string
	Type     reflect.Type
}

// envFields returns a config struct's variables, embedded structs included.
func envFields(t reflect.Type, into map[string]envField) map[string]envField {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			envFields(f.Type, into)
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name != "" {
			into[name] = envField{
				Required: slices.Contains(strings.Split(opts, ","), "required"),
				Default:  f.Tag.Get("envDefault"),
				Type:     f.Type,
			}
		}
	}
	return into
}

func configFields(name string) (map[string]envField, bool) {
	c, ok := functionConfigs[name]
	if !ok {
		return nil, false
	}
	return envFields(reflect.TypeOf(c), map[string]envField{}), true
}

func stringSet(t *testing.T, v cty.Value, what string) []string {
	t.Helper()
	var out []string
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	switch {
	case v.Type().IsObjectType() || v.Type().IsMapType():
		for it := v.ElementIterator(); it.Next(); {
			k, _ := it.Element()
			out = append(out, k.AsString())
		}
	case v.CanIterateElements():
		for it := v.ElementIterator(); it.Next(); {
			_, el := it.Element()
			if !el.IsKnown() || el.Type() != cty.String {
				t.Errorf("%s: element is not a known string", what)
				continue
			}
			out = append(out, el.AsString())
		}
	default:
		t.Errorf("%s: want a list or map, got %s", what, v.Type().FriendlyName())
	}
	slices.Sort(out)
	return out
}

func str(v cty.Value) string {
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

func num(v cty.Value) (int64, bool) {
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0, false
	}
	n, _ := v.AsBigFloat().Int64()
	return n, true
}

func boolean(v cty.Value) bool {
	return !v.IsNull() && v.IsKnown() && v.Type() == cty.Bool && v.True()
}

// attr reads an attribute of an object value, or null when it has none.
func attr(v cty.Value, name string) cty.Value {
	if v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v.GetAttr(name)
}

// spec is one entry of local.functions, decoded.
type spec struct {
	Name          string
	EntryPoint    string
	Timeout       int64
	Schedule      cty.Value
	Workflow      bool
	Storage       bool
	Subscriptions []subscriptionSpec
	DeadLetters   bool
	Env           map[string]cty.Value // plain, common_env included; empty values left out
	Secrets       []string
	Publishes     []string
	Buckets       []bucketGrant
	Roles         []string
}

type subscriptionSpec struct {
	Topic, Filter string
	DeadLetter    bool
}

type bucketGrant struct{ Bucket, Role, Prefix string }

// specFields are the fields every entry of local.functions has
// (functions.tf's header).
var specFields = []string{
	"description", "entry_point", "memory", "cpu", "timeout", "max_instances", "concurrency",
	"schedule", "workflow", "storage", "subscriptions", "dead_letters",
	"env", "secrets", "publishes", "buckets", "roles",
}

// decodeSpecs reads local.functions.
func decodeSpecs(t *testing.T, e *Eval) map[string]spec {
	t.Helper()
	functions, err := e.Local("functions")
	if err != nil {
		t.Fatal(err)
	}
	commonEnv, err := e.Local("common_env")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]spec{}
	for it := functions.ElementIterator(); it.Next(); {
		k, f := it.Element()
		name := k.AsString()
		for _, field := range specFields {
			if !f.Type().IsObjectType() || !f.Type().HasAttribute(field) {
				t.Errorf("function %s: spec has no %q (functions.tf lists the fields of an entry)", name, field)
			}
		}
		s := spec{
			Name:        name,
			EntryPoint:  str(attr(f, "entry_point")),
			Schedule:    attr(f, "schedule"),
			Workflow:    boolean(attr(f, "workflow")),
			Storage:     boolean(attr(f, "storage")),
			DeadLetters: boolean(attr(f, "dead_letters")),
			Env:         map[string]cty.Value{},
			Secrets:     stringSet(t, attr(f, "secrets"), name+".secrets"),
			Publishes:   stringSet(t, attr(f, "publishes"), name+".publishes"),
			Roles:       stringSet(t, attr(f, "roles"), name+".roles"),
		}
		s.Timeout, _ = num(attr(f, "timeout"))
		for _, src := range []cty.Value{commonEnv, attr(f, "env")} {
			if src.IsNull() || !src.IsKnown() {
				continue
			}
			for it := src.ElementIterator(); it.Next(); {
				k, v := it.Element()
				if v.IsKnown() && !v.IsNull() && v.Type() == cty.String && v.AsString() == "" {
					delete(s.Env, k.AsString()) // left out (functions.tf function_env)
					continue
				}
				s.Env[k.AsString()] = v
			}
		}
		if subs := attr(f, "subscriptions"); subs.IsKnown() && !subs.IsNull() {
			for it := subs.ElementIterator(); it.Next(); {
				_, sub := it.Element()
				s.Subscriptions = append(s.Subscriptions, subscriptionSpec{
					Topic: str(attr(sub, "topic")), Filter: str(attr(sub, "filter")), DeadLetter: boolean(attr(sub, "dead_letter")),
				})
			}
		}
		if bs := attr(f, "buckets"); bs.IsKnown() && !bs.IsNull() {
			for it := bs.ElementIterator(); it.Next(); {
				_, b := it.Element()
				s.Buckets = append(s.Buckets, bucketGrant{Bucket: str(attr(b, "bucket")), Role: str(attr(b, "role")), Prefix: str(attr(b, "prefix"))})
			}
		}
		out[name] = s
	}
	return out
}

// switchedOn is every optional setting switched on, so that the checks see
// the optional environment and secrets too.
var switchedOn = map[string]cty.Value{
	"notify_slack":     cty.True,
	"smtp_host":        cty.StringVal("smtp.example.com"),
	"smtp_user":        cty.StringVal("pipeline"),
	"mail_from":        cty.StringVal("pipeline@example.com"),
	"mail_to":          cty.ListVal([]cty.Value{cty.StringVal("ops@example.com")}),
	"course_languages": cty.MapVal(map[string]cty.Value{"4100001": cty.StringVal("pt-BR")}),
	"course_catalog": cty.MapVal(map[string]cty.Value{"4100001": cty.ObjectVal(map[string]cty.Value{
		"subdomain": cty.StringVal("club"), "school": cty.StringVal("programacion"),
	})}),
	"media_manifest_uri": cty.StringVal("gs://example-raw/media/manifest.json"),
}

// TestFunctionSpecs checks local.functions, the one map every function is
// declared in, against the Go code: every function the root package
// registers is deployed with its entry point and a trigger of its kind, with
// the environment its configuration reads, and nothing else.
func TestFunctionSpecs(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	fns := cfg.OfType("google_cloudfunctions2_function")
	if len(fns) != 1 || cfg.Text(fns[0].Attr("for_each").Expr.Range()) != "local.functions" {
		t.Fatalf("want one google_cloudfunctions2_function with for_each = local.functions, got %d blocks", len(fns))
	}
	registered := registeredFunctions(t)
	for _, eval := range []struct {
		name string
		e    *Eval
	}{{"defaults", NewEval(cfg)}, {"optional settings on", NewEvalWith(cfg, switchedOn)}} {
		t.Run(eval.name, func(t *testing.T) {
			e := eval.e
			specs := decodeSpecs(t, e)
			topics := topicNames(t, cfg, e, nil)
			secrets, _ := e.Local("secrets")
			buckets, _ := e.Local("bucket_names")
			secretNames := stringSet(t, secrets, "local.secrets")
			bucketKeys := stringSet(t, buckets, "local.bucket_names")

			for name, rf := range registered {
				s, ok := specs[name]
				switch {
				case !ok:
					t.Errorf("functions.go registers %s (%s) but local.functions does not deploy it", name, rf.EntryPoint)
					continue
				case s.EntryPoint != rf.EntryPoint:
					t.Errorf("function %s: entry_point %q, but functions/%s registers %q", name, s.EntryPoint, name, rf.EntryPoint)
				}
				// Who calls it must fit how it is registered.
				scheduled := !s.Schedule.IsNull()
				evented := s.Storage || len(s.Subscriptions) > 0 || s.DeadLetters
				switch rf.Kind {
				case "HTTP":
					if scheduled == s.Workflow || evented {
						t.Errorf("function %s is an HTTP function: it needs exactly one of schedule and workflow, and no subscriptions or storage trigger", name)
					}
				case "CloudEvent":
					if !evented || scheduled || s.Workflow {
						t.Errorf("function %s is a CloudEvent function: it needs subscriptions, dead_letters or a storage trigger, and no schedule or workflow", name)
					}
				}
			}
			for name := range specs {
				if _, ok := registered[name]; !ok {
					t.Errorf("local.functions deploys %q, which functions.go does not register (root package imports: %v)", name, keysOf(registered))
				}
			}

			for name, s := range specs {
				if len("fn-"+name) > 30 || len(name+"-trigger") > 30 {
					t.Errorf("function %q: name too long for its service account ids (30 characters)", name)
				}
				limit := int64(3600) // HTTP functions, and Pub/Sub push
				if s.Storage {
					limit = 540 // a function with an Eventarc trigger
				}
				if s.Timeout < 1 || s.Timeout > limit {
					t.Errorf("function %s: timeout %ds outside 1..%d", name, s.Timeout, limit)
				}
				for _, p := range s.Publishes {
					if !slices.Contains(topics, p) {
						t.Errorf("function %s publishes to %q, not a declared topic %v", name, p, topics)
					}
				}
				for _, sub := range s.Subscriptions {
					if !slices.Contains(topics, sub.Topic) {
						t.Errorf("function %s subscribes to %q, not a declared topic %v", name, sub.Topic, topics)
					}
				}
				for _, b := range s.Buckets {
					if !slices.Contains(bucketKeys, b.Bucket) {
						t.Errorf("function %s: bucket %q is not a key of local.bucket_names %v", name, b.Bucket, bucketKeys)
					}
					if b.Prefix != "" && !strings.HasSuffix(b.Prefix, "/") {
						t.Errorf("function %s: bucket prefix %q must end in / (a prefix of object names)", name, b.Prefix)
					}
				}
				for _, r := range s.Roles {
					if !strings.HasPrefix(r, "roles/") {
						t.Errorf("function %s: role %q is not a predefined role", name, r)
					}
				}
				checkEnv(t, name, s, secretNames)
			}
		})
	}
}

// checkEnv compares what Terraform sets with what the function's
// configuration reads.
func checkEnv(t *testing.T, name string, s spec, secretNames []string) {
	t.Helper()
	fields, ok := configFields(name)
	if !ok {
		t.Errorf("function %s: no configuration struct in functionConfigs: say which one its NewFromEnv loads", name)
		return
	}
	set := map[string]string{}
	for k, v := range s.Env {
		set[k] = str(v)
		if slices.Contains(secretNames, k) {
			t.Errorf("function %s: %s is a secret (local.secrets) but is set as plain environment", name, k)
		}
	}
	for _, sec := range s.Secrets {
		if _, dup := set[sec]; dup {
			t.Errorf("function %s: %s is both a plain and a secret variable", name, sec)
		}
		if !slices.Contains(secretNames, sec) {
			t.Errorf("function %s: secret %q is not a key of local.secrets %v", name, sec, secretNames)
		}
		if _, reads := fields[sec]; !reads {
			t.Errorf("function %s: Terraform gives it the secret %s, which its configuration does not read", name, sec)
		}
		set[sec] = "(secret)"
	}
	for v, f := range fields {
		if _, ok := set[v]; f.Required && !ok {
			t.Errorf("function %s: %s is required by its configuration but Terraform does not set it", name, v)
		}
	}
	for v, val := range set {
		f, reads := fields[v]
		if !reads {
			t.Errorf("function %s: Terraform sets %s, which its configuration does not read", name, v)
			continue
		}
		checkEnvValue(t, name, v, val, f)
	}
	if lease, ok := leases[name]; ok {
		val := set[lease]
		if val == "" {
			val = fields[lease].Default
		}
		d, err := time.ParseDuration(val)
		if err != nil || d < time.Duration(s.Timeout)*time.Second {
			t.Errorf("function %s: %s %q must outlast the function's timeout (%ds): a redelivery would find the claim expired", name, lease, val, s.Timeout)
		}
	}
}

// checkEnvValue checks a value Terraform knows offline against the type the
// configuration parses it into.
func checkEnvValue(t *testing.T, fn, name, val string, f envField) {
	t.Helper()
	if val == "" || val == "(secret)" {
		return
	}
	var err error
	switch {
	case f.Type == reflect.TypeOf(time.Duration(0)):
		_, err = time.ParseDuration(val)
	case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
		_, err = strconv.ParseInt(val, 10, 64)
	case f.Type.Kind() == reflect.Float64:
		_, err = strconv.ParseFloat(val, 64)
	case f.Type.Kind() == reflect.Bool:
		_, err = strconv.ParseBool(val)
	}
	if err != nil {
		t.Errorf("function %s: %s=%q does not parse as %s: %v", fn, name, val, f.Type, err)
	}
	switch name {
	case "COURSE_CATALOG":
		var catalog map[string]struct {
			Subdomain string `json:"subdomain"`
			School    string `json:"school"`
		}
		if err := json.Unmarshal([]byte(val), &catalog); err != nil {
			t.Errorf("function %s: COURSE_CATALOG %q is not {product id: {subdomain, school}}: %v", fn, val, err)
		}
	case "COURSE_LANGUAGES":
		var langs map[string]string
		if err := json.Unmarshal([]byte(val), &langs); err != nil {
			t.Errorf("function %s: COURSE_LANGUAGES %q is not {course id: language}: %v", fn, val, err)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// publishers are the topics each function's code publishes to, and why
// (read from the Go code; a function's spec must grant these and no more).
var publishers = map[string]struct {
	topics []string
	why    string
}{
	"detector":    {outboxTopics, "its own events (discovered, processed, removed), and each run flushes every lesson's outbox (shared/detect outbox.go)"},
	"sweeper":     {outboxTopics, "re-drives any step and flushes every outbox (shared/sweep, shared/relay)"},
	"replayer":    {outboxTopics, "re-emits the event of the step a replay starts from (shared/replay)"},
	"downloader":  {[]string{"lesson-events"}, "announces a download failed for good"},
	"starter":     {[]string{"lesson-events"}, "announces a start failed for good"},
	"transcriber": {[]string{"lesson-events"}, "announces a transcription failed for good"},
	"analyzer":    {[]string{"lesson-events"}, "announces an analysis failed for good"},
	"enricher":    {[]string{"lesson-enriched", "lesson-events"}, "publishes lesson-enriched; announces a failure"},
	"syncer":      {[]string{"lesson-events"}, "announces synced, or a failure"},
	"notifier":    {nil, "publishes nothing"},
}

// outboxTopics are the topics lessonstate.TopicFor sends outbox entries to.
var outboxTopics = []string{"lesson-discovered", "lesson-downloaded", "lesson-enriched", "lesson-events", "lesson-processed"}

func TestPublishGrants(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	specs := decodeSpecs(t, NewEval(cfg))
	for name, s := range specs {
		want, ok := publishers[name]
		if !ok {
			t.Errorf("function %s: add what its code publishes to `publishers` in this test", name)
			continue
		}
		got := slices.Sorted(slices.Values(s.Publishes))
		w := slices.Sorted(slices.Values(want.topics))
		if !slices.Equal(got, w) {
			t.Errorf("function %s publishes %v in Terraform; its code needs %v (%s)", name, got, w, want.why)
		}
	}
	r := cfg.Find("resource", "google_pubsub_topic_iam_member", "function_publisher")
	if r == nil || cfg.Text(r.Attr("for_each").Expr.Range()) != "local.function_publishes" {
		t.Errorf("want google_pubsub_topic_iam_member.function_publisher with for_each = local.function_publishes")
	}
}

// TestEveryTopicHasASubscriber checks that every topic shared/events names
// is declared, and that every declared topic (dead-letter topics included)
// has a subscription or a retention: Pub/Sub drops a message published to a
// topic without subscriptions.
func TestEveryTopicHasASubscriber(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	names := topicNames(t, cfg, e, nil)
	for c, topic := range eventTopics(t) {
		if !slices.Contains(names, topic) {
			t.Errorf("events.%s = %q is not a declared topic %v", c, topic, names)
		}
	}
	subscribed := map[string]bool{}
	subs, _ := e.Local("subscriptions")
	for it := subs.ElementIterator(); it.Next(); {
		_, s := it.Element()
		subscribed[str(attr(s, "topic"))] = true
	}
	for _, h := range heldTopics(t, cfg, e) {
		subscribed[h] = true
	}
	// A topic block with message_retention_duration keeps messages for a
	// subscriber to come.
	retained := map[string]bool{}
	for _, r := range cfg.OfType("google_pubsub_topic") {
		if r.Attr("message_retention_duration") == nil {
			continue
		}
		insts, _ := e.Instances(r)
		for _, in := range insts {
			if v, err := e.Value(in, r.Attr("name").Expr); err == nil {
				retained[str(v)] = true
			}
		}
	}
	for _, topic := range names {
		if !subscribed[topic] && !retained[topic] {
			t.Errorf("topic %s has no subscription and no retention: Pub/Sub drops what is published to it", topic)
		}
	}
}
