"""Flow runs: create, read, change and orchestrate them, announcing every new event.

Every write that adds a flow run event tells the event hub after it is stored, so long polls and
watches (:mod:`.flow_run_events`) wake at once and never see an event storage does not hold.
"""

from __future__ import annotations

from headwater.v1 import flow_runs_pb2

from headwater_server.application import checks, slots
from headwater_server.application.backend import Backend
from headwater_server.telemetry import creation_context

# The fields UpdateFlowRun may change.
UPDATABLE = ("name", "tags", "policy")


def _announce(backend: Backend, run: flow_runs_pb2.FlowRun) -> None:
    backend.hub.notify(run.id, run.last_sequence)


async def create_flow_run(
    backend: Backend,
    request: flow_runs_pb2.CreateFlowRunRequest,
    *,
    engine_id: str | None = None,
) -> flow_runs_pb2.CreateFlowRunResponse:
    """Create a run of a flow (named or by id), PENDING unless a SCHEDULED state is given.

    A flow named for the first time is registered with the run. ``engine_id``: the engine
    stream that creates it, which owns it from the start (its death ends the run).
    """
    which = checks.one_of(
        "flow_id", request.WhichOneof("flow"), "'flow_id' (a flow's UUID) or 'flow_name'"
    )
    if which == "flow_id":
        checks.uuid("flow_id", request.flow_id)
    else:
        checks.flow_name("flow_name", request.flow_name)
    for field in ("name", "flow_version", "idempotency_key"):
        checks.name(field, getattr(request, field))
    checks.optional_uuid("parent_flow_run_id", request.parent_flow_run_id)
    checks.optional_uuid("parent_task_run_id", request.parent_task_run_id)
    checks.new_run(request)
    checks.trace_context("trace_context", request.trace_context)
    trace_context = creation_context(request.trace_context)
    if trace_context is not None and not request.trace_context:
        request.trace_context.update(trace_context)
    response = await backend.db.run(backend.db.repository.create_flow_run, request, engine_id)
    _announce(backend, response.flow_run)
    return response


async def get_flow_run(
    backend: Backend, request: flow_runs_pb2.GetFlowRunRequest
) -> flow_runs_pb2.GetFlowRunResponse:
    """Return one flow run with its current state."""
    checks.uuid("flow_run_id", request.flow_run_id)
    return await backend.db.run(backend.db.repository.get_flow_run, request)


async def list_flow_runs(
    backend: Backend, request: flow_runs_pb2.ListFlowRunsRequest
) -> flow_runs_pb2.ListFlowRunsResponse:
    """Page through flow runs, newest first, with typed filters."""
    checks.page_size("page_size", request.page_size)
    where = request.filter
    for field, values in (
        ("flow_ids", where.flow_ids),
        ("state_types", where.state_types),
        ("tags", where.tags),
    ):
        checks.at_most(f"filter.{field}", values, checks.MAX_FILTER_VALUES, "entries")
    for index, flow_id in enumerate(where.flow_ids):
        checks.uuid(f"filter.flow_ids[{index}]", flow_id)
    checks.name("filter.flow_name", where.flow_name)
    checks.name("filter.name", where.name)
    checks.state_types("filter.state_types", where.state_types)
    checks.optional_uuid("filter.parent_flow_run_id", where.parent_flow_run_id)
    checks.optional_uuid("filter.deployment_id", where.deployment_id)
    for index, tag in enumerate(where.tags):
        checks.name(f"filter.tags[{index}]", tag)
    return await backend.db.run(backend.db.repository.list_flow_runs, request)


async def update_flow_run(
    backend: Backend, request: flow_runs_pb2.UpdateFlowRunRequest
) -> flow_runs_pb2.UpdateFlowRunResponse:
    """Change a run's name, tags or retry policy, as listed in the update mask."""
    checks.uuid("flow_run_id", request.flow_run_id)
    paths = checks.update_mask("update_mask", request.update_mask, UPDATABLE)
    if "name" in paths:
        checks.required_text("name", request.name)
        checks.name("name", request.name)
    if "tags" in paths:
        checks.tags("tags", request.tags)
    if "policy" in paths:
        checks.run_policy("policy", request.policy)
    return await backend.db.run(backend.db.repository.update_flow_run, request)


async def delete_flow_run(
    backend: Backend, request: flow_runs_pb2.DeleteFlowRunRequest
) -> flow_runs_pb2.DeleteFlowRunResponse:
    """Delete a run with its history; its watchers learn it at once."""
    flow_run_id = checks.uuid("flow_run_id", request.flow_run_id)
    response = await backend.db.run(backend.db.repository.delete_flow_run, request)
    backend.hub.forget(flow_run_id)
    return response


async def set_flow_run_state(
    backend: Backend, request: flow_runs_pb2.SetFlowRunStateRequest
) -> flow_runs_pb2.SetFlowRunStateResponse:
    """Propose a state; the decision (ACCEPT, REJECT, WAIT, ABORT) is in the response.

    A WAIT for a deployment's concurrency slot is answered once a slot frees (`slots`).
    """
    checks.proposal("flow_run_id", request)
    mark = slots.slot_mark(backend)
    response = await backend.db.run(backend.db.repository.set_flow_run_state, request)
    _announce(backend, response.flow_run)
    await slots.hold_if_waiting_for_slot(backend, response, mark)
    return response


async def cancel_flow_run(
    backend: Backend, request: flow_runs_pb2.CancelFlowRunRequest
) -> flow_runs_pb2.CancelFlowRunResponse:
    """Cancel a run: CANCELLED at once when idle, CANCELLING while an engine runs it."""
    checks.uuid("flow_run_id", request.flow_run_id)
    checks.optional_uuid("request_id", request.request_id)
    response = await backend.db.run(backend.db.repository.cancel_flow_run, request)
    _announce(backend, response.flow_run)
    return response
