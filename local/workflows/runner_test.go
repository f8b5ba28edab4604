package workflows

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Assignments write variables, map keys (dotted or bracketed, literal or
// computed) and list elements; a copy is a value, so writing through one
// name leaves the other unchanged.
func TestAssignPaths(t *testing.T) {
	t.Parallel()
	res, _ := succeed(t, `
main:
  params: [args]
  steps:
    - init:
        assign:
          - m: {a: {b: 1}, list: [1, 2, 3]}
          - k: dyn
          - m.a.b: 2
          - m["c"]: ${args.x}
          - m.list[0]: 10
          - m[k]: computed
          - list: [a, b]
          - list[1]: B
          - copy: ${m}
          - copy.a.b: 99
    - done:
        return: {m: '${m}', list: '${list}', copy_b: '${copy.a.b}'}
`, map[string]any{"x": "from-args"}, Options{})
	assertJSON(t, res, `{"m":{"a":{"b":2},"c":"from-args","list":[10,2,3],"dyn":"computed"},"list":["a","B"],"copy_b":99}`)
}

// An assignment to a key of a missing variable, or past the end of a
// list, raises KeyError or IndexError as Workflows does.
func TestAssignErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ assign, tag string }{
		{"missing.a: 1", "KeyError"},
		{"list[5]: 1", "IndexError"},
		{"m.x.y: 1", "KeyError"},
	} {
		_, err, _ := runWorkflow(t, `
main:
  steps:
    - init:
        assign:
          - list: [1]
          - m: {}
    - bad:
        assign:
          - `+tc.assign+`
`, nil, nil, Options{})
		var ee *ExecutionError
		if !errors.As(err, &ee) || !hasTag(ee.Payload, tc.tag) {
			t.Errorf("%s: want %s, got %v", tc.assign, tc.tag, err)
		}
	}
}

// switch evaluates conditions in order; next jumps (here backwards, as a
// loop), a case may run steps, assign, return or raise, and a switch with
// no matching case goes on to its own next.
func TestSwitchAndNext(t *testing.T) {
	t.Parallel()
	res, rec := succeed(t, `
main:
  steps:
    - init:
        assign:
          - n: 0
          - log: []
    - loop:
        switch:
          - condition: ${n >= 3}
            next: after
          - condition: ${n == 1}
            steps:
              - note:
                  assign:
                    - log[0]: one
          - condition: ${n == 0}
            assign:
              - log: ["zero"]
    - count:
        assign:
          - n: ${n + 1}
        next: loop
    - after:
        switch:
          - condition: ${false}
            return: never
        next: finish
    - skipped:
        return: skipped
    - finish:
        switch:
          - condition: ${n == 3 and not (n == 4) and (n > 100 or true)}
            return: {n: '${n}', log: '${log}'}
`, nil, Options{})
	assertJSON(t, res, `{"n":3,"log":["one"]}`)
	if got := rec.steps(StepStarted); slices.Contains(got, "skipped") {
		t.Errorf("skipped step ran: %v", got)
	}
	if got := rec.steps(StepStarted); strings.Count(strings.Join(got, ","), "loop") != 4 {
		t.Errorf("loop should run 4 times: %v", got)
	}
}

// A subworkflow is called with named arguments, a missing one taking its
// default, and its return value lands in result.
func TestSubworkflowCall(t *testing.T) {
	t.Parallel()
	res, rec := succeed(t, `
main:
  steps:
    - callIt:
        call: greet
        args:
          name: Ana
        result: greeting
    - done:
        return: ${greeting}
greet:
  params: [name, punctuation: "!"]
  steps:
    - build:
        return: ${"hello " + name + punctuation}
`, nil, Options{})
	if res != "hello Ana!" {
		t.Errorf("result %v", res)
	}
	ev := rec.all()
	var routines []string
	for _, e := range ev {
		if e.State == StepStarted {
			routines = append(routines, e.Routine+"."+e.Step)
		}
	}
	if want := []string{"main.callIt", "greet.build", "main.done"}; !reflect.DeepEqual(routines, want) {
		t.Errorf("steps %v, want %v", routines, want)
	}
}

// A raised map is caught by except with as; an uncaught one fails the run
// with the map as payload and the steps it passed through, innermost
// first.
func TestRaiseAndExcept(t *testing.T) {
	t.Parallel()
	res, _ := succeed(t, `
main:
  steps:
    - guarded:
        try:
          steps:
            - fail:
                raise:
                  code: 42
                  message: custom failure
        except:
          as: e
          steps:
            - handle:
                return: ${"caught " + e.message + " " + string(e.code)}
`, nil, Options{})
	if res != "caught custom failure 42" {
		t.Errorf("result %v", res)
	}

	_, err, rec := runWorkflow(t, `
main:
  steps:
    - first:
        call: inner
inner:
  steps:
    - boom:
        raise: {code: 7, message: bad}
`, nil, nil, Options{})
	var ee *ExecutionError
	if !errors.As(err, &ee) {
		t.Fatalf("want ExecutionError, got %v", err)
	}
	assertJSON(t, ee.Payload, `{"code":7,"message":"bad"}`)
	if want := []StackElement{{Step: "boom", Routine: "inner", Line: 8}, {Step: "first", Routine: "main", Line: 4}}; !reflect.DeepEqual(ee.Stack, want) {
		t.Errorf("stack %+v, want %+v", ee.Stack, want)
	}
	if got := rec.steps(StepFailed); !reflect.DeepEqual(got, []string{"boom", "first"}) {
		t.Errorf("failed steps %v", got)
	}
	if !strings.Contains(ee.Context(), `in step "boom", routine "inner", line: 8`) {
		t.Errorf("context %q", ee.Context())
	}
}

// A string can be raised and re-raised; an except without as still runs.
func TestRaiseString(t *testing.T) {
	t.Parallel()
	_, err, _ := runWorkflow(t, `
main:
  steps:
    - t:
        try:
          raise: first
        except:
          as: e
          steps:
            - again:
                raise: ${e + " then second"}
`, nil, nil, Options{})
	var ee *ExecutionError
	if !errors.As(err, &ee) || ee.Payload != "first then second" {
		t.Fatalf("got %v", err)
	}
	if ee.PayloadJSON() != `"first then second"` {
		t.Errorf("payload JSON %s", ee.PayloadJSON())
	}
}

// for loops over a list (with index) and over an inclusive range;
// continue skips, break leaves, and variables made in the body do not
// outlive it while outer ones are updated.
func TestForLoops(t *testing.T) {
	t.Parallel()
	res, _ := succeed(t, `
main:
  steps:
    - init:
        assign:
          - seen: []
          - total: 0
    - overList:
        for:
          value: v
          index: i
          in: [a, b, c, d]
          steps:
            - skipB:
                switch:
                  - condition: ${v == "b"}
                    next: continue
                  - condition: ${v == "d"}
                    next: break
            - keep:
                assign:
                  - seen: ${[v + string(i)]}
                  - inner: ${v}
    - overRange:
        for:
          value: n
          range: [1, 4]
          steps:
            - add:
                assign:
                  - total: ${total + n}
    - done:
        return:
          seen: ${seen}
          total: ${total}
`, nil, Options{})
	assertJSON(t, res, `{"seen":["c2"],"total":10}`)

	_, err, _ := runWorkflow(t, `
main:
  steps:
    - loop:
        for:
          value: v
          in: [1]
          steps:
            - local:
                assign:
                  - inner: 1
    - after:
        return: ${inner}
`, nil, nil, Options{})
	var ee *ExecutionError
	if !errors.As(err, &ee) || !hasTag(ee.Payload, "KeyError") {
		t.Errorf("a loop variable outlived its loop: %v", err)
	}
}

// Expressions: Workflows operators and functions through expr-lang/expr.
func TestExpressions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want any
	}{
		{`1 + 2 * 3`, 7},
		{`7 / 2`, 3.5},
		{`7 % 3`, 1},
		{`7.5 % 2`, 1.5},
		{`6 / 3`, 2.0},
		{`"a" + "b"`, "ab"},
		{`"k" in m`, true},
		{`"zz" in m`, false},
		{`2 in [1, 2]`, true},
		{`not (1 > 2) and (false or true)`, true},
		{`null == nil_var`, true},
		{`m.k`, "v"},
		{`m["k"]`, "v"},
		{`list[1]`, 20},
		{`map.get(m, "missing")`, nil},
		{`map.get(m, ["nested", "x"])`, 1},
		{`default(map.get(m, "missing"), "dflt")`, "dflt"},
		{`default(m.k, "dflt")`, "v"},
		{`len("héllo")`, 5},
		{`len(list)`, 2},
		{`len(m)`, 2},
		{`keys(m)`, []any{"k", "nested"}},
		{`string(12) + string(1.5) + string(true)`, "121.5true"},
		{`int("42") + int(2.9)`, 44},
		{`double("1.5") + double(1)`, 2.5},
		{`bool("TRUE") and bool(1)`, true},
		{`text.decode(base64.decode(base64.encode(json.encode(m))))`, `{"k":"v","nested":{"x":1}}`},
		{`json.encode_to_string([1, "a", null])`, `[1,"a",null]`},
		{`json.decode("{\"a\":[1,2.5]}")`, map[string]any{"a": []any{1, 2.5}}},
		{`json.decode(text.encode("7"))`, 7},
		{`text.replace_all("a-b-c", "-", "+")`, "a+b+c"},
		{`text.split("a,b", ",")`, []any{"a", "b"}},
		{`sys.get_env("MY_VAR")`, "my-value"},
		{`sys.get_env("GOOGLE_CLOUD_PROJECT_ID")`, "test-project"},
		{`sys.get_env("GOOGLE_CLOUD_LOCATION")`, "us-central1"},
		{`sys.get_env("GOOGLE_CLOUD_WORKFLOW_ID")`, "test-wf"},
		{`sys.get_env("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID")`, "exec-1"},
		{`sys.get_env("NOPE", "fallback")`, "fallback"},
		{`sys.get_env("NOPE")`, nil},
		{`time.format(0)`, "1970-01-01T00:00:00.000000Z"},
		{`sys.now() > 1700000000`, true},
		{`http.default_retry_predicate({"code": 503, "tags": ["HttpError"]})`, true},
		{`http.default_retry({"code": 404, "tags": ["HttpError"]})`, false},
		{`{"a": 1}.a`, 1},
	} {
		res, err, _ := runWorkflow(t, `
main:
  steps:
    - init:
        assign:
          - m: {k: v, nested: {x: 1}}
          - list: [10, 20]
          - nil_var: null
    - eval:
        return: '${`+strings.ReplaceAll(tc.expr, "'", "''")+`}'
`, nil, map[string]string{"MY_VAR": "my-value"}, Options{})
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !reflect.DeepEqual(res, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.expr, res, tc.want)
		}
	}
}

// Expression errors raise the Workflows exceptions: a missing key is a
// KeyError (not null), a bad index an IndexError, mixing types a
// TypeError, bytes where a string is needed a TypeError.
func TestExpressionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ expr, tag string }{
		{`m.missing`, "KeyError"},
		{`m["missing"]`, "KeyError"},
		{`list[2]`, "IndexError"},
		{`m.k + 1`, "TypeError"},
		{`undefined_var`, "KeyError"},
		{`base64.encode("not bytes")`, "TypeError"},
		{`int("x")`, "ValueError"},
		{`json.decode("{")`, "ValueError"},
		{`7 % 0`, "ZeroDivisionError"},
		{`7 / 0`, "ZeroDivisionError"},
		{`"a" / 2`, "TypeError"},
		{`m.k.deeper`, "TypeError"},
	} {
		_, err, _ := runWorkflow(t, `
main:
  steps:
    - init:
        assign:
          - m: {k: v}
          - list: [1, 2]
    - eval:
        return: ${`+tc.expr+`}
`, nil, nil, Options{})
		var ee *ExecutionError
		if !errors.As(err, &ee) || !hasTag(ee.Payload, tc.tag) {
			t.Errorf("%s: want %s, got %v", tc.expr, tc.tag, err)
		}
	}
}

// Parallel branches run concurrently and write variables listed in
// shared; each assign step is atomic, so concurrent increments all count.
func TestParallelBranchesShareVariables(t *testing.T) {
	t.Parallel()
	res, rec := succeed(t, `
main:
  steps:
    - init:
        assign:
          - a: null
          - b: null
          - counter: 0
    - both:
        parallel:
          shared: [a, b, counter]
          branches:
            - left:
                steps:
                  - wait:
                      call: sys.sleep
                      args:
                        seconds: 5
                  - setA:
                      assign:
                        - a: left
                        - counter: ${counter + 1}
            - right:
                steps:
                  - setB:
                      assign:
                        - b: right
                        - local: only-here
                        - counter: ${counter + 1}
    - iterations:
        parallel:
          shared: [counter]
          concurrency_limit: 2
          for:
            value: n
            range: [1, 10]
            steps:
              - add:
                  assign:
                    - counter: ${counter + n}
    - done:
        return: {a: '${a}', b: '${b}', counter: '${counter}'}
`, nil, Options{})
	assertJSON(t, res, `{"a":"left","b":"right","counter":57}`)
	branches := map[string]bool{}
	for _, e := range rec.all() {
		branches[e.Branch] = true
	}
	for _, want := range []string{"both/left", "both/right", "iterations/0", "iterations/9"} {
		if !branches[want] {
			t.Errorf("no step events from branch %q: %v", want, branches)
		}
	}
}

// A failing branch does not stop the others (continueAll); once all have
// ended the parallel step raises UnhandledBranchError carrying the
// branch's exception, which an except around it catches.
func TestParallelFailingBranch(t *testing.T) {
	t.Parallel()
	res, rec := succeed(t, `
main:
  steps:
    - init:
        assign:
          - done: false
    - guarded:
        try:
          steps:
            - work:
                parallel:
                  shared: [done]
                  branches:
                    - failing:
                        steps:
                          - boom:
                              raise: {code: 500, message: branch broke}
                    - slow:
                        steps:
                          - wait:
                              call: sys.sleep
                              args:
                                seconds: 20
                          - finish:
                              assign:
                                - done: true
        except:
          as: e
          steps:
            - report:
                return:
                  tags: ${e.tags}
                  branch: ${e.branches[0].id}
                  payload: ${json.decode(e.branches[0].error.payload)}
                  slowFinished: ${done}
`, nil, Options{})
	assertJSON(t, res, `{"tags":["UnhandledBranchError"],"branch":"failing","payload":{"code":500,"message":"branch broke"},"slowFinished":true}`)
	if !slices.Contains(rec.steps(StepFinished), "finish") {
		t.Error("the slow branch did not finish")
	}

	// Uncaught, the run fails with it.
	_, err, _ := runWorkflow(t, `
main:
  steps:
    - work:
        parallel:
          branches:
            - a:
                steps:
                  - boom:
                      raise: broken
            - b:
                steps:
                  - ok:
                      assign:
                        - x: 1
`, nil, nil, Options{})
	var ee *ExecutionError
	if !errors.As(err, &ee) || !hasTag(ee.Payload, "UnhandledBranchError") || ee.Stack[0].Step != "work" {
		t.Fatalf("got %v", err)
	}
}

// A branch may not write a variable of the enclosing scope that it does
// not list in shared: the runner refuses it, naming the step.
func TestParallelUnsharedWriteRefused(t *testing.T) {
	t.Parallel()
	_, err, _ := runWorkflow(t, `
main:
  steps:
    - init:
        assign:
          - x: 0
    - par:
        parallel:
          branches:
            - a:
                steps:
                  - write:
                      assign:
                        - x: 1
            - b:
                steps:
                  - noop:
                      assign:
                        - y: 1
`, nil, nil, Options{})
	var rf *RefusalError
	if !errors.As(err, &rf) || rf.Step != "write" || !strings.Contains(rf.Error(), `"x"`) {
		t.Fatalf("want a refusal of step write, got %v", err)
	}
}
