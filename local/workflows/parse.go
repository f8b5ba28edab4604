package workflows

import (
	"fmt"
	"regexp"
	"strings"
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (l *loader) subworkflow(name string, n *node) (*subworkflow, error) {
	l.routine = name
	if n.kind != mapNode {
		return nil, l.refuse("", n, "subworkflow %q must be a map with params and steps", name)
	}
	sub := &subworkflow{name: name, line: n.line}
	for i, k := range n.keys {
		v := n.vals[i]
		switch k {
		case "params":
			if v.kind != listNode {
				return nil, l.refuse("", v, "params of %q must be a list", name)
			}
			for _, p := range v.items {
				pr, err := l.param(name, p)
				if err != nil {
					return nil, err
				}
				sub.params = append(sub.params, pr)
			}
		case "steps":
			steps, err := l.steps(v)
			if err != nil {
				return nil, err
			}
			sub.steps = steps
		default:
			return nil, l.refuse("", v, "subworkflow %q: %q %s", name, k, notSupported)
		}
	}
	if sub.steps == nil {
		return nil, l.refuse("", n, "subworkflow %q has no steps", name)
	}
	return sub, nil
}

func (l *loader) param(sub string, n *node) (param, error) {
	if n.kind == scalarNode {
		s, ok := n.scalar.(string)
		if !ok || !identRE.MatchString(s) {
			return param{}, l.refuse("", n, "subworkflow %q: parameter %s is not a name", sub, n.describe())
		}
		return param{name: s}, nil
	}
	if n.kind == mapNode && len(n.keys) == 1 && identRE.MatchString(n.keys[0]) {
		def, err := l.tmpl("", n.vals[0])
		if err != nil {
			return param{}, err
		}
		return param{name: n.keys[0], def: def, hasDefault: true}, nil
	}
	return param{}, l.refuse("", n, "subworkflow %q: parameter must be a name or {name: default}", sub)
}

func (l *loader) steps(n *node) ([]*step, error) {
	if n.kind != listNode {
		return nil, l.refuse("", n, "steps must be a list of named steps, not %s", n.describe())
	}
	if len(n.items) == 0 {
		return nil, l.refuse("", n, "steps is empty")
	}
	var out []*step
	for _, it := range n.items {
		if it.kind != mapNode || len(it.keys) != 1 {
			return nil, l.refuse("", it, "each step is a map with exactly one key, its name")
		}
		st, err := l.step(it.keys[0], it.line, it.vals[0])
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// stepKeywords are the step fields the runner knows; anything else in a
// step is refused by name.
var stepKeywords = map[string]bool{
	"assign": true, "call": true, "args": true, "result": true, "switch": true,
	"next": true, "raise": true, "return": true, "steps": true, "try": true,
	"retry": true, "except": true, "parallel": true, "for": true,
}

func (l *loader) step(name string, line int, n *node) (*step, error) {
	st := &step{name: name, line: line, routine: l.routine}
	if n.kind != mapNode {
		return nil, l.refuse(name, n, "a step's body must be a map, not %s", n.describe())
	}
	var actions []string
	for i, k := range n.keys {
		if !stepKeywords[k] {
			return nil, l.refuse(name, n.vals[i], "step keyword %q %s", k, notSupported)
		}
		switch k {
		case "assign", "call", "switch", "raise", "return", "steps", "try", "parallel", "for":
			actions = append(actions, k)
		}
	}
	if len(actions) > 1 {
		return nil, l.refuse(name, n, "a step has one of assign, call, switch, raise, return, steps, try, parallel, for; this one has %s", strings.Join(actions, " and "))
	}
	action := ""
	if len(actions) == 1 {
		action = actions[0]
	}
	allowed := map[string]bool{action: true, "next": action != "raise" && action != "return"}
	switch action {
	case "call":
		allowed["args"], allowed["result"] = true, true
	case "try":
		allowed["retry"], allowed["except"] = true, true
	}
	for i, k := range n.keys {
		if !allowed[k] {
			return nil, l.refuse(name, n.vals[i], "%q cannot be used here (with %q)", k, action)
		}
	}
	var err error
	if next, ok := n.get("next"); ok {
		if st.next, err = l.nextTarget(name, next); err != nil {
			return nil, err
		}
	}
	v, _ := n.get(action)
	switch action {
	case "assign":
		st.assign, err = l.assignments(name, v)
	case "call":
		st.call, err = l.call(name, n)
	case "switch":
		st.cases, err = l.switchCases(name, v)
	case "raise":
		st.raise, err = l.tmpl(name, v)
	case "return":
		st.ret, err = l.tmpl(name, v)
		st.hasRet = true
	case "steps":
		st.steps, err = l.steps(v)
	case "try":
		st.try, err = l.tryBlock(name, n)
	case "parallel":
		st.parallel, err = l.parallel(name, v)
	case "for":
		st.loop, err = l.forLoop(name, v)
	case "":
		if st.next == "" {
			return nil, l.refuse(name, n, "the step does nothing")
		}
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (l *loader) nextTarget(step string, n *node) (string, error) {
	s, ok := n.scalar.(string)
	if n.kind != scalarNode || !ok || s == "" {
		return "", l.refuse(step, n, "next must be a step name, end, break or continue")
	}
	if strings.HasPrefix(s, "${") {
		return "", l.refuse(step, n, "an expression in next %s", notSupported)
	}
	return s, nil
}

func (l *loader) assignments(step string, n *node) ([]*assignment, error) {
	if n.kind != listNode || len(n.items) == 0 {
		return nil, l.refuse(step, n, "assign must be a non-empty list of single-key maps")
	}
	var out []*assignment
	for _, it := range n.items {
		if it.kind != mapNode || len(it.keys) != 1 {
			return nil, l.refuse(step, it, "each assignment is a map with exactly one key")
		}
		a, err := l.assignment(step, it, it.keys[0], it.vals[0])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (l *loader) assignment(step string, at *node, target string, v *node) (*assignment, error) {
	root, segs, err := parsePath(target)
	if err != nil {
		return nil, l.refuse(step, at, "assignment target %q: %v", target, err)
	}
	val, err := l.tmpl(step, v)
	if err != nil {
		return nil, err
	}
	return &assignment{root: root, path: segs, val: val, text: target}, nil
}

// parsePath reads an assignment target: name, then .key or [expression]
// any number of times.
func parsePath(s string) (string, []pathSeg, error) {
	i := 0
	for i < len(s) && s[i] != '.' && s[i] != '[' {
		i++
	}
	root := strings.TrimSpace(s[:i])
	if !identRE.MatchString(root) {
		return "", nil, fmt.Errorf("%q is not a variable name", root)
	}
	var segs []pathSeg
	for i < len(s) {
		switch s[i] {
		case '.':
			j := i + 1
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			key := s[i+1 : j]
			if !identRE.MatchString(key) {
				return "", nil, fmt.Errorf("%q is not a key", key)
			}
			segs = append(segs, pathSeg{key: key})
			i = j
		case '[':
			j, err := closingBracket(s, i)
			if err != nil {
				return "", nil, err
			}
			inner := strings.TrimSpace(s[i+1 : j])
			e, err := compileExpr(inner)
			if err != nil {
				return "", nil, err
			}
			segs = append(segs, pathSeg{exp: e})
			i = j + 1
		default:
			return "", nil, fmt.Errorf("unexpected %q", s[i:])
		}
	}
	return root, segs, nil
}

func closingBracket(s string, open int) (int, error) {
	depth := 0
	var quote byte
	for i := open; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[':
			depth++
		case c == ']':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed [ in %q", s)
}

var callArgs = map[string][]string{
	"http.get":     {"url", "headers", "query", "body", "timeout", "auth"},
	"http.post":    {"url", "headers", "query", "body", "timeout", "auth"},
	"http.put":     {"url", "headers", "query", "body", "timeout", "auth"},
	"http.patch":   {"url", "headers", "query", "body", "timeout", "auth"},
	"http.delete":  {"url", "headers", "query", "body", "timeout", "auth"},
	"http.request": {"url", "method", "headers", "query", "body", "timeout", "auth"},
	"sys.sleep":    {"seconds"},
	"sys.log":      {"text", "json", "data", "severity"},
	publishCall:    {"topic", "body"},
}

var requiredArgs = map[string][]string{
	"http.get": {"url"}, "http.post": {"url"}, "http.put": {"url"}, "http.patch": {"url"},
	"http.delete": {"url"}, "http.request": {"url", "method"},
	"sys.sleep": {"seconds"}, publishCall: {"topic", "body"},
}

const publishCall = "googleapis.pubsub.v1.projects.topics.publish"

func (l *loader) call(step string, n *node) (*callSpec, error) {
	cn, _ := n.get("call")
	name, ok := cn.scalar.(string)
	if cn.kind != scalarNode || !ok || name == "" {
		return nil, l.refuse(step, cn, "call must name a function or a subworkflow")
	}
	c := &callSpec{name: name}
	if r, ok := n.get("result"); ok {
		s, _ := r.scalar.(string)
		if r.kind != scalarNode || !identRE.MatchString(s) {
			return nil, l.refuse(step, r, "result must be a variable name")
		}
		c.result = s
	}
	args, hasArgs := n.get("args")
	if hasArgs && args.kind != mapNode {
		return nil, l.refuse(step, args, "args must be a map of named arguments")
	}
	var argNames []string
	if hasArgs {
		argNames = args.keys
	}
	var known, required []string
	if subNode, isSub := l.subs[name]; isSub {
		c.sub = name
		params, _ := subNode.get("params")
		if params != nil {
			for _, p := range params.items {
				switch p.kind {
				case scalarNode:
					s, _ := p.scalar.(string)
					known = append(known, s)
					required = append(required, s)
				case mapNode:
					known = append(known, p.keys...)
				}
			}
		}
	} else {
		var ok bool
		known, ok = callArgs[name]
		if !ok {
			return nil, l.refuse(step, cn, "call %q %s", name, notSupported)
		}
		required = requiredArgs[name]
	}
	for _, a := range argNames {
		if !contains(known, a) {
			what := "argument"
			if c.sub != "" {
				what = "parameter"
			}
			return nil, l.refuse(step, args, "call %q: %s %q %s", name, what, a, notSupported)
		}
	}
	for _, a := range required {
		if !contains(argNames, a) {
			return nil, l.refuse(step, cn, "call %q: argument %q is required", name, a)
		}
	}
	if hasArgs {
		if auth, ok := args.get("auth"); ok {
			if err := l.checkAuth(step, auth); err != nil {
				return nil, err
			}
		}
		t, err := l.tmpl(step, args)
		if err != nil {
			return nil, err
		}
		c.args = t
	}
	return c, nil
}

func (l *loader) checkAuth(step string, auth *node) error {
	if auth.kind != mapNode {
		return l.refuse(step, auth, "auth must be a map with a type")
	}
	for _, k := range auth.keys {
		if k != "type" && k != "audience" && k != "scopes" && k != "scope" {
			return l.refuse(step, auth, "auth field %q %s", k, notSupported)
		}
	}
	t, ok := auth.get("type")
	if !ok {
		return l.refuse(step, auth, "auth needs a type (OIDC or OAuth2)")
	}
	if s, ok := t.scalar.(string); ok && !strings.HasPrefix(s, "${") && s != "OIDC" && s != "OAuth2" {
		return l.refuse(step, t, "auth type %q %s", s, notSupported)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *loader) switchCases(step string, n *node) ([]*switchCase, error) {
	if n.kind != listNode || len(n.items) == 0 {
		return nil, l.refuse(step, n, "switch must be a non-empty list of conditions")
	}
	var out []*switchCase
	for _, it := range n.items {
		if it.kind != mapNode {
			return nil, l.refuse(step, it, "each switch case is a map with a condition")
		}
		sc := &switchCase{line: it.line}
		cond, ok := it.get("condition")
		if !ok {
			return nil, l.refuse(step, it, "switch case without condition")
		}
		var err error
		if sc.cond, err = l.tmpl(step, cond); err != nil {
			return nil, err
		}
		actions := 0
		for i, k := range it.keys {
			v := it.vals[i]
			switch k {
			case "condition":
			case "next":
				sc.next, err = l.nextTarget(step, v)
			case "steps":
				actions++
				sc.steps, err = l.steps(v)
			case "assign":
				actions++
				sc.assign, err = l.assignments(step, v)
			case "raise":
				actions++
				sc.raise, err = l.tmpl(step, v)
			case "return":
				actions++
				sc.ret, err = l.tmpl(step, v)
				sc.hasRet = true
			default:
				return nil, l.refuse(step, v, "switch case field %q %s", k, notSupported)
			}
			if err != nil {
				return nil, err
			}
		}
		if actions > 1 || (actions == 0 && sc.next == "") {
			return nil, l.refuse(step, it, "a switch case has exactly one of next, steps, assign, raise, return (assign and steps may be followed by next)")
		}
		if (sc.raise != nil || sc.hasRet) && sc.next != "" {
			return nil, l.refuse(step, it, "a switch case cannot both %s and go to next", map[bool]string{true: "raise", false: "return"}[sc.raise != nil])
		}
		out = append(out, sc)
	}
	return out, nil
}
