// Package tfcheck checks the project's Terraform configuration offline:
// `terraform init` cannot download the hashicorp/google provider on the
// project's machines, so `terraform validate` cannot run. The tests of this
// package parse every terraform/*.tf file with hcl/v2 and check it against
// the provider's schema (testdata/google-provider-6.50.0.schema.json.gz, the
// version versions.tf pins) and against the project's names contract
// (DESIGN.md section 3, shared/events, shared/config, workflows/*.yaml).
//
// What the schema check covers: resource and data types exist; every
// argument set exists and is not computed-only; required arguments are
// present; nested blocks exist, required ones are present (a dynamic block
// counts) and single blocks appear at most once; references to resources and
// data sources name declared blocks and attributes of their schema, with
// single-item blocks indexed; var.X and local.X are declared; each.* is used
// only under for_each and count.* only under count. It does not check value
// types or the provider's validation rules (allowed values, formats).
package tfcheck
