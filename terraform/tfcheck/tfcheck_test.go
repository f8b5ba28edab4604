package tfcheck

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/coursekb/pipeline/shared/events"
)

const (
	terraformDir = ".."
	schemaFile   = "testdata/google-provider-6.50.0.schema.json.gz"
)

var loadSchema = sync.OnceValues(func() (*Schema, error) { return LoadSchema(schemaFile) })

func mustLoad(t *testing.T) (*Config, *Schema) {
	t.Helper()
	s, err := loadSchema()
	if err != nil {
		t.Fatalf("provider schema: %v", err)
	}
	dir, err := filepath.Abs(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(dir)
	if err != nil {
		t.Fatalf("terraform configuration: %v", err)
	}
	return cfg, s
}

func TestSchemaIsTheVersionPinned(t *testing.T) {
	t.Parallel()
	cfg, s := mustLoad(t)
	if s.Provider != "hashicorp/google" {
		t.Errorf("schema is of provider %q, want hashicorp/google", s.Provider)
	}
	var constraint string
	for _, b := range cfg.Other {
		if b.Type != "terraform" {
			continue
		}
		for _, rp := range b.Body.Blocks {
			if a := rp.Body.Attributes["google"]; rp.Type == "required_providers" && a != nil {
				v, diags := a.Expr.Value(nil)
				if diags.HasErrors() || !v.Type().IsObjectType() || !v.Type().HasAttribute("version") {
					t.Fatalf("required_providers.google: want { source, version } literals: %v", diags)
				}
				constraint = v.GetAttr("version").AsString()
			}
		}
	}
	// ~> 6.50 admits 6.50.0 and later 6.x: the schema must be of the oldest
	// version admitted, so the configuration works with every one.
	major, minor, _ := strings.Cut(s.Version, ".")
	minorOnly, _, _ := strings.Cut(minor, ".")
	if want := "~> " + major + "." + minorOnly; constraint != want {
		t.Errorf("versions.tf pins google %q; the schema in testdata is %s: want %q (or refresh the schema)", constraint, s.Version, want)
	}
}

func TestConfigurationMatchesProviderSchema(t *testing.T) {
	t.Parallel()
	cfg, s := mustLoad(t)
	for _, p := range CheckSchema(cfg, s) {
		t.Error(p)
	}
	if len(cfg.Resources) < 20 {
		t.Errorf("only %d resource and data blocks found in %s: is the directory right?", len(cfg.Resources), cfg.Dir)
	}
}

// TestCheckerCatchesMistakes proves the schema check fails on each kind of
// mistake it claims to catch, and passes the correct version of each.
func TestCheckerCatchesMistakes(t *testing.T) {
	t.Parallel()
	_, s := mustLoad(t)
	const vars = `
variable "name" { type = string }
locals { topics = ["a"] }
resource "google_pubsub_topic" "t" { name = var.name }
resource "google_service_account" "sa" { account_id = "sa-1" }
resource "google_pubsub_topic" "many" {
  for_each = toset(local.topics)
  name     = each.value
}
`
	cases := []struct {
		name, src, want string
	}{
		{"clean", `
resource "google_pubsub_subscription" "s" {
  name  = "s"
  topic = google_pubsub_topic.many["a"].id
  push_config {
    push_endpoint = "https://x"
    oidc_token { service_account_email = google_service_account.sa.email }
  }
  dead_letter_policy { dead_letter_topic = google_pubsub_topic.t.id }
}
resource "google_secret_manager_secret" "s" {
  secret_id = "s"
  dynamic "replication" {
    for_each = [1]
    content {
      auto {}
    }
  }
}`, ""},
		{"misspelled argument", `resource "google_pubsub_topic" "x" { nmae = "x" }`, `unknown argument "nmae" (did you mean "name"?)`},
		{"missing required argument", `resource "google_pubsub_subscription" "x" { name = "x" }`, `required argument "topic" is missing`},
		{"computed-only argument", `resource "google_service_account" "x" {
  account_id = "abcdef"
  email      = "a@b"
}`, `"email" is computed by the provider and cannot be set`},
		{"unknown resource type", `resource "google_pubsub_topik" "x" { name = "x" }`, `resource type "google_pubsub_topik" does not exist in provider hashicorp/google 6.50.0 (did you mean "google_pubsub_topic"?)`},
		{"unknown data type", `data "google_projekt" "x" {}`, `data source type "google_projekt" does not exist`},
		{"unknown nested block", `resource "google_pubsub_subscription" "x" {
  name  = "x"
  topic = "t"
  dead_letter { dead_letter_topic = "d" }
}`, `unknown block "dead_letter" (did you mean`},
		{"misspelled nested argument", `resource "google_pubsub_subscription" "x" {
  name  = "x"
  topic = "t"
  dead_letter_policy { max_delivery_attempt = 5 }
}`, `google_pubsub_subscription.x.dead_letter_policy: unknown argument "max_delivery_attempt" (did you mean "max_delivery_attempts"?)`},
		{"single block twice", `resource "google_pubsub_subscription" "x" {
  name  = "x"
  topic = "t"
  retry_policy { minimum_backoff = "10s" }
  retry_policy { minimum_backoff = "20s" }
}`, `block "retry_policy" may appear at most once`},
		{"required block missing", `resource "google_secret_manager_secret" "x" { secret_id = "x" }`, `required block "replication" is missing`},
		{"block written as argument", `resource "google_pubsub_subscription" "x" {
  name         = "x"
  topic        = "t"
  retry_policy = { minimum_backoff = "10s" }
}`, `"retry_policy" is a block`},
		{"unknown dynamic block", `resource "google_pubsub_subscription" "x" {
  name  = "x"
  topic = "t"
  dynamic "retry" {
    for_each = []
    content {}
  }
}`, `dynamic "retry": unknown block`},
		{"undeclared resource", `resource "google_pubsub_subscription" "x" {
  name  = "x"
  topic = google_pubsub_topic.nope.id
}`, `google_pubsub_topic.nope is not declared`},
		{"unknown attribute in reference", `resource "google_pubsub_topic" "x" { name = google_service_account.sa.emial }`, `google_service_account.sa has no attribute "emial" (did you mean "email"?)`},
		{"single block not indexed", `resource "google_cloudfunctions2_function" "f" {
  name     = "f"
  location = "l"
}
resource "google_pubsub_topic" "x" { name = google_cloudfunctions2_function.f.service_config.uri }`, `google_cloudfunctions2_function.f.service_config is a list of blocks: index it (service_config[0].uri)`},
		{"attribute of a nested block", `resource "google_cloudfunctions2_function" "f" {
  name     = "f"
  location = "l"
}
resource "google_pubsub_topic" "x" { name = google_cloudfunctions2_function.f.service_config[0].url }`, `google_cloudfunctions2_function.f.service_config has no attribute "url" (did you mean "uri"?)`},
		{"attribute after a computed index", `resource "google_cloudfunctions2_function" "f" {
  for_each = toset(local.topics)
  name     = each.key
  location = "l"
}
resource "google_pubsub_topic" "x" {
  for_each = toset(local.topics)
  name     = google_cloudfunctions2_function.f[each.key].service_config[0].url
}`, `google_cloudfunctions2_function.f.service_config has no attribute "url" (did you mean "uri"?)`},
		{"for_each resource not indexed", `resource "google_pubsub_topic" "x" { name = google_pubsub_topic.many.name }`, `google_pubsub_topic.many has count or for_each: index it`},
		{"plain resource indexed", `resource "google_pubsub_topic" "x" { name = google_pubsub_topic.t["a"].name }`, `google_pubsub_topic.t has no count or for_each`},
		{"undeclared variable", `resource "google_pubsub_topic" "x" { name = var.nmae }`, `var.nmae is not declared (variables.tf) (did you mean "name"?)`},
		{"undeclared local", `resource "google_pubsub_topic" "x" { name = local.topic }`, `local.topic is not declared in any locals block (did you mean "topics"?)`},
		{"each without for_each", `resource "google_pubsub_topic" "x" { name = each.key }`, `each.key is used outside a block with for_each`},
		{"undeclared data source", `resource "google_pubsub_topic" "x" { name = data.google_project.p.number }`, `data.google_project.p is not declared`},
		{"undeclared depends_on", `resource "google_pubsub_topic" "x" {
  name       = "x"
  depends_on = [google_project_service.enabled]
}`, `google_project_service.enabled is not declared`},
		{"syntax error", `resource "google_pubsub_topic" "x" { name = }`, `syntax:`},
		{"terraform_data is Terraform's own", `resource "terraform_data" "wait" {
  triggers_replace = local.topics
  provisioner "local-exec" {
    command = "sleep 1"
  }
}
resource "google_pubsub_topic" "x" {
  name       = terraform_data.wait.id
  depends_on = [terraform_data.wait]
}`, ""},
		{"terraform_data misspelled", `resource "terraform_data" "wait" { triggers_replaced = [] }`, `unknown argument "triggers_replaced" (did you mean "triggers_replace"?)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ParseFiles("fixture", map[string][]byte{
				"fixture/base.tf": []byte(vars),
				"fixture/case.tf": []byte(tc.src),
			})
			problems := CheckSchema(cfg, s)
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("want no problems, got:\n%s", all)
			case tc.want != "" && !strings.Contains(all, tc.want):
				t.Errorf("want a problem containing %q, got:\n%s", tc.want, all)
			}
		})
	}
}

// topicNames returns the evaluated name of every google_pubsub_topic instance.
func topicNames(t *testing.T, cfg *Config, e *Eval, only func(*Resource) bool) []string {
	t.Helper()
	var names []string
	for _, r := range cfg.OfType("google_pubsub_topic") {
		if only != nil && !only(r) {
			continue
		}
		insts, err := e.Instances(r)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, in := range insts {
			v, err := e.Value(in, r.Attr("name").Expr)
			if err != nil || !v.IsKnown() || v.Type() != cty.String {
				t.Errorf("%s[%q]: name cannot be computed offline: %v", r.Addr(), in.Key, err)
				continue
			}
			names = append(names, v.AsString())
		}
	}
	slices.Sort(names)
	return names
}

// designTopics are the topics of DESIGN.md section 3, as shared/events names them.
var designTopics = []string{
	events.TopicLessonDiscovered, events.TopicLessonDownloaded, events.TopicLessonProcessed,
	events.TopicLessonEnriched, events.TopicLessonEvents, events.TopicLessonReplay,
}

func TestDesignTopicsAreDeclared(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	names := topicNames(t, cfg, NewEval(cfg), nil)
	for _, want := range designTopics {
		if !slices.Contains(names, want) {
			t.Errorf("topic %q of DESIGN.md section 3 is not declared; topics declared: %v", want, names)
		}
	}
}

// hasBlock reports whether a body has the block, written out or dynamic.
func hasBlock(body *hclsyntax.Body, name string) *hclsyntax.Body {
	for _, b := range body.Blocks {
		if b.Type == name {
			return b.Body
		}
		if b.Type == "dynamic" && len(b.Labels) == 1 && b.Labels[0] == name {
			for _, c := range b.Body.Blocks {
				if c.Type == "content" {
					return c.Body
				}
			}
		}
	}
	return nil
}

func keys(in []Instance) []string {
	var out []string
	for _, i := range in {
		out = append(out, i.Key)
	}
	slices.Sort(out)
	return out
}

func sameKeys(a, b []Instance) bool { return reflect.DeepEqual(keys(a), keys(b)) }
