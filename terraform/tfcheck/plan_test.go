package tfcheck

// The real `terraform plan` of the configuration, offline, through the
// stand-in provider (validate_test.go builds it): a plan evaluates what
// validate leaves unknown — variable values and their validation rules, the
// locals' types (the spec map, the subscriptions, the filters), for_each
// keys that must be known before apply, file functions on a real archive —
// for the defaults and for every optional setting switched on. The stand-in
// answers every computed attribute "known after apply" and reads data
// sources as known placeholders; the state is local, in a temporary
// directory; nothing is applied.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// planScenarios are the variable sets the plan runs with: the -var-file
// (JSON) and the secret values given as TF_VAR_ environment variables.
var planScenarios = []struct {
	name    string
	vars    map[string]any
	secrets map[string]string
	secretN int // secrets the plan makes
}{
	{name: "defaults", vars: map[string]any{}, secretN: 4},
	{
		name: "everything switched on",
		vars: map[string]any{
			"state_bucket":               "p-tfstate",
			"course_catalog":             map[string]any{"1117869": map[string]string{"subdomain": "club", "school": "programacion"}},
			"course_languages":           map[string]string{"1117869": "pt-BR"},
			"media_manifest_uri":         "gs://p-raw/media/manifest.json",
			"speech_processing_strategy": "DYNAMIC_BATCHING",
			"notify_slack":               true,
			"smtp_host":                  "smtp.example.com",
			"smtp_user":                  "pipeline",
			"mail_from":                  "pipeline@example.com",
			"mail_to":                    []string{"ops@example.com"},
			"alert_email":                "ops@example.com",
			"secret_value_versions":      map[string]int{"OPENAI_API_KEY": 2},
		},
		secrets: map[string]string{
			"hotmart_client_id": "id", "hotmart_client_secret": "secret", "hotmart_basic_token": "basic",
			"openai_api_key": "sk-test", "slack_webhook_url": "https://hooks.slack.com/services/T/B/X", "smtp_password": "pw",
		},
		secretN: 6,
	},
}

func TestTerraformPlan(t *testing.T) {
	t.Parallel()
	tf := terraformBinary(t)
	s, err := loadSchema()
	if err != nil {
		t.Fatalf("provider schema: %v", err)
	}
	tmp := t.TempDir()
	mirror := buildMirror(t, tmp, s.Version)
	cliConfig := writeCLIConfig(t, tmp, mirror)
	archive := filepath.Join(tmp, "source.zip")
	if err := os.WriteFile(archive, []byte("PK\x05\x06"+string(make([]byte, 18))), 0o644); err != nil {
		t.Fatal(err)
	}
	registered := registeredFunctions(t)

	for _, sc := range planScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			// A local backend instead of the gcs one: an override file.
			dir := copyConfig(t, map[string]string{"tfcheck_backend_override.tf": "terraform {\n  backend \"local\" {}\n}\n"})
			vars := map[string]any{"project_id": "p", "source_archive": archive}
			for k, v := range sc.vars {
				vars[k] = v
			}
			varFile := filepath.Join(filepath.Dir(dir), "plan.tfvars.json")
			b, _ := json.Marshal(vars)
			if err := os.WriteFile(varFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
			extra := []string{"TF_CLI_CONFIG_FILE=" + cliConfig, "TF_DATA_DIR=" + filepath.Join(filepath.Dir(dir), "tfdata")}
			for k, v := range sc.secrets {
				extra = append(extra, "TF_VAR_"+k+"="+v)
			}
			env := terraformEnv(extra...)
			run := func(args ...string) []byte {
				t.Helper()
				cmd := exec.Command(tf, args...)
				cmd.Dir, cmd.Env = dir, env
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("terraform %v: %v\n%s", args, err, out)
				}
				return out
			}
			run("init", "-input=false", "-no-color")
			planFile := filepath.Join(filepath.Dir(dir), "plan.out")
			run("plan", "-input=false", "-no-color", "-refresh=false", "-lock=false", "-var-file="+varFile, "-out="+planFile)

			var plan struct {
				ResourceChanges []struct {
					Mode   string `json:"mode"`
					Type   string `json:"type"`
					Change struct {
						Actions []string `json:"actions"`
					} `json:"change"`
				} `json:"resource_changes"`
			}
			if err := json.Unmarshal(run("show", "-json", planFile), &plan); err != nil {
				t.Fatalf("terraform show -json: %v", err)
			}
			count := map[string]int{}
			for _, rc := range plan.ResourceChanges {
				if rc.Mode == "data" {
					continue // read at apply when it depends on what the apply makes
				}
				if !slices.Equal(rc.Change.Actions, []string{"create"}) {
					t.Errorf("%s: actions %v on an empty state, want create", rc.Type, rc.Change.Actions)
				}
				count[rc.Type]++
			}
			if got := count["google_cloudfunctions2_function"]; got != len(registered) {
				t.Errorf("the plan makes %d functions; functions.go registers %d", got, len(registered))
			}
			if got := count["google_secret_manager_secret_version"]; got != sc.secretN {
				t.Errorf("the plan makes %d secret versions, want %d", got, sc.secretN)
			}
		})
	}
}
