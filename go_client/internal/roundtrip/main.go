// Command roundtrip is the Go side of the bench's client_round_trip workload
// (bench/workloads/client_round_trip.py): runs times, it creates a run of a deployment, cancels
// it and watches it to its end, and prints the seconds each took as one JSON line.
//
//	roundtrip -address 127.0.0.1:4200 -deployment <id> -runs 100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	headwater "github.com/headwater/headwater/go_client"
	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

func main() {
	address := flag.String("address", "", "the server, host:port")
	deployment := flag.String("deployment", "", "the deployment's id")
	runs := flag.Int("runs", 100, "round trips to time, after one untimed warm-up")
	flag.Parse()
	seconds, err := measure(*address, *deployment, *runs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"seconds": seconds}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func measure(address, deployment string, runs int) ([]float64, error) {
	client, err := headwater.Dial(address)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	ctx := context.Background()
	var seconds []float64
	for i := 0; i <= runs; i++ {
		start := time.Now()
		if err := roundTrip(ctx, client, deployment); err != nil {
			return nil, err
		}
		if i > 0 { // the first warms the connection up
			seconds = append(seconds, time.Since(start).Seconds())
		}
	}
	return seconds, nil
}

// roundTrip is what a Go service starting and following a run does, with the run ended by a
// cancel instead of a worker so that only the client and the service are measured.
func roundTrip(ctx context.Context, client *headwater.Client, deployment string) error {
	created, err := client.Deployments.CreateFlowRunFromDeployment(ctx, &headwaterv1.CreateFlowRunFromDeploymentRequest{DeploymentId: deployment})
	if err != nil {
		return headwater.FromError(err)
	}
	id := created.GetFlowRun().GetId()
	if _, err := client.CancelFlowRun(ctx, id, "bench"); err != nil {
		return err
	}
	for _, err := range client.Watch(ctx, id, headwater.WatchOptions{}) {
		if err != nil {
			return err
		}
	}
	return nil
}
