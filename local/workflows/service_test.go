package workflows

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	executions "cloud.google.com/go/workflows/executions/apiv1"
	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const echoWorkflow = `
main:
  params: [args]
  steps:
    - check:
        switch:
          - condition: ${"fail" in args}
            raise:
              code: 409
              message: ${"refused lesson " + args.lessonId}
          - condition: ${"sleep" in args}
            next: nap
        next: answer
    - nap:
        call: sys.sleep
        args:
          seconds: ${args.sleep}
    - answer:
        return:
          lessonId: ${args.lessonId}
          project: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
          execution: ${sys.get_env("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID")}
          greeting: ${sys.get_env("GREETING")}
`

// startService registers echoWorkflow as testWorkflow, serves the API and
// returns the service and a real executions client talking to it.
func startService(t *testing.T) (*Service, *executions.Client) {
	t.Helper()
	svc := NewService(Options{TimeScale: testScale})
	t.Cleanup(svc.Close)
	if err := svc.Register(testWorkflow, mustParse(t, echoWorkflow), map[string]string{"GREETING": "hola"}); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := svc.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	client, err := executions.NewClient(t.Context(),
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return svc, client
}

// awaitEnd polls GetExecution, as a caller of the API would, until the
// execution leaves ACTIVE.
func awaitEnd(t *testing.T, client *executions.Client, name string) *executionspb.Execution {
	t.Helper()
	var ex *executionspb.Execution
	waitFor(t, 10*time.Second, "execution "+name+" to end", func() bool {
		var err error
		ex, err = client.GetExecution(t.Context(), &executionspb.GetExecutionRequest{Name: name})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		return ex.GetState() != executionspb.Execution_ACTIVE
	})
	return ex
}

// CreateExecution returns the execution ACTIVE at once; it then succeeds
// with the workflow's result as JSON, having seen its argument and its
// environment, and its steps are on record.
func TestCreateExecutionSucceeds(t *testing.T) {
	t.Parallel()
	svc, client := startService(t)
	ex, err := client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{
		Parent: testWorkflow,
		Execution: &executionspb.Execution{
			Argument: `{"lessonId":"l-1","version":2}`,
			Labels:   map[string]string{"lesson_id": "l-1", "stage": "process"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ex.GetName(), testWorkflow+"/executions/") || ex.GetState() != executionspb.Execution_ACTIVE ||
		ex.GetStartTime() == nil || ex.GetArgument() != `{"lessonId":"l-1","version":2}` || ex.GetLabels()["stage"] != "process" {
		t.Fatalf("created %v", ex)
	}
	done := awaitEnd(t, client, ex.GetName())
	if done.GetState() != executionspb.Execution_SUCCEEDED {
		t.Fatalf("state %s, error %v", done.GetState(), done.GetError())
	}
	id := ex.GetName()[strings.LastIndex(ex.GetName(), "/")+1:]
	assertJSON(t, jsonValue(t, done.GetResult()), `{"lessonId":"l-1","project":"test-project","execution":"`+id+`","greeting":"hola"}`)
	if done.GetEndTime() == nil || done.GetDuration() == nil || done.GetLabels()["lesson_id"] != "l-1" {
		t.Errorf("ended %v", done)
	}
	var started []string
	for _, e := range svc.Steps(ex.GetName()) {
		if e.State == StepStarted {
			started = append(started, e.Step)
		}
	}
	if !slices.Equal(started, []string{"check", "answer"}) {
		t.Errorf("steps %v", started)
	}
}

// An uncaught exception fails the execution with the raised map as the
// error payload and the failing step in the stack trace.
func TestCreateExecutionFails(t *testing.T) {
	t.Parallel()
	_, client := startService(t)
	ex, err := client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{
		Parent:    testWorkflow,
		Execution: &executionspb.Execution{Argument: `{"lessonId":"l-2","fail":true}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := awaitEnd(t, client, ex.GetName())
	if done.GetState() != executionspb.Execution_FAILED || done.GetResult() != "" {
		t.Fatalf("state %s result %q", done.GetState(), done.GetResult())
	}
	assertJSON(t, jsonValue(t, done.GetError().GetPayload()), `{"code":409,"message":"refused lesson l-2"}`)
	el := done.GetError().GetStackTrace().GetElements()
	if len(el) != 1 || el[0].GetStep() != "check" || el[0].GetRoutine() != "main" || el[0].GetPosition().GetLine() != 5 {
		t.Errorf("stack trace %v", el)
	}
	if !strings.Contains(done.GetError().GetContext(), `in step "check", routine "main"`) {
		t.Errorf("context %q", done.GetError().GetContext())
	}
}

// CancelExecution stops a running execution (here in a long sys.sleep): it
// ends CANCELLED and cannot be cancelled twice.
func TestCancelExecution(t *testing.T) {
	t.Parallel()
	svc, client := startService(t)
	ex, err := client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{
		Parent:    testWorkflow,
		Execution: &executionspb.Execution{Argument: `{"lessonId":"l-3","sleep":1000000}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the execution to reach its sleep", func() bool {
		got, err := client.GetExecution(t.Context(), &executionspb.GetExecutionRequest{Name: ex.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		cur := got.GetStatus().GetCurrentSteps()
		return len(cur) == 1 && cur[0].GetStep() == "nap"
	})
	cancelled, err := client.CancelExecution(t.Context(), &executionspb.CancelExecutionRequest{Name: ex.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.GetState() != executionspb.Execution_CANCELLED || cancelled.GetEndTime() == nil {
		t.Errorf("after cancel: %v", cancelled)
	}
	if got := svc.Executions(testWorkflow)[0].GetState(); got != executionspb.Execution_CANCELLED {
		t.Errorf("service sees %s", got)
	}
	_, err = client.CancelExecution(t.Context(), &executionspb.CancelExecutionRequest{Name: ex.GetName()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second cancel: %v", err)
	}
}

// ListExecutions filters by label and by state (joined with AND), orders
// newest first by default, pages, and returns the BASIC view unless FULL
// is asked.
func TestListExecutions(t *testing.T) {
	t.Parallel()
	svc, client := startService(t)
	var names []string
	for i, arg := range []string{`{"lessonId":"a"}`, `{"lessonId":"b","fail":true}`, `{"lessonId":"c"}`, `{"lessonId":"d"}`} {
		lesson := []string{"a", "b", "c", "d"}[i]
		ex, err := client.CreateExecution(t.Context(), &executionspb.CreateExecutionRequest{
			Parent:    testWorkflow,
			Execution: &executionspb.Execution{Argument: arg, Labels: map[string]string{"lesson": lesson, "batch": "one"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ex.GetName())
		if _, err := svc.Wait(t.Context(), ex.GetName()); err != nil {
			t.Fatal(err)
		}
	}
	list := func(req *executionspb.ListExecutionsRequest) []*executionspb.Execution {
		t.Helper()
		req.Parent = testWorkflow
		var out []*executionspb.Execution
		it := client.ListExecutions(t.Context(), req)
		for {
			ex, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return out
			}
			if err != nil {
				t.Fatalf("list %q: %v", req.GetFilter(), err)
			}
			out = append(out, ex)
		}
	}

	got := list(&executionspb.ListExecutionsRequest{Filter: `labels.lesson="c"`})
	if len(got) != 1 || got[0].GetName() != names[2] {
		t.Errorf("labels.lesson=c: %v", got)
	}
	if got[0].GetArgument() != "" || got[0].GetLabels() != nil || got[0].GetState() != executionspb.Execution_SUCCEEDED {
		t.Errorf("BASIC view carries %v", got[0])
	}
	got = list(&executionspb.ListExecutionsRequest{Filter: `labels.batch="one" AND state="FAILED"`, View: executionspb.ExecutionView_FULL})
	if len(got) != 1 || got[0].GetName() != names[1] || got[0].GetLabels()["lesson"] != "b" {
		t.Errorf("batch=one AND FAILED: %v", got)
	}
	got = list(&executionspb.ListExecutionsRequest{Filter: `state="SUCCEEDED"`})
	if want := []string{names[3], names[2], names[0]}; !slices.Equal(execNames(got), want) {
		t.Errorf("SUCCEEDED, newest first: %v, want %v", execNames(got), want)
	}
	got = list(&executionspb.ListExecutionsRequest{OrderBy: "startTime asc", PageSize: 3})
	if !slices.Equal(execNames(got), names) {
		t.Errorf("oldest first over pages of 3: %v, want %v", execNames(got), names)
	}

	it := client.ListExecutions(t.Context(), &executionspb.ListExecutionsRequest{Parent: testWorkflow, PageSize: 3})
	var page []*executionspb.Execution
	next, err := iterator.NewPager(it, 3, "").NextPage(&page)
	if err != nil || len(page) != 3 || next == "" {
		t.Errorf("first page: %d executions, next %q, err %v", len(page), next, err)
	}

	_, err = client.ListExecutions(t.Context(), &executionspb.ListExecutionsRequest{Parent: testWorkflow, Filter: `stepName="x" OR state="FAILED"`}).Next()
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("unsupported filter: %v", err)
	}
}

// Bad requests are refused as the API does.
func TestCreateExecutionValidation(t *testing.T) {
	t.Parallel()
	_, client := startService(t)
	for _, tc := range []struct {
		name string
		req  *executionspb.CreateExecutionRequest
		code codes.Code
	}{
		{"unknown workflow", &executionspb.CreateExecutionRequest{Parent: testWorkflow + "-other"}, codes.NotFound},
		{"argument not JSON", &executionspb.CreateExecutionRequest{Parent: testWorkflow, Execution: &executionspb.Execution{Argument: "{"}}, codes.InvalidArgument},
		{"argument over 32 KB", &executionspb.CreateExecutionRequest{Parent: testWorkflow, Execution: &executionspb.Execution{Argument: `"` + strings.Repeat("x", 32*1024) + `"`}}, codes.InvalidArgument},
		{"label key with capitals", &executionspb.CreateExecutionRequest{Parent: testWorkflow, Execution: &executionspb.Execution{Labels: map[string]string{"Lesson": "a"}}}, codes.InvalidArgument},
		{"label key starting with a digit", &executionspb.CreateExecutionRequest{Parent: testWorkflow, Execution: &executionspb.Execution{Labels: map[string]string{"1st": "a"}}}, codes.InvalidArgument},
		{"label value too long", &executionspb.CreateExecutionRequest{Parent: testWorkflow, Execution: &executionspb.Execution{Labels: map[string]string{"k": strings.Repeat("v", 64)}}}, codes.InvalidArgument},
		{"too many labels", &executionspb.CreateExecutionRequest{Parent: testWorkflow, Execution: &executionspb.Execution{Labels: manyLabels(65)}}, codes.InvalidArgument},
	} {
		if _, err := client.CreateExecution(t.Context(), tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := client.GetExecution(t.Context(), &executionspb.GetExecutionRequest{Name: testWorkflow + "/executions/nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("get unknown: %v", err)
	}
}

// Registering checks the workflow name and the environment's reserved
// prefixes.
func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	svc := NewService(Options{})
	defer svc.Close()
	def := mustParse(t, echoWorkflow)
	if err := svc.Register("lesson-pipeline", def, nil); err == nil {
		t.Error("a bare name was accepted")
	}
	if err := svc.Register(testWorkflow, def, map[string]string{"GOOGLE_CLOUD_PROJECT_ID": "x"}); err == nil {
		t.Error("a GOOGLE_ variable was accepted")
	}
	if err := svc.RegisterFile(testWorkflow, "../../workflows/lesson-pipeline.yaml", map[string]string{"TRANSCRIBER_URL": "http://127.0.0.1:1"}); err != nil {
		t.Errorf("register the project's workflow: %v", err)
	}
}

func manyLabels(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m["k"+strings.Repeat("x", i%60)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	return m
}

func execNames(list []*executionspb.Execution) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.GetName())
	}
	return out
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("%q is not JSON: %v", s, err)
	}
	return v
}
