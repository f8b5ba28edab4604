// Command functions serves the pipeline's Cloud Functions the way the Cloud
// Functions Go runtime does: functions-framework with every function
// registered. With FUNCTION_TARGET unset each function is served at
// /<EntryPoint>; with it set, the named one at /. The one-machine stack runs
// this binary.
package main

import (
	"fmt"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/coursekb/pipeline"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	if err := funcframework.StartHostPort(host, port); err != nil {
		fmt.Fprintln(os.Stderr, "functions:", err)
		os.Exit(1)
	}
}
