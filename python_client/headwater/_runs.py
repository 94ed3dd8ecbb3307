"""The SDK's read-only records of what the service stores: flows, flow runs, task runs, logs.

The service describes these with ``headwater.v1`` messages; user code (hooks, run contexts, the
public clients in `headwater.client`, the CLI) gets these frozen dataclasses instead, so it sees
plain Python values (a dict of parameters, an SDK `State`, timezone-aware datetimes) and cannot
change what the engine relies on. The conversions from the wire live in the transport
(`headwater._transport.client_convert`); each record keeps the message it came from in ``raw``
for the rare caller who needs a field the SDK does not show (as temporalio's ``raw_info``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater._states import State

__all__ = ["Flow", "FlowRun", "FlowRunEvent", "Log", "RunFailure", "TaskRun"]


@dataclass(frozen=True, slots=True)
class RunFailure:
    """What a failed or crashed run reported about its exception, as the service stores it.

    Attributes:
        exception_type: The exception's qualified type, e.g. "builtins.ValueError".
        message: ``str()`` of the exception.
        traceback: The formatted traceback, when the run sent one.
    """

    exception_type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class FlowRun:
    """One run of a flow, as the service last reported it.

    Attributes:
        id: The service's UUID for the run.
        name: The run's name ("crimson-otter", or from ``flow_run_name``).
        flow_name: The name of the flow the run belongs to.
        parameters: The parameters as stored by the service (JSON values).
        run_count: How many times the run has entered RUNNING (1 on the first attempt).
        state: The run's state when this view was taken.
        tags: The run's labels.
        parent_flow_run_id: The parent run's id for a subflow, else None.
        flow_id: The service's UUID for the flow.
        flow_version: The version of the flow's code.
        deployment_id: The deployment that created the run, else None.
        parent_task_run_id: The task run a subflow was called from, else None.
        idempotency_key: The key that makes this run exist once, else None.
        retries: How many retries the service grants after a failure.
        retry_delay_seconds: The wait before each retry.
        expected_start_time: When the run was expected to start (for scheduled runs).
        start_time: When the run first entered RUNNING, else None.
        end_time: When the run reached a final state, else None.
        total_run_time: Time spent RUNNING over all attempts.
        created: When the service created the run.
        updated: When the service last changed the run.
        last_sequence: The sequence number of the run's latest event (see `FlowRunEvent`).
        failure: The exception its current state reports (failed or crashed runs), else None.
        auto_scheduled: True for a run a deployment's schedule created.
        job_variables: The job variables the run was created with (``run_deployment``'s),
            which its worker merges over its deployment's.
        raw: The ``headwater.v1.FlowRun`` message this view was built from, when it came
            from the service.
    """

    id: str
    name: str
    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    run_count: int = 0
    state: State[Any] | None = None
    tags: tuple[str, ...] = ()
    parent_flow_run_id: str | None = None
    flow_id: str = ""
    flow_version: str | None = None
    deployment_id: str | None = None
    parent_task_run_id: str | None = None
    idempotency_key: str | None = None
    retries: int = 0
    retry_delay_seconds: float = 0.0
    expected_start_time: _dt.datetime | None = None
    start_time: _dt.datetime | None = None
    end_time: _dt.datetime | None = None
    total_run_time: _dt.timedelta = _dt.timedelta()
    created: _dt.datetime | None = None
    updated: _dt.datetime | None = None
    last_sequence: int = 0
    failure: RunFailure | None = None
    auto_scheduled: bool = False
    job_variables: dict[str, Any] = field(default_factory=dict)
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class FlowRunEvent:
    """One entry of a flow run's history: a state the run or one of its task runs entered, or
    a log line of either.

    Task-run states are kept apart from `state` so that code reading a flow run's own history
    (its states, its final state) never mistakes a task's COMPLETED for the flow's.

    Attributes:
        sequence: The event's number within its run (1, 2, ...); a watch resumes after it.
        flow_run_id: The run the event belongs to.
        time: When the service recorded the event.
        state: The state the flow run entered; None for a task-run event, or for an event kind
            this SDK does not know.
        task_run_id: For a task-run event, the task run's id ("" otherwise).
        task_run_name: For a task-run event, the task run's name ("" otherwise).
        task_run_state: For a task-run event, the state the task run entered (None otherwise).
        log: For a log event, the line (its ``task_run_id`` names the task run that logged
            it, if any); None otherwise.
        raw: The ``headwater.v1.FlowRunEvent`` message.
    """

    sequence: int
    flow_run_id: str
    time: _dt.datetime | None
    state: State[Any] | None
    task_run_id: str = ""
    task_run_name: str = ""
    task_run_state: State[Any] | None = None
    log: Log | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One run of a task inside a flow run.

    Attributes:
        id: The service's UUID for the task run.
        flow_run_id: The flow run it belongs to.
        name: The task run's display name.
        task_key: Which task of the flow this is.
        dynamic_key: Tells apart several runs of one task in a flow run ("0", "1", ...).
        state: Its current state.
        run_count: How many times it has entered RUNNING.
        tags: Its labels.
        parameters: Its parameters (JSON values).
        cache_key: The key its result is cached under, else None.
        retries: How many retries the service grants after a failure.
        retry_delay_seconds: The wait before each retry.
        start_time: When it first entered RUNNING, else None.
        end_time: When it reached a final state, else None.
        total_run_time: Time spent RUNNING over all attempts.
        created: When the service created it.
        updated: When the service last changed it.
        failure: The exception its current state reports, else None.
        raw: The ``headwater.v1.TaskRun`` message.
    """

    id: str
    flow_run_id: str
    name: str
    task_key: str = ""
    dynamic_key: str = ""
    state: State[Any] | None = None
    run_count: int = 0
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None
    retries: int = 0
    retry_delay_seconds: float = 0.0
    start_time: _dt.datetime | None = None
    end_time: _dt.datetime | None = None
    total_run_time: _dt.timedelta = _dt.timedelta()
    created: _dt.datetime | None = None
    updated: _dt.datetime | None = None
    failure: RunFailure | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Log:
    """One log line a run shipped to the service.

    Attributes:
        time: When the line was logged (timezone-aware UTC).
        level: The `logging` level number (20 for INFO).
        logger_name: The logger that emitted it.
        message: The formatted message.
        flow_run_id: The flow run it belongs to ("" for a task run called outside any flow).
        task_run_id: The task run it came from, else None.
        id: The service's id for the line.
        raw: The ``headwater.v1.Log`` message.
    """

    time: _dt.datetime | None
    level: int
    logger_name: str
    message: str
    flow_run_id: str
    task_run_id: str | None = None
    id: str = ""
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def level_name(self) -> str:
        """ "INFO" for 20, as `logging` names levels ("Level 25" for unnamed ones)."""
        import logging

        return logging.getLevelName(self.level)


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow the service knows, by name; its runs are `FlowRun` records.

    Attributes:
        id: The service's UUID for the flow.
        name: The flow's unique name.
        tags: Its labels.
        created: When the service first saw it.
        raw: The ``headwater.v1.Flow`` message.
    """

    id: str
    name: str
    tags: tuple[str, ...] = ()
    created: _dt.datetime | None = None
    raw: Any = field(default=None, repr=False, compare=False)
