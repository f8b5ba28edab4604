package tfcheck

// The real `terraform init` and `terraform validate` on terraform/*.tf,
// offline: the stand-in provider of ./standin, built from the schema in
// testdata, is installed from a filesystem mirror made in a temporary
// directory, and a CLI configuration lets Terraform install nothing else.
// These tests catch what only Terraform itself knows (its own language
// rules, expression types, block counts) beside the hcl-based checks of
// tfcheck_test.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// terraformInstallHint says how to get the terraform binary these tests run.
const terraformInstallHint = "these tests run the real Terraform CLI (1.11.4 on the project's machines, at /usr/local/bin/terraform). " +
	"Install it on PATH: download terraform_1.11.4_<os>_<arch>.zip from https://releases.hashicorp.com/terraform/1.11.4/ and unzip it into /usr/local/bin, " +
	"or use HashiCorp's Debian repository (apt-get install terraform=1.11.4-*)"

// terraformBinary returns the terraform executable, failing the test when
// there is none: the check must not pass silently on a machine without it.
func terraformBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatalf("terraform not found: %v; %s", err, terraformInstallHint)
	}
	return bin
}

// terraformEnv is the environment Terraform runs in: the test's, without
// TF_* variables that would change what it does (TF_CLI_ARGS_validate,
// TF_PLUGIN_CACHE_DIR, a developer's TF_CLI_CONFIG_FILE...), plus extra.
func terraformEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "CHECKPOINT_") {
			env = append(env, kv)
		}
	}
	return append(env, append([]string{"TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1"}, extra...)...)
}

// TestTerraformFmt runs `terraform fmt -check` on terraform/ (the Makefile's
// fmt-check runs it too, when terraform is installed; here it cannot be
// skipped).
func TestTerraformFmt(t *testing.T) {
	t.Parallel()
	tf := terraformBinary(t)
	dir, err := filepath.Abs(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	cliConfig := filepath.Join(t.TempDir(), "empty.tfrc")
	if err := os.WriteFile(cliConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tf, "fmt", "-check", "-recursive", "-diff", "-no-color", dir)
	cmd.Env = terraformEnv("TF_CLI_CONFIG_FILE=" + cliConfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("terraform fmt -check -recursive %s: %v: these files need `terraform fmt`:\n%s", dir, err, out)
	}
}

// TestTerraformValidate runs `terraform validate` with the stand-in provider:
// on the current configuration, which must be valid, and on the current
// configuration plus one file per kind of mistake, each of which must be
// reported where it is. The provider is built once, for both.
func TestTerraformValidate(t *testing.T) {
	t.Parallel()
	tf := terraformBinary(t)
	s, err := loadSchema()
	if err != nil {
		t.Fatalf("provider schema: %v", err)
	}
	tmp := t.TempDir()
	mirror := buildMirror(t, tmp, s.Version)
	cliConfig := writeCLIConfig(t, tmp, mirror)

	t.Run("current configuration", func(t *testing.T) {
		t.Parallel()
		dir := copyConfig(t, nil)
		out := validate(t, tf, cliConfig, dir)
		for _, d := range out.Diagnostics {
			if d.Severity == "error" {
				t.Error(d)
			} else {
				t.Log(d)
			}
		}
		if !out.Valid && out.ErrorCount == 0 {
			t.Errorf("terraform validate says the configuration is not valid but lists no errors")
		}
	})

	t.Run("mistakes are reported", func(t *testing.T) {
		t.Parallel()
		files := map[string]string{"tfcheck_fixture_valid.tf": validFixture}
		for i, m := range mistakes {
			files[fmt.Sprintf("tfcheck_fixture_mistake_%02d.tf", i)] = m.src
		}
		dir := copyConfig(t, files)
		out := validate(t, tf, cliConfig, dir)
		byFile := map[string][]validateDiag{}
		for _, d := range out.Diagnostics {
			t.Log(d)
			if d.Range != nil {
				byFile[d.Range.Filename] = append(byFile[d.Range.Filename], d)
			}
		}
		for _, d := range byFile["tfcheck_fixture_valid.tf"] {
			t.Errorf("tfcheck_fixture_valid.tf must pass; an error here is a bug of the stand-in's schema or types: %s", d)
		}
		if out.Valid {
			t.Errorf("terraform validate accepted every mistake")
		}
		for i, m := range mistakes {
			name := fmt.Sprintf("tfcheck_fixture_mistake_%02d.tf", i)
			found := false
			for _, d := range byFile[name] {
				found = found || (d.Severity == "error" && d.Summary == m.summary && strings.Contains(d.Detail, m.detail))
			}
			if !found {
				t.Errorf("%s: want an error %q naming %q in %s, got %v", m.name, m.summary, m.detail, name, byFile[name])
			}
		}
	})
}

// mistakes are configurations the real provider refuses, each with the
// diagnostic Terraform must give. Names start with tfcheck_fixture so they
// never meet a block of the configuration they are added to.
var mistakes = []struct {
	name, src, summary, detail string
}{
	{"misspelled argument in a single nested block", `
resource "google_cloudfunctions2_function" "tfcheck_fixture" {
  name     = "f"
  location = "us-central1"
  service_config {
    avaliable_memory = "256Mi"
  }
}`, "Unsupported argument", `"avaliable_memory" is not expected here. Did you mean "available_memory"?`},
	{"wrong reference into a nested block", `
resource "google_cloudfunctions2_function" "tfcheck_fixture_ref" {
  name     = "f"
  location = "us-central1"
}
resource "google_pubsub_topic" "tfcheck_fixture_ref" {
  name = google_cloudfunctions2_function.tfcheck_fixture_ref.service_config[0].url
}`, "Unsupported attribute", `named "url". Did you mean "uri"?`},
	{"wrong attribute of a resource", `
resource "google_service_account" "tfcheck_fixture_ref" {
  account_id = "tfcheck-fixture"
}
resource "google_pubsub_topic" "tfcheck_fixture_attr" {
  name = google_service_account.tfcheck_fixture_ref.emial
}`, "Unsupported attribute", `named "emial". Did you mean "email"?`},
	{"unknown resource type", `
resource "google_pubsub_topik" "tfcheck_fixture" {
  name = "t"
}`, "Invalid resource type", `"google_pubsub_topik". Did you mean "google_pubsub_topic"?`},
	{"missing required argument", `
resource "google_pubsub_subscription" "tfcheck_fixture_required" {
  name = "s"
}`, "Missing required argument", `"topic" is required`},
	{"missing required block", `
resource "google_secret_manager_secret" "tfcheck_fixture" {
  secret_id = "s"
}`, "Insufficient replication blocks", `At least 1 "replication" blocks are required`},
	{"single block twice", `
resource "google_pubsub_subscription" "tfcheck_fixture_twice" {
  name  = "s"
  topic = "t"
  retry_policy {
    minimum_backoff = "10s"
  }
  retry_policy {
    minimum_backoff = "20s"
  }
}`, "Too many retry_policy blocks", `No more than 1 "retry_policy" blocks are allowed`},
	{"computed-only argument set", `
resource "google_service_account" "tfcheck_fixture_computed" {
  account_id = "tfcheck-fixture-2"
  email      = "a@example.com"
}`, "Value for unconfigurable attribute", `Can't configure a value for "email"`},
	{"wrong value type", `
resource "google_pubsub_topic" "tfcheck_fixture_type" {
  name   = "t"
  labels = "stage"
}`, "Incorrect attribute value type", `Inappropriate value for attribute "labels": map of string required`},
}

// validFixture is what the real provider accepts in shapes the current
// configuration may not use yet: Terraform checks it against the stand-in's
// schema and the stand-in decodes it (a list block holding a computed
// dynamic attribute travels as a tuple), so a conversion bug shows here.
const validFixture = `
resource "google_container_node_pool" "tfcheck_fixture" {
  cluster = "c"
  node_config {
    machine_type = "e2-small"
  }
  timeouts {
    create = "30m"
  }
}

resource "google_pubsub_topic" "tfcheck_fixture" {
  name = "t"
  id   = "projects/p/topics/t"
}

data "google_project" "tfcheck_fixture" {}

resource "google_pubsub_topic" "tfcheck_fixture_refs" {
  name = "${data.google_project.tfcheck_fixture.number}-${google_container_node_pool.tfcheck_fixture.node_config[0].machine_type}"
  labels = {
    taints = length(google_container_node_pool.tfcheck_fixture.node_config[0].effective_taints)
  }
}

provider "google" {
  alias   = "tfcheck_fixture"
  project = "p"
}
`

// buildMirror builds the stand-in provider into a filesystem mirror in the
// unpacked layout, HOSTNAME/NAMESPACE/TYPE/VERSION/TARGET/, and returns the
// mirror's root. Terraform takes as the provider any file there whose name
// starts with terraform-provider-google; the name is the one in the real
// release archive, _x5 marking plugin protocol 5.
func buildMirror(t *testing.T, dir, version string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds the stand-in provider: %v", err)
	}
	schema, err := filepath.Abs(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	mirror := filepath.Join(dir, "mirror")
	name := "terraform-provider-google_v" + version + "_x5"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	bin := filepath.Join(mirror, "registry.terraform.io", "hashicorp", "google", version, runtime.GOOS+"_"+runtime.GOARCH, name)
	// The stand-in reads the schema from testdata, the one copy, at the
	// path baked in here (quoted: the path may hold spaces). -s -w: no
	// symbol tables, which halves the link time of every run.
	cmd := exec.Command(goBin, "build", "-o", bin, "-ldflags", "-s -w -X 'main.schemaPath="+schema+"'", "./standin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in provider: %v\n%s", err, out)
	}
	return mirror
}

// writeCLIConfig writes a CLI configuration that installs hashicorp/google
// from the mirror only and nothing from any registry.
func writeCLIConfig(t *testing.T, dir, mirror string) string {
	t.Helper()
	path := filepath.Join(dir, "tfcheck.tfrc")
	src := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/hashicorp/google"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
`, filepath.ToSlash(mirror))
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyConfig lays out a temporary copy of the repository for Terraform to
// work in, so that no .terraform directory or lock file lands in the
// repository: terraform/*.tf are copied, with extra files beside them, and
// every other entry of terraform/ and of the repository root is linked, so
// that paths such as "${path.module}/../workflows/lesson-pipeline.yaml" hold.
// A lock file of the repository is not used: its hashes are the real
// provider's, not the stand-in's. It returns the copy's terraform directory.
func copyConfig(t *testing.T, extra map[string]string) string {
	t.Helper()
	src, err := filepath.Abs(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "repo")
	dst := filepath.Join(root, filepath.Base(src))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(from, to string) {
		if err := os.Symlink(from, to); err != nil {
			t.Fatalf("linking %s: %v", from, err)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(src) && !strings.HasPrefix(e.Name(), ".") {
			link(filepath.Join(filepath.Dir(src), e.Name()), filepath.Join(root, e.Name()))
		}
	}
	entries, err = os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "."):
			// .terraform, .terraform.lock.hcl: a developer's, not ours.
		case name == "terraform.tfvars" || name == "terraform.tfvars.json" || strings.HasSuffix(name, ".auto.tfvars") || strings.HasSuffix(name, ".auto.tfvars.json"):
			// A developer's (or Cloud Build's) values: a plan here must
			// see the tests' values only.
		case !e.IsDir() && (strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tf.json")):
			b, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			link(filepath.Join(src, name), filepath.Join(dst, name))
		}
	}
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// validateOutput is the output of `terraform validate -json`.
type validateOutput struct {
	Valid        bool           `json:"valid"`
	ErrorCount   int            `json:"error_count"`
	WarningCount int            `json:"warning_count"`
	Diagnostics  []validateDiag `json:"diagnostics"`
}

type validateDiag struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Range    *struct {
		Filename string `json:"filename"`
		Start    struct {
			Line   int `json:"line"`
			Column int `json:"column"`
		} `json:"start"`
	} `json:"range"`
	Snippet *struct {
		Code string `json:"code"`
	} `json:"snippet"`
}

// String is the diagnostic as a developer reads it: terraform/file.tf:line:
// summary, detail and the code.
func (d validateDiag) String() string {
	var b strings.Builder
	if d.Range != nil {
		fmt.Fprintf(&b, "terraform/%s:%d:%d: ", d.Range.Filename, d.Range.Start.Line, d.Range.Start.Column)
	}
	fmt.Fprintf(&b, "%s: %s", d.Severity, d.Summary)
	if d.Detail != "" {
		fmt.Fprintf(&b, ": %s", d.Detail)
	}
	if d.Snippet != nil && d.Snippet.Code != "" {
		fmt.Fprintf(&b, "\n\t%s", strings.TrimSpace(d.Snippet.Code))
	}
	return b.String()
}

// validate runs terraform init and terraform validate -json in dir.
func validate(t *testing.T, tf, cliConfig, dir string) validateOutput {
	t.Helper()
	env := terraformEnv(
		"TF_CLI_CONFIG_FILE="+cliConfig,
		"TF_DATA_DIR="+filepath.Join(filepath.Dir(dir), "tfdata"),
	)
	init := exec.Command(tf, "init", "-backend=false", "-input=false", "-no-color")
	init.Dir, init.Env = dir, env
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("terraform init (stand-in provider from the local mirror): %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tf, "validate", "-json", "-no-color")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, &stdout, &stderr
	runErr := cmd.Run() // exit status 1 when invalid; the JSON tells why
	var out validateOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("terraform validate -json: %v (exit: %v)\nstdout:\n%s\nstderr:\n%s", err, runErr, stdout.Bytes(), stderr.Bytes())
	}
	if runErr != nil && out.Valid {
		t.Fatalf("terraform validate: %v although it says valid\nstderr:\n%s", runErr, stderr.Bytes())
	}
	return out
}
