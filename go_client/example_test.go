package headwater_test

import (
	"context"
	"fmt"

	headwater "github.com/headwater/headwater/go_client"
)

// The README's "From Go" snippet is the body of runHello between the README markers, word for
// word (tests/examples/test_readme_polyglot.py compares them); the example runs it against the
// test server, where flows.py serves hello/daily as in the README.
func Example_runADeploymentAndWatchIt() {
	if err := runHello(context.Background(), shared.address); err != nil {
		fmt.Println(err)
	}
	// Output:
	// STATE_TYPE_SCHEDULED
	// STATE_TYPE_PENDING
	// STATE_TYPE_RUNNING
	// STATE_TYPE_COMPLETED
	// hello gopher
}

func runHello(ctx context.Context, address string) error {
	// README begin
	client, err := headwater.Dial(address) // "127.0.0.1:4200"
	if err != nil {
		return err
	}
	defer client.Close()
	parameters := map[string]any{"name": "gopher"}
	run, err := client.RunDeployment(ctx, "hello/daily", headwater.RunOptions{Parameters: parameters})
	if err != nil {
		return err // errors.Is(err, headwater.ErrNotFound) when nothing deployed hello/daily
	}
	for event, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{StatesOnly: true}) {
		if err != nil {
			return err // a dropped stream is resumed; this is what could not be
		}
		fmt.Println(event.GetStateChanged().GetType())
	}
	logs, err := client.ListLogs(ctx, run.GetId())
	if err != nil {
		return err
	}
	for _, line := range logs {
		fmt.Println(line.GetMessage())
	}
	// README end
	return nil
}
