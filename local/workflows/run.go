package workflows

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// run is one execution in progress.
type run struct {
	r      *Runner
	def    *Definition
	params RunParams
	lib    map[string]any

	// mu guards the variables of every scope of the run: parallel branches
	// read outer variables while others write shared ones.
	mu sync.RWMutex
	// assignMu makes each assign step in a parallel branch atomic, so that
	// total: ${total + 1} in two branches adds two.
	assignMu sync.Mutex
}

// scope holds variables. A subworkflow call has one; a for loop iteration
// and a parallel branch add one whose new variables vanish with it.
type scope struct {
	x      *run
	vars   map[string]any
	parent *scope
	// branch marks a parallel branch or iteration: outer variables may only
	// be written when listed in shared.
	branch bool
	shared map[string]bool
}

func (s *scope) lookupVar(name string) (any, error) {
	s.x.mu.RLock()
	defer s.x.mu.RUnlock()
	for c := s; c != nil; c = c.parent {
		if v, ok := c.vars[name]; ok {
			return v, nil
		}
	}
	return nil, raise(errorMap("KeyError", "variable %q is not defined", name))
}

// owner finds the scope holding name, checking that a branch may write it.
func (s *scope) owner(name string) (*scope, error) {
	for c := s; c != nil; c = c.parent {
		if _, ok := c.vars[name]; ok {
			return c, nil
		}
		if c.branch && !c.shared[name] && c.parent != nil && c.parent.defines(name) {
			return nil, fmt.Errorf("assigns %q, a variable from outside the parallel step that is not listed in shared", name)
		}
	}
	return nil, nil
}

func (s *scope) defines(name string) bool {
	for c := s; c != nil; c = c.parent {
		if _, ok := c.vars[name]; ok {
			return true
		}
	}
	return false
}

// set assigns value to name[path...].
func (s *scope) set(name string, path []any, value any) error {
	s.x.mu.Lock()
	defer s.x.mu.Unlock()
	o, err := s.owner(name)
	if err != nil {
		return err
	}
	if o == nil {
		if len(path) > 0 {
			return raise(errorMap("KeyError", "variable %q is not defined", name))
		}
		s.vars[name] = value
		return nil
	}
	nv, err := setPath(o.vars[name], path, value)
	if err != nil {
		return err
	}
	o.vars[name] = nv
	return nil
}

func (s *scope) evalExpr(e *expression) (any, error) { return e.eval(s.x.lib, s) }

// frame is one subworkflow invocation (or one parallel branch of it).
type frame struct {
	x      *run
	sub    *subworkflow
	depth  int    // call depth, for RecursionError
	branch string // parallel branch path, for StepEvents
	par    int    // parallel nesting depth
}

func (f *frame) newScope() *scope { return &scope{x: f.x, vars: map[string]any{}} }

func (f *frame) observe(st *step, state StepState, e StepEvent) {
	e.Execution, e.Routine, e.Step, e.Branch, e.State, e.Time = f.x.params.Execution, f.sub.name, st.name, f.branch, state, time.Now()
	if obs := f.x.r.opts.Observer; obs != nil {
		obs(e)
	}
	if obs := f.x.params.Observer; obs != nil {
		obs(e)
	}
}

func (f *frame) refuse(st *step, format string, args ...any) error {
	return &RefusalError{File: f.x.def.File, Step: st.name, Line: st.line, Reason: fmt.Sprintf(format, args...)}
}

type flowKind int

const (
	flowNext flowKind = iota
	flowJump
	flowBreak
	flowContinue
	flowReturn
	flowEnd
)

// flow is how a step or a list of steps ended.
type flow struct {
	kind   flowKind
	target string // flowJump
	value  any    // flowReturn
}

func nextFlow(target string) flow {
	switch target {
	case "":
		return flow{kind: flowNext}
	case "end":
		return flow{kind: flowEnd}
	case "break":
		return flow{kind: flowBreak}
	case "continue":
		return flow{kind: flowContinue}
	}
	return flow{kind: flowJump, target: target}
}

// runSteps runs a list of steps. A jump to a step not in the list is
// returned for an enclosing list to resolve (the loader checked it exists).
func (f *frame) runSteps(ctx context.Context, steps []*step, sc *scope) (flow, error) {
	i := 0
	for i < len(steps) {
		if err := ctx.Err(); err != nil {
			return flow{}, err
		}
		fl, err := f.runStep(ctx, steps[i], sc)
		if err != nil {
			return flow{}, err
		}
		switch fl.kind {
		case flowNext:
			i++
		case flowJump:
			j := indexOf(steps, fl.target)
			if j < 0 {
				return fl, nil
			}
			i = j
		default:
			return fl, nil
		}
	}
	return flow{kind: flowNext}, nil
}

func indexOf(steps []*step, name string) int {
	for i, s := range steps {
		if s.name == name {
			return i
		}
	}
	return -1
}

func (f *frame) runStep(ctx context.Context, st *step, sc *scope) (flow, error) {
	f.observe(st, StepStarted, StepEvent{})
	fl, err := f.stepBody(ctx, st, sc)
	if err != nil {
		if rz, ok := asRaised(err); ok {
			// The first step of a routine the exception leaves is its frame
			// in the stack trace: the raising step, then each call step.
			if rz.frame != f {
				rz.trace = append(rz.trace, StackElement{Step: st.name, Routine: f.sub.name, Line: st.line})
				rz.frame = f
			}
			f.observe(st, StepFailed, StepEvent{Error: rz.value})
		}
		return flow{}, err
	}
	f.observe(st, StepFinished, StepEvent{})
	return fl, nil
}

func (f *frame) stepBody(ctx context.Context, st *step, sc *scope) (flow, error) {
	var fl flow
	var err error
	switch {
	case st.assign != nil:
		err = f.assign(st, st.assign, sc)
	case st.call != nil:
		err = f.callStep(ctx, st, sc)
	case st.cases != nil:
		return f.switchStep(ctx, st, sc)
	case st.raise != nil:
		v, err := st.raise.eval(sc)
		if err != nil {
			return flow{}, err
		}
		return flow{}, raise(v)
	case st.hasRet:
		v, err := st.ret.eval(sc)
		if err != nil {
			return flow{}, err
		}
		return flow{kind: flowReturn, value: v}, nil
	case st.steps != nil:
		fl, err = f.runSteps(ctx, st.steps, sc)
	case st.try != nil:
		fl, err = f.tryStep(ctx, st, sc)
	case st.parallel != nil:
		err = f.parallelStep(ctx, st, sc)
	case st.loop != nil:
		fl, err = f.forStep(ctx, st, sc)
	}
	if err != nil {
		return flow{}, err
	}
	if fl.kind == flowNext {
		return nextFlow(st.next), nil
	}
	return fl, nil
}

func (f *frame) assign(st *step, as []*assignment, sc *scope) error {
	if f.par > 0 {
		f.x.assignMu.Lock()
		defer f.x.assignMu.Unlock()
	}
	for _, a := range as {
		v, err := a.val.eval(sc)
		if err != nil {
			return err
		}
		path := make([]any, len(a.path))
		for i, seg := range a.path {
			if seg.exp == nil {
				path[i] = seg.key
				continue
			}
			k, err := sc.evalExpr(seg.exp)
			if err != nil {
				return err
			}
			path[i] = k
		}
		if err := sc.set(a.root, path, v); err != nil {
			if _, ok := asRaised(err); ok {
				return err
			}
			return f.refuse(st, "%v", err)
		}
	}
	return nil
}

func (f *frame) switchStep(ctx context.Context, st *step, sc *scope) (flow, error) {
	for _, c := range st.cases {
		v, err := c.cond.eval(sc)
		if err != nil {
			return flow{}, err
		}
		ok, err := truthy(v, "a switch condition")
		if err != nil {
			return flow{}, err
		}
		if !ok {
			continue
		}
		switch {
		case c.raise != nil:
			v, err := c.raise.eval(sc)
			if err != nil {
				return flow{}, err
			}
			return flow{}, raise(v)
		case c.hasRet:
			v, err := c.ret.eval(sc)
			if err != nil {
				return flow{}, err
			}
			return flow{kind: flowReturn, value: v}, nil
		case c.assign != nil:
			if err := f.assign(st, c.assign, sc); err != nil {
				return flow{}, err
			}
		case c.steps != nil:
			fl, err := f.runSteps(ctx, c.steps, sc)
			if err != nil || fl.kind != flowNext {
				return fl, err
			}
		}
		if c.next != "" {
			return nextFlow(c.next), nil
		}
		return nextFlow(st.next), nil
	}
	return nextFlow(st.next), nil
}

func (f *frame) forStep(ctx context.Context, st *step, sc *scope) (flow, error) {
	items, err := loopItems(st.loop, sc)
	if err != nil {
		return flow{}, err
	}
	for i, item := range items {
		it := &scope{x: f.x, vars: map[string]any{st.loop.value: item}, parent: sc}
		if st.loop.index != "" {
			it.vars[st.loop.index] = i
		}
		fl, err := f.runSteps(ctx, st.loop.steps, it)
		if err != nil {
			return flow{}, err
		}
		switch fl.kind {
		case flowBreak:
			return flow{kind: flowNext}, nil
		case flowReturn, flowEnd:
			return fl, nil
		}
	}
	return flow{kind: flowNext}, nil
}

// loopItems evaluates a for loop's in (a list) or range ([first, last],
// both included, integers or doubles).
func loopItems(l *forSpec, sc *scope) ([]any, error) {
	if l.in != nil {
		v, err := l.in.eval(sc)
		if err != nil {
			return nil, err
		}
		list, ok := v.([]any)
		if !ok {
			return nil, typeError("for in must be a list, got %s", typeName(v))
		}
		return list, nil
	}
	v, err := l.rng.eval(sc)
	if err != nil {
		return nil, err
	}
	r, ok := v.([]any)
	if !ok || len(r) != 2 {
		return nil, typeError("for range must be a list of two numbers")
	}
	lo, hi := r[0], r[1]
	li, lok := lo.(int)
	hiI, hok := hi.(int)
	var out []any
	if lok && hok {
		for i := li; i <= hiI; i++ {
			out = append(out, i)
		}
		return out, nil
	}
	lf, ok1 := number(lo)
	hf, ok2 := number(hi)
	if !ok1 || !ok2 {
		return nil, typeError("for range must be a list of two numbers")
	}
	for x := lf; x <= hf; x++ {
		out = append(out, x)
	}
	return out, nil
}

// sleep waits d scaled by the runner's TimeScale.
func (f *frame) sleep(ctx context.Context, d time.Duration) error {
	d = time.Duration(float64(d) * f.x.r.opts.TimeScale)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
