"""`FlowRun`: the read-only view of a flow run that hooks and run contexts receive.

The service describes a run with the ``headwater.v1.FlowRun`` message; user code gets this small
frozen dataclass instead, so hooks see plain Python values (a dict of parameters, an SDK
`State`) and cannot change what the engine relies on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater._states import State
    from headwater.v1 import flow_runs_pb2

__all__ = ["FlowRun"]


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

    @classmethod
    def from_proto(
        cls,
        message: flow_runs_pb2.FlowRun,
        *,
        parameters: dict[str, Any] | None = None,
        state: State[Any] | None = None,
    ) -> FlowRun:
        """Build the view from the service's message.

        Args:
            message: The run as the service sent it.
            parameters: The parameters when the caller already has them, which saves parsing
                ``parameters_json`` again.
            state: The SDK state to show, when the caller holds one with in-memory data.
        """
        if parameters is None:
            parameters = json.loads(message.parameters_json) if message.parameters_json else {}
        if state is None and message.HasField("state"):
            from headwater._transport.convert import state_from_proto

            state = state_from_proto(message.state)
        return cls(
            id=message.id,
            name=message.name,
            flow_name=message.flow_name,
            parameters=parameters,
            run_count=message.run_count,
            state=state,
            tags=tuple(message.tags),
            parent_flow_run_id=message.parent_flow_run_id or None,
            flow_id=message.flow_id,
            flow_version=message.flow_version or None,
        )
