package headwater_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	headwater "github.com/headwater/headwater/go_client"
)

// The service continues the Go caller's trace: its span for the RPC has the caller's trace id
// and the client span as parent. The server prints its spans (OTEL_TRACES_EXPORTER=console).
func TestTheServiceContinuesTheCallersTrace(t *testing.T) {
	s, err := startServer(filepath.Join(t.TempDir(), "server"), "OTEL_TRACES_EXPORTER=console", "OTEL_BSP_SCHEDULE_DELAY=50")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	spans := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	client, err := headwater.Dial(s.address, headwater.WithTracerProvider(provider))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx, caller := provider.Tracer("caller").Start(testContext(t), "caller")
	_, err = client.CreateFlowRun(ctx, uniqueName("go-traced"), headwater.RunOptions{})
	caller.End()
	if err != nil {
		t.Fatal(err)
	}
	var rpc sdktrace.ReadOnlySpan
	for _, span := range spans.GetSpans().Snapshots() {
		if span.SpanKind() == trace.SpanKindClient {
			rpc = span
		}
	}
	if rpc == nil || rpc.Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Fatalf("no client span under the caller's span among %v", spans.GetSpans())
	}

	s.stop() // the server's exporter flushes on shutdown
	output := s.output()
	for _, want := range []string{
		fmt.Sprintf(`"trace_id": "0x%s"`, caller.SpanContext().TraceID()),
		fmt.Sprintf(`"parent_id": "0x%s"`, rpc.SpanContext().SpanID()),
	} {
		if !strings.Contains(output, want) {
			t.Fatalf("the server's spans have no %s:\n%s", want, output)
		}
	}
}

// Without any tracer provider configured the caller's context still travels: a trace started
// elsewhere (here only a remote span context) is continued by the service.
func TestTraceContextTravelsWithoutATracerProvider(t *testing.T) {
	s, err := startServer(filepath.Join(t.TempDir(), "server"), "OTEL_TRACES_EXPORTER=console", "OTEL_BSP_SCHEDULE_DELAY=50")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	client := dial(t, s.address)
	traceID, _ := trace.TraceIDFromHex(strings.ReplaceAll(uuid.NewString(), "-", ""))
	spanID, _ := trace.SpanIDFromHex(strings.ReplaceAll(uuid.NewString(), "-", "")[:16])
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	if _, err := client.CreateFlowRun(ctx, uniqueName("go-traced"), headwater.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	s.stop()
	want := fmt.Sprintf(`"trace_id": "0x%s"`, traceID)
	if !strings.Contains(s.output(), want) {
		t.Fatalf("the server's spans have no %s:\n%s", want, s.output())
	}
}
