package headwater_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	headwater "github.com/headwater/headwater/go_client"
	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

const (
	pending   = headwaterv1.StateType_STATE_TYPE_PENDING
	running   = headwaterv1.StateType_STATE_TYPE_RUNNING
	completed = headwaterv1.StateType_STATE_TYPE_COMPLETED
	scheduled = headwaterv1.StateType_STATE_TYPE_SCHEDULED
	cancelled = headwaterv1.StateType_STATE_TYPE_CANCELLED
)

// A test's calls end with the test: nothing here waits on wall-clock speed, the deadline only
// keeps a broken build from hanging.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, address string) *headwater.Client {
	client, err := headwater.Dial(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func uniqueName(prefix string) string {
	return prefix + "-" + uuid.NewString()[:8]
}

// proposeState plays the engine that runs a flow: it moves the run to a state.
func proposeState(t *testing.T, ctx context.Context, client *headwater.Client, runID string, state headwaterv1.StateType) {
	t.Helper()
	answer, err := client.FlowRuns.SetFlowRunState(ctx, &headwaterv1.SetFlowRunStateRequest{
		FlowRunId: runID,
		State:     &headwaterv1.State{Type: state},
	}, grpc.WaitForReady(true)) // after a server restart the channel may still be reconnecting
	if err != nil {
		t.Fatalf("SetFlowRunState %s: %v", state, headwater.FromError(err))
	}
	if answer.GetResult().GetDecision() != headwaterv1.Decision_DECISION_ACCEPT {
		t.Fatalf("SetFlowRunState %s was answered %s", state, answer.GetResult().GetDecision())
	}
}

func collectStates(t *testing.T, events []*headwaterv1.FlowRunEvent) []headwaterv1.StateType {
	t.Helper()
	var states []headwaterv1.StateType
	for _, event := range events {
		if state := event.GetStateChanged(); state != nil {
			states = append(states, state.GetType())
		}
	}
	return states
}

func TestRunDeploymentWatchToCompletedAndReadLogs(t *testing.T) {
	onEachDatabase(t, func(t *testing.T, s *server) {
		ctx := testContext(t)
		client := dial(t, s.address)
		run, err := client.RunDeployment(ctx, "hello/daily", headwater.RunOptions{
			Parameters: map[string]any{"name": "gopher"},
			Tags:       []string{"from-go"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var events []*headwaterv1.FlowRunEvent
		for event, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, event)
		}
		states := collectStates(t, events)
		if want := []headwaterv1.StateType{scheduled, pending, running, completed}; !slices.Equal(states, want) {
			t.Fatalf("the run went through %v, want %v", states, want)
		}
		final, err := client.GetFlowRun(ctx, run.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if final.GetState().GetType() != completed || final.GetState().GetResult().GetJson() != `"gopher"` {
			t.Fatalf("final state %v with result %q", final.GetState().GetType(), final.GetState().GetResult().GetJson())
		}
		if !slices.Contains(final.GetTags(), "from-go") || final.GetParametersJson() != `{"name": "gopher"}` && final.GetParametersJson() != `{"name":"gopher"}` {
			t.Fatalf("tags %v, parameters %s", final.GetTags(), final.GetParametersJson())
		}
		logs, err := client.ListLogs(ctx, run.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(logs, func(l *headwaterv1.Log) bool { return l.GetMessage() == "hello gopher" }) {
			t.Fatalf("no 'hello gopher' among the run's logs %v", logs)
		}
	})
}

func TestCreateFlowRunByNameAndWatchWhatAnEngineDoes(t *testing.T) {
	onEachDatabase(t, func(t *testing.T, s *server) {
		ctx := testContext(t)
		client := dial(t, s.address)
		run, err := client.CreateFlowRun(ctx, uniqueName("go-etl"), headwater.RunOptions{
			Parameters: map[string]int{"day": 27},
		})
		if err != nil {
			t.Fatal(err)
		}
		if run.GetState().GetType() != pending || run.GetParametersJson() == "" {
			t.Fatalf("created %v with parameters %q", run.GetState().GetType(), run.GetParametersJson())
		}
		proposeState(t, ctx, client, run.GetId(), running)
		_, err = client.Logs.CreateLogs(ctx, &headwaterv1.CreateLogsRequest{Logs: []*headwaterv1.Log{{
			FlowRunId: run.GetId(), LoggerName: "go", Level: 20, Message: "working",
		}}})
		if err != nil {
			t.Fatal(headwater.FromError(err))
		}
		proposeState(t, ctx, client, run.GetId(), completed)
		final, err := client.WaitForFlowRun(ctx, run.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if final.GetState().GetType() != completed {
			t.Fatalf("WaitForFlowRun returned a run in %v", final.GetState().GetType())
		}
		var events []*headwaterv1.FlowRunEvent
		for event, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, event)
		}
		if len(events) != 4 || events[2].GetLog().GetMessage() != "working" {
			t.Fatalf("events %v", events)
		}
		// A watch that starts after the last event of a finished run yields nothing and ends.
		for event, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{AfterSequence: final.GetLastSequence()}) {
			t.Fatalf("a watch after the end yielded %v, %v", event, err)
		}
	})
}

func TestTypedErrorsCarryTheStatusDetails(t *testing.T) {
	onEachDatabase(t, func(t *testing.T, s *server) {
		ctx := testContext(t)
		client := dial(t, s.address)

		missing := uuid.NewString()
		_, err := client.GetFlowRun(ctx, missing)
		var e *headwater.Error
		if !errors.Is(err, headwater.ErrNotFound) || !errors.As(err, &e) {
			t.Fatalf("GetFlowRun of an unknown id: %v", err)
		}
		if e.Reason != "FLOW_RUN_NOT_FOUND" || e.Domain != "headwater.dev" || e.ResourceType != "headwater.v1.flow_run" || e.ResourceName != missing {
			t.Fatalf("details of NOT_FOUND: %q %q %q %q", e.Reason, e.Domain, e.ResourceType, e.ResourceName)
		}
		if errors.Is(err, headwater.ErrInvalidArgument) {
			t.Fatal("a NOT_FOUND error also matched ErrInvalidArgument")
		}

		_, err = client.GetFlowRun(ctx, "not-a-uuid")
		if !errors.Is(err, headwater.ErrInvalidArgument) || !errors.As(err, &e) {
			t.Fatalf("GetFlowRun of a malformed id: %v", err)
		}
		if len(e.Violations) == 0 || e.Violations[0].Field != "flow_run_id" || !strings.Contains(e.Error(), "not-a-uuid") {
			t.Fatalf("details of INVALID_ARGUMENT: %+v", e)
		}

		_, err = client.RunDeployment(ctx, "hello/nowhere", headwater.RunOptions{})
		if !errors.Is(err, headwater.ErrNotFound) {
			t.Fatalf("RunDeployment of an unknown deployment: %v", err)
		}

		_, err = client.CreateFlowRun(ctx, "go-etl", headwater.RunOptions{Parameters: func() {}})
		if err == nil || errors.As(err, &e) {
			t.Fatalf("parameters that are no JSON gave %v", err)
		}

		flow, key := uniqueName("go-once"), uuid.NewString()
		first, err := client.CreateFlowRun(ctx, flow, headwater.RunOptions{IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.CreateFlowRun(ctx, flow, headwater.RunOptions{IdempotencyKey: key})
		if !errors.Is(err, headwater.ErrAlreadyExists) || !errors.As(err, &e) || e.Metadata["existing_flow_run_id"] != first.GetId() {
			t.Fatalf("a second run with the same idempotency key: %v (%+v)", err, e)
		}
	})
}

func TestListFlowRunsFiltersAndLimits(t *testing.T) {
	onEachDatabase(t, func(t *testing.T, s *server) {
		ctx := testContext(t)
		client := dial(t, s.address)
		flow := uniqueName("go-list")
		var ids []string
		for i := range 3 {
			run, err := client.CreateFlowRun(ctx, flow, headwater.RunOptions{Name: fmt.Sprintf("%s-%d", flow, i), Tags: []string{flow}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, run.GetId())
		}
		runs, err := client.ListFlowRuns(ctx, headwater.ListOptions{FlowName: flow})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 3 {
			t.Fatalf("listed %d runs of %s, want 3", len(runs), flow)
		}
		newest, err := client.ListFlowRuns(ctx, headwater.ListOptions{Tags: []string{flow}, States: []headwaterv1.StateType{pending}, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(newest) != 2 || newest[0].GetId() != ids[2] || newest[1].GetId() != ids[1] {
			t.Fatalf("the 2 newest runs: %v", newest)
		}
		none, err := client.ListFlowRuns(ctx, headwater.ListOptions{FlowName: flow, States: []headwaterv1.StateType{completed}})
		if err != nil || len(none) != 0 {
			t.Fatalf("COMPLETED runs of a flow with none: %v, %v", none, err)
		}
	})
}

func TestCancelAPendingRunAndThenAgain(t *testing.T) {
	onEachDatabase(t, func(t *testing.T, s *server) {
		ctx := testContext(t)
		client := dial(t, s.address)
		run, err := client.CreateFlowRun(ctx, uniqueName("go-cancel"), headwater.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cancelledRun, err := client.CancelFlowRun(ctx, run.GetId(), "not needed")
		if err != nil {
			t.Fatal(err)
		}
		if cancelledRun.GetState().GetType() != cancelled {
			t.Fatalf("a cancelled PENDING run is %v", cancelledRun.GetState().GetType())
		}
		_, err = client.CancelFlowRun(ctx, run.GetId(), "again")
		if !errors.Is(err, headwater.ErrFailedPrecondition) {
			t.Fatalf("cancelling a finished run: %v", err)
		}
	})
}

func TestDialRefusesAnEmptyAddressAndReportsADownServer(t *testing.T) {
	if _, err := headwater.Dial(""); err == nil {
		t.Fatal("Dial(\"\") succeeded")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	_, err = client.GetFlowRun(testContext(t), uuid.NewString())
	if !errors.Is(err, headwater.ErrUnavailable) {
		t.Fatalf("a call to a port nobody listens on: %v", err)
	}
}
