package tfcheck

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Eval evaluates what can be known of a configuration without a provider:
// variables take their defaults (unknown without one), every resource and
// data attribute is unknown, locals are computed from those. That is enough
// to know the keys of the function map, the topic names, and other values
// written in the configuration itself.
type Eval struct {
	cfg    *Config
	Vars   map[string]cty.Value
	Locals map[string]cty.Value
	ctx    *hcl.EvalContext
}

// NewEval evaluates the variables and locals of cfg. A local whose value
// cannot be computed is unknown, and its error is kept in Errors.
func NewEval(cfg *Config) *Eval { return NewEvalWith(cfg, nil) }

// NewEvalWith is NewEval with some variables set (by name), as -var would
// set them; the others take their defaults.
func NewEvalWith(cfg *Config, set map[string]cty.Value) *Eval {
	e := &Eval{cfg: cfg, Vars: map[string]cty.Value{}, Locals: map[string]cty.Value{}}
	for name, v := range cfg.Variables {
		e.Vars[name] = cty.DynamicVal
		if d := v.Body.Attributes["default"]; d != nil {
			if val, diags := d.Expr.Value(nil); !diags.HasErrors() {
				e.Vars[name] = typed(v, val)
			}
		}
		if val, ok := set[name]; ok {
			e.Vars[name] = typed(v, val)
		}
	}
	resources := map[string]map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	for _, r := range cfg.Resources {
		into := resources
		if r.Mode == "data" {
			into = data
		}
		if into[r.Type] == nil {
			into[r.Type] = map[string]cty.Value{}
		}
		into[r.Type][r.Name] = cty.DynamicVal
	}
	vars := map[string]cty.Value{
		"var":       cty.ObjectVal(e.Vars),
		"path":      cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(cfg.Dir), "root": cty.StringVal(cfg.Dir), "cwd": cty.StringVal(cfg.Dir)}),
		"terraform": cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal("default")}),
	}
	for typ, names := range resources {
		vars[typ] = cty.ObjectVal(names)
	}
	dataTypes := map[string]cty.Value{}
	for typ, names := range data {
		dataTypes[typ] = cty.ObjectVal(names)
	}
	vars["data"] = cty.ObjectVal(dataTypes)
	e.ctx = &hcl.EvalContext{Variables: vars, Functions: functions()}

	// Locals may refer to each other: evaluate in rounds until none is left
	// whose dependencies are known.
	pending := map[string]*hclsyntax.Attribute{}
	for name, a := range cfg.Locals {
		pending[name] = a
	}
	for len(pending) > 0 {
		progressed := false
		for name, a := range pending {
			if !e.localsReady(a.Expr, pending) {
				continue
			}
			e.ctx.Variables["local"] = cty.ObjectVal(e.Locals)
			val, diags := a.Expr.Value(e.ctx)
			if diags.HasErrors() {
				val = cty.DynamicVal
			}
			e.Locals[name] = val
			delete(pending, name)
			progressed = true
		}
		if !progressed { // a cycle: Terraform would refuse it too
			for name := range pending {
				e.Locals[name] = cty.DynamicVal
			}
			break
		}
	}
	e.ctx.Variables["local"] = cty.ObjectVal(e.Locals)
	return e
}

// typed converts a variable's default to the variable's type, as Terraform
// does: {} declared map(string) is an empty map, not an empty object.
func typed(v *hclsyntax.Block, val cty.Value) cty.Value {
	t := v.Body.Attributes["type"]
	if t == nil || val.IsNull() {
		return val
	}
	ty, diags := typeexpr.TypeConstraint(t.Expr)
	if diags.HasErrors() {
		return val
	}
	if conv, err := convert.Convert(val, ty); err == nil {
		return conv
	}
	return val
}

func (e *Eval) localsReady(expr hclsyntax.Expression, pending map[string]*hclsyntax.Attribute) bool {
	for _, t := range hclsyntax.Variables(expr) {
		if t.RootName() != "local" || len(t) < 2 {
			continue
		}
		if a, ok := t[1].(hcl.TraverseAttr); ok && pending[a.Name] != nil {
			return false
		}
	}
	return true
}

// Local returns the value of local.name, evaluated without errors.
func (e *Eval) Local(name string) (cty.Value, error) {
	a := e.cfg.Locals[name]
	if a == nil {
		return cty.NilVal, fmt.Errorf("local.%s is not declared", name)
	}
	val, diags := a.Expr.Value(e.ctx)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("local.%s: %s", name, diags.Error())
	}
	return val, nil
}

// Instance is one instance of a resource: its for_each key and value.
type Instance struct {
	Key   string
	Value cty.Value // each.value; cty.NilVal without for_each
}

// Instances returns the instances of r, known when its for_each or count is.
func (e *Eval) Instances(r *Resource) ([]Instance, error) {
	if a := r.Attr("count"); a != nil {
		v, diags := a.Expr.Value(e.ctx)
		if diags.HasErrors() || !v.IsKnown() {
			return nil, fmt.Errorf("%s: count is not known offline", r.Addr())
		}
		n, _ := v.AsBigFloat().Int64()
		out := make([]Instance, n)
		for i := range out {
			out[i] = Instance{Key: fmt.Sprint(i)}
		}
		return out, nil
	}
	a := r.Attr("for_each")
	if a == nil {
		return []Instance{{}}, nil
	}
	v, diags := a.Expr.Value(e.ctx)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: for_each: %s", r.Addr(), diags.Error())
	}
	if !v.IsWhollyKnown() && !v.IsKnown() {
		return nil, fmt.Errorf("%s: for_each is not known offline", r.Addr())
	}
	var out []Instance
	switch {
	case v.Type().IsSetType():
		for it := v.ElementIterator(); it.Next(); {
			_, el := it.Element()
			if !el.IsKnown() || el.Type() != cty.String {
				return nil, fmt.Errorf("%s: for_each set element is not a known string", r.Addr())
			}
			out = append(out, Instance{Key: el.AsString(), Value: el})
		}
	case v.Type().IsMapType() || v.Type().IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			k, el := it.Element()
			out = append(out, Instance{Key: k.AsString(), Value: el})
		}
	default:
		return nil, fmt.Errorf("%s: for_each is a %s, not a map or set of strings", r.Addr(), v.Type().FriendlyName())
	}
	return out, nil
}

// Value evaluates expr in the context of one instance of a resource.
func (e *Eval) Value(inst Instance, expr hcl.Expression) (cty.Value, error) {
	ctx := e.ctx.NewChild()
	ctx.Variables = map[string]cty.Value{
		"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(inst.Key), "value": nonNil(inst.Value)}),
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("%s", diags.Error())
	}
	return v, nil
}

func nonNil(v cty.Value) cty.Value {
	if v == cty.NilVal {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v
}

// functions are the Terraform functions this configuration uses, enough to
// evaluate it offline. A function missing here makes a value unknown, not a
// problem of the configuration.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"base64encode": base64EncodeFunc,
		"ceil":         stdlib.CeilFunc,
		"coalesce":     stdlib.CoalesceFunc,
		"concat":       stdlib.ConcatFunc,
		"contains":     stdlib.ContainsFunc,
		"distinct":     stdlib.DistinctFunc,
		"element":      stdlib.ElementFunc,
		"file":         fileFunc,
		"flatten":      stdlib.FlattenFunc,
		"floor":        stdlib.FloorFunc,
		"format":       stdlib.FormatFunc,
		"join":         stdlib.JoinFunc,
		"jsonencode":   stdlib.JSONEncodeFunc,
		"keys":         stdlib.KeysFunc,
		"length":       lengthFunc,
		"lookup":       stdlib.LookupFunc,
		"lower":        stdlib.LowerFunc,
		"max":          stdlib.MaxFunc,
		"merge":        stdlib.MergeFunc,
		"min":          stdlib.MinFunc,
		"sort":         stdlib.SortFunc,
		"split":        stdlib.SplitFunc,
		"tolist":       stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":        stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":     stdlib.MakeToFunc(cty.Number),
		"toset":        stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":     stdlib.MakeToFunc(cty.String),
		"upper":        stdlib.UpperFunc,
		"values":       stdlib.ValuesFunc,
	}
}

// lengthFunc is Terraform's length: lists, tuples, sets, maps, and objects
// (a map of mixed value types is an object), and strings.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true, AllowUnknown: true}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v := args[0]
		switch {
		case !v.IsKnown():
			return cty.UnknownVal(cty.Number), nil
		case v.Type() == cty.String:
			return cty.NumberIntVal(int64(len([]rune(v.AsString())))), nil
		case v.Type().IsObjectType():
			return cty.NumberIntVal(int64(len(v.Type().AttributeTypes()))), nil
		case v.CanIterateElements():
			return v.Length(), nil
		}
		return cty.NilVal, fmt.Errorf("length of a %s", v.Type().FriendlyName())
	},
})

var base64EncodeFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(base64.StdEncoding.EncodeToString([]byte(args[0].AsString()))), nil
	},
})

var fileFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "path", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		b, err := os.ReadFile(filepath.Clean(args[0].AsString()))
		if err != nil {
			return cty.NilVal, err
		}
		return cty.StringVal(string(b)), nil
	},
})
