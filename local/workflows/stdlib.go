package workflows

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The standard library functions the runner provides, with Workflows
// semantics: json.encode returns bytes, base64.encode takes bytes,
// text.encode/decode convert between strings and bytes, map.get returns
// null for a missing key where member access raises KeyError.

type libFunc = func(args ...any) (any, error)

// library returns the expression environment of one run: the top-level
// functions and one map per module. env holds sys.get_env's values.
func library(env map[string]string) map[string]any {
	return map[string]any{
		"default": fnDefault,
		"keys":    fnKeys,
		"len":     fnLen,
		"string":  fnString,
		"int":     fnInt,
		"double":  fnDouble,
		"bool":    fnBool,
		"map":     map[string]any{"get": fnMapGet},
		"sys": map[string]any{
			"get_env": func(args ...any) (any, error) { return getEnv(env, args) },
			"now":     fnNow,
		},
		"json": map[string]any{
			"encode":           fnJSONEncode,
			"encode_to_string": fnJSONEncodeToString,
			"decode":           fnJSONDecode,
		},
		"base64": map[string]any{"encode": fnBase64Encode, "decode": fnBase64Decode},
		"text": map[string]any{
			"encode":      fnTextEncode,
			"decode":      fnTextDecode,
			"replace_all": fnReplaceAll,
			"split":       fnSplit,
		},
		"time": map[string]any{"format": fnTimeFormat},
		"http": map[string]any{
			"default_retry":                          predicateFunc(defaultRetryPredicate),
			"default_retry_predicate":                predicateFunc(defaultRetryPredicate),
			"default_retry_non_idempotent":           predicateFunc(nonIdempotentRetryPredicate),
			"default_retry_predicate_non_idempotent": predicateFunc(nonIdempotentRetryPredicate),
		},
	}
}

func arity(name string, args []any, min, max int) error {
	if len(args) < min || len(args) > max {
		if min == max {
			return typeError("%s takes %d arguments, got %d", name, min, len(args))
		}
		return typeError("%s takes %d to %d arguments, got %d", name, min, max, len(args))
	}
	return nil
}

func stringArg(name string, args []any, i int) (string, error) {
	s, ok := args[i].(string)
	if !ok {
		return "", typeError("%s: argument %d must be a string, got %s", name, i+1, typeName(args[i]))
	}
	return s, nil
}

func fnDefault(args ...any) (any, error) {
	if err := arity("default", args, 2, 2); err != nil {
		return nil, err
	}
	if args[0] == nil {
		return args[1], nil
	}
	return args[0], nil
}

func fnKeys(args ...any) (any, error) {
	if err := arity("keys", args, 1, 1); err != nil {
		return nil, err
	}
	m, ok := args[0].(map[string]any)
	if !ok {
		return nil, typeError("keys: argument must be a map, got %s", typeName(args[0]))
	}
	out := []any{}
	for _, k := range sortedKeys(m) {
		out = append(out, k)
	}
	return out, nil
}

func fnLen(args ...any) (any, error) {
	if err := arity("len", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case string:
		return utf8.RuneCountInString(x), nil
	case []byte:
		return len(x), nil
	case []any:
		return len(x), nil
	case map[string]any:
		return len(x), nil
	}
	return nil, typeError("len: argument must be a string, bytes, list or map, got %s", typeName(args[0]))
}

func fnString(args ...any) (any, error) {
	if err := arity("string", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return nil, typeError("string: cannot convert %s to string", typeName(args[0]))
}

func fnInt(args ...any) (any, error) {
	if err := arity("int", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case int:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > math.MaxInt64 {
			return nil, valueError("int: %v is out of range", x)
		}
		return int(x), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return nil, valueError("int: cannot parse %q", x)
		}
		return int(i), nil
	}
	return nil, typeError("int: cannot convert %s to integer", typeName(args[0]))
}

func fnDouble(args ...any) (any, error) {
	if err := arity("double", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case int:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return nil, valueError("double: cannot parse %q", x)
		}
		return f, nil
	}
	return nil, typeError("double: cannot convert %s to double", typeName(args[0]))
}

func fnBool(args ...any) (any, error) {
	if err := arity("bool", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case bool:
		return x, nil
	case int:
		return x != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, valueError("bool: cannot parse %q", x)
	}
	return nil, typeError("bool: cannot convert %s to boolean", typeName(args[0]))
}

// fnMapGet is map.get(map, key) where key is a string or a list of keys
// walked in turn; any missing step gives null.
func fnMapGet(args ...any) (any, error) {
	if err := arity("map.get", args, 2, 2); err != nil {
		return nil, err
	}
	path := []any{args[1]}
	if l, ok := args[1].([]any); ok {
		path = l
	}
	cur := args[0]
	for _, k := range path {
		if cur == nil {
			return nil, nil
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, typeError("map.get: %s is not a map", typeName(cur))
		}
		key, ok := k.(string)
		if !ok {
			return nil, typeError("map.get: key must be a string, got %s", typeName(k))
		}
		cur = m[key]
	}
	return cur, nil
}

func getEnv(env map[string]string, args []any) (any, error) {
	if err := arity("sys.get_env", args, 1, 2); err != nil {
		return nil, err
	}
	name, err := stringArg("sys.get_env", args, 0)
	if err != nil {
		return nil, err
	}
	if v, ok := env[name]; ok {
		return v, nil
	}
	if len(args) == 2 {
		if args[1] != nil {
			if _, err := stringArg("sys.get_env", args, 1); err != nil {
				return nil, err
			}
		}
		return args[1], nil
	}
	return nil, nil
}

func fnNow(args ...any) (any, error) {
	if err := arity("sys.now", args, 0, 0); err != nil {
		return nil, err
	}
	return float64(time.Now().UnixMicro()) / 1e6, nil
}

func fnJSONEncode(args ...any) (any, error) {
	s, err := jsonEncode("json.encode", args)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func fnJSONEncodeToString(args ...any) (any, error) {
	return jsonEncode("json.encode_to_string", args)
}

func jsonEncode(name string, args []any) (string, error) {
	if err := arity(name, args, 1, 2); err != nil {
		return "", err
	}
	indent := false
	if len(args) == 2 && args[1] != nil {
		switch x := args[1].(type) {
		case bool:
			indent = x
		case map[string]any:
			indent = true
		default:
			return "", typeError("%s: indent must be a boolean or a map, got %s", name, typeName(args[1]))
		}
	}
	b, err := encodeJSON(args[0], indent)
	if err != nil {
		return "", typeError("%s: %v", name, err)
	}
	return string(b), nil
}

func fnJSONDecode(args ...any) (any, error) {
	if err := arity("json.decode", args, 1, 1); err != nil {
		return nil, err
	}
	var data []byte
	switch x := args[0].(type) {
	case []byte:
		data = x
	case string:
		data = []byte(x)
	default:
		return nil, typeError("json.decode: argument must be bytes or a string, got %s", typeName(args[0]))
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, valueError("json.decode: %v", err)
	}
	return v, nil
}

func fnBase64Encode(args ...any) (any, error) {
	if err := arity("base64.encode", args, 1, 2); err != nil {
		return nil, err
	}
	b, ok := args[0].([]byte)
	if !ok {
		return nil, typeError("base64.encode: argument must be bytes, got %s (use text.encode or json.encode)", typeName(args[0]))
	}
	enc := base64.StdEncoding
	if len(args) == 2 && args[1] == false {
		enc = base64.RawStdEncoding
	}
	return enc.EncodeToString(b), nil
}

func fnBase64Decode(args ...any) (any, error) {
	if err := arity("base64.decode", args, 1, 2); err != nil {
		return nil, err
	}
	s, err := stringArg("base64.decode", args, 0)
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding
	if len(args) == 2 && args[1] == false {
		enc = base64.RawStdEncoding
	}
	b, derr := enc.DecodeString(s)
	if derr != nil {
		return nil, valueError("base64.decode: %v", derr)
	}
	return b, nil
}

func checkCharset(name string, args []any) error {
	if len(args) < 2 || args[1] == nil {
		return nil
	}
	cs, ok := args[1].(string)
	if !ok || !strings.EqualFold(strings.ReplaceAll(cs, "-", ""), "utf8") {
		return valueError("%s: only UTF-8 is supported by the local Workflows runner, got %v", name, args[1])
	}
	return nil
}

func fnTextEncode(args ...any) (any, error) {
	if err := arity("text.encode", args, 1, 2); err != nil {
		return nil, err
	}
	s, err := stringArg("text.encode", args, 0)
	if err != nil {
		return nil, err
	}
	if err := checkCharset("text.encode", args); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func fnTextDecode(args ...any) (any, error) {
	if err := arity("text.decode", args, 1, 2); err != nil {
		return nil, err
	}
	b, ok := args[0].([]byte)
	if !ok {
		return nil, typeError("text.decode: argument must be bytes, got %s", typeName(args[0]))
	}
	if err := checkCharset("text.decode", args); err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, valueError("text.decode: bytes are not valid UTF-8")
	}
	return string(b), nil
}

func fnReplaceAll(args ...any) (any, error) {
	if err := arity("text.replace_all", args, 3, 3); err != nil {
		return nil, err
	}
	var s [3]string
	for i := range s {
		v, err := stringArg("text.replace_all", args, i)
		if err != nil {
			return nil, err
		}
		s[i] = v
	}
	return strings.ReplaceAll(s[0], s[1], s[2]), nil
}

func fnSplit(args ...any) (any, error) {
	if err := arity("text.split", args, 2, 2); err != nil {
		return nil, err
	}
	src, err := stringArg("text.split", args, 0)
	if err != nil {
		return nil, err
	}
	sep, err := stringArg("text.split", args, 1)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, p := range strings.Split(src, sep) {
		out = append(out, p)
	}
	return out, nil
}

func fnTimeFormat(args ...any) (any, error) {
	if err := arity("time.format", args, 1, 2); err != nil {
		return nil, err
	}
	secs, ok := number(args[0])
	if !ok {
		return nil, typeError("time.format: seconds must be a number, got %s", typeName(args[0]))
	}
	loc := time.UTC
	if len(args) == 2 && args[1] != nil {
		name, err := stringArg("time.format", args, 1)
		if err != nil {
			return nil, err
		}
		l, lerr := time.LoadLocation(name)
		if lerr != nil {
			return nil, valueError("time.format: unknown time zone %q", name)
		}
		loc = l
	}
	t := time.UnixMicro(int64(math.Round(secs * 1e6))).In(loc)
	return t.Format("2006-01-02T15:04:05.000000Z07:00"), nil
}

// predicateFunc exposes a retry predicate to expressions.
func predicateFunc(p func(any) bool) libFunc {
	return func(args ...any) (any, error) {
		if err := arity("retry predicate", args, 1, 1); err != nil {
			return nil, err
		}
		return p(args[0]), nil
	}
}

// defaultRetryPredicate is http.default_retry_predicate: 429, 502, 503,
// 504, ConnectionError, ConnectionFailedError and TimeoutError.
func defaultRetryPredicate(e any) bool {
	if hasTag(e, "ConnectionError") || hasTag(e, "ConnectionFailedError") || hasTag(e, "TimeoutError") {
		return true
	}
	switch errorCode(e) {
	case 429, 502, 503, 504:
		return true
	}
	return false
}

// nonIdempotentRetryPredicate is
// http.default_retry_predicate_non_idempotent: 429, 503 and
// ConnectionFailedError, where the request cannot have been processed.
func nonIdempotentRetryPredicate(e any) bool {
	if hasTag(e, "ConnectionFailedError") {
		return true
	}
	switch errorCode(e) {
	case 429, 503:
		return true
	}
	return false
}

func errorCode(e any) int {
	m, ok := e.(map[string]any)
	if !ok {
		return 0
	}
	switch c := m["code"].(type) {
	case int:
		return c
	case float64:
		return int(c)
	}
	return 0
}
