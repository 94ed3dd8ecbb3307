"""Clients of the Headwater API in the SDK's own types, for people, scripts, tests and the CLI.

The engine reports through its own stream; these clients read and manage what the service
stores, and hand back the same records hooks receive: `FlowRun`, `State`, `TaskRun`, `Log`,
`Flow` (each keeps the service's message in ``raw``). Errors are the SDK's typed exceptions
(`headwater.exceptions.ObjectNotFound`, `InvalidRequest`, ...) with the service's reason and
message.

With no address and no ``HEADWATER_API_URL``, a client talks to the embedded service on the
local database, as flows run in this process do.

Example::

    from headwater.client import get_client

    async with get_client() as client:
        for run in await client.list_flow_runs(flow_name="etl", limit=10):
            print(run.name, run.state.name)

    with get_client(sync_client=True) as client:
        run = client.get_flow_run(run_id)
        print(client.get_flow_run_result(run.id))
        for task_run in client.list_task_runs(run.id):
            print(task_run.name, client.get_task_run_result(task_run.id))

Prefect's client calls these ``read_flow_run``, ``read_task_run``, ``read_task_runs`` and
``read_logs``; here they are ``get_flow_run``, ``get_task_run``, ``list_task_runs`` and
``list_logs``, and a run's result is ``run.state.result()`` in both.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from headwater._concurrency_records import ConcurrencyLimit
from headwater._deployment_records import Deployment, DeploymentSchedule, WorkPool, WorkQueue
from headwater._runs import Flow, FlowRun, FlowRunEvent, Log, TaskRun
from headwater._states import State, StateType
from headwater._transport import client_concurrency as cops
from headwater._transport import client_deployments as dops
from headwater._transport import client_ops as ops
from headwater._transport.client_async import AsyncRunner
from headwater._transport.client_convert import parse_state_type as _wire_state_type
from headwater._transport.client_sync import SyncRunner
from headwater._transport.convert import state_type_from_proto
from headwater.exceptions import UnfinishedRun

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "AsyncHeadwaterClient",
    "ConcurrencyLimit",
    "Deployment",
    "DeploymentSchedule",
    "Flow",
    "FlowRun",
    "FlowRunEvent",
    "HeadwaterClient",
    "Log",
    "TaskRun",
    "WorkPool",
    "WorkQueue",
    "get_client",
    "parse_state_type",
]

#: Seconds a call may take unless the client is given another ``timeout``.
DEFAULT_TIMEOUT = 30.0


def parse_state_type(value: Any) -> StateType:
    """The `StateType` named by "COMPLETED", "completed", "STATE_TYPE_COMPLETED", a
    `StateType`, or the wire number.

    Raises:
        ValueError: The value names no state type; the message lists the valid ones.
    """
    return state_type_from_proto(_wire_state_type(value))


@overload
def get_client(
    sync_client: Literal[False] = ..., *, address: str | None = ..., timeout: float | None = ...
) -> AsyncHeadwaterClient: ...


@overload
def get_client(
    sync_client: Literal[True], *, address: str | None = ..., timeout: float | None = ...
) -> HeadwaterClient: ...


def get_client(
    sync_client: bool = False,
    *,
    address: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> AsyncHeadwaterClient | HeadwaterClient:
    """A client of the Headwater API: async by default, as in Prefect.

    Use it as a context manager, which closes its channel at the end:
    ``async with get_client() as client:`` or ``with get_client(sync_client=True) as client:``.

    Args:
        sync_client: Return the blocking `HeadwaterClient` instead of `AsyncHeadwaterClient`.
        address: The server, e.g. "127.0.0.1:4200"; None uses ``HEADWATER_API_URL``, or the
            embedded server on the local database when that is unset.
        timeout: Seconds each call may take (watches are not limited).
    """
    if sync_client:
        return HeadwaterClient(address, timeout=timeout)
    return AsyncHeadwaterClient(address, timeout=timeout)


class HeadwaterClient:
    """The blocking client: each method returns when the service has answered.

    Args:
        address: The server, e.g. "127.0.0.1:4200". ``None`` uses ``HEADWATER_API_URL``, or the
            embedded server on the local database when that is unset.
        timeout: Seconds each call may take (watches are not limited).
    """

    def __init__(self, address: str | None = None, *, timeout: float | None = DEFAULT_TIMEOUT):
        self._runner = SyncRunner(address, timeout)
        self.address = self._runner.address
        self.timeout = timeout

    # ------------------------------------------------------------------------- flows

    def get_flow(self, flow_id: str) -> Flow:
        """One flow by id."""
        return self._runner.call(ops.get_flow(flow_id))

    def list_flows(self, *, name: str = "", limit: int = 50) -> list[Flow]:
        """Flows, newest first; ``name`` picks the one flow of that name."""
        return self._runner.collect(ops.list_flows(name, limit))

    # --------------------------------------------------------------------- flow runs

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        """One flow run with its current state."""
        return self._runner.call(ops.get_flow_run(flow_run_id))

    def list_flow_runs(
        self,
        *,
        flow_name: str = "",
        flow_ids: Iterable[str] = (),
        state_types: Iterable[Any] = (),
        tags: Iterable[str] = (),
        parent_flow_run_id: str = "",
        name: str | None = None,
        limit: int = 50,
        deployment_id: str = "",
    ) -> list[FlowRun]:
        """Flow runs, newest first, matching every filter given.

        Args:
            flow_name: Only runs of the flow with this name.
            flow_ids: Only runs of these flows.
            state_types: Only runs in these states ("COMPLETED", `StateType` values, ...).
            tags: Only runs carrying all of these tags.
            parent_flow_run_id: Only subflow runs of this run.
            name: Only runs with exactly this name (run names need not be unique).
            limit: The most runs to return (pages are fetched as needed).
            deployment_id: Only runs created by this deployment.
        """
        return self._runner.collect(
            ops.list_flow_runs(
                flow_name=flow_name,
                flow_ids=flow_ids,
                state_types=state_types,
                tags=tags,
                parent_flow_run_id=parent_flow_run_id,
                name=name,
                limit=limit,
                deployment_id=deployment_id,
            )
        )

    def list_flow_run_events(self, flow_run_id: str, after_sequence: int = 0) -> list[FlowRunEvent]:
        """The run's history after ``after_sequence``, oldest first."""
        return self._runner.collect(ops.list_flow_run_events(flow_run_id, after_sequence))

    def list_flow_run_states(self, flow_run_id: str) -> list[State[Any]]:
        """Every state the run has been in, oldest first, each with its ``timestamp``."""
        return _states_of(self.list_flow_run_events(flow_run_id))

    def watch_flow_run(
        self, flow_run_id: str, after_sequence: int = 0
    ) -> Iterator[FlowRun | FlowRunEvent]:
        """Follow the run: its `FlowRun` snapshot first, then a `FlowRunEvent` for each state
        and log line (the run's and its task runs') after ``after_sequence`` (the stored ones,
        then live ones), ending after a final state.

        The stream has no deadline; stop iterating (or close the client) to end it early.
        """
        return self._runner.watch(flow_run_id, after_sequence)

    def update_flow_run(
        self,
        flow_run_id: str,
        *,
        name: str | None = None,
        tags: Iterable[str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
    ) -> FlowRun:
        """Change a run's name, tags or retry policy (the arguments given; ``retries`` and
        ``retry_delay_seconds`` replace the policy together, a missing one as 0)."""
        return self._runner.call(
            ops.update_flow_run(
                flow_run_id,
                name=name,
                tags=tags,
                retries=retries,
                retry_delay_seconds=retry_delay_seconds,
            )
        )

    def cancel_flow_run(self, flow_run_id: str, reason: str = "") -> FlowRun:
        """Cancel a run: CANCELLED at once, or CANCELLING while its engine stops it."""
        return self._runner.call(ops.cancel_flow_run(flow_run_id, reason))

    def get_flow_run_result(self, flow_run_id: str, *, raise_on_failure: bool = True) -> Any:
        """The result of a finished run, read back from result storage when it was persisted.

        Raises:
            UnfinishedRun: The run has not reached a final state.
            MissingResult: The result was persisted but can no longer be read.
            Exception: What made the run fail (unless ``raise_on_failure`` is False, which
                returns it instead).
        """
        return _result_of(self.get_flow_run(flow_run_id), raise_on_failure)

    # --------------------------------------------------------------- task runs, logs

    def get_task_run(self, task_run_id: str) -> TaskRun:
        """One task run with its current state (``state.result()`` reads its result)."""
        return self._runner.call(ops.get_task_run(task_run_id))

    def list_task_runs(
        self,
        flow_run_id: str = "",
        limit: int = 10_000,
        *,
        state_types: Iterable[Any] = (),
        task_key: str = "",
        newest_first: bool = False,
    ) -> list[TaskRun]:
        """Task runs in creation order (``newest_first`` for the latest), matching every filter.

        Args:
            flow_run_id: Only the task runs of this flow run; empty: task runs of any flow run,
                and those called outside any flow.
            limit: The most task runs to return (pages are fetched as needed).
            state_types: Only task runs in these states ("COMPLETED", `StateType` values, ...).
            task_key: Only runs of this task definition.
            newest_first: Newest first instead of in creation order.
        """
        return self._runner.collect(
            ops.list_task_runs(
                flow_run_id,
                limit,
                state_types=state_types,
                task_key=task_key,
                newest_first=newest_first,
            )
        )

    def list_task_run_states(self, task_run_id: str) -> list[State[Any]]:
        """Every state the task run has been in, oldest first, each with its ``timestamp``."""
        states = self._runner.collect(ops.list_task_run_states(task_run_id))
        return _of_task_run(states, self.get_task_run(task_run_id) if states else None)

    def get_task_run_result(self, task_run_id: str, *, raise_on_failure: bool = True) -> Any:
        """The result of a finished task run, read back from result storage when persisted.

        Raises:
            UnfinishedRun: The task run has not reached a final state.
            MissingResult: The result was persisted but can no longer be read.
            Exception: What made the task run fail (unless ``raise_on_failure`` is False, which
                returns it instead).
        """
        return _result_of(self.get_task_run(task_run_id), raise_on_failure)

    def list_logs(
        self,
        flow_run_id: str = "",
        *,
        task_run_id: str = "",
        min_level: int = 0,
        limit: int = 10_000,
    ) -> list[Log]:
        """Log lines at ``min_level`` or above, oldest first: a flow run's (its task runs'
        included), or one task run's (also one called outside any flow) with ``task_run_id``."""
        return self._runner.collect(ops.list_logs(flow_run_id, min_level, limit, task_run_id))

    # ------------------------------------------------------------------- deployments

    def create_deployment(
        self,
        flow_id: str | None = None,
        name: str = "",
        *,
        flow_name: str | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> Deployment:
        """Create a deployment of a flow, named by ``flow_id`` or ``flow_name`` (a flow named
        for the first time is registered).

        Args:
            flow_id: The flow's id; or give ``flow_name``.
            name: The deployment's name, unique among the flow's deployments.
            flow_name: The flow's name, instead of ``flow_id``.
            request_id: A UUID making a retried create return the first answer (generated).
            **fields: Any of ``description``, ``version``, ``tags``, ``entrypoint``, ``path``,
                ``git_url``, ``git_branch``, ``git_commit`` (a git code location instead of
                ``path``), ``parameters``, ``parameter_openapi_schema``,
                ``enforce_parameter_schema`` (default True), ``schedules`` (Prefect-shaped
                schedules, or `DeploymentSchedule` records), ``paused``, ``concurrency_limit``,
                ``collision_strategy`` ("ENQUEUE" or "CANCEL_NEW"), ``work_pool_name``,
                ``work_queue_name``, ``job_variables``.

        Raises:
            ObjectAlreadyExists: The flow has a deployment of that name.
            ObjectNotFound: No flow has ``flow_id``, or the work pool does not exist.
            InvalidRequest: A field is wrong; the message names it.
        """
        return self._runner.call(
            dops.create_deployment(
                flow_id=flow_id,
                flow_name=flow_name,
                name=name,
                request_id=request_id or _new_id(),
                **_create_fields(fields),
            )
        )

    def get_deployment(self, deployment: str) -> Deployment:
        """One deployment, by id or by "flow-name/deployment-name"."""
        return self._runner.call(dops.get_deployment(deployment))

    def list_deployments(
        self,
        *,
        flow_name: str = "",
        name: str = "",
        tags: Iterable[str] = (),
        work_pool_name: str = "",
        paused: bool | None = None,
        limit: int = 50,
    ) -> list[Deployment]:
        """Deployments, newest first, matching every filter given."""
        return self._runner.collect(
            dops.list_deployments(
                flow_name=flow_name,
                name=name,
                tags=tags,
                work_pool_name=work_pool_name,
                paused=paused,
                limit=limit,
            )
        )

    def update_deployment(self, deployment_id: str, **changes: Any) -> Deployment:
        """Change the fields given (the keyword arguments of `create_deployment`, but not the
        names or ``paused``); ``schedules`` replaces the list: a schedule read back keeps its id."""
        return self._runner.call(dops.update_deployment(deployment_id, changes))

    def delete_deployment(self, deployment_id: str) -> None:
        """Delete a deployment and its scheduled runs that have not started."""
        self._runner.call(dops.delete_deployment(deployment_id))

    def pause_deployment(self, deployment_id: str) -> Deployment:
        """Pause a deployment: its schedules stop and runs on request are refused."""
        return self._runner.call(dops.pause_deployment(deployment_id))

    def resume_deployment(self, deployment_id: str) -> Deployment:
        """Resume a paused deployment."""
        return self._runner.call(dops.resume_deployment(deployment_id))

    def create_flow_run_from_deployment(
        self,
        deployment_id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        name: str | None = None,
        tags: Iterable[str] = (),
        idempotency_key: str | None = None,
        scheduled_time: dt.datetime | None = None,
        request_id: str | None = None,
        job_variables: Mapping[str, Any] | None = None,
    ) -> FlowRun:
        """Create a SCHEDULED run of a deployment, due now or at ``scheduled_time``, with
        ``parameters`` merged over the deployment's defaults and ``job_variables`` over its
        job variables (for this run only).

        Raises:
            InvalidRequest: The deployment's parameter schema refuses the parameters (the
                message names the parameter), or ``job_variables`` is not a JSON object.
            FailedPrecondition: The deployment is paused.
            ObjectAlreadyExists: ``idempotency_key`` was used for another run of the flow.
        """
        return self._runner.call(
            dops.create_flow_run_from_deployment(
                deployment_id,
                parameters=parameters,
                name=name,
                tags=tags,
                idempotency_key=idempotency_key,
                scheduled_time=scheduled_time,
                request_id=request_id or _new_id(),
                job_variables=job_variables,
            )
        )

    def create_flow_runs_from_deployment(
        self,
        deployment_id: str,
        runs: Iterable[Mapping[str, Any]],
        *,
        request_id: str | None = None,
    ) -> list[FlowRun]:
        """Create many runs of one deployment in one call, all or none; each run is a mapping
        of `create_flow_run_from_deployment`'s keyword arguments (``parameters``, ``name``,
        ``tags``, ``idempotency_key``, ``scheduled_time``)."""
        return self._runner.call(
            dops.create_flow_runs_from_deployment(deployment_id, runs, request_id or _new_id())
        )

    # -------------------------------------------------------------------- work pools

    def create_work_pool(
        self,
        name: str,
        *,
        type: str = "process",
        description: str = "",
        paused: bool = False,
        concurrency_limit: int | None = None,
        base_job_template: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> WorkPool:
        """Create a work pool (with its "default" queue)."""
        return self._runner.call(
            dops.create_work_pool(
                name,
                type=type,
                description=description,
                paused=paused,
                concurrency_limit=concurrency_limit,
                base_job_template=base_job_template,
                request_id=request_id or _new_id(),
            )
        )

    def get_work_pool(self, name: str) -> WorkPool:
        """One work pool by name."""
        return self._runner.call(dops.get_work_pool(name))

    def list_work_pools(self, *, limit: int = 200) -> list[WorkPool]:
        """Work pools, oldest first."""
        return self._runner.collect(dops.list_work_pools(limit))

    def delete_work_pool(self, name: str) -> None:
        """Delete a work pool and its queues (refused while deployments use it)."""
        self._runner.call(dops.delete_work_pool(name))

    def create_work_queue(
        self,
        work_pool_name: str,
        name: str,
        *,
        description: str = "",
        priority: int | None = None,
        concurrency_limit: int | None = None,
        request_id: str | None = None,
    ) -> WorkQueue:
        """Add a queue to a work pool (``priority`` None: after the pool's other queues;
        ``concurrency_limit``: the most of its runs claimed and not finished at once)."""
        return self._runner.call(
            dops.create_work_queue(
                work_pool_name,
                name,
                description=description,
                priority=priority,
                concurrency_limit=concurrency_limit,
                request_id=request_id or _new_id(),
            )
        )

    def list_work_queues(self, work_pool_name: str, *, limit: int = 200) -> list[WorkQueue]:
        """A work pool's queues, highest priority first."""
        return self._runner.collect(dops.list_work_queues(work_pool_name, limit))

    # -------------------------------------------------------------- concurrency limits

    def create_concurrency_limit(
        self, tag: str, concurrency_limit: int, *, request_id: str | None = None
    ) -> ConcurrencyLimit:
        """Let at most ``concurrency_limit`` task runs tagged ``tag`` run at once.

        A tag that has a limit gets the new number (as Prefect's ``create_concurrency_limit``).
        """
        return self._runner.call(
            cops.create_concurrency_limit(tag, concurrency_limit, request_id or _new_id())
        )

    def get_concurrency_limit(self, tag: str) -> ConcurrencyLimit:
        """One tag's limit, with the task runs holding its slots (``ObjectNotFound`` if none)."""
        return self._runner.call(cops.get_concurrency_limit(tag))

    def list_concurrency_limits(self, *, limit: int = 200) -> list[ConcurrencyLimit]:
        """Tag limits, oldest first."""
        return self._runner.collect(cops.list_concurrency_limits(limit))

    def delete_concurrency_limit(self, tag: str, *, request_id: str | None = None) -> None:
        """Remove a tag's limit: its task runs then start without waiting."""
        self._runner.call(cops.delete_concurrency_limit(tag, request_id or _new_id()))

    def reset_concurrency_limit(
        self, tag: str, *, request_id: str | None = None
    ) -> ConcurrencyLimit:
        """Free every slot of a tag's limit (slots an operator knows are stale)."""
        return self._runner.call(cops.reset_concurrency_limit(tag, request_id or _new_id()))

    # ------------------------------------------------------------------ Prefect's names
    # The same calls under the names Prefect's client gives them, so a script that reads runs
    # ports by changing the import (``client.read_flow_run(flow_run_id)``).
    read_flow = get_flow
    read_flow_run = get_flow_run
    read_flow_run_states = list_flow_run_states
    read_task_run = get_task_run
    read_task_run_states = list_task_run_states
    read_deployment = get_deployment
    read_deployment_by_name = get_deployment
    read_work_pool = get_work_pool
    read_concurrency_limit_by_tag = get_concurrency_limit
    delete_concurrency_limit_by_tag = delete_concurrency_limit
    reset_concurrency_limit_by_tag = reset_concurrency_limit

    # ---------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the channel (ending any watch in progress)."""
        self._runner.close()

    def __enter__(self) -> HeadwaterClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HeadwaterClient(address={self.address!r})"


class AsyncHeadwaterClient:
    """The asyncio client: the same methods as `HeadwaterClient`, as coroutines.

    Use it as ``async with AsyncHeadwaterClient() as client:`` (or through `get_client`): the
    channel is opened on entry, on the running event loop, and closed on exit.

    Args:
        address: The server, e.g. "127.0.0.1:4200". ``None`` uses ``HEADWATER_API_URL``, or the
            embedded server on the local database when that is unset.
        timeout: Seconds each call may take (watches are not limited).
    """

    def __init__(
        self, address: str | None = None, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._opened: AsyncRunner | None = None

    # ------------------------------------------------------------------------- flows

    async def get_flow(self, flow_id: str) -> Flow:
        """One flow by id."""
        return await self._runner().call(ops.get_flow(flow_id))

    async def list_flows(self, *, name: str = "", limit: int = 50) -> list[Flow]:
        """Flows, newest first; ``name`` picks the one flow of that name."""
        return await self._runner().collect(ops.list_flows(name, limit))

    # --------------------------------------------------------------------- flow runs

    async def get_flow_run(self, flow_run_id: str) -> FlowRun:
        """One flow run with its current state."""
        return await self._runner().call(ops.get_flow_run(flow_run_id))

    async def list_flow_runs(
        self,
        *,
        flow_name: str = "",
        flow_ids: Iterable[str] = (),
        state_types: Iterable[Any] = (),
        tags: Iterable[str] = (),
        parent_flow_run_id: str = "",
        name: str | None = None,
        limit: int = 50,
        deployment_id: str = "",
    ) -> list[FlowRun]:
        """Flow runs, newest first, matching every filter given (see
        `HeadwaterClient.list_flow_runs`)."""
        return await self._runner().collect(
            ops.list_flow_runs(
                flow_name=flow_name,
                flow_ids=flow_ids,
                state_types=state_types,
                tags=tags,
                parent_flow_run_id=parent_flow_run_id,
                name=name,
                limit=limit,
                deployment_id=deployment_id,
            )
        )

    async def list_flow_run_events(
        self, flow_run_id: str, after_sequence: int = 0
    ) -> list[FlowRunEvent]:
        """The run's history after ``after_sequence``, oldest first."""
        return await self._runner().collect(ops.list_flow_run_events(flow_run_id, after_sequence))

    async def list_flow_run_states(self, flow_run_id: str) -> list[State[Any]]:
        """Every state the run has been in, oldest first, each with its ``timestamp``."""
        return _states_of(await self.list_flow_run_events(flow_run_id))

    def watch_flow_run(
        self, flow_run_id: str, after_sequence: int = 0
    ) -> AsyncIterator[FlowRun | FlowRunEvent]:
        """Follow the run (``async for``): its `FlowRun` snapshot, then a `FlowRunEvent` per
        state after ``after_sequence``, ending after a final state."""
        return self._runner().watch(flow_run_id, after_sequence)

    async def update_flow_run(
        self,
        flow_run_id: str,
        *,
        name: str | None = None,
        tags: Iterable[str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
    ) -> FlowRun:
        """Change a run's name, tags or retry policy (see `HeadwaterClient.update_flow_run`)."""
        return await self._runner().call(
            ops.update_flow_run(
                flow_run_id,
                name=name,
                tags=tags,
                retries=retries,
                retry_delay_seconds=retry_delay_seconds,
            )
        )

    async def cancel_flow_run(self, flow_run_id: str, reason: str = "") -> FlowRun:
        """Cancel a run: CANCELLED at once, or CANCELLING while its engine stops it."""
        return await self._runner().call(ops.cancel_flow_run(flow_run_id, reason))

    async def get_flow_run_result(self, flow_run_id: str, *, raise_on_failure: bool = True) -> Any:
        """The result of a finished run (see `HeadwaterClient.get_flow_run_result`); a persisted
        result is read from storage in a worker thread, off the event loop."""
        run = await self.get_flow_run(flow_run_id)
        return await asyncio.to_thread(_result_of, run, raise_on_failure)

    # --------------------------------------------------------------- task runs, logs

    async def get_task_run(self, task_run_id: str) -> TaskRun:
        """One task run with its current state."""
        return await self._runner().call(ops.get_task_run(task_run_id))

    async def list_task_runs(
        self,
        flow_run_id: str = "",
        limit: int = 10_000,
        *,
        state_types: Iterable[Any] = (),
        task_key: str = "",
        newest_first: bool = False,
    ) -> list[TaskRun]:
        """Task runs matching every filter (see `HeadwaterClient.list_task_runs`)."""
        return await self._runner().collect(
            ops.list_task_runs(
                flow_run_id,
                limit,
                state_types=state_types,
                task_key=task_key,
                newest_first=newest_first,
            )
        )

    async def list_task_run_states(self, task_run_id: str) -> list[State[Any]]:
        """Every state the task run has been in, oldest first."""
        states = await self._runner().collect(ops.list_task_run_states(task_run_id))
        return _of_task_run(states, await self.get_task_run(task_run_id) if states else None)

    async def get_task_run_result(self, task_run_id: str, *, raise_on_failure: bool = True) -> Any:
        """The result of a finished task run (see `HeadwaterClient.get_task_run_result`); a
        persisted result is read from storage in a worker thread, off the event loop."""
        run = await self.get_task_run(task_run_id)
        return await asyncio.to_thread(_result_of, run, raise_on_failure)

    async def list_logs(
        self,
        flow_run_id: str = "",
        *,
        task_run_id: str = "",
        min_level: int = 0,
        limit: int = 10_000,
    ) -> list[Log]:
        """Log lines at ``min_level`` or above, oldest first (see `HeadwaterClient.list_logs`)."""
        return await self._runner().collect(
            ops.list_logs(flow_run_id, min_level, limit, task_run_id)
        )

    # ------------------------------------------------------------------- deployments

    async def create_deployment(
        self,
        flow_id: str | None = None,
        name: str = "",
        *,
        flow_name: str | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> Deployment:
        """Create a deployment of a flow, named by ``flow_id`` or ``flow_name`` (a flow named
        for the first time is registered).

        Args:
            flow_id: The flow's id; or give ``flow_name``.
            name: The deployment's name, unique among the flow's deployments.
            flow_name: The flow's name, instead of ``flow_id``.
            request_id: A UUID making a retried create return the first answer (generated).
            **fields: Any of ``description``, ``version``, ``tags``, ``entrypoint``, ``path``,
                ``git_url``, ``git_branch``, ``git_commit`` (a git code location instead of
                ``path``), ``parameters``, ``parameter_openapi_schema``,
                ``enforce_parameter_schema`` (default True), ``schedules`` (Prefect-shaped
                schedules, or `DeploymentSchedule` records), ``paused``, ``concurrency_limit``,
                ``collision_strategy`` ("ENQUEUE" or "CANCEL_NEW"), ``work_pool_name``,
                ``work_queue_name``, ``job_variables``.

        Raises:
            ObjectAlreadyExists: The flow has a deployment of that name.
            ObjectNotFound: No flow has ``flow_id``, or the work pool does not exist.
            InvalidRequest: A field is wrong; the message names it.
        """
        return await self._runner().call(
            dops.create_deployment(
                flow_id=flow_id,
                flow_name=flow_name,
                name=name,
                request_id=request_id or _new_id(),
                **_create_fields(fields),
            )
        )

    async def get_deployment(self, deployment: str) -> Deployment:
        """One deployment, by id or by "flow-name/deployment-name"."""
        return await self._runner().call(dops.get_deployment(deployment))

    async def list_deployments(
        self,
        *,
        flow_name: str = "",
        name: str = "",
        tags: Iterable[str] = (),
        work_pool_name: str = "",
        paused: bool | None = None,
        limit: int = 50,
    ) -> list[Deployment]:
        """Deployments, newest first, matching every filter given."""
        return await self._runner().collect(
            dops.list_deployments(
                flow_name=flow_name,
                name=name,
                tags=tags,
                work_pool_name=work_pool_name,
                paused=paused,
                limit=limit,
            )
        )

    async def update_deployment(self, deployment_id: str, **changes: Any) -> Deployment:
        """Change the fields given (the keyword arguments of `create_deployment`, but not the
        names or ``paused``); ``schedules`` replaces the list: a schedule read back keeps its id."""
        return await self._runner().call(dops.update_deployment(deployment_id, changes))

    async def delete_deployment(self, deployment_id: str) -> None:
        """Delete a deployment and its scheduled runs that have not started."""
        await self._runner().call(dops.delete_deployment(deployment_id))

    async def pause_deployment(self, deployment_id: str) -> Deployment:
        """Pause a deployment: its schedules stop and runs on request are refused."""
        return await self._runner().call(dops.pause_deployment(deployment_id))

    async def resume_deployment(self, deployment_id: str) -> Deployment:
        """Resume a paused deployment."""
        return await self._runner().call(dops.resume_deployment(deployment_id))

    async def create_flow_run_from_deployment(
        self,
        deployment_id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        name: str | None = None,
        tags: Iterable[str] = (),
        idempotency_key: str | None = None,
        scheduled_time: dt.datetime | None = None,
        request_id: str | None = None,
        job_variables: Mapping[str, Any] | None = None,
    ) -> FlowRun:
        """Create a SCHEDULED run of a deployment, due now or at ``scheduled_time``, with
        ``parameters`` merged over the deployment's defaults and ``job_variables`` over its
        job variables (for this run only).

        Raises:
            InvalidRequest: The deployment's parameter schema refuses the parameters (the
                message names the parameter), or ``job_variables`` is not a JSON object.
            FailedPrecondition: The deployment is paused.
            ObjectAlreadyExists: ``idempotency_key`` was used for another run of the flow.
        """
        return await self._runner().call(
            dops.create_flow_run_from_deployment(
                deployment_id,
                parameters=parameters,
                name=name,
                tags=tags,
                idempotency_key=idempotency_key,
                scheduled_time=scheduled_time,
                request_id=request_id or _new_id(),
                job_variables=job_variables,
            )
        )

    async def create_flow_runs_from_deployment(
        self,
        deployment_id: str,
        runs: Iterable[Mapping[str, Any]],
        *,
        request_id: str | None = None,
    ) -> list[FlowRun]:
        """Create many runs of one deployment in one call, all or none; each run is a mapping
        of `create_flow_run_from_deployment`'s keyword arguments (``parameters``, ``name``,
        ``tags``, ``idempotency_key``, ``scheduled_time``)."""
        return await self._runner().call(
            dops.create_flow_runs_from_deployment(deployment_id, runs, request_id or _new_id())
        )

    # -------------------------------------------------------------------- work pools

    async def create_work_pool(
        self,
        name: str,
        *,
        type: str = "process",
        description: str = "",
        paused: bool = False,
        concurrency_limit: int | None = None,
        base_job_template: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> WorkPool:
        """Create a work pool (with its "default" queue)."""
        return await self._runner().call(
            dops.create_work_pool(
                name,
                type=type,
                description=description,
                paused=paused,
                concurrency_limit=concurrency_limit,
                base_job_template=base_job_template,
                request_id=request_id or _new_id(),
            )
        )

    async def get_work_pool(self, name: str) -> WorkPool:
        """One work pool by name."""
        return await self._runner().call(dops.get_work_pool(name))

    async def list_work_pools(self, *, limit: int = 200) -> list[WorkPool]:
        """Work pools, oldest first."""
        return await self._runner().collect(dops.list_work_pools(limit))

    async def delete_work_pool(self, name: str) -> None:
        """Delete a work pool and its queues (refused while deployments use it)."""
        await self._runner().call(dops.delete_work_pool(name))

    async def create_work_queue(
        self,
        work_pool_name: str,
        name: str,
        *,
        description: str = "",
        priority: int | None = None,
        concurrency_limit: int | None = None,
        request_id: str | None = None,
    ) -> WorkQueue:
        """Add a queue to a work pool (see `HeadwaterClient.create_work_queue`)."""
        return await self._runner().call(
            dops.create_work_queue(
                work_pool_name,
                name,
                description=description,
                priority=priority,
                concurrency_limit=concurrency_limit,
                request_id=request_id or _new_id(),
            )
        )

    async def list_work_queues(self, work_pool_name: str, *, limit: int = 200) -> list[WorkQueue]:
        """A work pool's queues, highest priority first."""
        return await self._runner().collect(dops.list_work_queues(work_pool_name, limit))

    # -------------------------------------------------------------- concurrency limits

    async def create_concurrency_limit(
        self, tag: str, concurrency_limit: int, *, request_id: str | None = None
    ) -> ConcurrencyLimit:
        """Let at most ``concurrency_limit`` task runs tagged ``tag`` run at once."""
        return await self._runner().call(
            cops.create_concurrency_limit(tag, concurrency_limit, request_id or _new_id())
        )

    async def get_concurrency_limit(self, tag: str) -> ConcurrencyLimit:
        """One tag's limit, with the task runs holding its slots (``ObjectNotFound`` if none)."""
        return await self._runner().call(cops.get_concurrency_limit(tag))

    async def list_concurrency_limits(self, *, limit: int = 200) -> list[ConcurrencyLimit]:
        """Tag limits, oldest first."""
        return await self._runner().collect(cops.list_concurrency_limits(limit))

    async def delete_concurrency_limit(self, tag: str, *, request_id: str | None = None) -> None:
        """Remove a tag's limit: its task runs then start without waiting."""
        await self._runner().call(cops.delete_concurrency_limit(tag, request_id or _new_id()))

    async def reset_concurrency_limit(
        self, tag: str, *, request_id: str | None = None
    ) -> ConcurrencyLimit:
        """Free every slot of a tag's limit (slots an operator knows are stale)."""
        return await self._runner().call(cops.reset_concurrency_limit(tag, request_id or _new_id()))

    # ------------------------------------------------------------------ Prefect's names
    # The same calls under the names Prefect's client gives them, so a script that reads runs
    # ports by changing the import (``client.read_flow_run(flow_run_id)``).
    read_flow = get_flow
    read_flow_run = get_flow_run
    read_flow_run_states = list_flow_run_states
    read_task_run = get_task_run
    read_task_run_states = list_task_run_states
    read_deployment = get_deployment
    read_deployment_by_name = get_deployment
    read_work_pool = get_work_pool
    read_concurrency_limit_by_tag = get_concurrency_limit
    delete_concurrency_limit_by_tag = delete_concurrency_limit
    reset_concurrency_limit_by_tag = reset_concurrency_limit

    # ---------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> AsyncHeadwaterClient:
        if self._opened is None:
            self._opened = await AsyncRunner.open(self.address, self.timeout)
            self.address = self._opened.address
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (ending any watch in progress)."""
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.close()

    def __repr__(self) -> str:
        return f"AsyncHeadwaterClient(address={self.address!r})"

    def _runner(self) -> AsyncRunner:
        if self._opened is None:
            raise RuntimeError(
                "The async client is not open: use it as `async with get_client() as client:` "
                "(or `async with AsyncHeadwaterClient() as client:`)."
            )
        return self._opened


def _states_of(events: list[FlowRunEvent]) -> list[State[Any]]:
    return [event.state for event in events if event.state is not None]


def _of_task_run(states: list[State[Any]], run: TaskRun | None) -> list[State[Any]]:
    """``states``, marked as the task run's (the listing itself does not name its flow run)."""
    if run is not None:
        for state in states:
            state._belongs_to(run.flow_run_id, run.id)
    return states


def _result_of(run: FlowRun | TaskRun, raise_on_failure: bool) -> Any:
    if run.state is None:
        kind = "Task run" if isinstance(run, TaskRun) else "Flow run"
        raise UnfinishedRun(f"{kind} '{run.id}' has no state yet, so it has no result.")
    return run.state.result(raise_on_failure=raise_on_failure)


def _new_id() -> str:
    """A request id for a create: a retry inside the transport then gets the first answer."""
    return str(uuid.uuid4())


#: The keyword arguments `create_deployment` takes besides the flow, the name and request_id.
_CREATE_FIELDS = frozenset(dops.UPDATABLE) | {"paused"}


def _create_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - _CREATE_FIELDS)
    if unknown:
        raise TypeError(
            f"create_deployment() got unknown arguments {unknown}; it takes "
            f"{', '.join(sorted(_CREATE_FIELDS))}."
        )
    return dict(fields)
