package headwater_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
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

const tracedFlowsPy = `from headwater import flow, task


@task
def shout(text: str) -> str:
    return text.upper()


@flow
def greet(name: str = "world") -> str:
    return shout(f"hello {name}")


if __name__ == "__main__":
    greet.serve("go-traced")
`

// exportedSpan is one span as Python's console exporter prints it (OTEL_TRACES_EXPORTER=console).
type exportedSpan struct {
	Name    string `json:"name"`
	Context struct {
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
	} `json:"context"`
	ParentID   *string        `json:"parent_id"`
	Attributes map[string]any `json:"attributes"`
}

func (s exportedSpan) parent() string {
	if s.ParentID == nil {
		return ""
	}
	return *s.ParentID
}

// consoleSpan matches one span in a console exporter's output: an indented JSON object.
var consoleSpan = regexp.MustCompile(`(?ms)^\{\n.*?\n\}$`)

func exportedSpans(t *testing.T, output string) []exportedSpan {
	t.Helper()
	var spans []exportedSpan
	for _, text := range consoleSpan.FindAllString(output, -1) {
		var span exportedSpan
		if err := json.Unmarshal([]byte(text), &span); err != nil {
			t.Fatalf("a span the exporter printed does not parse (%v):\n%s", err, text)
		}
		spans = append(spans, span)
	}
	return spans
}

// spansNamed returns the spans called name (in trace traceID), failing when there are none.
func spansNamed(t *testing.T, spans []exportedSpan, traceID, name, output string) []exportedSpan {
	t.Helper()
	var found []exportedSpan
	for _, span := range spans {
		if span.Name == name && span.Context.TraceID == traceID {
			found = append(found, span)
		}
	}
	if len(found) == 0 {
		t.Fatalf("no %q span in trace %s among:\n%s", name, traceID, output)
	}
	return found
}

// One trace from a Go caller, through the service, into the flow run a served Python process
// executes and its task run: the Go side's spans from an in-memory exporter, the service's and
// the served process's from their console exporters (the standard OTEL_* variables).
func TestOneTraceFromAGoCallerThroughTheServiceIntoTheFlowAndItsTask(t *testing.T) {
	dir := t.TempDir()
	exporting := []string{"OTEL_TRACES_EXPORTER=console", "OTEL_BSP_SCHEDULE_DELAY=50"}
	s, err := startServer(filepath.Join(dir, "server"), exporting...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	served, err := serveSource(s, filepath.Join(dir, "flows"), tracedFlowsPy, "greet/go-traced", append(exporting, "OTEL_SERVICE_NAME=go-served")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(served.stop)
	spans := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	client, err := headwater.Dial(s.address, headwater.WithTracerProvider(provider))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx, caller := provider.Tracer("caller").Start(testContext(t), "caller")
	run, err := client.RunDeployment(ctx, "greet/go-traced", headwater.RunOptions{Parameters: map[string]any{"name": "gopher"}})
	caller.End()
	if err != nil {
		t.Fatal(err)
	}
	final, err := client.WaitForFlowRun(testContext(t), run.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState().GetType() != completed {
		t.Fatalf("the run ended %v:\n%s", final.GetState().GetType(), served.output())
	}
	served.stop() // each exporter flushes on shutdown
	s.stop()

	// The Go side: the client's call under the caller's span.
	const createName = "headwater.v1.DeploymentService/CreateFlowRunFromDeployment"
	var call sdktrace.ReadOnlySpan
	for _, span := range spans.GetSpans().Snapshots() {
		if span.Name() == createName && span.SpanKind() == trace.SpanKindClient {
			call = span
		}
	}
	if call == nil || call.Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Fatalf("no %s client span under the caller's span among %v", createName, spans.GetSpans())
	}
	traceID := "0x" + caller.SpanContext().TraceID().String()

	// The service: its span for the call continues the Go client's span.
	serverOutput := s.output()
	serverSpans := exportedSpans(t, serverOutput)
	create := spansNamed(t, serverSpans, traceID, createName, serverOutput)[0]
	if create.parent() != "0x"+call.SpanContext().SpanID().String() {
		t.Fatalf("the service's %s span has parent %s, not the Go client's span %s", createName, create.parent(), call.SpanContext().SpanID())
	}
	if create.Attributes["headwater.flow_run.id"] != run.GetId() {
		t.Fatalf("the service's span names run %v, not %s", create.Attributes["headwater.flow_run.id"], run.GetId())
	}

	// The served process: the flow run's span under the call that created the run, the task
	// run's span under the flow run's.
	servedOutput := served.output()
	servedSpans := exportedSpans(t, servedOutput)
	flowSpan := spansNamed(t, servedSpans, traceID, "flow greet", servedOutput)[0]
	if flowSpan.parent() != create.Context.SpanID || flowSpan.Attributes["headwater.flow_run.id"] != run.GetId() {
		t.Fatalf("the flow run's span %+v is not the run's, under the service's span %s", flowSpan, create.Context.SpanID)
	}
	if flowSpan.Attributes["headwater.state.type"] != "COMPLETED" {
		t.Fatalf("the flow run's span ended %v", flowSpan.Attributes["headwater.state.type"])
	}
	taskSpan := spansNamed(t, servedSpans, traceID, "task shout", servedOutput)[0]
	if taskSpan.parent() != flowSpan.Context.SpanID {
		t.Fatalf("the task run's span has parent %s, not the flow run's span %s", taskSpan.parent(), flowSpan.Context.SpanID)
	}

	// And the service's spans for what the served engine reported on its stream hang under
	// the engine's spans: the flow run's state changes under the flow run's span, the task
	// run's under the task run's.
	for _, want := range []struct{ name, parent, attribute, id string }{
		{"headwater.v1.FlowRunService/SetFlowRunState", flowSpan.Context.SpanID, "headwater.flow_run.id", run.GetId()},
		{"headwater.v1.TaskRunService/SetTaskRunState", taskSpan.Context.SpanID, "headwater.task_run.id", fmt.Sprint(taskSpan.Attributes["headwater.task_run.id"])},
	} {
		under := 0
		for _, span := range spansNamed(t, serverSpans, traceID, want.name, serverOutput) {
			if span.parent() == want.parent && span.Attributes[want.attribute] == want.id {
				under++
			}
		}
		if under == 0 {
			t.Fatalf("no %s span for %s under span %s:\n%s", want.name, want.id, want.parent, serverOutput)
		}
	}
}
