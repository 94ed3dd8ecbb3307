"""Cancelling a running flow run: the engine notices CANCELLING, stops the code, reports CANCELLED.

Everything runs for real: the SDK talks to a server subprocess, the cancellation comes from
another thread through the public client (or the ``headwater`` command), and the history is read
back through the API.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Reader, current_run_id, sdk_target, unique
from headwater import flow
from headwater._states import StateType
from headwater.exceptions import CancelledRun
from headwater.v1 import states_pb2
from test_cli import assert_one_error_line, run_cli

pytestmark = pytest.mark.integration

#: Long enough that a flow still running after it was not stopped fails the test clearly.
_LOOP_SECONDS = 15.0


@pytest.fixture(scope="module")
def reader(sqlite_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    with sdk_target(tmp_path_factory.mktemp("cancel-client-home"), api_url=sqlite_server.address):
        reader = Reader()
        yield reader
        reader.close()


def _cancel_when_started(
    started: threading.Event, run_ids: list[str], cancel: Callable[[str], Any]
) -> threading.Thread:
    """Cancel the run from another thread as soon as its code has started."""

    def target() -> None:
        assert started.wait(10)
        cancel(run_ids[0])

    thread = threading.Thread(target=target, name="canceller")
    thread.start()
    return thread


def _sleep_in_small_steps() -> None:
    """Keep a sync flow busy in short sleeps, so an interrupt lands within ~20 ms."""
    deadline = time.monotonic() + _LOOP_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.02)


def _watches_opened() -> int:
    from headwater._transport.runtime import default_transport

    return default_transport().connection.watches_opened


def test_a_sync_flow_is_cancelled_while_it_runs(reader: Reader) -> None:
    started = threading.Event()
    run_ids: list[str] = []
    hook_calls: list[tuple[str, str, Any]] = []

    def on_cancel(flow_: Any, flow_run: Any, state: Any) -> None:
        hook_calls.append((flow_.name, flow_run.id, state))

    @flow(name=unique("cancel-sync"), on_cancellation=[on_cancel])
    def sleeper() -> str:
        run_ids.append(current_run_id())
        started.set()
        _sleep_in_small_steps()
        return "not cancelled"

    canceller = _cancel_when_started(
        started, run_ids, lambda run_id: reader.client.cancel_flow_run(run_id, reason="ops: stop")
    )
    began = time.monotonic()
    with pytest.raises(CancelledRun, match="ops: stop"):
        sleeper()
    canceller.join()
    assert time.monotonic() - began < 5
    run_id = run_ids[0]
    assert reader.history(run_id)[-3:] == ["Running", "Cancelling", "Cancelled"]
    final = reader.run(run_id).state
    assert final.type == states_pb2.STATE_TYPE_CANCELLED
    assert final.message == "ops: stop"
    assert len(hook_calls) == 1
    name, hooked_run_id, state = hook_calls[0]
    assert (name, hooked_run_id) == (sleeper.name, run_id)
    assert state.type is StateType.CANCELLED
    assert state.message == "ops: stop"


def test_an_async_flow_is_cancelled_while_it_runs(reader: Reader) -> None:
    started = threading.Event()
    run_ids: list[str] = []
    hooked: list[str] = []

    @flow(name=unique("cancel-async"), on_cancellation=[lambda f, r, s: hooked.append(s.name)])
    async def asleeper() -> str:
        run_ids.append(current_run_id())
        started.set()
        await asyncio.sleep(_LOOP_SECONDS)
        return "not cancelled"

    canceller = _cancel_when_started(
        started, run_ids, lambda run_id: reader.client.cancel_flow_run(run_id, reason="async stop")
    )
    state = asyncio.run(asleeper(return_state=True))
    canceller.join()
    assert state.type is StateType.CANCELLED
    assert state.message == "async stop"
    with pytest.raises(CancelledRun, match="async stop"):
        state.result()
    assert reader.history(run_ids[0])[-3:] == ["Running", "Cancelling", "Cancelled"]
    assert hooked == ["Cancelled"]


def test_a_subflow_of_a_cancelled_parent_is_cancelled_too(reader: Reader) -> None:
    started = threading.Event()
    run_ids: list[str] = []
    child_ids: list[str] = []

    @flow(name=unique("cancel-child"))
    def child() -> None:
        child_ids.append(current_run_id())
        started.set()
        _sleep_in_small_steps()

    @flow(name=unique("cancel-parent"))
    def parent() -> None:
        run_ids.append(current_run_id())
        child()

    canceller = _cancel_when_started(
        started, run_ids, lambda run_id: reader.client.cancel_flow_run(run_id, reason="parent off")
    )
    with pytest.raises(CancelledRun, match="parent off"):
        parent()
    canceller.join()
    assert reader.history(run_ids[0])[-3:] == ["Running", "Cancelling", "Cancelled"]
    assert reader.history(child_ids[0])[-2:] == ["Running", "Cancelled"]
    assert "parent off" in reader.run(child_ids[0]).state.message


def test_a_flow_cancelled_through_the_cli(
    reader: Reader, sqlite_server: Any, tmp_path: Path
) -> None:
    started = threading.Event()
    run_ids: list[str] = []
    outputs: list[Any] = []

    @flow(name=unique("cancel-cli"))
    def sleeper() -> None:
        run_ids.append(current_run_id())
        started.set()
        _sleep_in_small_steps()

    def cancel(run_id: str) -> None:
        outputs.append(
            run_cli(
                "flow-run",
                "cancel",
                run_id,
                "--reason",
                "from the CLI",
                api_url=sqlite_server.address,
                home=tmp_path,
            )
        )

    canceller = _cancel_when_started(started, run_ids, cancel)
    with pytest.raises(CancelledRun, match="from the CLI"):
        sleeper()
    canceller.join()
    result = outputs[0]
    assert result.returncode == 0, result.stderr
    assert "Cancelling" in result.stdout
    assert run_ids[0] in result.stdout
    assert reader.history(run_ids[0])[-3:] == ["Running", "Cancelling", "Cancelled"]

    again = run_cli("flow-run", "cancel", run_ids[0], api_url=sqlite_server.address, home=tmp_path)
    assert_one_error_line(again, run_ids[0])


def test_a_trivial_flow_opens_no_watch(reader: Reader) -> None:
    @flow(name=unique("trivial"))
    def trivial(x: int) -> int:
        return x

    trivial(0)  # connect first
    before = _watches_opened()
    for i in range(50):
        assert trivial(i) == i
    assert _watches_opened() == before


def test_a_longer_flow_is_watched_and_still_completes(reader: Reader) -> None:
    run_ids: list[str] = []

    @flow(name=unique("longer"))
    def longer() -> str:
        run_ids.append(current_run_id())
        time.sleep(1.0)
        return "done"

    before = _watches_opened()
    assert longer() == "done"
    assert _watches_opened() == before + 1
    assert reader.history(run_ids[0]) == ["Pending", "Running", "Completed"]


def test_an_async_subflow_of_a_cancelled_parent_is_cancelled_too(reader: Reader) -> None:
    started = threading.Event()
    run_ids: list[str] = []
    child_ids: list[str] = []

    @flow(name=unique("cancel-achild"))
    async def child() -> None:
        child_ids.append(current_run_id())
        started.set()
        await asyncio.sleep(_LOOP_SECONDS)

    @flow(name=unique("cancel-aparent"))
    async def parent() -> None:
        run_ids.append(current_run_id())
        await child()

    canceller = _cancel_when_started(
        started, run_ids, lambda run_id: reader.client.cancel_flow_run(run_id, reason="all off")
    )
    with pytest.raises(CancelledRun, match="all off"):
        asyncio.run(parent())
    canceller.join()
    assert reader.history(run_ids[0])[-3:] == ["Running", "Cancelling", "Cancelled"]
    assert reader.history(child_ids[0])[-2:] == ["Running", "Cancelled"]
    assert "all off" in reader.run(child_ids[0]).state.message


def test_a_flow_running_outside_the_main_thread_is_cancelled(reader: Reader) -> None:
    started = threading.Event()
    run_ids: list[str] = []
    outcome: list[BaseException] = []

    @flow(name=unique("cancel-thread"))
    def sleeper() -> None:
        run_ids.append(current_run_id())
        started.set()
        _sleep_in_small_steps()

    def target() -> None:
        try:
            sleeper()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=target, name="flow-worker")
    worker.start()
    assert started.wait(10)
    reader.client.cancel_flow_run(run_ids[0], reason="worker stop")
    worker.join(10)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledRun)
    assert reader.history(run_ids[0])[-3:] == ["Running", "Cancelling", "Cancelled"]
