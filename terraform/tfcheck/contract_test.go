package tfcheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/zclconf/go-cty/cty"

	"github.com/coursekb/pipeline/shared/config"
)

// stages are the function names of DESIGN.md (one name per concept).
var stages = []string{"detector", "downloader", "starter", "transcriber", "analyzer", "enricher", "syncer", "notifier"}

// functionConfigs maps each function to the configuration struct it loads
// (shared/config); functions not listed yet are checked by name only.
var functionConfigs = map[string]any{
	"detector":   config.Detector{},
	"downloader": config.Downloader{},
}

// knownEnv are the variables the functions read (the brief of terraform/).
var knownEnv = []string{
	"GOOGLE_CLOUD_PROJECT", "RAW_BUCKET", "ARTIFACTS_BUCKET", "HOTMART_BASE_URL",
	"HOTMART_TOKEN_URL", "HOTMART_CLIENT_ID", "HOTMART_CLIENT_SECRET", "HOTMART_BASIC_TOKEN",
	"COURSE_CATALOG", "MEDIA_MANIFEST_URI", "MEDIA_INGEST_PREFIX", "MAX_MEDIA_BYTES",
	"DETECTION_BUDGET", "LOG_LEVEL",
}

// envTags returns a config struct's variables: name => required.
func envTags(t reflect.Type, into map[string]bool) map[string]bool {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			envTags(f.Type, into)
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name != "" {
			into[name] = slices.Contains(strings.Split(opts, ","), "required")
		}
	}
	return into
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

// TestFunctionSpecs checks local.functions, the one map every function is
// declared in, against the topics, secrets, buckets and configuration it
// names.
func TestFunctionSpecs(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	fns := cfg.OfType("google_cloudfunctions2_function")
	if len(fns) != 1 || cfg.Text(fns[0].Attr("for_each").Expr.Range()) != "local.functions" {
		t.Fatalf("want one google_cloudfunctions2_function with for_each = local.functions, got %d blocks", len(fns))
	}
	functions, err := e.Local("functions")
	if err != nil {
		t.Fatal(err)
	}
	topics := topicNames(t, cfg, e, nil)
	secrets, _ := e.Local("secrets")
	buckets, _ := e.Local("bucket_names")
	commonEnv, _ := e.Local("common_env")
	secretNames := stringSet(t, secrets, "local.secrets")
	bucketKeys := stringSet(t, buckets, "local.bucket_names")

	for it := functions.ElementIterator(); it.Next(); {
		k, f := it.Element()
		name := k.AsString()
		get := func(attr string) cty.Value {
			if !f.Type().IsObjectType() || !f.Type().HasAttribute(attr) {
				t.Errorf("function %s: spec has no %q", name, attr)
				return cty.NullVal(cty.DynamicPseudoType)
			}
			return f.GetAttr(attr)
		}
		if !slices.Contains(stages, name) {
			t.Errorf("function %q is not a stage of DESIGN.md (%v)", name, stages)
		}
		if len("fn-"+name) > 30 || len(name+"-trigger") > 30 {
			t.Errorf("function %q: name too long for its service account ids (30 characters)", name)
		}
		if ep := str(get("entry_point")); ep == "" || strings.ToUpper(ep[:1]) != ep[:1] {
			t.Errorf("function %s: entry_point %q must be an exported Go name", name, ep)
		}
		trigger := str(get("trigger"))
		topic := str(get("topic"))
		switch trigger {
		case "pubsub":
			if !slices.Contains(topics, topic) {
				t.Errorf("function %s: trigger topic %q is not a declared topic %v", name, topic, topics)
			}
		case "scheduler", "storage", "workflow":
			if topic != "" {
				t.Errorf("function %s: topic %q is set but trigger is %s", name, topic, trigger)
			}
		default:
			t.Errorf("function %s: trigger %q is not scheduler, pubsub, storage or workflow", name, trigger)
		}
		if tv := get("timeout"); tv.IsKnown() && !tv.IsNull() {
			secs, _ := tv.AsBigFloat().Int64()
			limit := int64(3600) // HTTP functions
			if trigger == "storage" {
				limit = 540 // event-driven functions
			}
			if secs < 1 || secs > limit {
				t.Errorf("function %s: timeout %ds outside 1..%d for a %s trigger", name, secs, limit, trigger)
			}
		}
		for _, p := range stringSet(t, get("publishes"), name+".publishes") {
			if !slices.Contains(topics, p) {
				t.Errorf("function %s publishes to %q, not a declared topic %v", name, p, topics)
			}
		}
		for _, b := range stringSet(t, get("buckets"), name+".buckets") {
			if !slices.Contains(bucketKeys, b) {
				t.Errorf("function %s: bucket %q is not a key of local.bucket_names %v", name, b, bucketKeys)
			}
		}
		fnSecrets := stringSet(t, get("secrets"), name+".secrets")
		for _, s := range fnSecrets {
			if !slices.Contains(secretNames, s) {
				t.Errorf("function %s: secret %q is not a key of local.secrets %v", name, s, secretNames)
			}
		}

		// Environment: what Terraform sets against what the function reads.
		set := map[string]string{}
		for _, src := range []cty.Value{commonEnv, get("env")} {
			if src.IsNull() || !src.IsKnown() {
				continue
			}
			for it := src.ElementIterator(); it.Next(); {
				k, v := it.Element()
				set[k.AsString()] = str(v)
			}
		}
		for _, s := range fnSecrets {
			if _, dup := set[s]; dup {
				t.Errorf("function %s: %s is both a plain and a secret variable", name, s)
			}
			set[s] = "(secret)"
		}
		read := map[string]bool{}
		if c, ok := functionConfigs[name]; ok {
			read = envTags(reflect.TypeOf(c), read)
			for v, required := range read {
				if _, ok := set[v]; required && !ok {
					t.Errorf("function %s: %s is required by shared/config but Terraform does not set it", name, v)
				}
			}
		}
		for v, val := range set {
			if _, reads := read[v]; !reads && !slices.Contains(knownEnv, v) {
				t.Errorf("function %s: Terraform sets %s, which no function reads (known: %v)", name, v, knownEnv)
			}
			checkEnvValue(t, name, v, val)
		}
	}
}

// checkEnvValue checks the values Terraform knows offline (variable defaults).
func checkEnvValue(t *testing.T, fn, name, val string) {
	if val == "" || val == "(secret)" {
		return
	}
	switch name {
	case "DETECTION_BUDGET":
		if _, err := time.ParseDuration(val); err != nil {
			t.Errorf("function %s: DETECTION_BUDGET %q is not a Go duration: %v", fn, val, err)
		}
	case "MAX_MEDIA_BYTES":
		if _, err := strconv.ParseInt(val, 10, 64); err != nil {
			t.Errorf("function %s: MAX_MEDIA_BYTES %q is not an integer: %v", fn, val, err)
		}
	case "COURSE_CATALOG":
		var catalog map[string]struct {
			Subdomain string `json:"subdomain"`
			School    string `json:"school"`
		}
		if err := json.Unmarshal([]byte(val), &catalog); err != nil {
			t.Errorf("function %s: COURSE_CATALOG %q is not {product id: {subdomain, school}}: %v", fn, val, err)
		}
	}
}

var (
	topicRef  = regexp.MustCompile(`/topics/([A-Za-z0-9._~%+-]+)`)
	getEnvRef = regexp.MustCompile(`sys\.get_env\("([A-Z0-9_]+)"\)`)
)

// workflowBuiltinEnv are the variables Workflows sets itself.
var workflowBuiltinEnv = []string{
	"GOOGLE_CLOUD_PROJECT_ID", "GOOGLE_CLOUD_PROJECT_NUMBER", "GOOGLE_CLOUD_LOCATION",
	"GOOGLE_CLOUD_WORKFLOW_ID", "GOOGLE_CLOUD_WORKFLOW_REVISION_ID", "GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID",
}

// walk calls fn on every map and string of a decoded YAML document.
func walk(v any, fn func(any)) {
	fn(v)
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			walk(e, fn)
		}
	case []any:
		for _, e := range x {
			walk(e, fn)
		}
	}
}

// TestWorkflows checks every workflows/*.yaml: it parses, deploys from
// Terraform, names only declared topics, publishes lesson-processed, calls
// functions with OIDC, and reads the URL of each workflow-triggered function.
func TestWorkflows(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	topics := topicNames(t, cfg, e, nil)
	paths, _ := filepath.Glob(filepath.Join(cfg.Dir, "..", "workflows", "*.yaml"))
	if len(paths) == 0 {
		t.Fatal("no workflows/*.yaml")
	}
	deployed := map[string]bool{}
	for _, r := range cfg.OfType("google_workflows_workflow") {
		src := r.Attr("source_contents")
		if src == nil {
			t.Errorf("%s has no source_contents", r.Addr())
			continue
		}
		v, err := e.Value(Instance{}, src.Expr)
		if err != nil || !v.IsKnown() {
			t.Errorf("%s: source_contents cannot be read offline: %v", r.Addr(), err)
			continue
		}
		deployed[v.AsString()] = true
	}
	functions, _ := e.Local("functions")
	var workflowFns []string
	for it := functions.ElementIterator(); it.Next(); {
		k, f := it.Element()
		if str(f.GetAttr("trigger")) == "workflow" {
			workflowFns = append(workflowFns, k.AsString())
		}
	}

	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(p)
		if !deployed[string(src)] {
			t.Errorf("%s is not the source_contents of any google_workflows_workflow", name)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(src, &doc); err != nil {
			t.Errorf("%s does not parse: %v", name, err)
			continue
		}
		mainDef, ok := doc["main"].(map[string]any)
		if !ok || mainDef["steps"] == nil {
			t.Errorf("%s: no main workflow with steps", name)
			continue
		}
		var published, branches []string
		walk(doc, func(v any) {
			switch x := v.(type) {
			case string:
				for _, m := range topicRef.FindAllStringSubmatch(x, -1) {
					published = append(published, m[1])
					if !slices.Contains(topics, m[1]) {
						t.Errorf("%s names topic %q, which Terraform does not declare %v", name, m[1], topics)
					}
				}
			case map[string]any:
				if x["call"] == "http.post" || x["call"] == "http.get" {
					args, _ := x["args"].(map[string]any)
					auth, _ := args["auth"].(map[string]any)
					if auth["type"] != "OIDC" {
						t.Errorf("%s: %s call without auth type OIDC (the functions are private): %v", name, x["call"], args["url"])
					}
				}
				if par, ok := x["parallel"].(map[string]any); ok {
					bs, _ := par["branches"].([]any)
					for _, b := range bs {
						if bm, ok := b.(map[string]any); ok {
							for k := range bm {
								branches = append(branches, k)
							}
						}
					}
				}
			}
		})
		if name == "lesson-pipeline.yaml" {
			if !slices.Contains(published, "lesson-processed") {
				t.Errorf("%s never publishes to lesson-processed", name)
			}
			slices.Sort(branches)
			if !reflect.DeepEqual(branches, []string{"analyze", "transcribe"}) {
				t.Errorf("%s: parallel branches %v, want transcribe and analyze (the stages of DESIGN.md section 4)", name, branches)
			}
		}
		used := map[string]bool{}
		for _, m := range getEnvRef.FindAllStringSubmatch(string(src), -1) {
			used[m[1]] = true
			if slices.Contains(workflowBuiltinEnv, m[1]) {
				continue
			}
			fn, ok := strings.CutSuffix(strings.ToLower(m[1]), "_url")
			if !ok || !slices.Contains(stages, fn) {
				t.Errorf("%s reads %s, neither a Workflows variable nor <STAGE>_URL", name, m[1])
			}
		}
		for _, fn := range workflowFns {
			if env := strings.ToUpper(fn) + "_URL"; !used[env] {
				t.Errorf("%s: function %s is triggered by the workflow but %s does not read %s", name, fn, name, env)
			}
		}
	}
}
