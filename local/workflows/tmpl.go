package workflows

import "strings"

// tmpl is a value written in the workflow file: a literal, an expression
// (a string that is all ${...}), or a map or list holding expressions
// somewhere inside. Literal parts are shared between runs and never
// modified (see values.go).
type tmpl struct {
	lit   any
	exp   *expression
	keys  []string
	vals  []*tmpl
	items []*tmpl
	kind  tmplKind
}

type tmplKind int

const (
	tmplLiteral tmplKind = iota
	tmplExpr
	tmplMap
	tmplList
)

// tmpl compiles n; an expression the runner does not support is refused
// with the step's name.
func (l *loader) tmpl(step string, n *node) (*tmpl, error) {
	if text, ok := exprText(n); ok {
		e, err := compileExpr(text)
		if err != nil {
			return nil, l.refuse(step, n, "%v", err)
		}
		return &tmpl{kind: tmplExpr, exp: e}, nil
	}
	if s, ok := n.scalar.(string); ok && n.kind == scalarNode && strings.Contains(s, "${") {
		return nil, l.refuse(step, n, "%q: an expression must be the whole value, ${...}", s)
	}
	switch n.kind {
	case mapNode:
		t := &tmpl{kind: tmplMap}
		dynamic := false
		for i, k := range n.keys {
			if strings.Contains(k, "${") {
				return nil, l.refuse(step, n, "an expression as a map key (%q) %s", k, notSupported)
			}
			c, err := l.tmpl(step, n.vals[i])
			if err != nil {
				return nil, err
			}
			dynamic = dynamic || c.kind != tmplLiteral
			t.keys, t.vals = append(t.keys, k), append(t.vals, c)
		}
		if !dynamic {
			return &tmpl{lit: n.value()}, nil
		}
		return t, nil
	case listNode:
		t := &tmpl{kind: tmplList}
		dynamic := false
		for _, it := range n.items {
			c, err := l.tmpl(step, it)
			if err != nil {
				return nil, err
			}
			dynamic = dynamic || c.kind != tmplLiteral
			t.items = append(t.items, c)
		}
		if !dynamic {
			return &tmpl{lit: n.value()}, nil
		}
		return t, nil
	}
	return &tmpl{lit: n.scalar}, nil
}

// evaluator evaluates expressions in one place of a run.
type evaluator interface {
	evalExpr(e *expression) (any, error)
}

func (t *tmpl) eval(ev evaluator) (any, error) {
	switch t.kind {
	case tmplExpr:
		return ev.evalExpr(t.exp)
	case tmplMap:
		m := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			v, err := t.vals[i].eval(ev)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case tmplList:
		l := make([]any, len(t.items))
		for i, it := range t.items {
			v, err := it.eval(ev)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	return t.lit, nil
}
