package headwater_test

import (
	"path/filepath"
	"slices"
	"testing"

	headwater "github.com/headwater/headwater/go_client"
	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

// A server restart in the middle of a watch drops its stream; the watch reconnects and yields
// the events that happened meanwhile and after, each once, in order.
func TestWatchResumesAfterTheServerRestarts(t *testing.T) {
	ctx := testContext(t)
	s, err := startServer(filepath.Join(t.TempDir(), "server"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	client := dial(t, s.address)
	run, err := client.CreateFlowRun(ctx, uniqueName("go-resume"), headwater.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		event *headwaterv1.FlowRunEvent
		err   error
	}
	results := make(chan result)
	go func() {
		defer close(results)
		for event, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{}) {
			results <- result{event, err}
		}
	}()
	first := <-results
	if first.err != nil || first.event.GetStateChanged().GetType() != pending {
		t.Fatalf("the first event: %v, %v", first.event, first.err)
	}

	if err := s.restart(); err != nil {
		t.Fatal(err)
	}
	proposeState(t, ctx, client, run.GetId(), running)
	proposeState(t, ctx, client, run.GetId(), completed)

	events := []*headwaterv1.FlowRunEvent{first.event}
	for r := range results {
		if r.err != nil {
			t.Fatalf("the watch failed after %d events: %v\n%s", len(events), r.err, s.output())
		}
		events = append(events, r.event)
	}
	states := collectStates(t, events)
	if want := []headwaterv1.StateType{pending, running, completed}; !slices.Equal(states, want) {
		t.Fatalf("watched %v, want %v", states, want)
	}
	for i := 1; i < len(events); i++ {
		if events[i].GetSequence() <= events[i-1].GetSequence() {
			t.Fatalf("sequence %d after %d", events[i].GetSequence(), events[i-1].GetSequence())
		}
	}
}
