package workflows

import (
	"fmt"
	"math"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// node is a YAML value with the line it came from: refusals and stack
// traces name lines, and mappings keep their key order (a step is a
// one-key mapping whose key is its name, and assignments run in order).
type node struct {
	line, col int
	kind      nodeKind
	scalar    any // nil, bool, int, float64 or string
	keys      []string
	vals      []*node
	items     []*node
}

type nodeKind int

const (
	scalarNode nodeKind = iota
	mapNode
	listNode
)

func (n *node) get(key string) (*node, bool) {
	for i, k := range n.keys {
		if k == key {
			return n.vals[i], true
		}
	}
	return nil, false
}

// value converts n into a plain value (maps, lists, scalars).
func (n *node) value() any {
	switch n.kind {
	case mapNode:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k] = n.vals[i].value()
		}
		return m
	case listNode:
		l := make([]any, len(n.items))
		for i, it := range n.items {
			l[i] = it.value()
		}
		return l
	}
	return n.scalar
}

func (n *node) describe() string {
	switch n.kind {
	case mapNode:
		return "a map"
	case listNode:
		return "a list"
	}
	if n.scalar == nil {
		return "null"
	}
	return fmt.Sprintf("%T %v", n.scalar, n.scalar)
}

// parseYAML reads one YAML document into a node tree.
func parseYAML(src []byte) (*node, error) {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return nil, fmt.Errorf("YAML: %s", yaml.FormatError(err, false, true))
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return nil, fmt.Errorf("YAML: want exactly one document, found %d", len(f.Docs))
	}
	return convert(f.Docs[0].Body)
}

func convert(n ast.Node) (*node, error) {
	pos := n.GetToken().Position
	out := &node{line: pos.Line, col: pos.Column}
	switch v := n.(type) {
	case *ast.MappingNode:
		out.kind = mapNode
		for _, mv := range v.Values {
			if err := addPair(out, mv); err != nil {
				return nil, err
			}
		}
		return out, nil
	case *ast.MappingValueNode:
		// A mapping with a single key is parsed as its only pair.
		out.kind = mapNode
		kp := v.Key.GetToken().Position
		out.line, out.col = kp.Line, kp.Column
		return out, addPair(out, v)
	case *ast.SequenceNode:
		out.kind = listNode
		for _, it := range v.Values {
			c, err := convert(it)
			if err != nil {
				return nil, err
			}
			out.items = append(out.items, c)
		}
		return out, nil
	case *ast.AnchorNode:
		return convert(v.Value)
	case *ast.TagNode:
		return nil, fmt.Errorf("line %d: YAML tags are not supported", pos.Line)
	case *ast.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not supported", pos.Line)
	}
	var x any
	if err := yaml.NodeToValue(n, &x); err != nil {
		return nil, fmt.Errorf("line %d: %w", pos.Line, err)
	}
	s, err := scalar(x)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", pos.Line, err)
	}
	out.scalar = s
	return out, nil
}

func addPair(m *node, mv *ast.MappingValueNode) error {
	var k any
	if err := yaml.NodeToValue(mv.Key, &k); err != nil {
		return fmt.Errorf("line %d: key: %w", mv.Key.GetToken().Position.Line, err)
	}
	key := fmt.Sprint(k)
	if _, dup := m.get(key); dup {
		return fmt.Errorf("line %d: duplicate key %q", mv.Key.GetToken().Position.Line, key)
	}
	var val *node
	if mv.Value == nil {
		val = &node{line: mv.Key.GetToken().Position.Line}
	} else {
		var err error
		if val, err = convert(mv.Value); err != nil {
			return err
		}
	}
	m.keys = append(m.keys, key)
	m.vals = append(m.vals, val)
	return nil
}

// scalar maps a decoded YAML scalar to the runner's value types: integers
// are int, other numbers float64.
func scalar(x any) (any, error) {
	switch v := x.(type) {
	case nil, bool, string, float64:
		return v, nil
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d out of range", v)
		}
		return int(v), nil
	case float32:
		return float64(v), nil
	}
	return nil, fmt.Errorf("unsupported YAML value %T", x)
}
