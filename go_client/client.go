package headwater

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

// Client talks to one Headwater server. It is safe for concurrent use; Close it when done.
type Client struct {
	conn *grpc.ClientConn

	// The generated clients, for the calls this package does not wrap.
	Flows       headwaterv1.FlowServiceClient
	FlowRuns    headwaterv1.FlowRunServiceClient
	TaskRuns    headwaterv1.TaskRunServiceClient
	Logs        headwaterv1.LogServiceClient
	Deployments headwaterv1.DeploymentServiceClient
	WorkPools   headwaterv1.WorkPoolServiceClient
}

type settings struct {
	credentials    credentials.TransportCredentials
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
	dialOptions    []grpc.DialOption
}

// Option configures Dial.
type Option func(*settings)

// WithTransportCredentials sets the connection's credentials; the default is plaintext, which
// is what `headwater server start` serves today.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(s *settings) { s.credentials = creds }
}

// WithTracerProvider makes the client's spans with this provider instead of the global one
// (otel.GetTracerProvider()). With neither configured no span is recorded, but the caller's
// own trace context is still sent along.
func WithTracerProvider(provider trace.TracerProvider) Option {
	return func(s *settings) { s.tracerProvider = provider }
}

// WithPropagator replaces how trace context is written into the request metadata; the default
// is W3C Trace Context plus W3C Baggage, which is what the service reads.
func WithPropagator(propagator propagation.TextMapPropagator) Option {
	return func(s *settings) { s.propagator = propagator }
}

// WithDialOptions passes gRPC dial options through (interceptors, keepalive, message sizes,
// grpc.WithConnectParams to replace the reconnect backoff); they apply after the defaults.
func WithDialOptions(options ...grpc.DialOption) Option {
	return func(s *settings) { s.dialOptions = append(s.dialOptions, options...) }
}

// reconnect is gRPC's default backoff with a 5 s ceiling instead of 120 s: a watch resuming
// after a server restart gets going within seconds of the server being back.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: time.Second / 5, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
	MinConnectTimeout: 20 * time.Second,
}

// Dial creates a client for the server at target ("127.0.0.1:4200", "dns:///host:4200",
// "unix:/path"). Like grpc.NewClient it does not connect yet: the first call does, so a server
// that is down shows up as an ErrUnavailable error from that call.
func Dial(target string, options ...Option) (*Client, error) {
	if target == "" {
		return nil, errors.New("headwater: Dial needs the server's address, e.g. 127.0.0.1:4200")
	}
	s := settings{
		credentials: insecure.NewCredentials(),
		propagator:  propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	for _, option := range options {
		option(&s)
	}
	tracing := []otelgrpc.Option{otelgrpc.WithPropagators(s.propagator)}
	if s.tracerProvider != nil {
		tracing = append(tracing, otelgrpc.WithTracerProvider(s.tracerProvider))
	}
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(s.credentials),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(tracing...)),
		grpc.WithConnectParams(reconnect),
	}, s.dialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("headwater: cannot use %q as a server address: %w", target, err)
	}
	return &Client{
		conn:        conn,
		Flows:       headwaterv1.NewFlowServiceClient(conn),
		FlowRuns:    headwaterv1.NewFlowRunServiceClient(conn),
		TaskRuns:    headwaterv1.NewTaskRunServiceClient(conn),
		Logs:        headwaterv1.NewLogServiceClient(conn),
		Deployments: headwaterv1.NewDeploymentServiceClient(conn),
		WorkPools:   headwaterv1.NewWorkPoolServiceClient(conn),
	}, nil
}

// Close releases the connection; calls in flight fail with ErrCanceled.
func (c *Client) Close() error {
	return c.conn.Close()
}
