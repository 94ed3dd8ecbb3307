"""Task runs: create, read, list, delete and orchestrate the task runs inside a flow run."""

from __future__ import annotations

from headwater.v1 import states_pb2, task_runs_pb2

from headwater_server import errors
from headwater_server.application import checks, slots
from headwater_server.application.backend import Backend


async def create_task_run(
    backend: Backend, request: task_runs_pb2.CreateTaskRunRequest
) -> task_runs_pb2.CreateTaskRunResponse:
    """Create a task run (in a flow run or on its own), PENDING unless SCHEDULED is given.

    With ``start`` the run is proposed RUNNING in the same transaction, so the engine learns in
    one round trip whether to run the code (ACCEPT), reuse a cached result (Cached) or stop.
    """
    check_create_task_run(request)
    mark = slots.slot_mark(backend)
    response = await backend.db.run(backend.db.repository.create_task_run, request)
    task_runs_created(backend)
    await slots.hold_if_waiting_for_slot(backend, response, mark)
    return response


def check_create_task_run(request: task_runs_pb2.CreateTaskRunRequest) -> None:
    """Validate a create (INVALID_ARGUMENT), before it goes to the database."""
    checks.optional_uuid("flow_run_id", request.flow_run_id)
    checks.optional_uuid("task_run_id", request.task_run_id)
    checks.required_text("task_key", request.task_key)
    checks.required_text("dynamic_key", request.dynamic_key)
    for field in ("task_key", "dynamic_key", "name", "cache_key"):
        checks.name(field, getattr(request, field))
    checks.new_run(request)
    _cache_fields(request)
    if request.start and request.state.type not in (
        states_pb2.STATE_TYPE_UNSPECIFIED,
        states_pb2.STATE_TYPE_PENDING,
    ):
        raise errors.invalid_argument(
            "start",
            "needs a run created in PENDING (leave 'state' unset): a SCHEDULED run starts when "
            "its time comes, through SetTaskRunState.",
        )


def task_runs_created(backend: Backend, *_stored: object) -> None:
    """Count a created task run (its stored answer is ignored)."""
    if backend.metrics is not None:  # metrics hook: task runs per second is this count's rate
        backend.metrics.task_runs_created()


def _cache_fields(
    request: task_runs_pb2.CreateTaskRunRequest | task_runs_pb2.SetTaskRunStateRequest,
) -> None:
    """The cache entry's expiration must be a time a Timestamp (and so the database) holds."""
    if request.HasField("cache_expiration_time"):
        checks.timestamp("cache_expiration_time", request.cache_expiration_time)


async def get_task_run(
    backend: Backend, request: task_runs_pb2.GetTaskRunRequest
) -> task_runs_pb2.GetTaskRunResponse:
    """Return one task run with its current state."""
    checks.uuid("task_run_id", request.task_run_id)
    return await backend.db.run(backend.db.repository.get_task_run, request)


async def list_task_runs(
    backend: Backend, request: task_runs_pb2.ListTaskRunsRequest
) -> task_runs_pb2.ListTaskRunsResponse:
    """Page through task runs in creation order, or newest first."""
    checks.page_size("page_size", request.page_size)
    checks.optional_uuid("filter.flow_run_id", request.filter.flow_run_id)
    checks.at_most(
        "filter.state_types", request.filter.state_types, checks.MAX_FILTER_VALUES, "entries"
    )
    checks.state_types("filter.state_types", request.filter.state_types)
    checks.name("filter.task_key", request.filter.task_key)
    return await backend.db.run(backend.db.repository.list_task_runs, request)


async def list_task_run_states(
    backend: Backend, request: task_runs_pb2.ListTaskRunStatesRequest
) -> task_runs_pb2.ListTaskRunStatesResponse:
    """Page through one task run's states, oldest first."""
    checks.uuid("task_run_id", request.task_run_id)
    checks.page_size("page_size", request.page_size)
    return await backend.db.run(backend.db.repository.list_task_run_states, request)


async def delete_task_run(
    backend: Backend, request: task_runs_pb2.DeleteTaskRunRequest
) -> task_runs_pb2.DeleteTaskRunResponse:
    """Delete a task run and its states."""
    checks.uuid("task_run_id", request.task_run_id)
    return await backend.db.run(backend.db.repository.delete_task_run, request)


async def set_task_run_state(
    backend: Backend, request: task_runs_pb2.SetTaskRunStateRequest
) -> task_runs_pb2.SetTaskRunStateResponse:
    """Propose a task run state; the decision is in the response.

    A WAIT for a tag's concurrency slot is answered once a slot frees (`slots`).
    """
    check_set_task_run_state(request)
    mark = slots.slot_mark(backend)
    response = await backend.db.run(backend.db.repository.set_task_run_state, request)
    await slots.hold_if_waiting_for_slot(backend, response, mark)
    return response


def check_set_task_run_state(request: task_runs_pb2.SetTaskRunStateRequest) -> None:
    """Validate a proposal (INVALID_ARGUMENT), before it goes to the database."""
    checks.proposal("task_run_id", request)
    checks.name("cache_key", request.cache_key)
    _cache_fields(request)
