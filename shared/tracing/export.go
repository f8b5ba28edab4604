package tracing

import (
	"context"
	"fmt"
	"sync"

	texporter "github.com/GoogleCloudPlatform/opentelemetry-operations-go/exporter/trace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Exporter names accepted by NewExporter (the TRACE_EXPORTER variable).
const (
	ExporterNone       = "none"
	ExporterCloudTrace = "cloudtrace"
)

// NewExporter returns the span exporter named by kind: "cloudtrace" sends
// spans to Cloud Trace in projectID; "none" (or "") exports nothing, as on
// one machine where there is no Cloud Trace to send to.
func NewExporter(ctx context.Context, kind, projectID string) (sdktrace.SpanExporter, error) {
	switch kind {
	case "", ExporterNone:
		return nil, nil
	case ExporterCloudTrace:
		exp, err := texporter.New(texporter.WithProjectID(projectID), texporter.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("tracing: cloud trace exporter: %w", err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("tracing: unknown exporter %q (want %q or %q)", kind, ExporterNone, ExporterCloudTrace)
}

var (
	processMu   sync.Mutex
	processDone bool
)

// SetupProcess sets tracing up once per process. Locally every function
// shares one process; in Cloud Functions each runs alone, and the first to
// start names the service. A failed setup is not remembered: the next call
// (the next request's start-up) tries again.
func SetupProcess(ctx context.Context, service, exporter, projectID string, ratio float64) error {
	processMu.Lock()
	defer processMu.Unlock()
	if processDone {
		return nil
	}
	exp, err := NewExporter(ctx, exporter, projectID)
	if err != nil {
		return err
	}
	if _, err := Setup(ctx, Options{ServiceName: service, Exporter: exp, SampleRatio: ratio}); err != nil {
		return err
	}
	processDone = true
	return nil
}
