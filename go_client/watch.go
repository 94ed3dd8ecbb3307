package headwater

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

// WatchOptions tune Watch; the zero value watches everything from the run's first event.
type WatchOptions struct {
	// AfterSequence skips the events up to this sequence number (a FlowRun's LastSequence, or
	// the Sequence of the last event a previous watch saw).
	AfterSequence int64
	// StatesOnly leaves out task-run states and log lines: only the run's own states.
	StatesOnly bool
	// MaxResumes is how many times in a row the watch reconnects after the stream dropped
	// without any new event in between; 0 means 20. Each wait doubles, from 100 ms to 2 s.
	MaxResumes int
}

const (
	defaultMaxResumes = 20
	firstResumeWait   = 100 * time.Millisecond
	longestResumeWait = 2 * time.Second
)

// Watch yields a flow run's events (its states, its task runs' states, log lines) in order,
// first those already stored, then live ones, and ends after the run reaches a final state.
//
// When the stream drops (the server restarts, a proxy cuts it) Watch reconnects and carries on
// after the last event it yielded, so no event is lost or repeated; a reconnect waits for the
// server to be back (bound it with ctx). It stops with an error for anything else, or when the
// reconnects in a row exceed WatchOptions.MaxResumes:
//
//	for event, err := range client.Watch(ctx, run.GetId(), headwater.WatchOptions{}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(event.GetSequence(), event.GetStateChanged().GetType())
//	}
func (c *Client) Watch(ctx context.Context, flowRunID string, options WatchOptions) iter.Seq2[*headwaterv1.FlowRunEvent, error] {
	return func(yield func(*headwaterv1.FlowRunEvent, error) bool) {
		w := watcher{client: c, flowRunID: flowRunID, options: options, after: options.AfterSequence}
		w.run(ctx, yield)
	}
}

type watcher struct {
	client    *Client
	flowRunID string
	options   WatchOptions
	after     int64 // the sequence of the last event yielded
	final     bool  // the run's latest known state is final
}

func (w *watcher) run(ctx context.Context, yield func(*headwaterv1.FlowRunEvent, error) bool) {
	maxResumes := w.options.MaxResumes
	if maxResumes <= 0 {
		maxResumes = defaultMaxResumes
	}
	wait := firstResumeWait
	for resumes := 0; ; resumes++ {
		var callOptions []grpc.CallOption
		if resumes > 0 {
			// A resumed watch waits for the server to come back instead of failing at once.
			callOptions = append(callOptions, grpc.WaitForReady(true))
		}
		before := w.after
		done, err := w.stream(ctx, yield, callOptions)
		if done {
			return
		}
		if w.after > before {
			resumes, wait = 0, firstResumeWait
		}
		if !resumable(ctx, err) || resumes >= maxResumes {
			if err == nil {
				err = errors.New("headwater: the watch stream kept ending before the run did")
			}
			yield(nil, err)
			return
		}
		select {
		case <-ctx.Done():
			yield(nil, FromError(ctx.Err()))
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, longestResumeWait)
	}
}

// stream runs one WatchFlowRun call. It returns done when the watch is over (the run ended,
// or the consumer stopped), else why the stream ended (nil: it ended early without an error).
func (w *watcher) stream(ctx context.Context, yield func(*headwaterv1.FlowRunEvent, error) bool, callOptions []grpc.CallOption) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.client.FlowRuns.WatchFlowRun(ctx, &headwaterv1.WatchFlowRunRequest{
		FlowRunId:         w.flowRunID,
		AfterSequence:     w.after,
		FlowRunStatesOnly: w.options.StatesOnly,
	}, callOptions...)
	if err != nil {
		return false, FromError(err)
	}
	for {
		message, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return w.final, nil
		}
		if err != nil {
			return false, FromError(err)
		}
		switch kind := message.GetKind().(type) {
		case *headwaterv1.WatchFlowRunResponse_Snapshot:
			w.final = IsFinal(kind.Snapshot.GetState().GetType())
		case *headwaterv1.WatchFlowRunResponse_Event:
			event := kind.Event
			if event.GetSequence() <= w.after {
				continue
			}
			w.after = event.GetSequence()
			if state := event.GetStateChanged(); state != nil {
				w.final = IsFinal(state.GetType())
			}
			if !yield(event, nil) {
				return true, nil
			}
		}
	}
}

// resumable says whether a watch that ended with err (nil: ended early) is worth reopening.
func resumable(ctx context.Context, err error) bool {
	if err == nil {
		return true
	}
	if contextDone(ctx, err) {
		return false
	}
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	// A server going away resets its streams: UNAVAILABLE, or CANCELED that this caller did
	// not ask for.
	return e.Code == codes.Unavailable || e.Code == codes.Canceled
}

// contextDone reports whether err only says that ctx ended, which no retry can fix.
func contextDone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, ErrCanceled) || errors.Is(err, ErrDeadlineExceeded))
}

// WaitForFlowRun watches a run until it ends and returns it in its final state.
func (c *Client) WaitForFlowRun(ctx context.Context, flowRunID string) (*headwaterv1.FlowRun, error) {
	for _, err := range c.Watch(ctx, flowRunID, WatchOptions{StatesOnly: true}) {
		if err != nil {
			return nil, err
		}
	}
	return c.GetFlowRun(ctx, flowRunID)
}
