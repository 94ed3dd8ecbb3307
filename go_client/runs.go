package headwater

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	headwaterv1 "github.com/headwater/headwater/go_client/gen/headwater/v1"
)

// RunOptions describe a new flow run; every field is optional.
type RunOptions struct {
	// Parameters are sent as a JSON object (parameters_json); a map or a struct with json tags.
	Parameters any
	// Name is the run's name; the service generates one ("zesty-seal") when empty.
	Name string
	// Tags are labels (added to the deployment's own when running a deployment).
	Tags []string
	// IdempotencyKey makes the run unique per flow: a second create with the same key fails
	// with ErrAlreadyExists, and the *Error's Metadata["existing_flow_run_id"] names the first.
	IdempotencyKey string
	// ScheduledTime is when a deployment's run is due (RunDeployment only); zero means now.
	ScheduledTime time.Time
	// JobVariables are this run's own job variables (RunDeployment only), merged over the
	// deployment's by the worker ("env" key by key, a nil value removing the variable;
	// "working_dir"); a map or a struct with json tags, sent as a JSON object.
	JobVariables any
}

func (o RunOptions) parametersJSON() (string, error) {
	return jsonObject("parameters", o.Parameters)
}

// jsonObject is value as JSON text ("" for nil); what names it in the error.
func jsonObject(what string, value any) (string, error) {
	if value == nil {
		return "", nil
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		return "", fmt.Errorf("headwater: the run's %s cannot be sent as JSON: %w", what, err)
	}
	return string(encoded), nil
}

// CreateFlowRun creates a run of the flow named flowName, PENDING, for whatever executes that
// flow (an engine that proposes its states) to pick up.
func (c *Client) CreateFlowRun(ctx context.Context, flowName string, options RunOptions) (*headwaterv1.FlowRun, error) {
	parameters, err := options.parametersJSON()
	if err != nil {
		return nil, err
	}
	response, err := c.FlowRuns.CreateFlowRun(ctx, &headwaterv1.CreateFlowRunRequest{
		Flow:           &headwaterv1.CreateFlowRunRequest_FlowName{FlowName: flowName},
		Name:           options.Name,
		ParametersJson: parameters,
		Tags:           options.Tags,
		IdempotencyKey: options.IdempotencyKey,
	})
	if err != nil {
		return nil, FromError(err)
	}
	return response.GetFlowRun(), nil
}

// RunDeployment creates a run of the deployment named "flow-name/deployment-name", SCHEDULED
// for now (or options.ScheduledTime); the process serving it, or a worker of its pool, runs it.
// Parameters are merged over the deployment's defaults.
func (c *Client) RunDeployment(ctx context.Context, name string, options RunOptions) (*headwaterv1.FlowRun, error) {
	parameters, err := options.parametersJSON()
	if err != nil {
		return nil, err
	}
	jobVariables, err := jsonObject("job variables", options.JobVariables)
	if err != nil {
		return nil, err
	}
	deployment, err := c.Deployments.GetDeployment(ctx, &headwaterv1.GetDeploymentRequest{
		Deployment: &headwaterv1.GetDeploymentRequest_Name{Name: name},
	})
	if err != nil {
		return nil, FromError(err)
	}
	request := &headwaterv1.CreateFlowRunFromDeploymentRequest{
		DeploymentId:     deployment.GetDeployment().GetId(),
		ParametersJson:   parameters,
		Name:             options.Name,
		Tags:             options.Tags,
		IdempotencyKey:   options.IdempotencyKey,
		JobVariablesJson: jobVariables,
	}
	if !options.ScheduledTime.IsZero() {
		request.ScheduledTime = timestamppb.New(options.ScheduledTime)
	}
	response, err := c.Deployments.CreateFlowRunFromDeployment(ctx, request)
	if err != nil {
		return nil, FromError(err)
	}
	return response.GetFlowRun(), nil
}

// GetFlowRun returns one flow run with its current state.
func (c *Client) GetFlowRun(ctx context.Context, flowRunID string) (*headwaterv1.FlowRun, error) {
	response, err := c.FlowRuns.GetFlowRun(ctx, &headwaterv1.GetFlowRunRequest{FlowRunId: flowRunID})
	if err != nil {
		return nil, FromError(err)
	}
	return response.GetFlowRun(), nil
}

// ListOptions filter ListFlowRuns; zero values mean "any".
type ListOptions struct {
	FlowName     string
	States       []headwaterv1.StateType
	Tags         []string
	DeploymentID string
	// Limit caps how many runs are returned (newest first); 0 means every matching run.
	Limit int
}

// ListFlowRuns returns the matching flow runs, newest first, reading page after page.
func (c *Client) ListFlowRuns(ctx context.Context, options ListOptions) ([]*headwaterv1.FlowRun, error) {
	request := &headwaterv1.ListFlowRunsRequest{
		Filter: &headwaterv1.FlowRunFilter{
			FlowName:     options.FlowName,
			StateTypes:   options.States,
			Tags:         options.Tags,
			DeploymentId: options.DeploymentID,
		},
	}
	var runs []*headwaterv1.FlowRun
	for {
		request.PageSize = pageSize(options.Limit, len(runs))
		response, err := c.FlowRuns.ListFlowRuns(ctx, request)
		if err != nil {
			return nil, FromError(err)
		}
		runs = append(runs, response.GetFlowRuns()...)
		if response.GetNextPageToken() == "" || (options.Limit > 0 && len(runs) >= options.Limit) {
			break
		}
		request.PageToken = response.GetNextPageToken()
	}
	if options.Limit > 0 && len(runs) > options.Limit {
		runs = runs[:options.Limit]
	}
	return runs, nil
}

// pageSize asks for what is still missing from limit, in pages the service accepts.
func pageSize(limit, have int) int32 {
	const largest = 200
	if limit <= 0 || limit-have > largest {
		return largest
	}
	return int32(limit - have)
}

// ListLogs returns every log line of a flow run (its task runs' lines included), oldest first.
func (c *Client) ListLogs(ctx context.Context, flowRunID string) ([]*headwaterv1.Log, error) {
	request := &headwaterv1.ListLogsRequest{
		PageSize: 1000,
		Filter:   &headwaterv1.LogFilter{FlowRunId: flowRunID},
	}
	var logs []*headwaterv1.Log
	for {
		response, err := c.Logs.ListLogs(ctx, request)
		if err != nil {
			return nil, FromError(err)
		}
		logs = append(logs, response.GetLogs()...)
		if response.GetNextPageToken() == "" {
			return logs, nil
		}
		request.PageToken = response.GetNextPageToken()
	}
}

// CancelFlowRun cancels a run: it ends CANCELLED at once when it is not running, and goes
// through CANCELLING while its engine stops it otherwise. A run that already ended gives
// ErrFailedPrecondition.
func (c *Client) CancelFlowRun(ctx context.Context, flowRunID, reason string) (*headwaterv1.FlowRun, error) {
	response, err := c.FlowRuns.CancelFlowRun(ctx, &headwaterv1.CancelFlowRunRequest{FlowRunId: flowRunID, Reason: reason})
	if err != nil {
		return nil, FromError(err)
	}
	return response.GetFlowRun(), nil
}

// IsFinal reports whether a run in this state has ended: COMPLETED, FAILED, CANCELLED or
// CRASHED.
func IsFinal(state headwaterv1.StateType) bool {
	switch state {
	case headwaterv1.StateType_STATE_TYPE_COMPLETED, headwaterv1.StateType_STATE_TYPE_FAILED,
		headwaterv1.StateType_STATE_TYPE_CANCELLED, headwaterv1.StateType_STATE_TYPE_CRASHED:
		return true
	}
	return false
}
