package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestCloudLoggingShape(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	tests := []struct {
		name   string
		ctx    context.Context
		log    func(ctx context.Context, l *slog.Logger)
		want   map[string]any
		absent []string
	}{
		{
			name: "warn with lesson and trace",
			ctx:  traced,
			log: func(ctx context.Context, l *slog.Logger) {
				Lesson(l, "pyL1vars001", 2, "download").WarnContext(ctx, "retrying")
			},
			want: map[string]any{
				"severity": "WARNING", "message": "retrying", "lessonId": "pyL1vars001", "version": 2.0, "stage": "download",
				FieldTrace: "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736", FieldSpanID: "00f067aa0ba902b7", FieldTraceSampled: true,
			},
			absent: []string{"level", "msg"},
		},
		{
			name:   "error without trace",
			ctx:    context.Background(),
			log:    func(ctx context.Context, l *slog.Logger) { l.ErrorContext(ctx, "boom") },
			want:   map[string]any{"severity": "ERROR", "message": "boom"},
			absent: []string{FieldTrace},
		},
		{
			name:   "debug below level is dropped",
			ctx:    context.Background(),
			log:    func(ctx context.Context, l *slog.Logger) { l.DebugContext(ctx, "hidden") },
			want:   nil,
			absent: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(tt.ctx, New(&buf, "info", "proj"))
			if tt.want == nil {
				if buf.Len() != 0 {
					t.Fatalf("expected no output, got %s", buf.String())
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not one JSON object: %v: %s", err, buf.String())
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("field %s present, want absent", k)
				}
			}
		})
	}
}

// An attribute named like a record field is data, not the record's level.
func TestAttributeNamedLevelIsKept(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "info", "p").Info("enriched", "level", "básico")
	if !strings.Contains(buf.String(), `"level":"básico"`) || !strings.Contains(buf.String(), `"severity":"INFO"`) {
		t.Fatalf("log line %s", buf.String())
	}
}
