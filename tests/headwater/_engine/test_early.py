"""Early starts (`headwater._engine.early`): a submitted call's start leaves before a worker.

The default runner (a thread pool without a worker limit) sends each submitted call's
create-and-start from the submitting thread without waiting, and takes a worker only once the
service answered. The tests hold Headwater's background loop (which runs the embedded service
too) so that no answer can arrive, and look at what happened meanwhile: no worker thread was
taken, yet every run completes once the loop goes on. Everything runs against the embedded
service; what was stored is read back through the public client.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from engine_support import Reader, current_run_id, unique
from headwater import StateType, flow, task
from headwater._engine.early import EarlyStarts
from headwater._engine.task_call import new_call
from headwater._transport.runtime import background_loop, default_transport
from headwater.exceptions import ObjectAlreadyExists


@contextlib.contextmanager
def loop_held() -> Iterator[None]:
    """Keep Headwater's background loop busy for the block: nothing is sent or answered."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(30)

    background_loop().loop.call_soon_threadsafe(hold)
    assert entered.wait(10)
    try:
        yield
    finally:
        release.set()


def _workers(before: frozenset[threading.Thread] = frozenset()) -> list[str]:
    """The task runners' worker threads alive now, but for those in ``before`` (another
    test's runner may still be winding its threads down)."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("headwater-task") and t not in before
    ]


@task
def double(x: int) -> int:
    return 2 * x


def test_submitted_calls_start_without_a_worker_and_all_complete(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    before = frozenset(threading.enumerate())

    @flow(name=unique())
    def pipeline() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        with loop_held():
            futures = [double.submit(index) for index in range(50)]
            # No answer can have arrived, so no call has a worker yet: none waits in one.
            seen["workers"] = _workers(before)
            seen["states"] = {future.state.type for future in futures}
        return [future.result() for future in futures]

    assert pipeline() == [2 * index for index in range(50)]
    assert seen["workers"] == []
    assert seen["states"] == {StateType.PENDING}
    runs = reader.client.list_task_runs(seen["flow_run_id"])
    assert len(runs) == 50
    assert {run.state.type for run in runs if run.state is not None} == {StateType.COMPLETED}


def test_a_start_answered_after_an_interrupt_is_cancelled_not_run(reader: Reader) -> None:
    ran: list[int] = []

    @task
    def recorded(x: int) -> int:
        ran.append(x)
        return x

    transport = default_transport()
    with ThreadPoolExecutor() as pool:
        early = EarlyStarts(pool)
        call = new_call(recorded, {"x": 1})
        with loop_held():
            future = early.submit(call, transport, contextvars.copy_context())
            assert future is not None
            early.close(interrupted=True)  # Ctrl-C while the start is on its way
        state = future.result(timeout=30)
    transport.flush_task_run_states(timeout=30)
    assert (state.type, ran) == (StateType.CANCELLED, [])
    stored = reader.client.get_task_run(call.task_run_id)
    assert stored.state is not None and stored.state.type is StateType.CANCELLED


def test_a_refused_start_fails_the_future_with_the_services_error(reader: Reader) -> None:
    transport = default_transport()
    first = new_call(double, {"x": 1})
    with ThreadPoolExecutor() as pool:
        early = EarlyStarts(pool)
        done = early.submit(first, transport, contextvars.copy_context())
        assert done is not None and done.result(timeout=30).type is StateType.COMPLETED
        again = early.submit(
            replace(new_call(double, {"x": 2}), task_run_id=first.task_run_id),
            transport,
            contextvars.copy_context(),
        )
        assert again is not None
        with pytest.raises(ObjectAlreadyExists, match=first.task_run_id):
            again.result(timeout=30)
        early.close(interrupted=False)


def test_calls_with_upstream_futures_take_the_usual_path(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> int:
        first = double.submit(1)
        second = double.submit(first)  # waits for `first` in a worker, as before
        return second.result()

    assert pipeline() == 4
