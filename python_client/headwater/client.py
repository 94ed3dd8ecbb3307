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
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from headwater._runs import Flow, FlowRun, FlowRunEvent, Log, TaskRun
from headwater._states import State, StateType
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
    "Flow",
    "FlowRun",
    "FlowRunEvent",
    "HeadwaterClient",
    "Log",
    "TaskRun",
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
        return self._runner.collect(ops.list_task_run_states(task_run_id))

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
        return await self._runner().collect(ops.list_task_run_states(task_run_id))

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


def _result_of(run: FlowRun | TaskRun, raise_on_failure: bool) -> Any:
    if run.state is None:
        kind = "Task run" if isinstance(run, TaskRun) else "Flow run"
        raise UnfinishedRun(f"{kind} '{run.id}' has no state yet, so it has no result.")
    return run.state.result(raise_on_failure=raise_on_failure)
