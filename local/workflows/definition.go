package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The parsed form of a workflow file. Step fields hold the step's one
// action (assign, call, switch, raise, return, steps, try, parallel, for)
// and its next; parse.go builds them and refuses everything else.

// Definition is a workflow file, parsed and checked against the subset
// of the Workflows language the runner supports. It is immutable and may be
// run any number of times, concurrently.
type Definition struct {
	// File names the file in refusals and stack traces (its base name).
	File string
	subs map[string]*subworkflow
}

// Subworkflows lists the file's subworkflows (main among them).
func (d *Definition) Subworkflows() []string {
	out := make([]string, 0, len(d.subs))
	for name := range d.subs {
		out = append(out, name)
	}
	return out
}

type subworkflow struct {
	name   string
	line   int
	params []param
	steps  []*step
}

type param struct {
	name       string
	def        *tmpl
	hasDefault bool
}

type step struct {
	name    string
	line    int
	routine string

	assign   []*assignment
	call     *callSpec
	cases    []*switchCase
	raise    *tmpl
	ret      *tmpl // return: a template, or nil
	hasRet   bool
	steps    []*step
	try      *tryBlock
	parallel *parallelSpec
	loop     *forSpec
	next     string
}

type assignment struct {
	root string
	path []pathSeg
	val  *tmpl
	text string
}

// pathSeg is one .key or [expression] of an assignment target.
type pathSeg struct {
	key any // a string or an int, when written literally
	exp *expression
}

type callSpec struct {
	name   string
	args   *tmpl
	result string
	sub    string // the subworkflow called, if it is one
}

type switchCase struct {
	line   int
	cond   *tmpl
	next   string
	steps  []*step
	assign []*assignment
	raise  *tmpl
	ret    *tmpl
	hasRet bool
}

type tryBlock struct {
	body []*step
	// single: the body is the try step itself (try: {call: ...}), run
	// without a step of its own.
	single bool
	retry  *retrySpec
	except *exceptSpec
}

type retrySpec struct {
	predicate  predicate
	maxRetries *tmpl
	initial    *tmpl
	maxDelay   *tmpl
	multiplier *tmpl
}

// predicate decides whether an exception is retried: a built-in function
// or a subworkflow taking the exception.
type predicate struct {
	name    string
	builtin func(any) bool
	sub     string
}

type exceptSpec struct {
	as    string
	steps []*step
}

type parallelSpec struct {
	shared   []string
	limit    *tmpl
	branches []*branch
	loop     *forSpec
}

type branch struct {
	name  string
	line  int
	steps []*step
}

type forSpec struct {
	value, index string
	in           *tmpl
	rng          *tmpl
	steps        []*step
}

// RefusalError says that a workflow uses something the local runner does
// not support (or that is not valid Workflows syntax), naming the file and
// the step. Load returns it for what can be seen in the file; a run fails
// with it for what only shows at run time.
type RefusalError struct {
	File   string
	Step   string // empty when the problem is not inside a step
	Line   int
	Reason string
}

func (e *RefusalError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Step != "" {
		fmt.Fprintf(&b, ": step %q", e.Step)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

const notSupported = "is not supported by the local Workflows runner"

// Load reads and checks a workflow file.
func Load(path string) (*Definition, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("workflows: %w", err)
	}
	return Parse(filepath.Base(path), src)
}

// Parse checks a workflow definition; file names it in errors.
func Parse(file string, src []byte) (*Definition, error) {
	root, err := parseYAML(src)
	if err != nil {
		return nil, &RefusalError{File: file, Reason: err.Error()}
	}
	l := &loader{file: file, subs: map[string]*node{}}
	d := &Definition{File: file, subs: map[string]*subworkflow{}}
	switch root.kind {
	case listNode:
		// A file that is just a list of steps is the main workflow.
		l.subs["main"] = &node{kind: mapNode, line: root.line, keys: []string{"steps"}, vals: []*node{root}}
	case mapNode:
		for i, k := range root.keys {
			l.subs[k] = root.vals[i]
		}
	default:
		return nil, l.refuse("", root, "a workflow file is a map of subworkflows or a list of steps, not %s", root.describe())
	}
	if _, ok := l.subs["main"]; !ok {
		return nil, l.refuse("", root, "no main workflow")
	}
	for name, n := range l.subs {
		sub, err := l.subworkflow(name, n)
		if err != nil {
			return nil, err
		}
		d.subs[name] = sub
	}
	if n := len(d.subs["main"].params); n > 1 {
		return nil, l.refuse("", l.subs["main"], "main takes at most one parameter (the execution argument), it declares %d", n)
	}
	for _, sub := range d.subs {
		if err := l.checkNext(sub); err != nil {
			return nil, err
		}
	}
	return d, nil
}

type loader struct {
	file    string
	subs    map[string]*node
	routine string
}

func (l *loader) refuse(step string, n *node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.line
	}
	return &RefusalError{File: l.file, Step: step, Line: line, Reason: fmt.Sprintf(format, args...)}
}
