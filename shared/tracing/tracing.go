// Package tracing sets up OpenTelemetry for the pipeline and carries the W3C
// trace context across Pub/Sub messages (DESIGN.md section 3: every message
// has a `traceparent` attribute, so one trace follows a lesson through every
// function).
//
// No exporter is linked in here: production code passes a Cloud Trace (or
// OTLP) exporter through Options.Exporter, built where that dependency is
// wanted; without one, spans are still created and recorded, so trace and
// span ids appear in logs and travel in messages, but nothing is exported.
package tracing

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names the tracer the pipeline's spans come from.
const InstrumentationName = "github.com/coursekb/pipeline"

// Options configure Setup.
type Options struct {
	// ServiceName is the resource's service.name (the function's name).
	ServiceName string
	// Exporter receives finished spans in batches. Nil: spans are recorded
	// (they have ids and reach logs and messages) but not exported.
	Exporter sdktrace.SpanExporter
	// SampleRatio is the fraction of new traces sampled, in (0, 1]. Zero
	// means 1 (every trace). A trace started upstream keeps its parent's
	// sampling decision, so a lesson's trace is whole or absent.
	SampleRatio float64
}

// propagator is the wire format of trace context in message attributes and
// HTTP headers. It is fixed, not read from the global, so that Inject and
// Extract keep the contract even where Setup was never called (tests, tools).
var propagator = propagation.TraceContext{}

// Setup installs a TracerProvider and the W3C TraceContext propagator as the
// process-wide defaults. Call shutdown before the process exits: it flushes
// spans still in the batcher.
func Setup(ctx context.Context, opts Options) (shutdown func(context.Context) error, err error) {
	if opts.ServiceName == "" {
		return nil, errors.New("tracing: Options.ServiceName is required")
	}
	ratio := opts.SampleRatio
	switch {
	case ratio == 0:
		ratio = 1
	case ratio < 0 || ratio > 1:
		return nil, fmt.Errorf("tracing: SampleRatio %v is outside (0, 1]", opts.SampleRatio)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(attribute.String("service.name", opts.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("tracing: build resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	}
	if opts.Exporter != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(opts.Exporter))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// Inject writes the trace context of ctx (traceparent, and tracestate when
// there is one) into Pub/Sub message attributes. Without a valid span in ctx
// it writes nothing. attrs must not be nil (a nil map is left alone).
func Inject(ctx context.Context, attrs map[string]string) {
	if attrs == nil {
		return
	}
	propagator.Inject(ctx, propagation.MapCarrier(attrs))
}

// Extract returns ctx carrying the remote span context found in message
// attributes (or HTTP headers copied into a map); spans started from it
// continue the sender's trace. Missing or malformed attributes leave ctx as
// it is.
func Extract(ctx context.Context, attrs map[string]string) context.Context {
	if len(attrs) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(attrs))
}

// Start starts a span named name as a child of the span in ctx (local or
// extracted) using the global TracerProvider. End the span.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer(InstrumentationName).Start(ctx, name, trace.WithAttributes(attrs...))
}

// TraceID returns the hex trace id of the span in ctx, or "" when there is
// none. It is meant for log fields.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// SpanID returns the hex span id of the span in ctx, or "" when there is none.
func SpanID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasSpanID() {
		return ""
	}
	return sc.SpanID().String()
}
