"""A small synchronous client of the Headwater API, for people, scripts, tests and the CLI.

The engine reports through its own stream (`headwater._transport.stream`); this client makes
plain unary calls to read and manage runs. Errors arrive as the same typed exceptions
(`headwater.exceptions.ObjectNotFound`, ...) with the service's reason and message.

Example::

    from headwater.client import HeadwaterClient

    with HeadwaterClient("127.0.0.1:4200") as client:
        for run in client.list_flow_runs(flow_name="etl", limit=10):
            print(run.name, run.state.name)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import grpc

from headwater._transport.status import from_rpc_error
from headwater.exceptions import ServiceUnavailable
from headwater.v1 import (
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    flows_pb2,
    flows_pb2_grpc,
    logs_pb2,
    logs_pb2_grpc,
    states_pb2,
    task_runs_pb2,
    task_runs_pb2_grpc,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["HeadwaterClient", "parse_state_type"]

_MAX_PAGE = 1000

# The generated ``*_pb2_grpc`` stubs carry no annotations, so these protocols state what this
# client relies on: each method the client calls, with its request and response messages.
_ReqT = TypeVar("_ReqT")
_RespT = TypeVar("_RespT")
_ReqT_contra = TypeVar("_ReqT_contra", contravariant=True)
_RespT_co = TypeVar("_RespT_co", covariant=True)


class _UnaryMethod(Protocol[_ReqT_contra, _RespT_co]):
    """A unary-unary method of a generated stub (a ``grpc.UnaryUnaryMultiCallable``)."""

    def __call__(self, request: _ReqT_contra, *, timeout: float | None = ...) -> _RespT_co: ...


class _ResponseStream(Protocol[_RespT_co]):
    """What a unary-stream call returns: the responses, and a way to end the call early."""

    def __iter__(self) -> Iterator[_RespT_co]: ...

    def cancel(self) -> bool: ...


class _StreamMethod(Protocol[_ReqT_contra, _RespT_co]):
    """A unary-stream method of a generated stub (a ``grpc.UnaryStreamMultiCallable``)."""

    def __call__(self, request: _ReqT_contra) -> _ResponseStream[_RespT_co]: ...


class _FlowService(Protocol):
    GetFlow: _UnaryMethod[flows_pb2.GetFlowRequest, flows_pb2.GetFlowResponse]
    ListFlows: _UnaryMethod[flows_pb2.ListFlowsRequest, flows_pb2.ListFlowsResponse]


class _FlowRunService(Protocol):
    GetFlowRun: _UnaryMethod[flow_runs_pb2.GetFlowRunRequest, flow_runs_pb2.GetFlowRunResponse]
    ListFlowRuns: _UnaryMethod[
        flow_runs_pb2.ListFlowRunsRequest, flow_runs_pb2.ListFlowRunsResponse
    ]
    ListFlowRunEvents: _UnaryMethod[
        flow_runs_pb2.ListFlowRunEventsRequest, flow_runs_pb2.ListFlowRunEventsResponse
    ]
    WatchFlowRun: _StreamMethod[
        flow_runs_pb2.WatchFlowRunRequest, flow_runs_pb2.WatchFlowRunResponse
    ]
    CancelFlowRun: _UnaryMethod[
        flow_runs_pb2.CancelFlowRunRequest, flow_runs_pb2.CancelFlowRunResponse
    ]


class _TaskRunService(Protocol):
    ListTaskRuns: _UnaryMethod[
        task_runs_pb2.ListTaskRunsRequest, task_runs_pb2.ListTaskRunsResponse
    ]


class _LogService(Protocol):
    ListLogs: _UnaryMethod[logs_pb2.ListLogsRequest, logs_pb2.ListLogsResponse]


def parse_state_type(value: Any) -> states_pb2.StateType:
    """A `StateType` number from a number, "COMPLETED", "completed", "STATE_TYPE_COMPLETED" or
    the SDK's own `StateType` enum.

    Raises:
        ValueError: The value names no state type; the message lists the valid ones.
    """
    names = [key for key, number in states_pb2.StateType.items() if number]
    if isinstance(value, int) and not isinstance(value, bool):
        if value in states_pb2.StateType.values() and value != 0:
            return cast("states_pb2.StateType", value)
    else:
        name = str(getattr(value, "value", value)).strip().upper()
        if not name.startswith("STATE_TYPE_"):
            name = "STATE_TYPE_" + name
        if name in names:
            return cast("states_pb2.StateType", states_pb2.StateType.Value(name))
    valid = ", ".join(key.removeprefix("STATE_TYPE_") for key in names)
    raise ValueError(f"Unknown state type {value!r}; use one of {valid}.")


class HeadwaterClient:
    """Unary calls to the Headwater services over one synchronous gRPC channel.

    Args:
        address: The server, e.g. "127.0.0.1:4200". ``None`` uses ``HEADWATER_API_URL``, or the
            embedded server on the local database when that is unset.
        timeout: Seconds each call may take (watches are not limited).
    """

    def __init__(self, address: str | None = None, *, timeout: float | None = 30.0) -> None:
        from headwater._settings import get_settings
        from headwater._transport.channel import channel_options

        settings = get_settings()
        if address is None:
            address = settings.api_url
        if address is None:
            from headwater._transport.runtime import service_address

            address = service_address()
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            address, options=channel_options(settings.keepalive_time_ms)
        )
        self._flows = cast("_FlowService", flows_pb2_grpc.FlowServiceStub(self._channel))
        self._flow_runs = cast(
            "_FlowRunService", flow_runs_pb2_grpc.FlowRunServiceStub(self._channel)
        )
        self._task_runs = cast(
            "_TaskRunService", task_runs_pb2_grpc.TaskRunServiceStub(self._channel)
        )
        self._logs = cast("_LogService", logs_pb2_grpc.LogServiceStub(self._channel))

    # ------------------------------------------------------------------------- flows

    def get_flow(self, flow_id: str) -> flows_pb2.Flow:
        """One flow by id."""
        return self._call(self._flows.GetFlow, flows_pb2.GetFlowRequest(flow_id=flow_id)).flow

    def list_flows(self, *, name: str = "", limit: int = 50) -> list[flows_pb2.Flow]:
        """Flows, newest first; ``name`` picks the one flow of that name."""
        return self._collect(
            self._flows.ListFlows,
            lambda size, token: flows_pb2.ListFlowsRequest(
                page_size=size, page_token=token, name=name
            ),
            "flows",
            limit,
        )

    # --------------------------------------------------------------------- flow runs

    def get_flow_run(self, flow_run_id: str) -> flow_runs_pb2.FlowRun:
        """One flow run with its current state."""
        return self._call(
            self._flow_runs.GetFlowRun, flow_runs_pb2.GetFlowRunRequest(flow_run_id=flow_run_id)
        ).flow_run

    def list_flow_runs(
        self,
        *,
        flow_name: str = "",
        flow_ids: Iterable[str] = (),
        state_types: Iterable[Any] = (),
        tags: Iterable[str] = (),
        parent_flow_run_id: str = "",
        limit: int = 50,
    ) -> list[flow_runs_pb2.FlowRun]:
        """Flow runs, newest first, matching every filter given.

        Args:
            flow_name: Only runs of the flow with this name.
            flow_ids: Only runs of these flows.
            state_types: Only runs in these states ("COMPLETED", `StateType` values, ...).
            tags: Only runs carrying all of these tags.
            parent_flow_run_id: Only subflow runs of this run.
            limit: The most runs to return (pages are fetched as needed).
        """
        run_filter = flow_runs_pb2.FlowRunFilter(
            flow_ids=list(flow_ids),
            flow_name=flow_name,
            state_types=[parse_state_type(t) for t in state_types],
            parent_flow_run_id=parent_flow_run_id,
            tags=list(tags),
        )
        return self._collect(
            self._flow_runs.ListFlowRuns,
            lambda size, token: flow_runs_pb2.ListFlowRunsRequest(
                page_size=size, page_token=token, filter=run_filter
            ),
            "flow_runs",
            limit,
        )

    def list_flow_run_events(
        self, flow_run_id: str, after_sequence: int = 0
    ) -> list[flow_runs_pb2.FlowRunEvent]:
        """The run's whole event history after ``after_sequence``, oldest first."""
        events: list[flow_runs_pb2.FlowRunEvent] = []
        while True:
            page = self._call(
                self._flow_runs.ListFlowRunEvents,
                flow_runs_pb2.ListFlowRunEventsRequest(
                    flow_run_id=flow_run_id, after_sequence=after_sequence, page_size=_MAX_PAGE
                ),
            )
            events.extend(page.events)
            if not page.events or page.events[-1].sequence >= page.last_sequence:
                return events
            after_sequence = page.events[-1].sequence

    def watch_flow_run(
        self, flow_run_id: str, after_sequence: int = 0
    ) -> Iterator[flow_runs_pb2.WatchFlowRunResponse]:
        """Stream the run: a snapshot, the events after ``after_sequence``, ``caught_up``, then
        live events, ending after a terminal state.

        The stream has no deadline; stop iterating (or close the client) to end it early.
        """
        call = self._flow_runs.WatchFlowRun(
            flow_runs_pb2.WatchFlowRunRequest(
                flow_run_id=flow_run_id, after_sequence=after_sequence
            )
        )
        try:
            yield from call
        except grpc.RpcError as error:
            raise self._map_error(error) from None
        finally:
            call.cancel()

    def cancel_flow_run(self, flow_run_id: str, reason: str = "") -> flow_runs_pb2.FlowRun:
        """Cancel a run: CANCELLED at once, or CANCELLING while its engine stops it."""
        return self._call(
            self._flow_runs.CancelFlowRun,
            flow_runs_pb2.CancelFlowRunRequest(flow_run_id=flow_run_id, reason=reason),
        ).flow_run

    # --------------------------------------------------------------- task runs, logs

    def list_task_runs(self, flow_run_id: str, limit: int = 10_000) -> list[task_runs_pb2.TaskRun]:
        """The task runs of a flow run, in creation order."""
        task_filter = task_runs_pb2.TaskRunFilter(flow_run_id=flow_run_id)
        return self._collect(
            self._task_runs.ListTaskRuns,
            lambda size, token: task_runs_pb2.ListTaskRunsRequest(
                page_size=size, page_token=token, filter=task_filter
            ),
            "task_runs",
            limit,
        )

    def list_logs(self, flow_run_id: str, limit: int = 10_000) -> list[logs_pb2.Log]:
        """The log lines of a flow run, oldest first."""
        log_filter = logs_pb2.LogFilter(flow_run_id=flow_run_id)
        return self._collect(
            self._logs.ListLogs,
            lambda size, token: logs_pb2.ListLogsRequest(
                page_size=size, page_token=token, filter=log_filter
            ),
            "logs",
            limit,
        )

    # ---------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the channel (ending any watch in progress)."""
        self._channel.close()

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

    # ---------------------------------------------------------------------- internals

    def _call(self, method: _UnaryMethod[_ReqT, _RespT], request: _ReqT) -> _RespT:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            # `from None`: the gRPC internals add nothing a caller can act on.
            raise self._map_error(error) from None

    def _map_error(self, error: grpc.RpcError) -> Exception:
        mapped = from_rpc_error(error)
        if isinstance(mapped, ServiceUnavailable) and not mapped.reason:
            # No reason: gRPC itself could not reach the server (the service always sets one).
            return ServiceUnavailable(
                "SERVICE_UNREACHABLE",
                f"Could not reach the Headwater service at {self.address} ({mapped.message}). "
                "Start it with `headwater server start`, or point HEADWATER_API_URL at a "
                "running server.",
            )
        return mapped

    def _collect(
        self,
        method: _UnaryMethod[_ReqT, Any],
        make_request: Callable[[int, str], _ReqT],
        field: str,
        limit: int,
    ) -> list[Any]:
        """Follow ``next_page_token`` until ``limit`` items or the last page."""
        items: list[Any] = []
        token = ""
        while len(items) < limit:
            page = self._call(method, make_request(min(_MAX_PAGE, limit - len(items)), token))
            items.extend(getattr(page, field))
            token = page.next_page_token
            if not token:
                break
        return items[:limit]
