package workflows

import (
	"fmt"
	"strings"
)

// Parsing of the compound steps (try, parallel, for) and the check of
// next targets.

func (l *loader) tryBlock(step string, n *node) (*tryBlock, error) {
	tn, _ := n.get("try")
	t := &tryBlock{}
	if tn.kind != mapNode {
		return nil, l.refuse(step, tn, "try must be a map: steps, or the body of one step")
	}
	if body, ok := tn.get("steps"); ok && len(tn.keys) == 1 {
		steps, err := l.steps(body)
		if err != nil {
			return nil, err
		}
		t.body = steps
	} else {
		// try: {call: ...} is one step with the try step's own name.
		st, err := l.step(step, tn.line, tn)
		if err != nil {
			return nil, err
		}
		t.body, t.single = append(t.body, st), true
	}
	if rn, ok := n.get("retry"); ok {
		r, err := l.retry(step, rn)
		if err != nil {
			return nil, err
		}
		t.retry = r
	}
	if en, ok := n.get("except"); ok {
		e, err := l.except(step, en)
		if err != nil {
			return nil, err
		}
		t.except = e
	}
	if t.retry == nil && t.except == nil {
		return nil, l.refuse(step, n, "try needs retry or except")
	}
	return t, nil
}

// exprText returns the text inside ${...}, or false.
func exprText(n *node) (string, bool) {
	s, ok := n.scalar.(string)
	if n.kind != scalarNode || !ok || !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") {
		return "", false
	}
	return strings.TrimSpace(s[2 : len(s)-1]), true
}

func (l *loader) retry(step string, n *node) (*retrySpec, error) {
	if text, ok := exprText(n); ok {
		r := &retrySpec{
			maxRetries: &tmpl{lit: 5},
			initial:    &tmpl{lit: 1},
			maxDelay:   &tmpl{lit: 60},
			multiplier: &tmpl{lit: 1.25},
		}
		switch text {
		case "http.default_retry":
			r.predicate = predicate{name: text, builtin: defaultRetryPredicate}
		case "http.default_retry_non_idempotent":
			r.predicate = predicate{name: text, builtin: nonIdempotentRetryPredicate}
		default:
			return nil, l.refuse(step, n, "retry policy %q %s (use http.default_retry, http.default_retry_non_idempotent or a map with predicate, max_retries and backoff)", text, notSupported)
		}
		return r, nil
	}
	if n.kind != mapNode {
		return nil, l.refuse(step, n, "retry must be a default policy or a map")
	}
	r := &retrySpec{}
	for i, k := range n.keys {
		v := n.vals[i]
		var err error
		switch k {
		case "predicate":
			r.predicate, err = l.predicate(step, v)
		case "max_retries":
			r.maxRetries, err = l.tmpl(step, v)
		case "backoff":
			if v.kind != mapNode {
				return nil, l.refuse(step, v, "backoff must be a map")
			}
			for j, bk := range v.keys {
				bv := v.vals[j]
				switch bk {
				case "initial_delay":
					r.initial, err = l.tmpl(step, bv)
				case "max_delay":
					r.maxDelay, err = l.tmpl(step, bv)
				case "multiplier":
					r.multiplier, err = l.tmpl(step, bv)
				default:
					return nil, l.refuse(step, bv, "backoff field %q %s", bk, notSupported)
				}
				if err != nil {
					return nil, err
				}
			}
		default:
			return nil, l.refuse(step, v, "retry field %q %s", k, notSupported)
		}
		if err != nil {
			return nil, err
		}
	}
	if r.predicate.name == "" || r.maxRetries == nil || r.initial == nil || r.maxDelay == nil || r.multiplier == nil {
		return nil, l.refuse(step, n, "a custom retry policy needs predicate, max_retries and backoff (initial_delay, max_delay, multiplier)")
	}
	return r, nil
}

func (l *loader) predicate(step string, n *node) (predicate, error) {
	text, ok := exprText(n)
	if !ok {
		return predicate{}, l.refuse(step, n, "predicate must be an expression naming a predicate, like ${http.default_retry_predicate}")
	}
	switch text {
	case "http.default_retry_predicate", "http.default_retry":
		return predicate{name: text, builtin: defaultRetryPredicate}, nil
	case "http.default_retry_predicate_non_idempotent", "http.default_retry_non_idempotent":
		return predicate{name: text, builtin: nonIdempotentRetryPredicate}, nil
	}
	sub, isSub := l.subs[text]
	if !isSub {
		return predicate{}, l.refuse(step, n, "retry predicate %q %s", text, notSupported)
	}
	params, _ := sub.get("params")
	if params == nil || len(params.items) != 1 {
		return predicate{}, l.refuse(step, n, "retry predicate subworkflow %q must take exactly one parameter", text)
	}
	return predicate{name: text, sub: text}, nil
}

func (l *loader) except(step string, n *node) (*exceptSpec, error) {
	if n.kind != mapNode {
		return nil, l.refuse(step, n, "except must be a map with as and steps")
	}
	e := &exceptSpec{}
	for i, k := range n.keys {
		v := n.vals[i]
		switch k {
		case "as":
			s, _ := v.scalar.(string)
			if !identRE.MatchString(s) {
				return nil, l.refuse(step, v, "except as must be a variable name")
			}
			e.as = s
		case "steps":
			steps, err := l.steps(v)
			if err != nil {
				return nil, err
			}
			e.steps = steps
		default:
			return nil, l.refuse(step, v, "except field %q %s", k, notSupported)
		}
	}
	if e.steps == nil {
		return nil, l.refuse(step, n, "except needs steps")
	}
	return e, nil
}

func (l *loader) parallel(step string, n *node) (*parallelSpec, error) {
	if n.kind != mapNode {
		return nil, l.refuse(step, n, "parallel must be a map")
	}
	p := &parallelSpec{}
	for i, k := range n.keys {
		v := n.vals[i]
		var err error
		switch k {
		case "shared":
			if v.kind != listNode {
				return nil, l.refuse(step, v, "shared must be a list of variable names")
			}
			for _, it := range v.items {
				s, _ := it.scalar.(string)
				if !identRE.MatchString(s) {
					return nil, l.refuse(step, it, "shared must be a list of variable names")
				}
				p.shared = append(p.shared, s)
			}
		case "concurrency_limit":
			p.limit, err = l.tmpl(step, v)
		case "exception_policy":
			if s, _ := v.scalar.(string); s != "continueAll" {
				return nil, l.refuse(step, v, "exception_policy %s %s (continueAll is the only policy)", v.describe(), notSupported)
			}
		case "branches":
			if v.kind != listNode || len(v.items) < 2 {
				return nil, l.refuse(step, v, "branches must list at least two named branches")
			}
			for _, it := range v.items {
				if it.kind != mapNode || len(it.keys) != 1 {
					return nil, l.refuse(step, it, "each branch is a map with one key, its name")
				}
				body := it.vals[0]
				steps, ok := body.get("steps")
				if body.kind != mapNode || !ok || len(body.keys) != 1 {
					return nil, l.refuse(it.keys[0], body, "a branch has steps and nothing else")
				}
				list, err := l.steps(steps)
				if err != nil {
					return nil, err
				}
				p.branches = append(p.branches, &branch{name: it.keys[0], line: it.line, steps: list})
			}
		case "for":
			p.loop, err = l.forLoop(step, v)
		default:
			return nil, l.refuse(step, v, "parallel field %q %s", k, notSupported)
		}
		if err != nil {
			return nil, err
		}
	}
	if (p.branches == nil) == (p.loop == nil) {
		return nil, l.refuse(step, n, "parallel needs either branches or for")
	}
	return p, nil
}

func (l *loader) forLoop(step string, n *node) (*forSpec, error) {
	if n.kind != mapNode {
		return nil, l.refuse(step, n, "for must be a map")
	}
	f := &forSpec{}
	for i, k := range n.keys {
		v := n.vals[i]
		var err error
		switch k {
		case "value", "index":
			s, _ := v.scalar.(string)
			if !identRE.MatchString(s) {
				return nil, l.refuse(step, v, "for %s must be a variable name", k)
			}
			if k == "value" {
				f.value = s
			} else {
				f.index = s
			}
		case "in":
			f.in, err = l.tmpl(step, v)
		case "range":
			f.rng, err = l.tmpl(step, v)
		case "steps":
			f.steps, err = l.steps(v)
		default:
			return nil, l.refuse(step, v, "for field %q %s", k, notSupported)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case (f.in == nil) == (f.rng == nil):
		return nil, l.refuse(step, n, "for needs either in or range")
	case f.value == "":
		return nil, l.refuse(step, n, "for needs value")
	case f.rng != nil && f.index != "":
		return nil, l.refuse(step, n, "for with range has no index")
	case f.steps == nil:
		return nil, l.refuse(step, n, "for needs steps")
	}
	return f, nil
}

// checkNext verifies that every next names a step the run can reach: one
// in the same list of steps or an enclosing one, not across a subworkflow,
// a loop body or a parallel branch; break and continue only inside a loop.
func (l *loader) checkNext(sub *subworkflow) error {
	l.routine = sub.name
	return l.checkSteps(sub.steps, nil, false)
}

func (l *loader) checkSteps(steps []*step, outer [][]*step, inLoop bool) error {
	visible := append(append([][]*step(nil), outer...), steps)
	for _, st := range steps {
		if err := l.checkTarget(st, st.next, visible, inLoop); err != nil {
			return err
		}
		for _, c := range st.cases {
			if err := l.checkTarget(st, c.next, visible, inLoop); err != nil {
				return err
			}
			if c.steps != nil {
				if err := l.checkSteps(c.steps, visible, inLoop); err != nil {
					return err
				}
			}
		}
		if st.steps != nil {
			if err := l.checkSteps(st.steps, visible, inLoop); err != nil {
				return err
			}
		}
		if st.try != nil {
			if err := l.checkSteps(st.try.body, visible, inLoop); err != nil {
				return err
			}
			if st.try.except != nil {
				if err := l.checkSteps(st.try.except.steps, visible, inLoop); err != nil {
					return err
				}
			}
		}
		if st.loop != nil {
			if err := l.checkSteps(st.loop.steps, nil, true); err != nil {
				return err
			}
		}
		if p := st.parallel; p != nil {
			for _, b := range p.branches {
				if err := l.checkSteps(b.steps, nil, false); err != nil {
					return err
				}
			}
			if p.loop != nil {
				if err := l.checkSteps(p.loop.steps, nil, true); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (l *loader) checkTarget(st *step, target string, visible [][]*step, inLoop bool) error {
	switch target {
	case "", "end":
		return nil
	case "break", "continue":
		if !inLoop {
			return &RefusalError{File: l.file, Step: st.name, Line: st.line, Reason: fmt.Sprintf("next: %s outside a for loop", target)}
		}
		return nil
	}
	for _, list := range visible {
		for _, s := range list {
			if s.name == target {
				return nil
			}
		}
	}
	return &RefusalError{File: l.file, Step: st.name, Line: st.line, Reason: fmt.Sprintf("next: no step %q here (in routine %q, a step can go to steps of its own list or of enclosing lists, not into other blocks, loops or branches)", target, l.routine)}
}
