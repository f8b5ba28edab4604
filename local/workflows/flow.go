package workflows

import (
	"context"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// tryStep runs a try block: its retry policy first, then except.
func (f *frame) tryStep(ctx context.Context, st *step, sc *scope) (flow, error) {
	t := st.try
	body := func() (flow, error) {
		if t.single {
			return f.stepBody(ctx, t.body[0], sc)
		}
		return f.runSteps(ctx, t.body, sc)
	}
	for attempt := 1; ; attempt++ {
		fl, err := body()
		if err == nil {
			return fl, nil
		}
		rz, ok := asRaised(err)
		if !ok {
			return flow{}, err
		}
		if t.retry != nil {
			again, delay, err := f.shouldRetry(ctx, st, sc, t.retry, rz.value, attempt)
			if err != nil {
				return flow{}, err
			}
			if again {
				scaled := time.Duration(float64(delay) * f.x.r.opts.TimeScale)
				f.observe(st, StepRetrying, StepEvent{Error: rz.value, Attempt: attempt, Delay: scaled})
				if err := f.sleep(ctx, delay); err != nil {
					return flow{}, err
				}
				continue
			}
		}
		if t.except == nil {
			return flow{}, rz
		}
		if t.except.as != "" {
			// The exception variable belongs to the current scope, shadowing
			// any outer one, so that a branch needs no shared entry for it.
			f.x.mu.Lock()
			sc.vars[t.except.as] = rz.value
			f.x.mu.Unlock()
		}
		return f.runSteps(ctx, t.except.steps, sc)
	}
}

// shouldRetry applies a retry policy after the attempt-th failure: the
// n-th retry waits initial_delay * multiplier^(n-1), at most max_delay.
func (f *frame) shouldRetry(ctx context.Context, st *step, sc *scope, r *retrySpec, exc any, attempt int) (bool, time.Duration, error) {
	maxRetries, err := evalNumber(r.maxRetries, sc, "max_retries")
	if err != nil {
		return false, 0, err
	}
	if float64(attempt) > maxRetries {
		return false, 0, nil
	}
	var retry bool
	if r.predicate.builtin != nil {
		retry = r.predicate.builtin(exc)
	} else {
		sub := f.x.def.subs[r.predicate.sub]
		v, err := f.callSub(ctx, st, r.predicate.sub, map[string]any{sub.params[0].name: exc})
		if err != nil {
			return false, 0, err
		}
		if retry, err = truthy(v, "the retry predicate "+r.predicate.sub+"'s result"); err != nil {
			return false, 0, err
		}
	}
	if !retry {
		return false, 0, nil
	}
	initial, err := evalNumber(r.initial, sc, "initial_delay")
	if err != nil {
		return false, 0, err
	}
	maxDelay, err := evalNumber(r.maxDelay, sc, "max_delay")
	if err != nil {
		return false, 0, err
	}
	mult, err := evalNumber(r.multiplier, sc, "multiplier")
	if err != nil {
		return false, 0, err
	}
	secs := math.Min(initial*math.Pow(mult, float64(attempt-1)), maxDelay)
	return true, time.Duration(secs * float64(time.Second)), nil
}

// evalNumber evaluates a retry setting.
func evalNumber(t *tmpl, sc *scope, what string) (float64, error) {
	v, err := t.eval(sc)
	if err != nil {
		return 0, err
	}
	n, ok := number(v)
	if !ok || n < 0 {
		return 0, typeError("retry %s must be a non-negative number, got %s", what, typeName(v))
	}
	return n, nil
}

type branchJob struct {
	id    string
	steps []*step
	vars  map[string]any
}

type branchFailure struct {
	index int
	id    string
	exc   *raised
}

// parallelStep runs branches or iterations concurrently. Exceptions follow
// the continueAll policy, the only one Workflows has: the other branches
// go on, and once all have ended the step raises an UnhandledBranchError
// listing each failed branch's exception.
func (f *frame) parallelStep(ctx context.Context, st *step, sc *scope) error {
	p := st.parallel
	if f.par >= 2 {
		return raise(errorMap("ParallelNestingError", "parallel steps nest at most two deep"))
	}
	shared := map[string]bool{}
	for _, name := range p.shared {
		if !sc.defines(name) {
			return f.refuse(st, "shared variable %q must be assigned before the parallel step", name)
		}
		shared[name] = true
	}
	var jobs []branchJob
	if p.branches != nil {
		for _, b := range p.branches {
			jobs = append(jobs, branchJob{id: b.name, steps: b.steps, vars: map[string]any{}})
		}
	} else {
		items, err := loopItems(p.loop, sc)
		if err != nil {
			return err
		}
		for i, it := range items {
			vars := map[string]any{p.loop.value: it}
			if p.loop.index != "" {
				vars[p.loop.index] = i
			}
			jobs = append(jobs, branchJob{id: strconv.Itoa(i), steps: p.loop.steps, vars: vars})
		}
	}
	limit := len(jobs)
	if p.limit != nil {
		v, err := p.limit.eval(sc)
		if err != nil {
			return err
		}
		n, ok := v.(int)
		if !ok || n < 1 {
			return typeError("concurrency_limit must be a positive integer, got %s", typeName(v))
		}
		limit = min(limit, n)
	}
	if limit == 0 {
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, limit)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []branchFailure
		fatal    error
	)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			bs := &scope{x: f.x, vars: j.vars, parent: sc, branch: true, shared: shared}
			path := st.name + "/" + j.id
			if f.branch != "" {
				path = f.branch + "/" + path
			}
			bf := &frame{x: f.x, sub: f.sub, depth: f.depth, branch: path, par: f.par + 1}
			// A branch ends at its last step, at return, end, break or
			// continue; only an exception is reported.
			_, err := bf.runSteps(ctx, j.steps, bs)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if rz, ok := asRaised(err); ok {
				failures = append(failures, branchFailure{index: i, id: j.id, exc: rz})
				return
			}
			if fatal == nil {
				fatal = err
				cancel()
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	if len(failures) == 0 {
		return nil
	}
	sort.Slice(failures, func(a, b int) bool { return failures[a].index < failures[b].index })
	var list []any
	for _, fl := range failures {
		ee := &ExecutionError{Payload: fl.exc.value, Stack: fl.exc.trace}
		list = append(list, map[string]any{
			"id":    fl.id,
			"error": map[string]any{"payload": ee.PayloadJSON(), "context": ee.Context()},
		})
	}
	return raise(map[string]any{
		"message":   "UnhandledBranchError: One or more branches or iterations encountered an unhandled runtime error",
		"tags":      []any{"UnhandledBranchError"},
		"branches":  list,
		"truncated": false,
	})
}
