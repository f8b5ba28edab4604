package hotmart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Lists are decoded leniently, element by element: the answer must be a JSON
// array (anything else makes the call fail, because a list that cannot be
// read must never look like an empty one), but an element that does not fit
// its shape — a page_id sent as a number, an order sent as a string — is
// left out and reported as Skipped, so one odd page costs only itself.

// Skipped is an element of a list Hotmart answered that could not be
// decoded. The call leaves it out of its result and names it here.
type Skipped struct {
	// Call is the call whose answer held the element: "list pages of
	// module m1 of product 4100001".
	Call string
	// Position is the element's place in the answer's array, from 1.
	Position int
	// Raw is the element as Hotmart sent it (its start, when long).
	Raw string
	// Reason says what was wrong with it.
	Reason string
}

func (s Skipped) String() string {
	return fmt.Sprintf("%s: element at position %d skipped (%s): %s", s.Call, s.Position, s.Reason, s.Raw)
}

// maxRaw bounds the raw value quoted in a Skipped: enough to recognise the
// element, never a whole answer.
const maxRaw = 200

// array is a JSON array kept element by element. Unlike a plain slice it
// refuses null: Hotmart answering null for a module's pages is a broken
// answer, and reading it as "no pages" would remove every lesson of the
// module.
type array []json.RawMessage

func (a *array) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] != '[' {
		return fmt.Errorf("%s where an array belongs", jsonValueKind(b[0]))
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*a = raw
	return nil
}

// decodeEach decodes every element of a into a T with decode, which gets
// the element's position (from 1) too; the elements decode refuses are
// returned as Skipped, named after call.
func decodeEach[T any](call string, a array, decode func(position int, raw json.RawMessage) (T, error)) ([]T, []Skipped) {
	out := make([]T, 0, len(a))
	var skipped []Skipped
	for i, raw := range a {
		v, err := decode(i+1, raw)
		if err != nil {
			skipped = append(skipped, Skipped{Call: call, Position: i + 1, Raw: rawString(raw), Reason: reason(err)})
			continue
		}
		out = append(out, v)
	}
	return out, skipped
}

// reason turns a decoding error into words about the element, without the
// Go type names encoding/json puts in them.
func reason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s is a JSON %s, not a %s", te.Field, te.Value, jsonKind(te.Type.Kind().String()))
	}
	return err.Error()
}

// jsonValueKind names the JSON value that starts with c.
func jsonValueKind(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	}
	return "a number"
}

func jsonKind(goKind string) string {
	switch {
	case goKind == "string":
		return "string"
	case goKind == "bool":
		return "boolean"
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number"
	}
	return goKind
}

// rawString is an element as sent, compacted and cut to maxRaw bytes.
func rawString(raw json.RawMessage) string {
	var buf bytes.Buffer
	b := []byte(raw)
	if json.Compact(&buf, raw) == nil {
		b = buf.Bytes()
	}
	if len(b) <= maxRaw {
		return string(b)
	}
	cut := maxRaw
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}
