// Package tfcheck checks the project's Terraform configuration offline:
// `terraform init` cannot download the hashicorp/google provider on the
// project's machines. It parses every terraform/*.tf file with hcl/v2 and
// checks it against the provider's schema (testdata/google-provider-6.50.0.schema.json.gz,
// the version versions.tf pins); ./standin serves that schema as a provider
// so that the real `terraform validate` runs too (validate_test.go).
//
// What the schema check covers: resource and data types exist (the
// provider's, or Terraform's built-in terraform_data); every argument set
// exists and is not computed-only; required arguments are present; nested
// blocks exist, required ones are present (a dynamic block counts) and
// single blocks appear at most once; references to resources and data
// sources name declared blocks and attributes of their schema, with
// single-item blocks indexed; var.X and local.X are declared; each.* is used
// only under for_each and count.* only under count. It does not check value
// types or the provider's validation rules (allowed values, formats).
//
// Eval computes what is known without a provider (variable defaults, or
// values a test sets; locals; for_each keys), and the contract tests compare
// it with the Go code, read from source or imported:
//   - every function functions.go registers is deployed from local.functions
//     with its entry point and a trigger of its kind, and the environment
//     its configuration struct reads (required variables set, nothing it
//     does not read, values that parse, leases that outlast timeouts);
//   - every topic shared/events names exists, and every topic has a
//     subscriber; each function publishes to exactly the topics its code
//     needs; subscriptions are <topic>-<function> with a dead-letter topic
//     <subscription>-dlq, a delivery limit well above MAX_ATTEMPTS, the
//     /projects/P/topics/T push suffix, the Pub/Sub agent's grants, a -hold
//     subscription per dead-letter topic, and the local stack's routes;
//   - every variable workflows/*.yaml reads is set, and its polling covers
//     the longest recognition (shared/transcribe) for either strategy;
//   - every secret a function reads has a version from a sensitive,
//     write-only variable before the function, no output shows one, and it
//     is readable by the accounts of the functions that read it alone;
//   - every log message a metric or alert quotes is still logged, at the
//     severity the filter asks for; the alert policies the runbook relies on
//     exist; the taxonomy's vector index fits shared/taxonomy's query;
//   - the Cloud Build deployer may grant every role the configuration grants,
//     and cloudbuild.yaml runs as it, tests, plans, and applies only with
//     _APPLY=true.
//
// ./sourcezip writes the function source archive (`make package`).
package tfcheck
