package tfcheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/coursekb/pipeline/shared/taxonomy"
)

// roleOf returns the roles an IAM resource grants, per instance when the
// role is known offline, else the role expression's text.
func roleOf(t *testing.T, cfg *Config, e *Eval, r *Resource) []string {
	t.Helper()
	a := r.Attr("role")
	if a == nil {
		return nil
	}
	insts, err := e.Instances(r)
	if err != nil {
		return []string{cfg.Text(a.Expr.Range())}
	}
	var out []string
	for _, in := range insts {
		if v, err := e.Value(in, a.Expr); err == nil && v.IsKnown() {
			out = append(out, str(v))
		} else {
			out = append(out, cfg.Text(a.Expr.Range()))
		}
	}
	return out
}

func isIAMGrant(r *Resource) bool {
	return r.Mode == "resource" && (strings.HasSuffix(r.Type, "_iam_member") || strings.HasSuffix(r.Type, "_iam_binding") || strings.HasSuffix(r.Type, "_iam_policy"))
}

// secretVars are the variables local.secret_values reads.
func secretVars(t *testing.T, cfg *Config) []string {
	t.Helper()
	a := cfg.Locals["secret_values"]
	if a == nil {
		t.Fatal("no local.secret_values")
	}
	var out []string
	for _, tr := range hclsyntax.Variables(a.Expr) {
		if names := traversalNames(tr); len(names) == 2 && names[0] == "var" {
			out = append(out, names[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestSecrets checks the secrets end to end: every secret a function reads
// has a version made in the same apply before the function, from a
// sensitive variable, write-only (never in the state), shown by no output;
// and it is readable by the accounts of the functions that read it alone.
func TestSecrets(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEvalWith(cfg, switchedOn)

	// Values: sensitive variables, one per secret.
	vars := secretVars(t, cfg)
	for _, v := range vars {
		b := cfg.Variables[v]
		if b == nil {
			t.Errorf("local.secret_values reads var.%s, which is not declared", v)
			continue
		}
		if s := b.Body.Attributes["sensitive"]; s == nil || cfg.Text(s.Expr.Range()) != "true" {
			t.Errorf("var.%s holds a secret's value: it must be sensitive = true", v)
		}
	}
	values, err := e.Local("secret_values")
	if err != nil {
		t.Fatal(err)
	}
	secrets := stringMap(t, e, "secrets")
	for env := range secrets {
		if !values.Type().HasAttribute(env) {
			t.Errorf("secret %s has no value in local.secret_values", env)
		}
	}

	// Versions: write-only, for every secret.
	ver := cfg.Find("resource", "google_secret_manager_secret_version", "value")
	switch {
	case ver == nil:
		t.Error("no google_secret_manager_secret_version.value: Cloud Run refuses to start a function whose secret has no version")
	case cfg.Text(ver.Attr("for_each").Expr.Range()) != "local.secrets":
		t.Error("google_secret_manager_secret_version.value: for_each must be local.secrets (a version for every secret)")
	case ver.Attr("secret_data") != nil || ver.Attr("secret_data_wo") == nil:
		t.Error("google_secret_manager_secret_version.value must send secret_data_wo (write-only), never secret_data (kept in the state)")
	}

	// The functions name those versions, so a version exists before the
	// function that reads it, and a new one redeploys it.
	fn := cfg.Find("resource", "google_cloudfunctions2_function", "function")
	if fn == nil || !strings.Contains(cfg.Text(fn.Block.Range()), "google_secret_manager_secret_version.value[secret_environment_variables.value].version") {
		t.Error("the functions' secret_environment_variables must name google_secret_manager_secret_version.value[...].version")
	}

	// No output shows a value.
	for name, o := range cfg.Outputs {
		text := cfg.Text(o.Range())
		for _, v := range vars {
			if strings.Contains(text, "var."+v) {
				t.Errorf("output %s reads var.%s, a secret's value", name, v)
			}
		}
		if strings.Contains(text, "local.secret_values") || strings.Contains(text, "google_secret_manager_secret_version") {
			t.Errorf("output %s reads secret values or versions", name)
		}
	}

	// Access: the accessor grant is made per function and secret from the
	// specs, to the function's own account; no other grant anywhere gives a
	// role that reads secret values.
	acc := cfg.Find("resource", "google_secret_manager_secret_iam_member", "function_accessor")
	if acc == nil {
		t.Fatal("no google_secret_manager_secret_iam_member.function_accessor")
	}
	if got := cfg.Text(acc.Attr("for_each").Expr.Range()); got != "local.function_secrets" {
		t.Errorf("function_accessor: for_each = %s, want local.function_secrets", got)
	}
	if got := cfg.Text(acc.Attr("member").Expr.Range()); got != "google_service_account.function[each.value.function].member" {
		t.Errorf("function_accessor: member = %s, want the function's own account", got)
	}
	insts, err := e.Instances(acc)
	if err != nil {
		t.Fatal(err)
	}
	specs := decodeSpecs(t, e)
	var want []string
	for name, s := range specs {
		for _, sec := range s.Secrets {
			want = append(want, name+"/"+sec)
		}
	}
	slices.Sort(want)
	if got := keys(insts); !slices.Equal(got, want) {
		t.Errorf("secret access is granted as %v; the functions read %v", got, want)
	}
	readsSecrets := []string{"roles/secretmanager.secretAccessor", "roles/secretmanager.admin", "roles/owner", "roles/editor"}
	for _, r := range cfg.Resources {
		if !isIAMGrant(r) || r == acc {
			continue
		}
		for _, role := range roleOf(t, cfg, e, r) {
			if slices.Contains(readsSecrets, role) || strings.Contains(role, "secretAccessor") {
				t.Errorf("%s grants %s, which reads secret values: only function_accessor may", r.Addr(), role)
			}
		}
	}
	for _, r := range cfg.OfType("google_project_iam_custom_role") {
		if strings.Contains(cfg.Text(r.Block.Range()), "secretmanager.versions.access") {
			t.Errorf("%s includes secretmanager.versions.access", r.Addr())
		}
	}
}

// TestDeployerCanGrantEveryRole: the Cloud Build deployer's project IAM role
// is limited to local.grantable_project_roles; every project role the
// configuration grants (the deployer's own aside) must be in it, or a Cloud
// Build apply that adds one fails. Neither the deployer nor the function
// build account holds roles/cloudbuild.builds.builder, owner or editor.
func TestDeployerCanGrantEveryRole(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEvalWith(cfg, switchedOn)
	grantableV, err := e.Local("grantable_project_roles")
	if err != nil {
		t.Fatal(err)
	}
	grantable := stringSet(t, grantableV, "local.grantable_project_roles")
	for _, r := range cfg.OfType("google_project_iam_member") {
		roles := roleOf(t, cfg, e, r)
		if strings.HasPrefix(r.Name, "deployer") {
			for _, role := range roles {
				if role == "roles/owner" || role == "roles/editor" || role == "roles/cloudbuild.builds.builder" {
					t.Errorf("%s grants the deployer %s", r.Addr(), role)
				}
			}
			continue
		}
		for _, role := range roles {
			if !slices.Contains(grantable, role) {
				t.Errorf("%s grants %s, which local.grantable_project_roles (the deployer's condition) lacks", r.Addr(), role)
			}
			if role == "roles/cloudbuild.builds.builder" || role == "roles/owner" || role == "roles/editor" {
				t.Errorf("%s grants %s: far more than any account here needs", r.Addr(), role)
			}
		}
	}
	dep := cfg.Find("resource", "google_project_iam_member", "deployer")
	if dep == nil || !strings.Contains(cfg.Text(dep.Block.Range()), "condition") {
		t.Error("google_project_iam_member.deployer must carry the conditions of local.deployer_conditions")
	}
}

// TestDeployWaitsForItsGrants: the functions are deployed after the grants a
// deploy uses at once (the build account's, the secrets', Eventarc's), and
// after the wait for them to apply.
func TestDeployWaitsForItsGrants(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	fn := cfg.Find("resource", "google_cloudfunctions2_function", "function")
	wait := cfg.Find("resource", "terraform_data", "deploy_grants_ready")
	if fn == nil || wait == nil {
		t.Fatal("want google_cloudfunctions2_function.function and terraform_data.deploy_grants_ready")
	}
	deps := func(r *Resource) []string {
		a := r.Attr("depends_on")
		if a == nil {
			return nil
		}
		return References(a.Expr)
	}
	if !slices.Contains(deps(fn), "terraform_data.deploy_grants_ready") || !slices.Contains(deps(fn), "terraform_data.apis_ready") {
		t.Errorf("the functions depend on %v; they must wait for terraform_data.apis_ready and terraform_data.deploy_grants_ready", deps(fn))
	}
	for _, need := range []string{
		"google_project_iam_member.build",
		"google_artifact_registry_repository_iam_member.build_writer",
		"google_secret_manager_secret_iam_member.function_accessor",
		"google_project_iam_member.trigger_event_receiver",
		"google_project_iam_member.gcs_agent_publisher",
		"google_service_account_iam_member.pubsub_agent_token_creator",
	} {
		if !slices.Contains(deps(wait), need) {
			t.Errorf("terraform_data.deploy_grants_ready must wait for %s", need)
		}
	}
	// Every resource that calls an API waits for the APIs, directly or
	// through something that does: here, the first ones made.
	for _, r := range []string{"google_service_account.function", "google_storage_bucket.raw", "google_pubsub_topic.topic", "google_secret_manager_secret.secret", "google_firestore_database.default"} {
		parts := strings.SplitN(r, ".", 2)
		res := cfg.Find("resource", parts[0], parts[1])
		if res == nil || !slices.Contains(deps(res), "terraform_data.apis_ready") {
			t.Errorf("%s must depend on terraform_data.apis_ready", r)
		}
	}
}

// TestTaxonomyIndex checks the vector index against the enricher's query
// (shared/taxonomy Classify: where school == S, FindNearest on embedding)
// and its embedding size.
func TestTaxonomyIndex(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	e := NewEval(cfg)
	var idx *Resource
	for _, r := range cfg.OfType("google_firestore_index") {
		if v, err := e.Value(Instance{}, r.Attr("collection").Expr); err == nil && str(v) == taxonomy.Collection {
			idx = r
		}
	}
	if idx == nil {
		t.Fatalf("no google_firestore_index on collection %q (shared/taxonomy.Collection)", taxonomy.Collection)
	}
	var fields []*hclsyntax.Body
	for _, b := range idx.Block.Body.Blocks {
		if b.Type == "fields" {
			fields = append(fields, b.Body)
		}
	}
	path := func(b *hclsyntax.Body) string {
		if a := b.Attributes["field_path"]; a != nil {
			v, _ := e.Value(Instance{}, a.Expr)
			return str(v)
		}
		return ""
	}
	if len(fields) < 2 || path(fields[0]) != taxonomy.FieldSchool || path(fields[len(fields)-1]) != taxonomy.FieldEmbedding {
		t.Fatalf("%s: want %s first and the vector field %s last", idx.Addr(), taxonomy.FieldSchool, taxonomy.FieldEmbedding)
	}
	if o := fields[0].Attributes["order"]; o == nil || cfg.Text(o.Expr.Range()) != `"ASCENDING"` {
		t.Errorf("%s: %s must be ASCENDING (an equality filter)", idx.Addr(), taxonomy.FieldSchool)
	}
	vc := hasBlock(fields[len(fields)-1], "vector_config")
	if vc == nil || hasBlock(vc, "flat") == nil || vc.Attributes["dimension"] == nil {
		t.Fatalf("%s: %s needs vector_config { dimension, flat {} }", idx.Addr(), taxonomy.FieldEmbedding)
	}
	if got := cfg.Text(vc.Attributes["dimension"].Expr.Range()); got != "var.embedding_dimensions" {
		t.Errorf("%s: dimension = %s, want var.embedding_dimensions (the enricher's EMBEDDING_DIMENSIONS)", idx.Addr(), got)
	}
	specs := decodeSpecs(t, e)
	dims, _ := num(e.Vars["embedding_dimensions"])
	if got := str(specs["enricher"].Env["EMBEDDING_DIMENSIONS"]); got != strconv.FormatInt(dims, 10) {
		t.Errorf("the enricher's EMBEDDING_DIMENSIONS is %q; the index's dimension is %d", got, dims)
	}
	fields2, _ := configFields("enricher")
	if def := fields2["EMBEDDING_DIMENSIONS"].Default; def != strconv.FormatInt(dims, 10) {
		t.Errorf("var.embedding_dimensions defaults to %d; the enricher's own default is %s", dims, def)
	}
}

// TestCloudBuild checks cloudbuild.yaml: its own service account and
// logging, the steps (vet, make test, make package, terraform init with the
// state backend, plan), and an apply that runs only with _APPLY=true.
func TestCloudBuild(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(moduleRoot, "cloudbuild.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ServiceAccount string            `yaml:"serviceAccount"`
		Substitutions  map[string]string `yaml:"substitutions"`
		Options        struct {
			Logging string `yaml:"logging"`
		} `yaml:"options"`
		Steps []struct {
			ID         string   `yaml:"id"`
			Name       string   `yaml:"name"`
			Entrypoint string   `yaml:"entrypoint"`
			Args       []string `yaml:"args"`
		} `yaml:"steps"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("cloudbuild.yaml: %v", err)
	}
	if !strings.Contains(doc.ServiceAccount, "/serviceAccounts/pipeline-deployer@") {
		t.Errorf("cloudbuild.yaml: serviceAccount %q, want pipeline-deployer (terraform/build.tf)", doc.ServiceAccount)
	}
	if doc.Options.Logging != "CLOUD_LOGGING_ONLY" {
		t.Errorf("cloudbuild.yaml: a user-specified account needs options.logging CLOUD_LOGGING_ONLY, got %q", doc.Options.Logging)
	}
	if doc.Substitutions["_APPLY"] != "false" {
		t.Errorf("cloudbuild.yaml: _APPLY must default to \"false\", got %q", doc.Substitutions["_APPLY"])
	}
	steps := map[string]string{}
	for _, s := range doc.Steps {
		steps[s.ID] = s.Entrypoint + " " + strings.Join(s.Args, " ")
	}
	for id, want := range map[string]string{
		"vet":     "go vet ./...",
		"test":    "make test",
		"package": "make package",
		"plan":    "-backend-config=bucket=",
		"apply":   `if [ "${_APPLY}" != "true" ]`,
	} {
		if !strings.Contains(steps[id], want) {
			t.Errorf("cloudbuild.yaml: step %s must run %q, runs %q", id, want, steps[id])
		}
	}
	if !strings.Contains(steps["plan"], "-out=") || !strings.Contains(steps["apply"], "apply -input=false -lock-timeout=5m /workspace/bin/tfplan") {
		t.Error("cloudbuild.yaml: apply must apply the saved plan of the plan step, nothing else")
	}
}

// TestTfvarsExample checks terraform.tfvars.example: it parses, every
// variable it sets (or shows commented out) is declared, and it sets no
// secret's value (those go in as TF_VAR_... environment variables).
func TestTfvarsExample(t *testing.T) {
	t.Parallel()
	cfg, _ := mustLoad(t)
	path := filepath.Join(cfg.Dir, "terraform.tfvars.example")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("terraform.tfvars.example: %s", diags.Error())
	}
	names := map[string]bool{}
	for name := range f.Body.(*hclsyntax.Body).Attributes {
		names[name] = true
	}
	for _, m := range commentedVar.FindAllStringSubmatch(string(src), -1) {
		names[m[1]] = true
	}
	secrets := secretVars(t, cfg)
	for name := range names {
		if cfg.Variables[name] == nil {
			t.Errorf("terraform.tfvars.example sets %s, which variables.tf does not declare", name)
		}
		if slices.Contains(secrets, name) {
			t.Errorf("terraform.tfvars.example sets %s, a secret's value: give it as TF_VAR_%s", name, name)
		}
	}
	if !names["project_id"] {
		t.Error("terraform.tfvars.example does not set project_id, the one required variable")
	}
}

var commentedVar = regexp.MustCompile(`(?m)^#\s*([a-z_][a-z0-9_]*)\s+=`)
