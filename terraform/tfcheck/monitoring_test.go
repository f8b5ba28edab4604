package tfcheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var (
	// jsonPayload.message="x" or jsonPayload.message=("x" OR "y").
	messageFilter = regexp.MustCompile(`jsonPayload\.message\s*=\s*("(?:[^"\\]|\\.)*"|\([^()]*\))`)
	quoted        = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	severityEq    = regexp.MustCompile(`(?:^|\s)severity\s*=\s*"?([A-Z]+)"?`)
	payloadField  = regexp.MustCompile(`jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)`)
	// jsonPayload.field="v" or jsonPayload.field=("v" OR "w"), any field.
	fieldFilter = regexp.MustCompile(`jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|\([^()]*\))`)
)

// logFilter is a filter or extractor of a log-based metric or a log-match
// alert, evaluated offline.
type logFilter struct {
	where string
	text  string
}

// logFilters returns every filter and extractor that reads the functions'
// logs: google_logging_metric filter, label_extractors and value_extractor,
// and every condition_matched_log of an alert policy.
func logFilters(t *testing.T, cfg *Config, e *Eval) []logFilter {
	t.Helper()
	var out []logFilter
	add := func(where string, a *hclsyntax.Attribute) {
		if a == nil {
			return
		}
		v, err := e.Value(Instance{}, a.Expr)
		if err != nil || !v.IsKnown() {
			t.Errorf("%s cannot be evaluated offline: %v", where, err)
			return
		}
		if v.Type().IsMapType() || v.Type().IsObjectType() {
			for it := v.ElementIterator(); it.Next(); {
				k, x := it.Element()
				out = append(out, logFilter{where + "." + k.AsString(), str(x)})
			}
			return
		}
		out = append(out, logFilter{where, str(v)})
	}
	for _, r := range cfg.OfType("google_logging_metric") {
		add(r.Addr()+".filter", r.Attr("filter"))
		add(r.Addr()+".value_extractor", r.Attr("value_extractor"))
		add(r.Addr()+".label_extractors", r.Attr("label_extractors"))
	}
	for _, r := range cfg.OfType("google_monitoring_alert_policy") {
		for _, c := range r.Block.Body.Blocks {
			if c.Type != "conditions" {
				continue
			}
			if m := hasBlock(c.Body, "condition_matched_log"); m != nil {
				add(r.Addr()+".condition_matched_log.filter", m.Attributes["filter"])
				add(r.Addr()+".condition_matched_log.label_extractors", m.Attributes["label_extractors"])
			}
		}
	}
	return out
}

// TestLogMetricMessagesExist checks that every log message a metric or an
// alert matches is still logged by the deployed Go code, at the severity the
// filter asks for, and that every jsonPayload field they read is a name the
// code writes: a reworded log line must fail here, not empty a metric.
func TestLogMetricMessagesExist(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	logged := loggedMessages(t)
	strs := goStrings(t)
	filters := logFilters(t, cfg, e)
	found := 0
	for _, f := range filters {
		severity := ""
		if m := severityEq.FindStringSubmatch(f.text); m != nil {
			severity = m[1]
		}
		for _, m := range messageFilter.FindAllStringSubmatch(f.text, -1) {
			for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
				msg := strings.ReplaceAll(q[1], `\"`, `"`)
				found++
				sev, ok := logged[msg]
				if !ok {
					t.Errorf("%s matches the log message %q, which no code in functions/ or shared/ logs any more", f.where, msg)
					continue
				}
				if severity != "" && sev[severity] == nil && sev[""] == nil {
					t.Errorf("%s matches %q at severity %s; the code logs it at %v", f.where, msg, severity, keysOf(sev))
				}
			}
		}
		// A value another field must have (an outcome, a stage) is one the
		// code writes.
		for _, m := range fieldFilter.FindAllStringSubmatch(f.text, -1) {
			if m[1] == "message" {
				continue
			}
			for _, q := range quoted.FindAllStringSubmatch(m[2], -1) {
				if !strs[q[1]] {
					t.Errorf("%s matches jsonPayload.%s=%q, a value no code in functions/ or shared/ writes", f.where, m[1], q[1])
				}
			}
		}
		for _, m := range payloadField.FindAllStringSubmatch(f.text, -1) {
			if field := m[1]; field != "message" && !strs[field] {
				t.Errorf("%s reads jsonPayload.%s, a field no code in functions/ or shared/ writes", f.where, field)
			}
		}
	}
	if found < 10 {
		t.Errorf("only %d quoted log messages found in the metrics and alerts: is the filter syntax still jsonPayload.message=...?", found)
	}

	// Every metric is in monitoring.tf's table of what it matches.
	src, err := os.ReadFile(filepath.Join(cfg.Dir, "monitoring.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.OfType("google_logging_metric") {
		if !strings.Contains(string(src), "#   "+r.Name+" ") {
			t.Errorf("%s is missing from the table of metrics and the messages they match at the top of monitoring.tf", r.Addr())
		}
	}
}

// TestAlertPolicies checks the alert policies the issue asks for exist, and
// that each one notifies the channel of var.alert_email.
func TestAlertPolicies(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	want := map[string]string{
		"dead_letters":         "pubsub.googleapis.com/subscription/num_undelivered_messages",
		"oldest_unacked":       "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
		"function_errors":      "run.googleapis.com/request_count",
		"workflow_failed":      "workflows.googleapis.com/finished_execution_count",
		"lesson_stuck":         "condition_matched_log",
		"detection_incomplete": "google_logging_metric.detection_runs_incomplete",
	}
	for name, what := range want {
		r := cfg.Find("resource", "google_monitoring_alert_policy", name)
		if r == nil {
			t.Errorf("no google_monitoring_alert_policy.%s (%s)", name, what)
			continue
		}
		if text := cfg.Text(r.Block.Range()); !strings.Contains(text, what) {
			t.Errorf("%s does not watch %s", r.Addr(), what)
		}
		if nc := r.Attr("notification_channels"); nc == nil || cfg.Text(nc.Expr.Range()) != "local.alert_channels" {
			t.Errorf("%s: notification_channels must be local.alert_channels (var.alert_email)", r.Addr())
		}
	}
	if d := cfg.OfType("google_monitoring_dashboard"); len(d) != 1 {
		t.Errorf("want one google_monitoring_dashboard, got %d", len(d))
	}
	if _, ok := cfg.Outputs["dashboard_url"]; !ok {
		t.Error("no dashboard_url output")
	}
	for _, out := range []string{"function_urls", "buckets", "scheduler_jobs", "run_detection_now"} {
		if _, ok := cfg.Outputs[out]; !ok {
			t.Errorf("no %s output: an operator needs it", out)
		}
	}
	if !slices.Contains(keysOf(cfg.Variables), "alert_email") {
		t.Error("no variable alert_email")
	}
}
