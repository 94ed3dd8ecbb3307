"""Concurrency limits as leases, through a real server on SQLite and PostgreSQL.

Task runs under a tag limit and flow runs under a deployment limit are driven by real engines
(flows in subprocesses) or over real gRPC, and what the service stored is read back: the limit
is checked from the stored state history in the order the service wrote it (each flow run's
event sequence, or the states' times, which the service takes after the limit's lock), never
from timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc
import pytest
from headwater.client import HeadwaterClient, TaskRun
from headwater.v1 import (
    concurrency_limits_pb2,
    concurrency_limits_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    states_pb2,
)
from server_harness import DATABASES, ServerFactory, ServerProcess, database_url_for

C = concurrency_limits_pb2
S = states_pb2

# Fifty tagged tasks submitted at once, on enough threads that only the limit holds them back.
FIFTY_TASKS = textwrap.dedent(
    """
    import sys, time
    from headwater import flow, task
    from headwater.runtime import flow_run
    from headwater.task_runners import ThreadPoolTaskRunner

    @task(tags=[sys.argv[1]])
    def work(i):
        time.sleep(0.05)
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=50))
    def fifty():
        print("FLOW", flow_run.id, flush=True)
        return sum(f.result() for f in [work.submit(i) for i in range(50)])

    print("RESULT", fifty(), flush=True)
    """
)

# One tagged task: it prints its ids once RUNNING, then sleeps (argv[2] seconds).
ONE_TASK = textwrap.dedent(
    """
    import sys, time
    from headwater import flow, task
    from headwater.runtime import flow_run, task_run

    @task(tags=[sys.argv[1]])
    def hold():
        print("RUNNING", flow_run.id, task_run.id, flush=True)
        time.sleep(float(sys.argv[2]))
        return "done"

    @flow
    def one():
        return hold()

    print("RESULT", one(), flush=True)
    """
)

FAST_LIVENESS = {
    "HEADWATER_ENGINE_GRACE_SECONDS": "1",
    "HEADWATER_ENGINE_TIMEOUT_SECONDS": "2",
    "HEADWATER_CANCELLING_TIMEOUT_SECONDS": "1",
}


def _tag() -> str:
    return f"limited-{uuid.uuid4().hex[:8]}"


def _run_script(script: str, server: ServerProcess, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HEADWATER_API_URL": server.address, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _most_running(events: Iterable[tuple[str, str]]) -> int:
    """The most runs RUNNING at once, over (run id, state type) in the order stored."""
    running: set[str] = set()
    most = 0
    for run_id, state_type in events:
        if state_type == "RUNNING":
            running.add(run_id)
        else:
            running.discard(run_id)
        most = max(most, len(running))
    return most


@pytest.mark.parametrize("database", DATABASES)
def test_fifty_task_runs_under_a_limit_of_five_never_run_more_than_five_at_once(
    database: str, request: pytest.FixtureRequest, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(database_url_for(database, request))
    tag = _tag()
    with HeadwaterClient(server.address) as client:
        client.create_concurrency_limit(tag, 5)
        process = _run_script(FIFTY_TASKS, server, tmp_path, tag)
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        assert f"RESULT {sum(range(50))}" in out
        flow_run_id = out.split("FLOW ", 1)[1].split()[0]
        task_runs: list[TaskRun] = client.list_task_runs(flow_run_id)
        assert len(task_runs) == 50
        assert {run.state.type.value for run in task_runs} == {"COMPLETED"}
        # The flow run's event log numbers its task runs' states in the order they were stored.
        events = [
            (event.task_run_id, state.type.value, state.name)
            for event in client.list_flow_run_events(flow_run_id)
            if (state := event.task_run_state) is not None
        ]
        assert _most_running((run, kind) for run, kind, _ in events) == 5
        assert any(name == "AwaitingConcurrencySlot" for _, _, name in events)
        limit = client.get_concurrency_limit(tag)
        assert limit.active_slots == ()


@pytest.mark.parametrize("database", DATABASES)
def test_a_run_crashed_by_the_service_frees_its_slot_and_the_waiter_starts(
    database: str, request: pytest.FixtureRequest, make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(database_url_for(database, request), env=FAST_LIVENESS)
    tag = _tag()
    with HeadwaterClient(server.address) as client:
        client.create_concurrency_limit(tag, 1)
        victim = _run_script(ONE_TASK, server, tmp_path, tag, "600")
        waiter = None
        try:
            line = victim.stdout.readline() if victim.stdout else ""
            assert line.startswith("RUNNING"), victim.communicate()[1]
            _, _, victim_task = line.split()
            assert client.get_concurrency_limit(tag).active_slots == (victim_task,)
            # The CLI shows who holds the slot.
            shown = _cli(server, "concurrency-limit", "inspect", tag)
            assert "1 of 1 slots taken" in shown and victim_task in shown
            waiter = _run_script(ONE_TASK, server, tmp_path, tag, "0")
            _wait_for_state(client, tag, "AwaitingConcurrencySlot")
            victim.kill()
            victim.wait(timeout=10)
            out, err = waiter.communicate(timeout=60)
            assert waiter.returncode == 0, err
            assert "RESULT done" in out
        finally:
            for process in (victim, waiter):
                if process is not None:
                    if process.poll() is None:
                        process.kill()
                    process.communicate()
        crashed = client.get_task_run(victim_task)
        assert crashed.state.type.value == "CRASHED"
        waiter_task = out.split("RUNNING ", 1)[1].split()[1]
        history = [state.name for state in client.list_task_run_states(waiter_task)]
        assert history == ["Pending", "AwaitingConcurrencySlot", "Running", "Completed"]
        # The waiter started only after the crash was stored.
        started = client.list_task_run_states(waiter_task)[2].timestamp
        assert crashed.state.timestamp is not None and started is not None
        assert started > crashed.state.timestamp
        assert client.get_concurrency_limit(tag).active_slots == ()


def _wait_for_state(client: HeadwaterClient, tag: str, name: str) -> None:
    """Until a task run with ``tag`` is in state ``name`` (bounded, not a timing assertion)."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run in client.list_task_runs(state_types=["SCHEDULED"], limit=50):
            if tag in run.tags and run.state.name == name:
                return
        time.sleep(0.05)
    raise AssertionError(f"no task run with tag {tag} reached {name}")


def _cli(server: ServerProcess, *args: str) -> str:
    headwater = Path(sys.executable).with_name("headwater")
    done = subprocess.run(
        [str(headwater), *args],
        env={**os.environ, "HEADWATER_API_URL": server.address, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- deployment limits


def _deployment_runs(client: HeadwaterClient, limit: int, strategy: str, count: int) -> list[str]:
    deployment = client.create_deployment(
        flow_name=f"limited-flow-{uuid.uuid4().hex[:8]}",
        name="limited",
        entrypoint="flows.py:limited",
        concurrency_limit=limit,
        collision_strategy=strategy,
    )
    runs = client.create_flow_runs_from_deployment(deployment.id, [{}] * count)
    return [run.id for run in runs]


def _propose(
    stub: flow_runs_pb2_grpc.FlowRunServiceStub, run_id: str, state_type: int
) -> flow_runs_pb2.SetFlowRunStateResponse:
    return stub.SetFlowRunState(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id,
            state=S.State(type=state_type),
            transition_id=str(uuid.uuid4()),
        ),
        timeout=60,
    )


def test_fifty_flow_runs_under_a_deployment_limit_of_five_never_run_more_than_five(
    server: ServerProcess,
) -> None:
    with HeadwaterClient(server.address) as client:
        run_ids = _deployment_runs(client, 5, "ENQUEUE", 50)
    stub = flow_runs_pb2_grpc.FlowRunServiceStub(server.channel())
    failures: list[BaseException] = []

    def drive(run_id: str) -> None:
        # What an engine does: propose RUNNING until not told to wait, then finish.
        try:
            while (answer := _propose(stub, run_id, S.STATE_TYPE_RUNNING)).result.decision == (
                S.DECISION_WAIT
            ):
                assert answer.flow_run.state.name == "AwaitingConcurrencySlot"
            assert answer.result.decision == S.DECISION_ACCEPT, answer.result.reason
            _propose(stub, run_id, S.STATE_TYPE_COMPLETED)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=drive, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    with HeadwaterClient(server.address) as client:
        timeline = sorted(
            (state.timestamp, run_id, state.type.value)
            for run_id in run_ids
            for state in client.list_flow_run_states(run_id)
            if state.timestamp is not None
        )
        assert {client.get_flow_run(run_id).state.type.value for run_id in run_ids} == {"COMPLETED"}
    assert _most_running((run_id, kind) for _, run_id, kind in timeline) == 5


def test_cancel_new_ends_a_run_over_the_deployment_limit_cancelled(
    server: ServerProcess,
) -> None:
    with HeadwaterClient(server.address) as client:
        first, second = _deployment_runs(client, 1, "CANCEL_NEW", 2)
    stub = flow_runs_pb2_grpc.FlowRunServiceStub(server.channel())
    assert _propose(stub, first, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT
    refused = _propose(stub, second, S.STATE_TYPE_RUNNING)
    assert refused.result.decision == S.DECISION_REJECT
    assert refused.flow_run.state.type == S.STATE_TYPE_CANCELLED
    assert "CANCEL_NEW" in refused.flow_run.state.message
    assert "1 of its 1 slot taken" in refused.flow_run.state.message
    # The first run's slot is freed with its end: a new run may start.
    _propose(stub, first, S.STATE_TYPE_FAILED)
    with HeadwaterClient(server.address) as client:
        (third,) = _deployment_runs(client, 1, "CANCEL_NEW", 1)
    assert _propose(stub, third, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT


def test_a_deleted_run_frees_its_slot(server: ServerProcess) -> None:
    with HeadwaterClient(server.address) as client:
        first, second = _deployment_runs(client, 1, "CANCEL_NEW", 2)
    stub = flow_runs_pb2_grpc.FlowRunServiceStub(server.channel())
    assert _propose(stub, first, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT
    stub.DeleteFlowRun(flow_runs_pb2.DeleteFlowRunRequest(flow_run_id=first))
    assert _propose(stub, second, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT


# ---------------------------------------------------------------- the API


def _limits(server: ServerProcess) -> concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub:
    return concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub(server.channel())


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (C.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=-1), "concurrency_limit"),
        (C.CreateConcurrencyLimitRequest(tag="", concurrency_limit=3), "tag"),
        (C.CreateConcurrencyLimitRequest(tag="x" * 256, concurrency_limit=3), "tag"),
        (C.CreateConcurrencyLimitRequest(tag="db", request_id="nope"), "request_id"),
        (C.GetConcurrencyLimitRequest(tag=""), "tag"),
        (C.DeleteConcurrencyLimitRequest(tag=""), "tag"),
        (C.ResetConcurrencyLimitRequest(tag="a\x00b"), "tag"),
        (C.ListConcurrencyLimitsRequest(page_size=-1), "page_size"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(
    server: ServerProcess, request_message: object, field: str
) -> None:
    stub = _limits(server)
    method = type(request_message).__name__.removesuffix("Request")
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, method)(request_message)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"'{field}'" in (caught.value.details() or "")


@pytest.mark.parametrize("method", ["GetConcurrencyLimit", "DeleteConcurrencyLimit", "Reset"])
def test_an_unknown_tag_is_not_found(server: ServerProcess, method: str) -> None:
    stub = _limits(server)
    tag = _tag()
    call = {
        "GetConcurrencyLimit": lambda: stub.GetConcurrencyLimit(
            C.GetConcurrencyLimitRequest(tag=tag)
        ),
        "DeleteConcurrencyLimit": lambda: stub.DeleteConcurrencyLimit(
            C.DeleteConcurrencyLimitRequest(tag=tag)
        ),
        "Reset": lambda: stub.ResetConcurrencyLimit(C.ResetConcurrencyLimitRequest(tag=tag)),
    }[method]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert tag in (caught.value.details() or "")
    assert "concurrency-limit ls" in (caught.value.details() or "")


def test_create_sets_or_changes_a_limit_and_a_retried_request_gets_the_first_answer(
    server: ServerProcess,
) -> None:
    stub = _limits(server)
    tag = _tag()
    request_id = str(uuid.uuid4())
    first = stub.CreateConcurrencyLimit(
        C.CreateConcurrencyLimitRequest(tag=tag, concurrency_limit=3, request_id=request_id)
    )
    assert first.created and first.concurrency_limit.concurrency_limit == 3
    retried = stub.CreateConcurrencyLimit(
        C.CreateConcurrencyLimitRequest(tag=tag, concurrency_limit=3, request_id=request_id)
    )
    assert retried == first
    changed = stub.CreateConcurrencyLimit(
        C.CreateConcurrencyLimitRequest(tag=tag, concurrency_limit=7)
    )
    assert not changed.created
    assert changed.concurrency_limit.id == first.concurrency_limit.id
    assert changed.concurrency_limit.concurrency_limit == 7
    listed = stub.ListConcurrencyLimits(C.ListConcurrencyLimitsRequest(page_size=1000))
    assert [limit.tag for limit in listed.concurrency_limits].count(tag) == 1
    stub.DeleteConcurrencyLimit(C.DeleteConcurrencyLimitRequest(tag=tag))
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetConcurrencyLimit(C.GetConcurrencyLimitRequest(tag=tag))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_cli_prints_readable_tables_and_clear_errors(server: ServerProcess) -> None:
    tag = _tag()
    created = _cli(server, "concurrency-limit", "create", tag, "4")
    assert f"Concurrency limit of tag {tag} set to 4" in created
    listed = _cli(server, "concurrency-limit", "ls")
    header, *rows = [line.split() for line in listed.splitlines() if line.strip()]
    assert header == [
        "TAG",
        "LIMIT",
        "ACTIVE",
        "ID",
        "CREATED",
    ]
    assert [tag, "4", "0"] in [row[:3] for row in rows]
    inspected = _cli(server, "concurrency-limit", "inspect", tag)
    assert "0 of 4 slots taken" in inspected
    assert f"Freed every slot of the concurrency limit of tag {tag}" in _cli(
        server, "concurrency-limit", "reset", tag
    )
    assert f"Deleted the concurrency limit of tag {tag}" in _cli(
        server, "concurrency-limit", "delete", tag
    )
    headwater = Path(sys.executable).with_name("headwater")
    env = {**os.environ, "HEADWATER_API_URL": server.address}
    for args, expected in (
        (["create", tag, "-1"], "must be 0 or more"),
        (["inspect", tag], f"No concurrency limit for the tag '{tag}' exists"),
    ):
        done = subprocess.run(
            [str(headwater), "concurrency-limit", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.startswith("Error: ") and expected in done.stderr
        assert "Traceback" not in done.stderr


def test_a_run_waiting_for_a_deployment_slot_is_not_handed_to_a_worker_again(
    server: ServerProcess,
) -> None:
    from headwater.v1 import workers_pb2, workers_pb2_grpc

    with HeadwaterClient(server.address) as client:
        first, second = _deployment_runs(client, 1, "ENQUEUE", 2)
        deployment_id = client.get_flow_run(first).deployment_id
    workers = workers_pb2_grpc.WorkerServiceStub(server.channel())

    def poll() -> list[str]:
        request = workers_pb2.PollRunsRequest(
            worker_name="test-worker", deployment_ids=[deployment_id], max_runs=10
        )
        return sorted(run.flow_run.id for run in workers.PollRuns(request, timeout=30).runs)

    assert poll() == sorted([first, second])  # both claimed: PENDING
    stub = flow_runs_pb2_grpc.FlowRunServiceStub(server.channel())
    assert _propose(stub, first, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT
    answers: list[flow_runs_pb2.SetFlowRunStateResponse] = []
    waiter = threading.Thread(
        target=lambda: answers.append(_propose(stub, second, S.STATE_TYPE_RUNNING))
    )
    waiter.start()
    with HeadwaterClient(server.address) as client:
        _wait_until(lambda: client.get_flow_run(second).state.name == "AwaitingConcurrencySlot")
    # SCHEDULED and due, but its engine is waiting for the slot: no worker may take it.
    assert poll() == []
    _propose(stub, first, S.STATE_TYPE_COMPLETED)
    waiter.join(timeout=60)
    assert answers and answers[0].result.decision == S.DECISION_WAIT
    assert _propose(stub, second, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT


def _wait_until(done: Callable[[], bool]) -> None:
    """Until ``done()`` (bounded; a condition, not a timing assertion)."""
    import time

    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
