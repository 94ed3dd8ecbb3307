"""The flow engine through the public API, on the embedded default (a real in-process server).

Every assertion about what happened reads the service back over gRPC: the states a run went
through as stored, its run count, its logs, its result. The same behaviour against a server
subprocess (and PostgreSQL) is in test_engine_integration.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Reader, current_run_id, sdk_target, unique
from headwater import Cancelled, Completed, Failed, FlowRunContext, State, StateType, flow, tags
from headwater._flows import run_flow
from headwater._logging import get_run_logger
from headwater.exceptions import (
    Abort,
    FlowRunTimeoutError,
    MissingContextError,
    ParameterTypeError,
)

SLEEPERS = {
    "sync": (
        "import sys, time\n"
        "from headwater import flow\n"
        "from headwater._context import FlowRunContext\n"
        "@flow(name=sys.argv[1])\n"
        "def sleeper():\n"
        "    print('RUN', FlowRunContext.get().flow_run.id, flush=True)\n"
        "    time.sleep(60)\n"
        "sleeper()\n"
    ),
    "async": (
        "import asyncio, sys\n"
        "from headwater import flow\n"
        "from headwater._context import FlowRunContext\n"
        "@flow(name=sys.argv[1])\n"
        "async def sleeper():\n"
        "    print('RUN', FlowRunContext.get().flow_run.id, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(sleeper())\n"
    ),
    "generator": (
        "import sys, time\n"
        "from headwater import flow\n"
        "from headwater._context import FlowRunContext\n"
        "@flow(name=sys.argv[1])\n"
        "def sleeper():\n"
        "    yield FlowRunContext.get().flow_run.id\n"
        "    time.sleep(60)\n"
        "    yield 'never'\n"
        "for value in sleeper():\n"
        "    print('RUN', value, flush=True)\n"
    ),
}


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    """The embedded server on a fresh HEADWATER_HOME for this module, and a reader for it."""
    home = tmp_path_factory.mktemp("engine-home")
    with sdk_target(home):
        reader = Reader()
        reader.home = home  # type: ignore[attr-defined]
        yield reader
        reader.close()


# -- results and states ------------------------------------------------------------------------


class TestResults:
    def test_sync_flow_returns_its_result_and_is_stored_completed(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique())
        def add(x: int, y: int = 2) -> int:
            seen.append(current_run_id())
            return x + y

        assert add(1) == 3
        run = reader.run(seen[0])
        assert reader.state_type(run.id) == "COMPLETED"
        assert json.loads(run.state.result.json) == 3
        assert json.loads(run.parameters_json) == {"x": 1, "y": 2}
        assert run.run_count == 1
        assert reader.history(run.id) == ["Pending", "Running", "Completed"]

    def test_async_flow_returns_a_coroutine_of_its_result(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique())
        async def add(x: int, y: int = 2) -> int:
            await asyncio.sleep(0)
            seen.append(current_run_id())
            return x + y

        call = add(1, y=5)
        assert asyncio.iscoroutine(call)
        assert asyncio.run(call) == 6
        assert reader.history(seen[0]) == ["Pending", "Running", "Completed"]

    def test_parameters_are_validated_and_coerced(self, reader: Reader) -> None:
        @flow(name=unique())
        def double(x: int) -> int:
            return x * 2

        assert double("21") == 42

    def test_return_state_gives_the_completed_state(self, reader: Reader) -> None:
        @flow(name=unique())
        def hello() -> str:
            return "hi"

        state = hello(return_state=True)
        assert isinstance(state, State)
        assert state.is_completed()
        assert state.result() == "hi"
        assert state.id  # the id the service gave the stored state

    def test_return_state_of_a_failed_run_does_not_raise(self, reader: Reader) -> None:
        error = ValueError("boom")

        @flow(name=unique())
        def broken() -> None:
            raise error

        state = broken(return_state=True)
        assert state.is_failed()
        assert state.result(raise_on_failure=False) is error
        with pytest.raises(ValueError, match="boom"):
            state.result()

    def test_the_original_exception_object_is_re_raised(self, reader: Reader) -> None:
        error = KeyError("missing")
        seen: list[str] = []

        @flow(name=unique())
        def broken() -> None:
            seen.append(current_run_id())
            raise error

        with pytest.raises(KeyError) as caught:
            broken()
        assert caught.value is error
        run = reader.run(seen[0])
        assert reader.state_type(run.id) == "FAILED"
        assert run.state.failure.exception_type == "builtins.KeyError"
        assert "missing" in run.state.failure.message
        assert "raise error" in run.state.failure.traceback

    def test_async_flow_exception_is_re_raised(self, reader: Reader) -> None:
        @flow(name=unique())
        async def broken() -> None:
            raise RuntimeError("async boom")

        with pytest.raises(RuntimeError, match="async boom"):
            asyncio.run(broken())

    def test_large_or_opaque_results_stay_in_memory_only(self, reader: Reader) -> None:
        seen: list[str] = []
        marker = object()

        @flow(name=unique())
        def opaque() -> object:
            seen.append(current_run_id())
            return marker

        assert opaque() is marker
        run = reader.run(seen[0])
        assert not run.state.HasField("result")

    def test_returning_a_failed_state_fails_the_run(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        def gives_up() -> State[Any]:
            return Failed(message="nothing to do")

        state = gives_up(return_state=True)
        assert state.is_failed()
        assert state.message == "nothing to do"
        assert reader.state_type(reader.only_run_of(name).id) == "FAILED"

    def test_returning_a_completed_state_keeps_its_data(self, reader: Reader) -> None:
        @flow(name=unique())
        def explicit() -> State[Any]:
            return Completed(data=7, message="done early")

        assert explicit() == 7


class TestPersistedResults:
    def test_persisted_result_is_referenced_and_reads_back(
        self, reader: Reader, tmp_path: Path
    ) -> None:
        seen: list[str] = []

        @flow(name=unique(), persist_result=True, result_storage=str(tmp_path))
        def make() -> dict[str, int]:
            seen.append(current_run_id())
            return {"a": 1}

        state = make(return_state=True)
        assert state.result() == {"a": 1}
        run = reader.run(seen[0])
        reference = run.state.result.reference
        assert reference.storage_uri.startswith("file://")
        assert reference.serializer == "cloudpickle"
        assert list(tmp_path.iterdir())

        # A state rebuilt from what the service stored reads the result from storage.
        from headwater._transport.convert import state_from_proto

        assert state_from_proto(run.state).result() == {"a": 1}

    def test_results_persist_by_default_setting(
        self, reader: Reader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from headwater._settings import reset_settings

        seen: list[str] = []

        @flow(name=unique())
        def make() -> int:
            seen.append(current_run_id())
            return 5

        monkeypatch.setenv("HEADWATER_RESULTS_PERSIST_BY_DEFAULT", "true")
        reset_settings()
        try:
            assert make() == 5
        finally:
            monkeypatch.delenv("HEADWATER_RESULTS_PERSIST_BY_DEFAULT")
            reset_settings()
        assert reader.run(seen[0]).state.result.HasField("reference")

    def test_cache_result_in_memory_false_loads_from_storage(
        self, reader: Reader, tmp_path: Path
    ) -> None:
        @flow(
            name=unique(),
            persist_result=True,
            result_storage=str(tmp_path),
            result_serializer="json",
            cache_result_in_memory=False,
        )
        def make() -> list[int]:
            return [1, 2, 3]

        state = make(return_state=True)
        assert type(state.data).__name__ == "ResultReference"
        assert state.result() == [1, 2, 3]
        assert make() == [1, 2, 3]


# -- parameters ------------------------------------------------------------------------------


class TestParameters:
    def test_invalid_parameters_create_a_failed_run_and_raise(self, reader: Reader) -> None:
        name = unique()
        ran: list[bool] = []

        @flow(name=name)
        def typed(x: int) -> None:
            ran.append(True)

        with pytest.raises(ParameterTypeError, match="x"):
            typed("not a number")
        assert not ran
        run = reader.only_run_of(name)
        assert reader.state_type(run.id) == "FAILED"
        assert reader.history(run.id) == ["Pending", "Failed"]
        assert "Parameter validation failed" in run.state.message
        assert json.loads(run.parameters_json) == {"x": "not a number"}

    def test_invalid_parameters_with_return_state(self, reader: Reader) -> None:
        @flow(name=unique())
        def typed(x: int) -> None: ...

        state = typed("nope", return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), ParameterTypeError)

    def test_validation_can_be_turned_off(self, reader: Reader) -> None:
        @flow(name=unique(), validate_parameters=False)
        def untyped(x: int) -> Any:
            return x

        assert untyped("raw") == "raw"


# -- names, tags, context --------------------------------------------------------------------


class TestNamesAndContext:
    def test_flow_run_name_template(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name, flow_run_name="load-{day}-{part}")
        def load(day: str, part: int = 1) -> None: ...

        load("monday")
        assert reader.only_run_of(name).name == "load-monday-1"

    def test_flow_run_name_callable(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name, flow_run_name=lambda: "from-a-callable")
        def job() -> None: ...

        job()
        assert reader.only_run_of(name).name == "from-a-callable"

    def test_flow_run_name_callable_with_parameters(self, reader: Reader) -> None:
        name = unique()

        def namer(parameters: dict[str, Any]) -> str:
            return f"n-{parameters['n']}"

        @flow(name=name, flow_run_name=namer)
        def job(n: int) -> None: ...

        job(5)
        assert reader.only_run_of(name).name == "n-5"

    def test_flow_run_name_template_with_unknown_key_says_what_to_fix(self, reader: Reader) -> None:
        @flow(name=unique(), flow_run_name="run-{missing}")
        def job(x: int) -> None: ...

        with pytest.raises(ValueError, match=r"'missing'.*not a parameter.*\['x'\]"):
            job(1)

    def test_flow_run_name_callable_must_return_a_string(self, reader: Reader) -> None:
        @flow(name=unique(), flow_run_name=lambda: 42)
        def job() -> None: ...

        with pytest.raises(TypeError, match="must be a str"):
            job()

    def test_generated_names_when_none_given(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        def job() -> None: ...

        job()
        assert reader.only_run_of(name).name

    def test_tags_context_tags_the_run(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        def job() -> None: ...

        with tags("db", "nightly"), tags("extra"):
            job()
        assert sorted(reader.only_run_of(name).tags) == ["db", "extra", "nightly"]

    def test_run_context_inside_and_outside(self, reader: Reader) -> None:
        @flow(name=unique())
        def job(x: int) -> tuple[str, int, int]:
            context = FlowRunContext.get()
            assert context is not None
            return context.flow_run.name, context.parameters["x"], context.flow_run.run_count

        run_name, x, run_count = job(3)
        assert run_name and x == 3 and run_count == 1
        assert FlowRunContext.get() is None
        with pytest.raises(MissingContextError, match="@flow"):
            get_run_logger()


# -- subflows ----------------------------------------------------------------------------------


class TestSubflows:
    def test_subflow_is_linked_to_its_parent(self, reader: Reader) -> None:
        ids: dict[str, str] = {}

        @flow(name=unique("child"))
        def child(x: int) -> int:
            ids["child"] = current_run_id()
            return x + 1

        @flow(name=unique("parent"))
        def parent() -> int:
            ids["parent"] = current_run_id()
            return child(1) + child(10)

        assert parent() == 13
        child_run = reader.run(ids["child"])
        assert child_run.parent_flow_run_id == ids["parent"]
        assert not reader.run(ids["parent"]).parent_flow_run_id
        children = reader.client.list_flow_runs(parent_flow_run_id=ids["parent"])
        assert len(children) == 2

    def test_async_subflows_run_concurrently_with_their_parent_link(self, reader: Reader) -> None:
        ids: list[str] = []
        parent_ids: list[str] = []

        @flow(name=unique("child"))
        async def child(x: int) -> int:
            ids.append(current_run_id())
            await asyncio.sleep(0.05)
            return x

        @flow(name=unique("parent"))
        async def parent() -> list[int]:
            parent_ids.append(current_run_id())
            return list(await asyncio.gather(child(1), child(2), child(3)))

        assert asyncio.run(parent()) == [1, 2, 3]
        for child_id in ids:
            assert reader.run(child_id).parent_flow_run_id == parent_ids[0]

    def test_failing_subflow_fails_parent_unless_caught(self, reader: Reader) -> None:
        ids: dict[str, str] = {}

        @flow(name=unique("child"))
        def child() -> None:
            ids["child"] = current_run_id()
            raise ValueError("child broke")

        @flow(name=unique("parent"))
        def parent() -> str:
            ids["parent"] = current_run_id()
            state = child(return_state=True)
            return state.type.value

        assert parent() == "FAILED"
        assert reader.state_type(ids["child"]) == "FAILED"
        assert reader.state_type(ids["parent"]) == "COMPLETED"


# -- retries ---------------------------------------------------------------------------------


class TestRetries:
    def test_retries_until_success_with_the_stored_history(self, reader: Reader) -> None:
        attempts: list[str] = []

        @flow(name=unique(), retries=3)
        def flaky() -> str:
            attempts.append(current_run_id())
            if len(attempts) < 3:
                raise RuntimeError(f"attempt {len(attempts)}")
            return "finally"

        assert flaky() == "finally"
        run = reader.run(attempts[0])
        assert len(set(attempts)) == 1  # one run, three attempts
        assert run.run_count == 3
        assert reader.history(run.id) == [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "AwaitingRetry",
            "Retrying",
            "Completed",
        ]
        awaiting = [s for s in reader.history_states(run.id) if s.name == "AwaitingRetry"]
        assert "attempt 1" in awaiting[0].message

    def test_retries_exhausted_fails_with_the_last_exception(self, reader: Reader) -> None:
        attempts: list[str] = []

        @flow(name=unique(), retries=1)
        def always_fails() -> None:
            attempts.append(current_run_id())
            raise RuntimeError(f"attempt {len(attempts)}")

        with pytest.raises(RuntimeError, match="attempt 2"):
            always_fails()
        run = reader.run(attempts[0])
        assert run.run_count == 2
        assert reader.state_type(run.id) == "FAILED"
        assert reader.history(run.id)[-3:] == ["AwaitingRetry", "Retrying", "Failed"]

    def test_retry_delay_is_honoured(self, reader: Reader) -> None:
        starts: list[float] = []

        @flow(name=unique(), retries=1, retry_delay_seconds=0.6)
        def slow_retry() -> int:
            starts.append(time.monotonic())
            if len(starts) == 1:
                raise RuntimeError("first")
            return len(starts)

        assert slow_retry() == 2
        assert starts[1] - starts[0] >= 0.55

    def test_async_flow_retries(self, reader: Reader) -> None:
        attempts: list[int] = []

        @flow(name=unique(), retries=2)
        async def flaky() -> int:
            attempts.append(1)
            if len(attempts) < 2:
                raise RuntimeError("again")
            return len(attempts)

        assert asyncio.run(flaky()) == 2

    def test_returned_failed_state_is_retried_too(self, reader: Reader) -> None:
        attempts: list[int] = []

        @flow(name=unique(), retries=1)
        def soft_fail() -> Any:
            attempts.append(1)
            if len(attempts) == 1:
                return Failed(message="soft")
            return "ok"

        assert soft_fail() == "ok"


# -- timeouts --------------------------------------------------------------------------------


class TestTimeouts:
    def test_sync_timeout_fails_the_run_with_a_timeout_error(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique(), timeout_seconds=0.3)
        def sleepy() -> None:
            seen.append(current_run_id())
            time.sleep(5)

        started = time.monotonic()
        with pytest.raises(FlowRunTimeoutError, match=r"exceeded timeout of 0.3 seconds"):
            sleepy()
        assert time.monotonic() - started < 3
        run = reader.run(seen[0])
        assert reader.state_type(run.id) == "FAILED"
        assert run.state.name == "TimedOut"
        assert f"Flow run '{run.name}' exceeded timeout of 0.3 seconds" in run.state.message

    def test_timeout_cannot_be_swallowed_by_except_exception(self, reader: Reader) -> None:
        @flow(name=unique(), timeout_seconds=0.2)
        def stubborn() -> str:
            try:
                time.sleep(5)
            except Exception:
                return "swallowed"
            return "slept"

        with pytest.raises(FlowRunTimeoutError):
            stubborn()

    def test_async_timeout(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique(), timeout_seconds=0.2)
        async def sleepy() -> None:
            seen.append(current_run_id())
            await asyncio.sleep(5)

        with pytest.raises(FlowRunTimeoutError, match="exceeded timeout"):
            asyncio.run(sleepy())
        assert reader.state_type(seen[0]) == "FAILED"

    def test_timeout_in_a_worker_thread(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique(), timeout_seconds=0.2)
        def busy() -> None:
            seen.append(current_run_id())
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # Python bytecode: the watchdog can interrupt
                pass

        errors: list[BaseException] = []

        def target() -> None:
            try:
                busy()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join(10)
        assert len(errors) == 1 and isinstance(errors[0], FlowRunTimeoutError)
        assert reader.state_type(seen[0]) == "FAILED"

    def test_fast_flow_with_timeout_completes(self, reader: Reader) -> None:
        @flow(name=unique(), timeout_seconds=5)
        def quick() -> int:
            return 1

        assert quick() == 1
        time.sleep(0.01)  # no stray alarm fires afterwards

    def test_parent_timeout_crashes_the_running_subflow(self, reader: Reader) -> None:
        ids: dict[str, str] = {}

        @flow(name=unique("child"))
        def child() -> None:
            ids["child"] = current_run_id()
            time.sleep(5)

        @flow(name=unique("parent"), timeout_seconds=0.3)
        def parent() -> None:
            ids["parent"] = current_run_id()
            child()

        with pytest.raises(FlowRunTimeoutError):
            parent()
        assert reader.state_type(ids["child"]) == "CRASHED"
        assert reader.state_type(ids["parent"]) == "FAILED"

    def test_timed_out_flow_is_retried_as_the_service_decides(self, reader: Reader) -> None:
        attempts: list[str] = []

        @flow(name=unique(), timeout_seconds=0.2, retries=1)
        def slow_then_fast() -> str:
            attempts.append(current_run_id())
            if len(attempts) == 1:
                time.sleep(5)
            return "fast"

        assert slow_then_fast() == "fast"
        assert reader.run(attempts[0]).run_count == 2


# -- hooks -----------------------------------------------------------------------------------


class TestHooks:
    def test_completion_and_running_hooks_as_arguments(self, reader: Reader) -> None:
        calls: list[tuple[str, str, str, int]] = []

        def record(kind: str) -> Any:
            def hook(flow_obj: Any, flow_run: Any, state: State[Any]) -> None:
                calls.append((kind, flow_obj.name, state.name, flow_run.run_count))

            return hook

        name = unique()

        @flow(name=name, on_running=[record("running")], on_completion=[record("completion")])
        def job() -> int:
            return 1

        job()
        assert calls == [("running", name, "Running", 1), ("completion", name, "Completed", 1)]

    def test_failure_hook_via_decorator_sees_the_failed_run(self, reader: Reader) -> None:
        calls: list[Any] = []

        @flow(name=unique())
        def job(x: int) -> None:
            raise ValueError("no")

        @job.on_failure
        def failed(flow_obj: Any, flow_run: Any, state: State[Any]) -> None:
            calls.append((flow_run.parameters, state.type, type(state.data).__name__))

        with pytest.raises(ValueError):
            job(4)
        assert calls == [({"x": 4}, StateType.FAILED, "ValueError")]

    def test_failure_hook_runs_once_after_retries_are_spent(self, reader: Reader) -> None:
        calls: list[int] = []

        @flow(name=unique(), retries=2, on_failure=[lambda f, r, s: calls.append(r.run_count)])
        def job() -> None:
            raise ValueError("no")

        with pytest.raises(ValueError):
            job()
        assert calls == [3]

    def test_crashed_hook_on_keyboard_interrupt(self, reader: Reader) -> None:
        calls: list[str] = []
        seen: list[str] = []

        @flow(name=unique())
        def interrupted() -> None:
            seen.append(current_run_id())
            raise KeyboardInterrupt

        @interrupted.on_crashed
        def crashed(flow_obj: Any, flow_run: Any, state: State[Any]) -> None:
            calls.append(state.name)

        with pytest.raises(KeyboardInterrupt):
            interrupted()
        assert calls == ["Crashed"]
        assert reader.state_type(seen[0]) == "CRASHED"

    def test_cancellation_hook_when_the_flow_returns_cancelled(self, reader: Reader) -> None:
        calls: list[str] = []

        @flow(name=unique(), on_cancellation=[lambda f, r, s: calls.append(s.type.value)])
        def job() -> State[Any]:
            return Cancelled(message="nothing to do today")

        state = job(return_state=True)
        assert state.is_cancelled()
        assert calls == ["CANCELLED"]

    def test_async_hooks_are_awaited_in_async_and_sync_flows(self, reader: Reader) -> None:
        calls: list[str] = []

        async def hook(flow_obj: Any, flow_run: Any, state: State[Any]) -> None:
            await asyncio.sleep(0)
            calls.append(state.name)

        @flow(name=unique(), on_completion=[hook])
        async def async_job() -> int:
            return 1

        @flow(name=unique(), on_completion=[hook])
        def sync_job() -> int:
            return 2

        assert asyncio.run(async_job()) == 1
        assert sync_job() == 2
        assert calls == ["Completed", "Completed"]

    def test_failing_hook_is_logged_and_does_not_change_the_state(
        self, reader: Reader, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen: list[str] = []
        later: list[str] = []

        def bad_hook(flow_obj: Any, flow_run: Any, state: State[Any]) -> None:
            raise RuntimeError("hook broke")

        @flow(name=unique(), on_completion=[bad_hook, lambda f, r, s: later.append("ran")])
        def job() -> int:
            seen.append(current_run_id())
            return 5

        with caplog.at_level(logging.ERROR, logger="headwater.flow_runs"):
            assert job() == 5
        assert later == ["ran"]
        assert reader.state_type(seen[0]) == "COMPLETED"
        run_name = reader.run(seen[0]).name
        failures = [r for r in caplog.records if "bad_hook" in r.getMessage()]
        assert failures and failures[0].flow_run_name == run_name  # type: ignore[attr-defined]
        assert "hook broke" in failures[0].getMessage()


# -- generators, methods, wait_for ----------------------------------------------------------------


class TestShapes:
    def test_generator_flow_yields_through_and_completes_when_exhausted(
        self, reader: Reader
    ) -> None:
        name = unique()

        @flow(name=name)
        def numbers(n: int) -> Any:
            yield from range(n)

        gen = numbers(3)
        assert next(gen) == 0
        run = reader.only_run_of(name)
        assert reader.state_type(run.id) == "RUNNING"
        assert list(gen) == [1, 2]
        assert reader.state_type(run.id) == "COMPLETED"

    def test_generator_flow_failure_is_raised_and_stored(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        def numbers() -> Any:
            yield 1
            raise ValueError("mid-stream")

        gen = numbers()
        assert next(gen) == 1
        with pytest.raises(ValueError, match="mid-stream"):
            next(gen)
        assert reader.state_type(reader.only_run_of(name).id) == "FAILED"

    def test_generator_closed_early_completes_the_run(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        def forever() -> Any:
            i = 0
            while True:
                yield i
                i += 1

        gen = forever()
        assert next(gen) == 0
        gen.close()
        assert reader.state_type(reader.only_run_of(name).id) == "COMPLETED"

    def test_async_generator_flow(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        async def numbers(n: int) -> Any:
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        async def consume() -> list[int]:
            return [value async for value in numbers(3)]

        assert asyncio.run(consume()) == [0, 1, 2]
        assert reader.state_type(reader.only_run_of(name).id) == "COMPLETED"

    def test_generator_flow_timeout(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name, timeout_seconds=0.3)
        def slow() -> Any:
            yield 1
            time.sleep(5)
            yield 2

        gen = slow()
        assert next(gen) == 1
        with pytest.raises(FlowRunTimeoutError):
            next(gen)
        assert reader.state_type(reader.only_run_of(name).id) == "FAILED"

    def test_methods_as_flows(self, reader: Reader) -> None:
        name = unique()

        class Pipeline:
            def __init__(self, factor: int) -> None:
                self.factor = factor

            @flow(name=name)
            def run(self, x: int) -> int:
                return self.factor * x

        assert Pipeline(3).run(2) == 6
        assert Pipeline(5).run(x=2) == 10
        stored = [json.loads(run.parameters_json) for run in reader.runs_of(name)]
        assert stored == [{"x": 2}, {"x": 2}]

    def test_wait_for_waits_on_futures_and_accepts_states(self, reader: Reader) -> None:
        order: list[str] = []

        class Future:
            def wait(self) -> None:
                time.sleep(0.05)
                order.append("waited")

            def result(self) -> int:
                return 1

        @flow(name=unique())
        def job() -> None:
            order.append("ran")

        job(wait_for=[Future(), Completed(data=1)])
        assert order == ["waited", "ran"]


# -- logs ----------------------------------------------------------------------------------------


class TestLogs:
    def test_run_logger_lines_are_stored_before_the_run_ends(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique())
        def chatty() -> None:
            seen.append(current_run_id())
            logger = get_run_logger()
            for i in range(5):
                logger.info("line %d", i)
            logger.warning("careful")

        chatty()
        # No flush here: the engine stores the lines before proposing the final state.
        messages = reader.log_messages(seen[0])
        assert [m for m in messages if m.startswith("line")] == [f"line {i}" for i in range(5)]
        assert "careful" in messages
        levels = {line.message: line.level for line in reader.client.list_logs(seen[0])}
        assert levels["careful"] == logging.WARNING

    def test_log_prints_sends_print_to_the_run_logs(
        self, reader: Reader, capsys: pytest.CaptureFixture[str]
    ) -> None:
        seen: list[str] = []

        @flow(name=unique(), log_prints=True)
        def printer() -> None:
            seen.append(current_run_id())
            print("hello", "world")

        printer()
        assert "hello world" in reader.log_messages(seen[0])
        print("outside")  # the real print is back
        assert "outside" in capsys.readouterr().out

    def test_log_prints_is_inherited_by_subflows(self, reader: Reader) -> None:
        ids: dict[str, str] = {}

        @flow(name=unique("child"))
        def child() -> None:
            ids["child"] = current_run_id()
            print("from the child")

        @flow(name=unique("parent"), log_prints=True)
        def parent() -> None:
            child()

        parent()
        assert "from the child" in reader.log_messages(ids["child"])

    def test_prints_are_not_captured_without_log_prints(
        self, reader: Reader, capsys: pytest.CaptureFixture[str]
    ) -> None:
        seen: list[str] = []

        @flow(name=unique())
        def printer() -> None:
            seen.append(current_run_id())
            print("to stdout")

        printer()
        assert "to stdout" in capsys.readouterr().out
        assert "to stdout" not in reader.log_messages(seen[0])

    def test_log_prints_default_comes_from_settings(
        self, reader: Reader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from headwater._settings import reset_settings

        seen: list[str] = []

        @flow(name=unique())
        def printer() -> None:
            seen.append(current_run_id())
            print("captured by default")

        monkeypatch.setenv("HEADWATER_LOG_PRINTS", "true")
        reset_settings()
        try:
            printer()
        finally:
            monkeypatch.delenv("HEADWATER_LOG_PRINTS")
            reset_settings()
        assert "captured by default" in reader.log_messages(seen[0])

    def test_failure_traceback_is_in_the_run_logs(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique())
        def broken() -> None:
            seen.append(current_run_id())
            raise ValueError("see the logs")

        with pytest.raises(ValueError):
            broken()
        text = "\n".join(reader.log_messages(seen[0]))
        assert "ValueError: see the logs" in text and "Traceback" in text

    def test_state_changes_are_logged_to_the_console_logger(
        self, reader: Reader, caplog: pytest.LogCaptureFixture
    ) -> None:
        @flow(name=unique())
        def job() -> None: ...

        with caplog.at_level(logging.INFO, logger="headwater.flow_runs"):
            job()
        messages = [r.getMessage() for r in caplog.records if r.name == "headwater.flow_runs"]
        assert "Ended in state Completed()" in messages

    @pytest.mark.parametrize("custom_factory", [False, True])
    def test_state_change_lines_carry_the_run_and_stay_on_the_console(
        self, reader: Reader, caplog: pytest.LogCaptureFixture, custom_factory: bool
    ) -> None:
        """Made by the installed record factory when there is one; never shipped."""
        seen: list[str] = []
        default_factory = logging.getLogRecordFactory()

        def stamping_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = default_factory(*args, **kwargs)
            record.stamped = True
            return record

        @flow(name=unique())
        def job() -> None:
            seen.append(current_run_id())
            get_run_logger().info("from the code")

        if custom_factory:
            logging.setLogRecordFactory(stamping_factory)
        try:
            with caplog.at_level(logging.INFO, logger="headwater.flow_runs"):
                job()
        finally:
            logging.setLogRecordFactory(default_factory)
        (ended,) = [r for r in caplog.records if r.getMessage() == "Ended in state Completed()"]
        assert (ended.flow_run_id, ended.flow_name) == (seen[0], job.name)
        assert getattr(ended, "stamped", False) is custom_factory
        assert reader.log_messages(seen[0]) == ["from the code"]


# -- interrupts and concurrency ------------------------------------------------------------------


class TestInterruptsAndRaces:
    def test_keyboard_interrupt_marks_the_run_crashed(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique(), retries=3)
        def interrupted() -> None:
            seen.append(current_run_id())
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            interrupted()
        assert len(seen) == 1  # a crash is not retried
        run = reader.run(seen[0])
        assert reader.state_type(run.id) == "CRASHED"
        assert "KeyboardInterrupt" in run.state.message

    def test_async_keyboard_interrupt_marks_the_run_crashed(self, reader: Reader) -> None:
        seen: list[str] = []

        @flow(name=unique())
        async def interrupted() -> None:
            seen.append(current_run_id())
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            asyncio.run(interrupted())
        assert reader.state_type(seen[0]) == "CRASHED"

    @pytest.mark.parametrize("kind", ["sync", "async", "generator"])
    def test_sigterm_in_a_process_running_a_flow_marks_the_run_crashed(
        self, reader: Reader, tmp_path: Path, kind: str
    ) -> None:
        """A second process on the same HEADWATER_HOME (its own embedded server, one database)."""
        script = tmp_path / "sleeper.py"
        script.write_text(SLEEPERS[kind])
        env = dict(os.environ, HEADWATER_HOME=str(reader.home))  # type: ignore[attr-defined]
        env.pop("HEADWATER_API_URL", None)
        process = subprocess.Popen(
            [sys.executable, str(script), unique("sigterm")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line.startswith("RUN "), line + process.stderr.read()  # type: ignore[union-attr]
            run_id = line.split()[1]
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode != 0
        assert "TerminationSignal" in stderr
        assert reader.state_type(run_id) == "CRASHED"
        assert "signal 15" in reader.run(run_id).state.message

    def test_sigterm_handler_is_restored_after_a_run(self, reader: Reader) -> None:
        before = signal.getsignal(signal.SIGTERM)

        @flow(name=unique())
        def job() -> Any:
            return signal.getsignal(signal.SIGTERM)

        during = job()
        assert during is not before
        assert signal.getsignal(signal.SIGTERM) is before

    def test_two_engines_racing_for_one_run_run_the_code_once(self, reader: Reader) -> None:
        from headwater._transport.runtime import default_transport
        from headwater.v1 import flow_runs_pb2

        executions: list[int] = []

        @flow(name=unique())
        def once(x: int) -> int:
            executions.append(x)
            time.sleep(0.3)
            return x

        created = (
            default_transport()
            .connection.create_flow_run(
                flow_runs_pb2.CreateFlowRunRequest(flow_name=once.name, parameters_json='{"x": 7}')
            )
            .flow_run
        )
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def engine() -> None:
            barrier.wait()
            try:
                outcomes.append(run_flow(once, None, flow_run_id=created.id))
            except Abort as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=engine) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert executions == [7]
        assert sorted(map(type, outcomes), key=lambda t: t.__name__) == [Abort, int]
        assert reader.state_type(created.id) == "COMPLETED"
        assert reader.run(created.id).run_count == 1

    def test_a_scheduled_run_waits_for_its_time(self, reader: Reader) -> None:
        import datetime as dt

        from headwater._transport.runtime import default_transport
        from headwater.v1 import flow_runs_pb2, states_pb2

        started: list[float] = []

        @flow(name=unique())
        def later() -> str:
            started.append(time.monotonic())
            return "on time"

        scheduled = states_pb2.State(type=states_pb2.STATE_TYPE_SCHEDULED)
        scheduled.scheduled_time.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.6))
        created = (
            default_transport()
            .connection.create_flow_run(
                flow_runs_pb2.CreateFlowRunRequest(flow_name=later.name, state=scheduled)
            )
            .flow_run
        )
        begin = time.monotonic()
        assert run_flow(later, None, flow_run_id=created.id) == "on time"
        assert started[0] - begin >= 0.5  # the service answered WAIT until the scheduled time
        assert reader.history(created.id) == ["Scheduled", "Running", "Completed"]

    def test_a_run_cancelled_before_it_starts_is_not_run(self, reader: Reader) -> None:
        from headwater._transport.runtime import default_transport
        from headwater.exceptions import CancelledRun
        from headwater.v1 import flow_runs_pb2

        ran: list[bool] = []
        cancelled: list[str] = []

        @flow(name=unique(), on_cancellation=[lambda f, r, s: cancelled.append(s.name)])
        def job() -> None:
            ran.append(True)

        created = (
            default_transport()
            .connection.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name=job.name))
            .flow_run
        )
        reader.client.cancel_flow_run(created.id, reason="not needed")
        with pytest.raises(CancelledRun):
            run_flow(job, None, flow_run_id=created.id)
        assert not ran
        assert cancelled == ["Cancelled"]

    def test_running_a_finished_run_again_returns_its_stored_result(self, reader: Reader) -> None:
        executions: list[int] = []

        @flow(name=unique())
        def job(x: int) -> int:
            executions.append(x)
            return x * 10

        seen: list[str] = []

        @flow(name=job.name)
        def recorder(x: int) -> int:
            seen.append(current_run_id())
            executions.append(x)
            return x * 10

        assert recorder(2) == 20
        assert run_flow(job, None, flow_run_id=seen[0]) == 20
        assert executions == [2]
