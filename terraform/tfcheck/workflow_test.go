package tfcheck

import (
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

	"github.com/coursekb/pipeline/shared/transcribe"
)

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

// workflowEnv returns the keys of the workflow's user_env_vars with the
// values known offline ("" for the functions' URLs).
func workflowEnv(t *testing.T, cfg *Config, e *Eval) map[string]string {
	t.Helper()
	r := cfg.Find("resource", "google_workflows_workflow", "lesson_pipeline")
	if r == nil || r.Attr("user_env_vars") == nil {
		t.Fatal("google_workflows_workflow.lesson_pipeline has no user_env_vars")
	}
	v, err := e.Value(Instance{}, r.Attr("user_env_vars").Expr)
	if err != nil || !v.IsKnown() || v.IsNull() {
		t.Fatalf("user_env_vars of lesson_pipeline cannot be read offline: %v", err)
	}
	out := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		out[k.AsString()] = str(val)
	}
	return out
}

// TestWorkflows checks every workflows/*.yaml: it parses, deploys from
// Terraform, names only declared topics, publishes lesson-processed, calls
// functions with OIDC, and every variable it reads is set by Terraform.
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
	specs := decodeSpecs(t, e)
	var workflowFns []string
	for name, s := range specs {
		if s.Workflow {
			workflowFns = append(workflowFns, name)
		}
	}
	env := workflowEnv(t, cfg, e)

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
		var callTimeouts []int64
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
					if n, err := strconv.ParseInt(strings.TrimSpace(toString(args["timeout"])), 10, 64); err == nil {
						callTimeouts = append(callTimeouts, n)
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
		used := map[string]bool{}
		for _, m := range getEnvRef.FindAllStringSubmatch(string(src), -1) {
			used[m[1]] = true
			if slices.Contains(workflowBuiltinEnv, m[1]) {
				continue
			}
			if _, ok := env[m[1]]; !ok {
				t.Errorf("%s reads %s, which the workflow's user_env_vars (workflows.tf) do not set %v", name, m[1], keysOf(env))
			}
		}
		for _, fn := range workflowFns {
			if v := strings.ToUpper(fn) + "_URL"; !used[v] {
				t.Errorf("%s: function %s is called by the workflow but %s never reads %s", name, fn, name, v)
			}
			for _, ct := range callTimeouts {
				if specs[fn].Timeout < ct {
					t.Errorf("%s waits up to %d s for a call; function %s times out after %d s", name, ct, fn, specs[fn].Timeout)
				}
			}
		}
		if name == "lesson-pipeline.yaml" {
			// The topic is built from TOPIC_PROCESSED at run time.
			if tp := env["TOPIC_PROCESSED"]; !slices.Contains(topics, tp) || tp != "lesson-processed" {
				t.Errorf("%s publishes to TOPIC_PROCESSED=%q; want the declared topic lesson-processed", name, tp)
			}
			slices.Sort(branches)
			if !reflect.DeepEqual(branches, []string{"analyze", "transcribe"}) {
				t.Errorf("%s: parallel branches %v, want transcribe and analyze (the stages of DESIGN.md section 4)", name, branches)
			}
			_ = published
		}
	}
	checkWorkflowGrants(t, cfg, e, workflowFns)
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case uint64:
		return strconv.FormatUint(x, 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

// checkWorkflowGrants: the workflow's identity invokes exactly the
// workflow-called functions and publishes to lesson-processed alone.
func checkWorkflowGrants(t *testing.T, cfg *Config, e *Eval, workflowFns []string) {
	t.Helper()
	inv := cfg.Find("resource", "google_cloud_run_v2_service_iam_member", "workflow_invoker")
	if inv == nil {
		t.Fatal("no google_cloud_run_v2_service_iam_member.workflow_invoker")
	}
	insts, err := e.Instances(inv)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(workflowFns))
	if got := keys(insts); !slices.Equal(got, want) {
		t.Errorf("the workflow may invoke %v; it calls %v", got, want)
	}
	for _, r := range cfg.OfType("google_pubsub_topic_iam_member") {
		m := r.Attr("member")
		if m == nil || !strings.Contains(cfg.Text(m.Expr.Range()), "google_service_account.workflow") {
			continue
		}
		if topic := cfg.Text(r.Attr("topic").Expr.Range()); !strings.Contains(topic, "local.topic_processed") || r.HasInstances() {
			t.Errorf("%s: the workflow publishes to lesson-processed alone, not %s", r.Addr(), topic)
		}
	}
}

// TestTranscriptionPolling checks that the workflow polls a recognition as
// long as it may take, and that the starter's lease on the process step
// covers the whole execution, for each processing strategy.
func TestTranscriptionPolling(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	for _, strategy := range []string{transcribe.StrategyStandard, transcribe.StrategyDynamic} {
		e := NewEvalWith(cfg, map[string]cty.Value{"speech_processing_strategy": cty.StringVal(strategy)})
		env := workflowEnv(t, cfg, e)
		poll, err1 := strconv.Atoi(env["POLL_SECONDS"])
		polls, err2 := strconv.Atoi(env["MAX_POLLS"])
		if err1 != nil || err2 != nil || poll <= 0 || polls <= 0 {
			t.Errorf("%s: POLL_SECONDS %q and MAX_POLLS %q must be positive whole numbers", strategy, env["POLL_SECONDS"], env["MAX_POLLS"])
			continue
		}
		window := time.Duration(poll*polls) * time.Second
		need := transcribe.Config{ProcessingStrategy: strategy}.RecognitionLease()
		if window < need {
			t.Errorf("%s: the workflow polls for %s (POLL_SECONDS %d x MAX_POLLS %d); a recognition may take %s", strategy, window, poll, polls, need)
		}
		if strategy == transcribe.StrategyDynamic && window < 24*time.Hour {
			t.Errorf("%s: dynamic batching answers within 24 h; the workflow polls for %s", strategy, window)
		}
		specs := decodeSpecs(t, e)
		if got := str(specs["transcriber"].Env["PROCESSING_STRATEGY"]); got != strategy {
			t.Errorf("%s: the transcriber's PROCESSING_STRATEGY is %q", strategy, got)
		}
		lease, err := time.ParseDuration(str(specs["starter"].Env["PROCESS_LEASE"]))
		if err != nil || lease <= window {
			t.Errorf("%s: the starter's PROCESS_LEASE %q must outlast the workflow's polling (%s)", strategy, str(specs["starter"].Env["PROCESS_LEASE"]), window)
		}
	}
}
