package workflows

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Workflows expressions (${...}) are evaluated with expr-lang/expr, whose
// syntax covers the Workflows subset used here: and, or, not, in, +,
// comparisons, member access, indexing, list and map literals, calls. Two
// things differ and are fixed by rewriting the parsed tree before it is
// compiled:
//
//   - Member access and indexing go through getMember, so a missing key
//     raises KeyError and a bad index IndexError (expr yields nil).
//   - Variables are read through the run's scopes (lookupVar), so an
//     undefined variable raises, and a variable may share a name with a
//     standard library module without hiding it from calls.
//   - / and % go through divide and modulo: division by zero raises
//     ZeroDivisionError (expr gives +Inf for /), and % takes doubles.
//
// Everything else expr accepts but Workflows has not (ternaries, pipes,
// closures, ?., ??, ranges, builtins) is refused when the file is loaded,
// by name, as are functions the runner does not provide.

const (
	fnVar   = "__wf_var"   // __wf_var(__wf_scope, "name")
	fnGet   = "__wf_get"   // __wf_get(object, key)
	fnDiv   = "__wf_div"   // a / b
	fnMod   = "__wf_mod"   // a % b
	envScop = "__wf_scope" // the scope chain, set per evaluation
)

// functions are the top-level functions the runner provides, and modules
// the namespaced ones (module.function).
var (
	topFunctions = []string{"default", "keys", "len", "string", "int", "double", "bool"}
	modules      = map[string][]string{
		"map":    {"get"},
		"sys":    {"get_env", "now"},
		"json":   {"encode", "encode_to_string", "decode"},
		"base64": {"encode", "decode"},
		"text":   {"encode", "decode", "replace_all", "split"},
		"time":   {"format"},
		"http":   {"default_retry", "default_retry_predicate", "default_retry_non_idempotent", "default_retry_predicate_non_idempotent"},
	}
)

func knownFunction(name string) bool {
	if mod, fn, ok := strings.Cut(name, "."); ok {
		for _, f := range modules[mod] {
			if f == fn {
				return true
			}
		}
		return false
	}
	for _, f := range topFunctions {
		if f == name {
			return true
		}
	}
	return false
}

var allowedBinary = map[string]bool{
	"+": true, "-": true, "*": true, "/": true, "%": true,
	"==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"and": true, "or": true, "in": true,
}

// expression is one compiled ${...}.
type expression struct {
	src  string
	prog *vm.Program
}

// unsupportedError is a refusal found in an expression; the loader adds
// the file and the step.
type unsupportedError struct{ what string }

func (e *unsupportedError) Error() string { return e.what }

func newConfig() *conf.Config {
	cfg := conf.CreateNew()
	expr.DisableAllBuiltins()(cfg)
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	expr.Function(fnVar, func(args ...any) (any, error) {
		return args[0].(lookuper).lookupVar(args[1].(string))
	})(cfg)
	expr.Function(fnGet, func(args ...any) (any, error) {
		return getMember(args[0], args[1])
	})(cfg)
	expr.Function(fnDiv, func(args ...any) (any, error) { return divide(args[0], args[1]) })(cfg)
	expr.Function(fnMod, func(args ...any) (any, error) { return modulo(args[0], args[1]) })(cfg)
	return cfg
}

// compileExpr compiles the text inside ${...}.
func compileExpr(src string) (*expression, error) {
	if err := scanExpr(src); err != nil {
		return nil, err
	}
	cfg := newConfig()
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return nil, fmt.Errorf("expression %q does not parse: %w", src, err)
	}
	if err := rewrite(&tree.Node, false); err != nil {
		return nil, err
	}
	if _, err := checker.Check(tree, cfg); err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	prog, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	return &expression{src: src, prog: prog}, nil
}

// scanExpr refuses what expr would read differently from Workflows before
// parsing: expr takes // and /* as comments, which would silently drop the
// rest of the expression.
func scanExpr(src string) error {
	var quote rune
	prev := rune(0)
	for i, r := range src {
		switch {
		case quote != 0:
			if r == '\\' && prev == '\\' {
				prev = 0
				continue
			}
			if r == quote && prev != '\\' {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '`':
			return &unsupportedError{fmt.Sprintf("expression %q: backquoted strings are not Workflows syntax", src)}
		case r == '/' && i+1 < len(src) && src[i+1] == '/':
			return &unsupportedError{fmt.Sprintf("expression %q: the integer division operator // is not supported by the local Workflows runner", src)}
		case r == '/' && i+1 < len(src) && src[i+1] == '*':
			return &unsupportedError{fmt.Sprintf("expression %q: comments are not Workflows syntax", src)}
		}
		prev = r
	}
	return nil
}

// rewrite checks that n is Workflows syntax the runner supports and turns
// variable reads and member access into calls of fnVar and fnGet.
func rewrite(n *ast.Node, callee bool) error {
	switch x := (*n).(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode:
		return nil
	case *ast.IdentifierNode:
		switch x.Value {
		case "null":
			ast.Patch(n, &ast.NilNode{})
			return nil
		case "True", "TRUE":
			ast.Patch(n, &ast.BoolNode{Value: true})
			return nil
		case "False", "FALSE":
			ast.Patch(n, &ast.BoolNode{Value: false})
			return nil
		}
		ast.Patch(n, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fnVar},
			Arguments: []ast.Node{&ast.IdentifierNode{Value: envScop}, &ast.StringNode{Value: x.Value}},
		})
		return nil
	case *ast.UnaryNode:
		if x.Operator != "not" && x.Operator != "-" && x.Operator != "+" {
			return &unsupportedError{fmt.Sprintf("operator %q is not Workflows syntax", x.Operator)}
		}
		return rewrite(&x.Node, false)
	case *ast.BinaryNode:
		if !allowedBinary[x.Operator] {
			return &unsupportedError{fmt.Sprintf("operator %q is not supported by the local Workflows runner", x.Operator)}
		}
		if err := rewrite(&x.Left, false); err != nil {
			return err
		}
		if err := rewrite(&x.Right, false); err != nil {
			return err
		}
		switch x.Operator {
		case "/":
			ast.Patch(n, &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnDiv}, Arguments: []ast.Node{x.Left, x.Right}})
		case "%":
			ast.Patch(n, &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnMod}, Arguments: []ast.Node{x.Left, x.Right}})
		}
		return nil
	case *ast.MemberNode:
		if x.Optional {
			return &unsupportedError{"optional member access ?. is not Workflows syntax"}
		}
		if x.Method {
			return &unsupportedError{fmt.Sprintf("calling %s is not supported by the local Workflows runner", calleeName(x))}
		}
		if err := rewrite(&x.Node, false); err != nil {
			return err
		}
		if err := rewrite(&x.Property, false); err != nil {
			return err
		}
		ast.Patch(n, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fnGet},
			Arguments: []ast.Node{x.Node, x.Property},
		})
		return nil
	case *ast.CallNode:
		name := calleeName(x.Callee)
		if !knownFunction(name) {
			return &unsupportedError{fmt.Sprintf("function %q is not supported by the local Workflows runner", name)}
		}
		for i := range x.Arguments {
			if err := rewrite(&x.Arguments[i], false); err != nil {
				return err
			}
		}
		return nil
	case *ast.ArrayNode:
		for i := range x.Nodes {
			if err := rewrite(&x.Nodes[i], false); err != nil {
				return err
			}
		}
		return nil
	case *ast.MapNode:
		for _, p := range x.Pairs {
			pair := p.(*ast.PairNode)
			if _, ok := pair.Key.(*ast.StringNode); !ok {
				return &unsupportedError{"map keys in expressions must be strings"}
			}
			if err := rewrite(&pair.Value, false); err != nil {
				return err
			}
		}
		return nil
	case *ast.ChainNode:
		return &unsupportedError{"optional member access ?. is not Workflows syntax"}
	case *ast.ConditionalNode:
		return &unsupportedError{"the conditional operator ?: is not Workflows syntax"}
	case *ast.SliceNode:
		return &unsupportedError{"slices [a:b] are not Workflows syntax"}
	case *ast.PointerNode, *ast.PredicateNode, *ast.BuiltinNode:
		return &unsupportedError{"closures and # are not Workflows syntax"}
	case *ast.VariableDeclaratorNode, *ast.SequenceNode:
		return &unsupportedError{"let and ; are not Workflows syntax"}
	}
	return &unsupportedError{fmt.Sprintf("%T is not supported by the local Workflows runner", *n)}
}

// calleeName renders a call target as written: f or module.f.
func calleeName(n ast.Node) string {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value
	case *ast.MemberNode:
		if p, ok := x.Property.(*ast.StringNode); ok {
			return calleeName(x.Node) + "." + p.Value
		}
		return calleeName(x.Node) + "[...]"
	case *ast.CallNode:
		return calleeName(x.Callee) + "(...)"
	}
	return fmt.Sprintf("%T", n)
}

// lookuper reads variables; the run's scopes implement it.
type lookuper interface {
	lookupVar(name string) (any, error)
}

// eval runs the expression with the run's functions and the given scope.
func (e *expression) eval(lib map[string]any, sc lookuper) (any, error) {
	env := make(map[string]any, len(lib)+1)
	for k, v := range lib {
		env[k] = v
	}
	env[envScop] = sc
	out, err := expr.Run(e.prog, env)
	if err == nil {
		return out, nil
	}
	if r, ok := asRaised(err); ok {
		return nil, r
	}
	var unsupported *unsupportedError
	if errors.As(err, &unsupported) {
		return nil, err
	}
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
	}
	if strings.Contains(msg, "divide by zero") {
		return nil, raise(errorMap("ZeroDivisionError", "%s in %s", msg, e.src))
	}
	return nil, typeError("%s in %s", msg, e.src)
}
