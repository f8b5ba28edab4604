// Command standin is a stand-in for the hashicorp/google provider, version
// 6.50.0, so that the real `terraform init` and `terraform validate` run on
// machines that cannot download the provider (terraform/tfcheck's
// validate_test.go installs it from a filesystem mirror).
//
// It serves plugin protocol 5, as the real provider does, with the schema of
// every resource, data source and the provider block converted from
// terraform/tfcheck/testdata/google-provider-6.50.0.schema.json.gz, the one
// copy of that schema in the project. It validates nothing beyond the schema
// (Terraform itself checks configuration against it), plans the proposed new
// state with computed attributes unknown, reads data sources as zero values,
// and refuses to apply or import: it never talks to Google Cloud.
//
// It is one main package, not a library plus a main: its only consumer is
// the binary Terraform starts, and its tests drive the server in process.
//
// The schema file is read at start-up from the path given at build time
// (go build -ldflags "-X main.schemaPath=/abs/path/schema.json.gz"), or from
// $TFCHECK_GOOGLE_SCHEMA, which wins. It is read rather than embedded because
// go:embed cannot reach the schema in ../testdata, and a second copy next to
// this package would drift from the one tfcheck's own checks use.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tfprotov5/tf5server"
)

// providerAddr is the address Terraform installs this binary as.
const providerAddr = "registry.terraform.io/hashicorp/google"

// schemaEnv names the variable that overrides schemaPath.
const schemaEnv = "TFCHECK_GOOGLE_SCHEMA"

// schemaPath is the schema file, set with -ldflags "-X main.schemaPath=...".
var schemaPath string

func main() {
	if err := run(); err != nil {
		// Terraform shows a plugin's stderr when the plugin fails to start.
		fmt.Fprintln(os.Stderr, "terraform-provider-google (tfcheck stand-in):", err)
		os.Exit(1)
	}
}

func run() error {
	path := schemaPath
	if p := os.Getenv(schemaEnv); p != "" {
		path = p
	}
	if path == "" {
		return fmt.Errorf("no provider schema: build with -ldflags \"-X main.schemaPath=<google-provider-6.50.0.schema.json.gz>\" or set %s", schemaEnv)
	}
	f, err := loadSchemaFile(path)
	if err != nil {
		return err
	}
	srv, err := newServer(f)
	if err != nil {
		return fmt.Errorf("converting %s: %w", path, err)
	}
	if err := tf5server.Serve(providerAddr, func() tfprotov5.ProviderServer { return srv }); err != nil {
		return fmt.Errorf("serving %s: %w", providerAddr, err)
	}
	return nil
}
