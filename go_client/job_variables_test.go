package headwater_test

import (
	"encoding/json"
	"reflect"
	"testing"

	headwater "github.com/headwater/headwater/go_client"
)

func TestRunDeploymentKeepsTheRunsOwnJobVariables(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, shared.address)
	want := map[string]any{"env": map[string]any{"HELLO_FROM": "go"}}
	run, err := client.RunDeployment(ctx, "hello/daily", headwater.RunOptions{JobVariables: want})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	final, err := client.GetFlowRun(ctx, run.GetId())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(final.GetJobVariablesJson()), &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("the run's job variables are %q (%v), want %v", final.GetJobVariablesJson(), err, want)
	}
	if final.GetState().GetType() != completed {
		t.Fatalf("the run ended %v", final.GetState().GetType())
	}
}
