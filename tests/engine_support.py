"""Shared helpers for the engine tests: point the SDK at a server, and read back what it stored.

The SDK keeps one default transport per process and reads its settings once, so switching
between the embedded server and a server subprocess means closing the transport, stopping the
embedded server and forgetting the settings, then letting the next flow call start again from the
environment. Nothing is mocked: every read goes through the real gRPC API.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from headwater._context import FlowRunContext
from headwater._settings import reset_settings
from headwater.client import HeadwaterClient
from headwater.v1 import flow_runs_pb2, states_pb2

STATE_NAMES = {
    value: name.removeprefix("STATE_TYPE_") for name, value in states_pb2.StateType.items()
}


def reset_sdk() -> None:
    """Close the process's streams and embedded server, and forget the settings.

    Closing a transport first sends the log lines it still buffers, which belong to the
    server being left.
    """
    from headwater._transport.runtime import reset

    reset()
    reset_settings()


@contextmanager
def sdk_target(home: Path, api_url: str | None = None) -> Iterator[None]:
    """Run the block with HEADWATER_HOME=home and, when given, HEADWATER_API_URL=api_url."""
    saved = {
        key: os.environ.get(key)
        for key in ("HEADWATER_HOME", "HEADWATER_API_URL", "HEADWATER_DATABASE_URL")
    }
    reset_sdk()
    os.environ["HEADWATER_HOME"] = str(home)
    os.environ.pop("HEADWATER_DATABASE_URL", None)
    if api_url is None:
        os.environ.pop("HEADWATER_API_URL", None)
    else:
        os.environ["HEADWATER_API_URL"] = api_url
    try:
        yield
    finally:
        reset_sdk()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()


def unique(prefix: str = "flow") -> str:
    """A flow name no other test uses, so runs can be found by flow name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def current_run_id() -> str:
    """The id of the flow run the caller runs in (call it inside a flow)."""
    context = FlowRunContext.get()
    assert context is not None, "not inside a flow run"
    return context.flow_run.id


class Reader:
    """Reads runs, events and logs back through the public client.

    The engine tests check what the engine sent over the wire, so runs and states are handed
    back as the service's messages (each SDK record's ``raw``).
    """

    def __init__(self) -> None:
        self.client = HeadwaterClient()

    def run(self, flow_run_id: str) -> flow_runs_pb2.FlowRun:
        message: flow_runs_pb2.FlowRun = self.client.get_flow_run(flow_run_id).raw
        return message

    def runs_of(self, flow_name: str) -> list[flow_runs_pb2.FlowRun]:
        return [run.raw for run in self.client.list_flow_runs(flow_name=flow_name)]

    def only_run_of(self, flow_name: str) -> flow_runs_pb2.FlowRun:
        runs = self.runs_of(flow_name)
        assert len(runs) == 1, [run.name for run in runs]
        return runs[0]

    def history(self, flow_run_id: str) -> list[str]:
        """The names of the run's states, oldest first, as the service stored them."""
        return [state.name for state in self.history_states(flow_run_id)]

    def history_states(self, flow_run_id: str) -> list[Any]:
        return [
            event.raw.state_changed
            for event in self.client.list_flow_run_events(flow_run_id)
            if event.state is not None
        ]

    def log_messages(self, flow_run_id: str) -> list[str]:
        return [line.message for line in self.client.list_logs(flow_run_id)]

    def state_type(self, flow_run_id: str) -> str:
        return STATE_NAMES[self.run(flow_run_id).state.type]

    def close(self) -> None:
        self.client.close()
