package workflows

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// callStep runs a call step and stores its result.
func (f *frame) callStep(ctx context.Context, st *step, sc *scope) error {
	c := st.call
	args := map[string]any{}
	if c.args != nil {
		v, err := c.args.eval(sc)
		if err != nil {
			return err
		}
		args = v.(map[string]any)
	}
	var res any
	var err error
	switch {
	case c.sub != "":
		res, err = f.callSub(ctx, st, c.sub, args)
	case strings.HasPrefix(c.name, "http."):
		res, err = f.httpCall(ctx, st, c.name, args)
	case c.name == "sys.sleep":
		err = f.sysSleep(ctx, args)
	case c.name == "sys.log":
		f.sysLog(ctx, st, args)
	case c.name == publishCall:
		res, err = f.publish(ctx, st, args)
	default:
		return f.refuse(st, "call %q %s", c.name, notSupported)
	}
	if err != nil {
		return err
	}
	if c.result == "" {
		return nil
	}
	if err := sc.set(c.result, nil, res); err != nil {
		if _, ok := asRaised(err); ok {
			return err
		}
		return f.refuse(st, "%v", err)
	}
	return nil
}

// maxCallDepth is Workflows' limit on nested subworkflow calls.
const maxCallDepth = 20

// callSub calls a subworkflow with named arguments and returns its result.
func (f *frame) callSub(ctx context.Context, st *step, name string, args map[string]any) (any, error) {
	sub := f.x.def.subs[name]
	if f.depth+1 >= maxCallDepth {
		return nil, raise(errorMap("RecursionError", "maximum call depth %d exceeded calling %s", maxCallDepth, name))
	}
	nf := &frame{x: f.x, sub: sub, depth: f.depth + 1, branch: f.branch, par: f.par}
	ns := nf.newScope()
	for _, p := range sub.params {
		if v, ok := args[p.name]; ok {
			ns.vars[p.name] = v
			continue
		}
		if !p.hasDefault {
			return nil, typeError("subworkflow %s: missing argument %q", name, p.name)
		}
		v, err := p.def.eval(ns)
		if err != nil {
			return nil, err
		}
		ns.vars[p.name] = v
	}
	for k := range args {
		if _, ok := ns.vars[k]; !ok {
			return nil, typeError("subworkflow %s has no parameter %q", name, k)
		}
	}
	fl, err := nf.runSteps(ctx, sub.steps, ns)
	if err != nil {
		return nil, err
	}
	if fl.kind == flowReturn {
		return fl.value, nil
	}
	return nil, nil
}

func (f *frame) sysSleep(ctx context.Context, args map[string]any) error {
	secs, ok := number(args["seconds"])
	if !ok {
		return typeError("sys.sleep: seconds must be a number, got %s", typeName(args["seconds"]))
	}
	if secs < 0 || secs > 31536000 {
		return valueError("sys.sleep: seconds must be between 0 and 31536000, got %v", secs)
	}
	return f.sleep(ctx, time.Duration(secs*float64(time.Second)))
}

var severities = map[string]slog.Level{
	"DEFAULT": slog.LevelInfo, "DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo,
	"NOTICE": slog.LevelInfo, "WARNING": slog.LevelWarn, "ERROR": slog.LevelError,
	"CRITICAL": slog.LevelError, "ALERT": slog.LevelError, "EMERGENCY": slog.LevelError,
}

func (f *frame) sysLog(ctx context.Context, st *step, args map[string]any) {
	level := slog.LevelInfo
	sev, _ := args["severity"].(string)
	if l, ok := severities[strings.ToUpper(sev)]; ok {
		level = l
	}
	msg := "sys.log"
	attrs := []any{"execution", f.x.params.Execution, "routine", f.sub.name, "step", st.name}
	if sev != "" {
		attrs = append(attrs, "severity", strings.ToUpper(sev))
	}
	for _, k := range []string{"text", "data", "json"} {
		v, ok := args[k]
		if !ok {
			continue
		}
		if s, isStr := v.(string); isStr && k != "json" {
			msg = s
			continue
		}
		b, err := encodeJSON(v, false)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		attrs = append(attrs, k, string(b))
	}
	f.x.r.log.Log(ctx, level, msg, attrs...)
}
