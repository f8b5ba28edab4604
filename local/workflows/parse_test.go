package workflows

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The project's own workflow is within the supported subset.
func TestLessonPipelineLoads(t *testing.T) {
	t.Parallel()
	def, err := Load("../../workflows/lesson-pipeline.yaml")
	if err != nil {
		t.Fatalf("workflows/lesson-pipeline.yaml is refused: %v", err)
	}
	if def.File != "lesson-pipeline.yaml" || !slices.Contains(def.Subworkflows(), "main") {
		t.Errorf("file %q, subworkflows %v", def.File, def.Subworkflows())
	}
}

// What the runner does not support is refused when the file is loaded,
// by name, with the file, the step and the line.
func TestRefusedAtLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unsupported connector", `
main:
  steps:
    - saveLesson:
        call: googleapis.firestore.v1.projects.databases.documents.patch
        args:
          name: x
`, `lesson-pipeline.yaml: step "saveLesson": call "googleapis.firestore.v1.projects.databases.documents.patch" is not supported by the local Workflows runner (line 5)`},
		{"unknown step keyword", `
main:
  steps:
    - waitForIt:
        callback: true
`, `lesson-pipeline.yaml: step "waitForIt": step keyword "callback" is not supported by the local Workflows runner (line 5)`},
		{"unknown function", `
main:
  steps:
    - makeId:
        assign:
          - id: ${uuid.generate()}
`, `lesson-pipeline.yaml: step "makeId": function "uuid.generate" is not supported by the local Workflows runner`},
		{"subworkflow in an expression", `
main:
  steps:
    - compute:
        return: ${helper(1)}
helper:
  params: [x]
  steps:
    - r:
        return: ${x}
`, `step "compute": function "helper" is not supported by the local Workflows runner`},
		{"integer division", `
main:
  steps:
    - half:
        return: ${7 // 2}
`, `step "half": expression "7 // 2": the integer division operator // is not supported`},
		{"expr-only syntax", `
main:
  steps:
    - pick:
        return: '${true ? 1 : 2}'
`, `step "pick": the conditional operator ?: is not Workflows syntax`},
		{"unknown http argument", `
main:
  steps:
    - fetch:
        call: http.get
        args:
          url: http://example.invalid
          private_service_name: x
`, `step "fetch": call "http.get": argument "private_service_name" is not supported`},
		{"unknown auth type", `
main:
  steps:
    - fetch:
        call: http.get
        args:
          url: http://example.invalid
          auth:
            type: Basic
`, `step "fetch": auth type "Basic" is not supported`},
		{"next to a missing step", `
main:
  steps:
    - jump:
        next: nowhere
`, `step "jump": next: no step "nowhere" here`},
		{"break outside a loop", `
main:
  steps:
    - leave:
        next: break
`, `step "leave": next: break outside a for loop`},
		{"unknown retry policy", `
main:
  steps:
    - fetch:
        try:
          call: http.get
          args:
            url: http://example.invalid
        retry: ${retry.always}
`, `step "fetch": retry policy "retry.always" is not supported`},
		{"missing subworkflow argument", `
main:
  steps:
    - c:
        call: helper
helper:
  params: [x]
  steps:
    - r:
        return: ${x}
`, `step "c": call "helper": argument "x" is required`},
		{"no main", `
other:
  steps:
    - a:
        return: 1
`, `lesson-pipeline.yaml: no main workflow`},
		{"partial interpolation", `
main:
  steps:
    - s:
        return: "id-${x}"
`, `an expression must be the whole value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("lesson-pipeline.yaml", []byte(tc.src))
			var rf *RefusalError
			if !errors.As(err, &rf) {
				t.Fatalf("want a RefusalError, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

// What can only be known at run time is refused when the run gets there,
// with the file and the step.
func TestRefusedAtRunTime(t *testing.T) {
	t.Parallel()
	_, err, _ := runWorkflow(t, `
main:
  steps:
    - init:
        assign:
          - kind: Basic
    - fetch:
        call: http.get
        args:
          url: http://127.0.0.1:1/
          auth:
            type: ${kind}
`, nil, nil, Options{})
	var rf *RefusalError
	if !errors.As(err, &rf) || rf.Step != "fetch" || rf.File != "test.yaml" || !strings.Contains(err.Error(), `auth type Basic is not supported by the local Workflows runner`) {
		t.Fatalf("got %v", err)
	}
}
