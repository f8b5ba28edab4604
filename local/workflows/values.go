package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Values inside a run are what Workflows has: nil (null), bool, int,
// float64 (double), string, []byte (bytes), []any (list) and map[string]any
// (map). A value stored in a variable is never changed in place: assignments
// to a path copy the containers along it (setPath), so expressions running
// in parallel branches can read variables without copying them.

// raised is a Workflows exception on its way up the step stack. It is an
// error so that it can travel through expr and Go calls; only try/except
// and the end of the run look inside.
type raised struct {
	value any
	trace []StackElement // innermost first
	frame *frame         // the frame that added the last trace element
}

func (r *raised) Error() string { return "exception: " + describeValue(r.value) }

// raise builds an exception carrying value.
func raise(value any) *raised { return &raised{value: value} }

// errorMap is the map Workflows raises for its own errors.
func errorMap(tag, format string, args ...any) map[string]any {
	return map[string]any{
		"message": tag + ": " + fmt.Sprintf(format, args...),
		"tags":    []any{tag},
	}
}

func typeError(format string, args ...any) *raised {
	return raise(errorMap("TypeError", format, args...))
}

func valueError(format string, args ...any) *raised {
	return raise(errorMap("ValueError", format, args...))
}

func keyError(format string, args ...any) *raised {
	return raise(errorMap("KeyError", format, args...))
}

func indexError(format string, args ...any) *raised {
	return raise(errorMap("IndexError", format, args...))
}

// asRaised finds the exception in err, if there is one.
func asRaised(err error) (*raised, bool) {
	var r *raised
	if errors.As(err, &r) {
		return r, true
	}
	return nil, false
}

// hasTag reports whether an exception value is a map tagged tag.
func hasTag(v any, tag string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	tags, _ := m["tags"].([]any)
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int:
		return "integer"
	case float64:
		return "double"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

func describeValue(v any) string {
	b, err := encodeJSON(v, false)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// fromGo converts a value decoded from JSON (with UseNumber) or built by
// Go code into the run's value types.
func fromGo(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, float64, int, []byte:
		return x, nil
	case int64:
		return int(x), nil
	case int32:
		return int(x), nil
	case float32:
		return float64(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", x, err)
		}
		return f, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := fromGo(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := fromGo(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("value of Go type %T has no Workflows type", v)
}

// decodeJSON parses JSON into run values; integers stay integers.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return fromGo(v)
}

// encodeJSON writes a run value as JSON. Bytes cannot be written: Workflows
// has no JSON form for them.
func encodeJSON(v any, indent bool) ([]byte, error) {
	if err := checkEncodable(v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func checkEncodable(v any) error {
	switch x := v.(type) {
	case nil, bool, int, string:
		return nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return fmt.Errorf("double %v has no JSON form", x)
		}
		return nil
	case []any:
		for _, e := range x {
			if err := checkEncodable(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, e := range x {
			if err := checkEncodable(e); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("a value of type %s cannot be encoded as JSON", typeName(v))
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// truthy returns b when v is a boolean; Workflows conditions must be.
func truthy(v any, what string) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, typeError("%s must be a boolean, got %s", what, typeName(v))
	}
	return b, nil
}

// number returns v as a float64 when it is an integer or a double.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// getMember is Workflows member access and indexing: a missing key is a
// KeyError and an index out of range an IndexError, where expr would
// return nil.
func getMember(obj, key any) (any, error) {
	switch o := obj.(type) {
	case map[string]any:
		k, ok := key.(string)
		if !ok {
			return nil, typeError("map key must be a string, got %s", typeName(key))
		}
		v, ok := o[k]
		if !ok {
			return nil, keyError("key not found: %s", k)
		}
		return v, nil
	case []any:
		i, ok := key.(int)
		if !ok {
			return nil, typeError("list index must be an integer, got %s", typeName(key))
		}
		if i < 0 || i >= len(o) {
			return nil, indexError("list index %d out of range (length %d)", i, len(o))
		}
		return o[i], nil
	case nil:
		return nil, typeError("cannot read %s of null", describeKey(key))
	}
	return nil, typeError("cannot read %s of a %s", describeKey(key), typeName(obj))
}

func describeKey(key any) string {
	if s, ok := key.(string); ok {
		return fmt.Sprintf("key %q", s)
	}
	return fmt.Sprintf("index %v", key)
}

// setPath returns root with the value at path replaced by v, copying every
// container on the way so that other holders of root see no change.
func setPath(root any, path []any, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	switch o := root.(type) {
	case map[string]any:
		k, ok := path[0].(string)
		if !ok {
			return nil, typeError("map key must be a string, got %s", typeName(path[0]))
		}
		child, exists := o[k]
		if !exists && len(path) > 1 {
			return nil, keyError("key not found: %s", k)
		}
		nv, err := setPath(child, path[1:], v)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(o)+1)
		for kk, vv := range o {
			out[kk] = vv
		}
		out[k] = nv
		return out, nil
	case []any:
		i, ok := path[0].(int)
		if !ok {
			return nil, typeError("list index must be an integer, got %s", typeName(path[0]))
		}
		if i < 0 || i >= len(o) {
			return nil, indexError("list index %d out of range (length %d)", i, len(o))
		}
		nv, err := setPath(o[i], path[1:], v)
		if err != nil {
			return nil, err
		}
		out := append([]any(nil), o...)
		out[i] = nv
		return out, nil
	}
	return nil, typeError("cannot assign %s of a %s", describeKey(path[0]), typeName(root))
}

// joinHeader renders a header's values the way Workflows shows them.
func joinHeader(vals []string) string { return strings.Join(vals, ", ") }

// divide is Workflows' /: always a double.
func divide(a, b any) (any, error) {
	x, okA := number(a)
	y, okB := number(b)
	if !okA || !okB {
		return nil, typeError("cannot divide %s by %s", typeName(a), typeName(b))
	}
	if y == 0 {
		return nil, raise(errorMap("ZeroDivisionError", "division by zero"))
	}
	return x / y, nil
}

// modulo is Workflows' %: an integer for integers, else a double.
func modulo(a, b any) (any, error) {
	ia, intA := a.(int)
	ib, intB := b.(int)
	if intA && intB {
		if ib == 0 {
			return nil, raise(errorMap("ZeroDivisionError", "modulo by zero"))
		}
		return ia % ib, nil
	}
	x, okA := number(a)
	y, okB := number(b)
	if !okA || !okB {
		return nil, typeError("cannot take %s modulo %s", typeName(a), typeName(b))
	}
	if y == 0 {
		return nil, raise(errorMap("ZeroDivisionError", "modulo by zero"))
	}
	return math.Mod(x, y), nil
}
