// Package workflows is the local Cloud Workflows of the one-machine stack
// (DESIGN.md section 6): a runner for the subset of the Workflows language
// that workflows/*.yaml use, and the Executions API served over gRPC so
// that the starter's real executions client runs them.
//
// The runner (Load, Runner.Run) reads a definition with goccy/go-yaml,
// checks it when it is loaded and refuses, naming the file and the step,
// anything outside the subset: unknown step keywords, calls other than
// http.*, sys.sleep, sys.log, the Pub/Sub publish connector and the file's
// own subworkflows, functions other than those in expr.go. Expressions are
// evaluated by expr-lang/expr after a rewrite that gives them Workflows
// semantics (expr.go, stdlib.go). HTTP calls, the Pub/Sub connector,
// exceptions, retries and parallel steps follow the Workflows reference:
// see http.go, publish.go and flow.go. Sleeps and retry backoffs are
// multiplied by Options.TimeScale so tests run fast.
//
// The Service (service.go) keeps registered workflows and their executions
// in memory and runs each execution in the background, like the cloud.
package workflows
