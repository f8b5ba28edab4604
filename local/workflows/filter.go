package workflows

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
)

// The ListExecutions filter language, as far as the local service reads
// it: comparisons joined by AND, on labels.KEY, state, executionId,
// workflowRevisionId, startTime, endTime and duration, for example
//
//	labels.lesson_id="l-1" AND state="SUCCEEDED"
//	startTime>"2026-01-02T15:04:05Z"
//
// Anything else (OR, parentheses, stepName, functions) is refused with
// InvalidArgument, so a caller never gets an unfiltered list by mistake.

type filter []term

type term struct {
	field string // labels.KEY or a field name
	op    string
	value string
}

var termRE = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_-]+|"[^"]*"))?)\s*(!=|>=|<=|=|>|<|:)\s*(.+?)\s*$`)

var filterFields = map[string]bool{
	"state": true, "executionId": true, "workflowRevisionId": true,
	"startTime": true, "endTime": true, "duration": true,
}

func parseFilter(src string) (filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	var f filter
	for _, part := range splitAnd(src) {
		m := termRE.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("cannot read %q (the local Workflows service reads FIELD OP VALUE terms joined by AND)", strings.TrimSpace(part))
		}
		t := term{field: m[1], op: m[2], value: unquote(m[3])}
		if key, ok := strings.CutPrefix(t.field, "labels."); ok {
			t.field = "labels." + unquote(key)
			if t.op != "=" && t.op != "!=" && t.op != ":" {
				return nil, fmt.Errorf("labels compare with =, != or :, not %s", t.op)
			}
		} else if !filterFields[t.field] {
			return nil, fmt.Errorf("field %q is not supported by the local Workflows service", t.field)
		}
		switch t.field {
		case "startTime", "endTime":
			if _, err := time.Parse(time.RFC3339Nano, t.value); err != nil {
				return nil, fmt.Errorf("%s: %q is not an RFC 3339 time", t.field, t.value)
			}
		case "duration":
			if _, err := parseDuration(t.value); err != nil {
				return nil, fmt.Errorf("duration: %v", err)
			}
		case "state":
			if _, ok := executionspb.Execution_State_value[t.value]; !ok {
				return nil, fmt.Errorf("state %q is not an execution state", t.value)
			}
		}
		f = append(f, t)
	}
	return f, nil
}

// splitAnd splits on AND outside quotes and refuses OR and parentheses.
func splitAnd(src string) []string {
	var parts []string
	var cur strings.Builder
	inQuote := false
	words := strings.Fields(src)
	for _, w := range words {
		if !inQuote && w == "AND" {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
		if strings.Count(w, `"`)%2 == 1 {
			inQuote = !inQuote
		}
	}
	return append(parts, cur.String())
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s[1 : len(s)-1]
	}
	return s
}

// parseDuration reads "12s" or "1.5s" (the API's duration form) or a Go
// duration.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as \"30s\"", s)
	}
	return d, nil
}

func (f filter) match(pb *executionspb.Execution) bool {
	for _, t := range f {
		if !t.match(pb) {
			return false
		}
	}
	return true
}

func (t term) match(pb *executionspb.Execution) bool {
	if key, ok := strings.CutPrefix(t.field, "labels."); ok {
		v, has := pb.GetLabels()[key]
		switch t.op {
		case ":":
			return has && (t.value == "*" || v == t.value)
		case "!=":
			return !has || v != t.value
		}
		return has && v == t.value
	}
	switch t.field {
	case "state":
		return compareStrings(pb.GetState().String(), t.op, t.value)
	case "executionId":
		name := pb.GetName()
		return compareStrings(name[strings.LastIndex(name, "/")+1:], t.op, t.value)
	case "workflowRevisionId":
		return compareStrings(pb.GetWorkflowRevisionId(), t.op, t.value)
	case "startTime", "endTime":
		ts := pb.GetStartTime()
		if t.field == "endTime" {
			ts = pb.GetEndTime()
		}
		if ts == nil {
			return t.op == "!="
		}
		want, _ := time.Parse(time.RFC3339Nano, t.value)
		return compareInts(ts.AsTime().UnixNano(), t.op, want.UnixNano())
	case "duration":
		if pb.GetDuration() == nil {
			return t.op == "!="
		}
		want, _ := parseDuration(t.value)
		return compareInts(int64(pb.GetDuration().AsDuration()), t.op, int64(want))
	}
	return false
}

func compareStrings(a, op, b string) bool {
	switch op {
	case "=", ":":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	}
	return false
}

func compareInts(a int64, op string, b int64) bool {
	switch op {
	case "=", ":":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	}
	return false
}

type orderSpec struct {
	field string
	desc  bool
}

// parseOrderBy reads "FIELD [asc|desc]"; the default is startTime desc.
// createTime is taken as startTime: the local service starts an execution
// when it creates it.
func parseOrderBy(src string) (orderSpec, error) {
	words := strings.Fields(src)
	if len(words) == 0 {
		return orderSpec{field: "startTime", desc: true}, nil
	}
	if len(words) > 2 || strings.Contains(src, ",") {
		return orderSpec{}, errors.New("the local Workflows service orders by one field")
	}
	o := orderSpec{field: words[0]}
	if o.field == "createTime" {
		o.field = "startTime"
	}
	switch o.field {
	case "startTime", "endTime", "duration", "state", "executionId", "workflowRevisionId":
	default:
		return orderSpec{}, fmt.Errorf("cannot order by %q", words[0])
	}
	if len(words) == 2 {
		switch strings.ToLower(words[1]) {
		case "desc":
			o.desc = true
		case "asc":
		default:
			return orderSpec{}, fmt.Errorf("%q is neither asc nor desc", words[1])
		}
	}
	return o, nil
}

func sortRecords(recs []*record, o orderSpec) {
	key := func(r *record) (int64, string) {
		pb := r.pb
		switch o.field {
		case "endTime":
			if pb.GetEndTime() == nil {
				return 0, ""
			}
			return pb.GetEndTime().AsTime().UnixNano(), ""
		case "duration":
			return int64(pb.GetDuration().AsDuration()), ""
		case "state":
			return 0, pb.GetState().String()
		case "executionId":
			return 0, pb.GetName()
		case "workflowRevisionId":
			return 0, pb.GetWorkflowRevisionId()
		}
		return pb.GetStartTime().AsTime().UnixNano(), ""
	}
	compare := func(a, b *record) int {
		na, sa := key(a)
		nb, sb := key(b)
		if c := cmp.Compare(na, nb); c != 0 {
			return c
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		// Creation order breaks ties.
		return cmp.Compare(a.seq, b.seq)
	}
	sort.Slice(recs, func(i, j int) bool {
		c := compare(recs[i], recs[j])
		if o.desc {
			return c > 0
		}
		return c < 0
	})
}

func pageToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func parsePageToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, errors.New("not a page token of this service")
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	if err != nil || n < 0 || !strings.HasPrefix(string(b), "offset:") {
		return 0, errors.New("not a page token of this service")
	}
	return n, nil
}
