"""What each public-client method sends and how its answer becomes SDK records.

`headwater.client` has a sync and an async client with the same methods. Both describe a call
with the values built here: an `Unary` (one request, one converted answer) or a `Listing` (pages
followed until a limit or the last page). The sync and async runners
(`client_sync`, `client_async`) only move these over their channel, so requests, paging and
conversions are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc

from headwater._runs import Flow, FlowRun, FlowRunEvent, Log, TaskRun
from headwater._states import State
from headwater._transport import client_convert as convert
from headwater._transport.convert import state_from_proto
from headwater._transport.status import from_rpc_error
from headwater.exceptions import ServiceError, ServiceUnavailable
from headwater.v1 import (
    concurrency_limits_pb2_grpc,
    deployments_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    flows_pb2,
    flows_pb2_grpc,
    logs_pb2,
    logs_pb2_grpc,
    task_runs_pb2,
    task_runs_pb2_grpc,
    work_pools_pb2_grpc,
)

__all__ = [
    "MAX_PAGE",
    "Listing",
    "Unary",
    "by_token",
    "cancel_flow_run",
    "get_flow",
    "get_flow_run",
    "get_task_run",
    "list_flow_run_events",
    "list_flow_runs",
    "list_flows",
    "list_logs",
    "list_task_run_states",
    "list_task_runs",
    "map_error",
    "page_size",
    "resolve_address",
    "stubs",
    "watch_item",
    "watch_request",
]

T = TypeVar("T")

#: The largest page the service hands out.
MAX_PAGE = 1000

#: A run's history is read whole: events are few per run, and a watch resumes from the last.
WHOLE_HISTORY = 2**62


@dataclass(frozen=True, slots=True)
class Unary(Generic[T]):
    """One unary call: ``service.method(request)``, then ``convert(response)``."""

    service: str
    method: str
    request: Any
    convert: Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A paged list: send ``first``, then ``follow(request, response)`` until it returns None."""

    service: str
    method: str
    first: Any
    items: Callable[[Any], Iterable[Any]]
    convert: Callable[[Any], T]
    follow: Callable[[Any, Any], Any | None]
    limit: int

    def absorb(self, request: Any, response: Any, items: list[T]) -> Any | None:
        """Add a page's items to ``items``; the next request, or None after the last page."""
        items.extend(self.convert(message) for message in self.items(response))
        return self.follow(request, response)


def by_token(request: Any, response: Any) -> Any | None:
    """The next page of a List method: same request, the response's ``next_page_token``."""
    if not response.next_page_token:
        return None
    following = type(request)()
    following.CopyFrom(request)
    following.page_token = response.next_page_token
    return following


def page_size(limit: int) -> int:
    return max(1, min(MAX_PAGE, limit))


# ----------------------------------------------------------------------------------- flows


def get_flow(flow_id: str) -> Unary[Flow]:
    return Unary(
        "flows",
        "GetFlow",
        flows_pb2.GetFlowRequest(flow_id=flow_id),
        lambda response: convert.flow_from_proto(response.flow),
    )


def list_flows(name: str, limit: int) -> Listing[Flow]:
    return Listing(
        "flows",
        "ListFlows",
        flows_pb2.ListFlowsRequest(page_size=page_size(limit), name=name),
        lambda response: response.flows,
        convert.flow_from_proto,
        by_token,
        limit,
    )


# ------------------------------------------------------------------------------- flow runs


def get_flow_run(flow_run_id: str) -> Unary[FlowRun]:
    return Unary(
        "flow_runs",
        "GetFlowRun",
        flow_runs_pb2.GetFlowRunRequest(flow_run_id=flow_run_id),
        lambda response: convert.flow_run_from_proto(response.flow_run),
    )


def list_flow_runs(
    *,
    flow_name: str,
    flow_ids: Iterable[str],
    state_types: Iterable[Any],
    tags: Iterable[str],
    parent_flow_run_id: str,
    name: str | None,
    limit: int,
    deployment_id: str = "",
) -> Listing[FlowRun]:
    """Runs newest first, filtered by the service (``name`` None or empty: any name)."""
    run_filter = flow_runs_pb2.FlowRunFilter(
        flow_ids=list(flow_ids),
        flow_name=flow_name,
        state_types=[convert.parse_state_type(value) for value in state_types],
        parent_flow_run_id=parent_flow_run_id,
        tags=list(tags),
        name=name or "",
        deployment_id=deployment_id,
    )
    return Listing(
        "flow_runs",
        "ListFlowRuns",
        flow_runs_pb2.ListFlowRunsRequest(page_size=page_size(limit), filter=run_filter),
        lambda response: response.flow_runs,
        convert.flow_run_from_proto,
        by_token,
        limit,
    )


def list_flow_run_events(flow_run_id: str, after_sequence: int) -> Listing[FlowRunEvent]:
    """The whole history after ``after_sequence``, oldest first (paged by sequence)."""

    def follow(
        request: flow_runs_pb2.ListFlowRunEventsRequest,
        response: flow_runs_pb2.ListFlowRunEventsResponse,
    ) -> flow_runs_pb2.ListFlowRunEventsRequest | None:
        if not response.events or response.events[-1].sequence >= response.last_sequence:
            return None
        return flow_runs_pb2.ListFlowRunEventsRequest(
            flow_run_id=flow_run_id,
            after_sequence=response.events[-1].sequence,
            page_size=MAX_PAGE,
        )

    return Listing(
        "flow_runs",
        "ListFlowRunEvents",
        flow_runs_pb2.ListFlowRunEventsRequest(
            flow_run_id=flow_run_id, after_sequence=after_sequence, page_size=MAX_PAGE
        ),
        lambda response: response.events,
        convert.event_from_proto,
        follow,
        limit=WHOLE_HISTORY,
    )


def watch_request(flow_run_id: str, after_sequence: int) -> flow_runs_pb2.WatchFlowRunRequest:
    return flow_runs_pb2.WatchFlowRunRequest(flow_run_id=flow_run_id, after_sequence=after_sequence)


def watch_item(response: flow_runs_pb2.WatchFlowRunResponse) -> FlowRun | FlowRunEvent | None:
    """A watch message as the SDK shows it: the run's snapshot, an event, or None (caught up)."""
    kind = response.WhichOneof("kind")
    if kind == "snapshot":
        return convert.flow_run_from_proto(response.snapshot)
    if kind == "event":
        return convert.event_from_proto(response.event)
    return None


def update_flow_run(
    flow_run_id: str,
    *,
    name: str | None,
    tags: Iterable[str] | None,
    retries: int | None,
    retry_delay_seconds: float | None,
) -> Unary[FlowRun]:
    """Change the fields given; ``retries`` or ``retry_delay_seconds`` replace the policy."""
    request = flow_runs_pb2.UpdateFlowRunRequest(flow_run_id=flow_run_id)
    if name is not None:
        request.name = name
        request.update_mask.paths.append("name")
    if tags is not None:
        request.tags.extend(tags)
        request.update_mask.paths.append("tags")
    if retries is not None or retry_delay_seconds is not None:
        request.policy.retries = retries or 0
        request.policy.retry_delay.FromNanoseconds(int((retry_delay_seconds or 0) * 1e9))
        request.update_mask.paths.append("policy")
    return Unary(
        "flow_runs",
        "UpdateFlowRun",
        request,
        lambda response: convert.flow_run_from_proto(response.flow_run),
    )


def cancel_flow_run(flow_run_id: str, reason: str) -> Unary[FlowRun]:
    return Unary(
        "flow_runs",
        "CancelFlowRun",
        flow_runs_pb2.CancelFlowRunRequest(flow_run_id=flow_run_id, reason=reason),
        lambda response: convert.flow_run_from_proto(response.flow_run),
    )


# ------------------------------------------------------------------------ task runs, logs


def get_task_run(task_run_id: str) -> Unary[TaskRun]:
    return Unary(
        "task_runs",
        "GetTaskRun",
        task_runs_pb2.GetTaskRunRequest(task_run_id=task_run_id),
        lambda response: convert.task_run_from_proto(response.task_run),
    )


def list_task_runs(
    flow_run_id: str,
    limit: int,
    *,
    state_types: Iterable[Any] = (),
    task_key: str = "",
    newest_first: bool = False,
) -> Listing[TaskRun]:
    """Task runs in creation order (or newest first), filtered by the service."""
    run_filter = task_runs_pb2.TaskRunFilter(
        flow_run_id=flow_run_id,
        state_types=[convert.parse_state_type(value) for value in state_types],
        task_key=task_key,
    )
    return Listing(
        "task_runs",
        "ListTaskRuns",
        task_runs_pb2.ListTaskRunsRequest(
            page_size=page_size(limit), filter=run_filter, newest_first=newest_first
        ),
        lambda response: response.task_runs,
        convert.task_run_from_proto,
        by_token,
        limit,
    )


def list_task_run_states(task_run_id: str) -> Listing[State[Any]]:
    """Every state of one task run, oldest first (its history is read whole)."""
    return Listing(
        "task_runs",
        "ListTaskRunStates",
        task_runs_pb2.ListTaskRunStatesRequest(task_run_id=task_run_id, page_size=MAX_PAGE),
        lambda response: response.states,
        state_from_proto,
        by_token,
        limit=WHOLE_HISTORY,
    )


def list_logs(flow_run_id: str, min_level: int, limit: int, task_run_id: str = "") -> Listing[Log]:
    return Listing(
        "logs",
        "ListLogs",
        logs_pb2.ListLogsRequest(
            page_size=page_size(limit),
            filter=logs_pb2.LogFilter(
                flow_run_id=flow_run_id, task_run_id=task_run_id, min_level=min_level
            ),
        ),
        lambda response: response.logs,
        convert.log_from_proto,
        by_token,
        limit,
    )


# ------------------------------------------------------------------------ channel, errors


def resolve_address(address: str | None) -> str:
    """The server to dial: ``address``, else ``HEADWATER_API_URL``, else the embedded server.

    The embedded server (started on first use, on the local database) is what a flow run in
    this process reports to, so a client with no address reads the runs made here.

    Raises:
        ValueError: ``address`` can never work (no port, a URL path, not an address).
    """
    if address is not None:
        from headwater._transport.channel import checked_target

        return checked_target(address)  # refuse one that can never work before dialling
    from headwater._transport.runtime import service_address

    return service_address()


def stubs(channel: Any) -> dict[str, Any]:
    """The generated stub of each service the clients use, by the name `Unary.service` and
    `Listing.service` give, on ``channel`` (sync or aio)."""
    return {
        "flows": flows_pb2_grpc.FlowServiceStub(channel),
        "flow_runs": flow_runs_pb2_grpc.FlowRunServiceStub(channel),
        "task_runs": task_runs_pb2_grpc.TaskRunServiceStub(channel),
        "logs": logs_pb2_grpc.LogServiceStub(channel),
        "deployments": deployments_pb2_grpc.DeploymentServiceStub(channel),
        "work_pools": work_pools_pb2_grpc.WorkPoolServiceStub(channel),
        "concurrency_limits": concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub(channel),
    }


def map_error(error: grpc.RpcError, address: str) -> ServiceError:
    """The SDK's typed exception for a failed call, naming the address when it was unreachable."""
    mapped = from_rpc_error(error)
    if isinstance(mapped, ServiceUnavailable) and not mapped.reason:
        # No reason: gRPC itself could not reach the server (the service always sets one).
        return ServiceUnavailable(
            "SERVICE_UNREACHABLE",
            f"Could not reach the Headwater service at {address} ({mapped.message}). "
            "Start it with `headwater server start`, or point HEADWATER_API_URL at a "
            "running server.",
        )
    return mapped
