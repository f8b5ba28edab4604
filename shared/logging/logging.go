// Package logging writes log/slog records as the JSON Cloud Logging reads
// from a function's standard output: `severity` and `message` instead of
// slog's level and msg, and the trace and span of the current request, so a
// lesson's logs line up under its trace in Cloud Trace.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Field names Cloud Logging gives meaning to
// (https://cloud.google.com/logging/docs/structured-logging).
const (
	FieldTrace        = "logging.googleapis.com/trace"
	FieldSpanID       = "logging.googleapis.com/spanId"
	FieldTraceSampled = "logging.googleapis.com/trace_sampled"
)

// Attribute names every pipeline log line about a lesson carries.
const (
	KeyLessonID = "lessonId"
	KeyVersion  = "version"
	KeyStage    = "stage"
)

// New returns a logger writing Cloud Logging JSON to w at the given level
// ("debug", "info", "warn", "error"; anything else is info). projectID turns
// trace ids into the resource names Cloud Logging links to traces.
func New(w io.Writer, level, projectID string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       lv,
		AddSource:   false,
		ReplaceAttr: replace,
	})
	return slog.New(&traceHandler{Handler: h, projectID: projectID})
}

// Default returns a logger on standard output configured from LOG_LEVEL and
// GOOGLE_CLOUD_PROJECT, for code that runs before configuration is loaded.
func Default() *slog.Logger {
	return New(os.Stdout, os.Getenv("LOG_LEVEL"), os.Getenv("GOOGLE_CLOUD_PROJECT"))
}

func replace(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		// Only the record's own level: an attribute a caller named "level"
		// (a lesson's level, say) is left as it is.
		if lv, ok := a.Value.Any().(slog.Level); ok {
			a.Key = "severity"
			a.Value = slog.StringValue(severity(lv))
		}
	case slog.TimeKey:
		a.Key = "time"
	}
	return a
}

// severity maps slog levels onto Cloud Logging's LogSeverity names.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// traceHandler adds the current span's trace fields to every record.
type traceHandler struct {
	slog.Handler
	projectID string
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tr := sc.TraceID().String()
		if h.projectID != "" {
			tr = "projects/" + h.projectID + "/traces/" + tr
		}
		r.AddAttrs(
			slog.String(FieldTrace, tr),
			slog.String(FieldSpanID, sc.SpanID().String()),
			slog.Bool(FieldTraceSampled, sc.IsSampled()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithAttrs(as), projectID: h.projectID}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithGroup(name), projectID: h.projectID}
}

type ctxKey struct{}

// WithLogger returns a context carrying l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the context's logger, or the default one.
func FromContext(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// Lesson returns l with the lesson's id, version and the stage at work.
func Lesson(l *slog.Logger, lessonID string, version int, stage string) *slog.Logger {
	return l.With(KeyLessonID, lessonID, KeyVersion, version, KeyStage, stage)
}
