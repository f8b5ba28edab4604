package tracing

import (
	"context"
	"regexp"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// recorder keeps exported spans; unlike tracetest.InMemoryExporter it does
// not forget them on Shutdown, which Setup's shutdown calls.
type recorder struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (r *recorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, spans...)
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }

func (r *recorder) byName(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no exported span named %q (have %d spans)", name, len(r.spans))
	return nil
}

func setup(t *testing.T, opts Options) func(context.Context) error {
	t.Helper()
	shutdown, err := Setup(t.Context(), opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return shutdown
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)

// A span started by the publisher continues in the receiver after its
// context went through message attributes: same trace, receiver's span is
// the publisher's child, and both reach the exporter.
func TestInjectExtractRoundTrip(t *testing.T) {
	rec := &recorder{}
	shutdown := setup(t, Options{ServiceName: "test", Exporter: rec})

	ctx, pub := Start(t.Context(), "publish", attribute.String("lessonId", "L1"))
	attrs := map[string]string{"lessonId": "L1"}
	Inject(ctx, attrs)
	pub.End()

	m := traceparentRE.FindStringSubmatch(attrs["traceparent"])
	if m == nil {
		t.Fatalf("traceparent = %q, want 00-<trace>-<span>-01", attrs["traceparent"])
	}
	if m[1] != TraceID(ctx) || m[2] != SpanID(ctx) {
		t.Fatalf("traceparent %q does not carry trace %s span %s", attrs["traceparent"], TraceID(ctx), SpanID(ctx))
	}
	if attrs["lessonId"] != "L1" {
		t.Fatalf("Inject changed other attributes: %v", attrs)
	}

	received := Extract(context.Background(), attrs)
	if got := TraceID(received); got != TraceID(ctx) {
		t.Fatalf("extracted trace id %q, want %q", got, TraceID(ctx))
	}
	rctx, sub := Start(received, "receive")
	if TraceID(rctx) != TraceID(ctx) || SpanID(rctx) == SpanID(ctx) {
		t.Fatalf("receive span trace %s span %s; publisher trace %s span %s", TraceID(rctx), SpanID(rctx), TraceID(ctx), SpanID(ctx))
	}
	sub.End()

	if err := shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	p, r := rec.byName(t, "publish"), rec.byName(t, "receive")
	if r.Parent().SpanID() != p.SpanContext().SpanID() || !r.Parent().IsRemote() {
		t.Fatalf("receive's parent is %v, want remote %v", r.Parent().SpanID(), p.SpanContext().SpanID())
	}
	if r.SpanContext().TraceID() != p.SpanContext().TraceID() {
		t.Fatal("receive and publish spans are in different traces")
	}
	if got := p.Resource().Set(); !got.HasValue("service.name") {
		t.Fatalf("resource has no service.name: %v", got)
	} else if v, _ := got.Value("service.name"); v.AsString() != "test" {
		t.Fatalf("service.name = %q", v.AsString())
	}
}

// Without a span there is nothing to propagate: no attribute is written,
// and the ids for logs are empty.
func TestNoSpanNoAttribute(t *testing.T) {
	t.Parallel()
	attrs := map[string]string{"lessonId": "L1"}
	Inject(context.Background(), attrs)
	if len(attrs) != 1 {
		t.Fatalf("Inject without a span wrote %v", attrs)
	}
	Inject(context.Background(), nil) // must not panic
	if TraceID(context.Background()) != "" || SpanID(context.Background()) != "" {
		t.Fatal("ids of an empty context are not empty")
	}
	for _, bad := range []map[string]string{nil, {}, {"traceparent": "garbage"}, {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"}} {
		if id := TraceID(Extract(context.Background(), bad)); id != "" {
			t.Errorf("Extract(%v) gave trace id %q", bad, id)
		}
	}
}

// Inject and Extract use the W3C format whatever the global propagator is,
// and carry tracestate along.
func TestTraceStateTravels(t *testing.T) {
	t.Parallel()
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
	})
	attrs := map[string]string{}
	Inject(trace.ContextWithSpanContext(context.Background(), sc), attrs)
	want := "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"
	if attrs["traceparent"] != want || attrs["tracestate"] != "vendor=abc" {
		t.Fatalf("attributes %v, want traceparent %s and tracestate vendor=abc", attrs, want)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), attrs))
	if !got.Equal(sc.WithRemote(true)) {
		t.Fatalf("extracted %+v, want %+v", got, sc)
	}
}

// With no exporter, spans still have ids and record, so logs and messages
// carry them.
func TestNilExporterStillRecords(t *testing.T) {
	setup(t, Options{ServiceName: "test"})
	ctx, span := Start(t.Context(), "work")
	defer span.End()
	if !span.IsRecording() || TraceID(ctx) == "" || SpanID(ctx) == "" {
		t.Fatalf("recording=%v trace=%q span=%q", span.IsRecording(), TraceID(ctx), SpanID(ctx))
	}
}

// A sampled-out root is not recorded, but a child of a sampled remote parent
// is, whatever the ratio: a lesson's trace is kept whole.
func TestSamplingFollowsParent(t *testing.T) {
	setup(t, Options{ServiceName: "test", SampleRatio: 1e-12})
	_, root := Start(t.Context(), "root")
	root.End()
	if root.SpanContext().IsSampled() {
		t.Fatal("root sampled at ratio 1e-12")
	}
	parent := map[string]string{"traceparent": "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"}
	_, child := Start(Extract(t.Context(), parent), "child")
	defer child.End()
	if !child.SpanContext().IsSampled() {
		t.Fatal("child of a sampled parent was not sampled")
	}
}

func TestSetupRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{}, {ServiceName: "x", SampleRatio: -0.1}, {ServiceName: "x", SampleRatio: 1.5}} {
		if _, err := Setup(t.Context(), o); err == nil {
			t.Errorf("Setup(%+v) accepted", o)
		}
	}
}

func TestNewExporterNames(t *testing.T) {
	tests := []struct {
		kind    string
		wantNil bool
		wantErr bool
	}{
		{"", true, false},
		{ExporterNone, true, false},
		{"jaeger", true, true},
	}
	for _, tt := range tests {
		exp, err := NewExporter(t.Context(), tt.kind, "p")
		if (err != nil) != tt.wantErr || (exp == nil) != tt.wantNil {
			t.Errorf("NewExporter(%q) = %v, %v", tt.kind, exp, err)
		}
	}
}
