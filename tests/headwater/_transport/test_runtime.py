"""The transport seam and its owner: flows on a transport of their own, fork, exit.

Nothing is mocked: the second transport is a real stream to a real server subprocess, and the
fork test forks a real process that runs flows on both sides.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import sdk_target, unique
from headwater import FlowRunContext, flow, get_run_logger
from headwater._flows import run_flow
from headwater._transport.runtime import default_transport, open_transport
from headwater.client import HeadwaterClient


@pytest.mark.integration
def test_a_flow_reports_to_the_transport_it_is_given(make_server, tmp_path: Path) -> None:
    """A second service beside the default one: the run, its subflow and its logs go there."""
    other = make_server()
    parent_name, child_name = unique("parent"), unique("child")
    seen: dict[str, object] = {}

    @flow(name=child_name)
    def child() -> int:
        get_run_logger().info("from the child")
        return 2

    @flow(name=parent_name)
    def parent(x: int) -> int:
        get_run_logger().info("from the parent")
        context = FlowRunContext.get()
        assert context is not None
        seen["transport"] = context.transport
        return x + child()

    with sdk_target(tmp_path / "home"):  # the default transport: the embedded service
        transport = open_transport(other.address)
        assert transport is not default_transport()
        assert run_flow(parent, {"x": 1}, transport=transport) == 3
        assert seen["transport"] is transport
        transport.flush_logs(wait=True)

        with HeadwaterClient(other.address) as there:
            (parent_run,) = there.list_flow_runs(flow_name=parent_name)
            (child_run,) = there.list_flow_runs(flow_name=child_name)
            assert parent_run.state.name == child_run.state.name == "Completed"
            assert child_run.parent_flow_run_id == parent_run.id
            assert [line.message for line in there.list_logs(parent_run.id)] == ["from the parent"]
            assert [line.message for line in there.list_logs(child_run.id)] == ["from the child"]

        with HeadwaterClient() as here:  # the embedded service saw none of it...
            assert here.list_flow_runs(flow_name=parent_name) == []
            assert parent(5) == 7  # ...until a plain call, which uses the default
            (run,) = here.list_flow_runs(flow_name=parent_name)
            assert run.state.name == "Completed"


FORKING_SCRIPT = """
import os, sys
from headwater._transport import runtime

parent = runtime.runtime()
parent.background_loop()
pid = os.fork()
if pid == 0:
    # The child owns none of its parent's threads: it gets a runtime of its own, once.
    fresh = runtime.runtime()
    sys.exit(0 if fresh is not parent and fresh.background_loop() is not None else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert runtime.runtime() is parent
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_starts_its_own_runtime(tmp_path: Path) -> None:
    """One fork handler, in the runtime: the child's loop, server and streams start afresh.

    (gRPC itself cannot be used in a child forked while its threads are busy, so the child
    here forks before any connection exists.)
    """
    result = _run_script(FORKING_SCRIPT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""


FREEZING_SCRIPT = """
import gc
from headwater import flow

@flow
def hello() -> str:
    return "hi"

before = gc.get_freeze_count()
assert hello() == "hi"
print(before, gc.get_freeze_count() > 0, gc.isenabled())
"""


def test_the_embedded_server_start_freezes_what_it_loaded(tmp_path: Path) -> None:
    """The server's stack lives as long as the process: the collector's full passes skip it.

    (In a process of its own: freezing is process-wide.)
    """
    result = _run_script(FREEZING_SCRIPT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 True True"


IN_PROCESS_SCRIPT = """
from headwater import flow, task
from headwater._transport.runtime import default_transport
from headwater.client import HeadwaterClient

@task
def double(x: int) -> int:
    return 2 * x

@flow(name="in-process")
def doubles() -> list[int]:
    return [double(i) for i in range(3)] + [f.result() for f in double.map([5, 6])]

assert doubles() == [0, 2, 4, 10, 12]
connection = default_transport().connection
with HeadwaterClient() as client:  # a second channel, over the embedded server's socket
    (run,) = client.list_flow_runs(flow_name="in-process")
    states = sorted(t.state.name for t in client.list_task_runs(run.id))
print(connection.in_process, connection.streams_opened, run.state.name, states)
"""


def test_the_embedded_servers_own_engine_stream_skips_the_socket(tmp_path: Path) -> None:
    """The process's engine reaches its embedded server in-process; everything it reported is
    stored and readable over the server's socket like any run (in a process of its own, so
    the embedded server is this script's)."""
    result = _run_script(IN_PROCESS_SCRIPT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "True 1 Completed ['Completed', 'Completed', 'Completed', 'Completed', 'Completed']"
    )


def _run_script(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter on the embedded default, in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


DIRECT_LANE_SCRIPT = """
import asyncio
import uuid
from headwater import flow, task
from headwater._transport.interface import Proposal
from headwater._transport.runtime import default_transport
from headwater.client import HeadwaterClient
from headwater.exceptions import ObjectNotFound
from headwater.states import Completed
from headwater.v1 import task_runs_pb2

@task
def step(x: int) -> int:
    return x + 1

@flow(name="direct")
def chain(n: int) -> int:
    total = 0
    for _ in range(n):
        total = step(total)
    return total

assert chain(20) == 20
transport = default_transport()
connection = transport.connection
streamed = connection.messages_sent
here = connection.direct_here
with HeadwaterClient() as client:  # over the embedded server's socket
    (run,) = client.list_flow_runs(flow_name="direct")
    task_runs = client.list_task_runs(run.id)
    states = {t.state.name for t in task_runs}

# A start the lane cannot store (no such flow run) fails as it would over the stream.
try:
    connection.create_task_run(task_runs_pb2.CreateTaskRunRequest(
        flow_run_id=str(uuid.uuid4()), task_key="k", dynamic_key="0", start=True,
        task_run_id=str(uuid.uuid4())))
    refused = "stored"
except ObjectNotFound as exc:
    refused = type(exc).__name__

# An end sent without waiting, refused (the run ended already): the flush waits for its answer.
transport.propose_task_run_state_nowait(task_runs[0].id, Proposal(Completed()))
problems = transport.flush_task_run_states(timeout=10)
refusal_messages = connection.messages_sent - streamed

# Async tasks in an async flow take it too (their answers are posted to the flow's loop).
@task
async def astep(x: int) -> int:
    return x + 1

@flow(name="direct-async")
async def achain(n: int) -> int:
    total = 0
    for _ in range(n):
        total = await astep(total)
    return total

direct_before = connection.direct_sent
here_before = connection.direct_here
assert asyncio.run(achain(5)) == 5
print(direct_before, streamed, len(task_runs), run.state.name, sorted(states),
      refused, len(problems), refusal_messages, connection.direct_sent - direct_before,
      here, connection.direct_here - here_before)
"""


def test_the_embedded_servers_own_task_starts_and_ends_take_the_direct_lane(
    tmp_path: Path,
) -> None:
    """A flow's task starts and ends (sync or async) reach the embedded server's database
    thread without the stream (a sync flow's stored by its own thread when that one idles);
    an operation the lane refuses is answered over the stream with its usual error; and a
    flush waits for what the lane holds."""
    result = _run_script(DIRECT_LANE_SCRIPT, tmp_path)
    assert result.returncode == 0, result.stderr
    fields = result.stdout.strip().splitlines()[-1].split(" ")
    direct_sent, streamed = int(fields[0]), int(fields[1])
    # The 20 starts and 20 ends took the lane (but an end held longer than HOLD_SECONDS goes
    # over the stream, and what follows it while it is in flight: a slow machine may send a
    # few); the stream carried the flow run's own operations and its log lines.
    assert direct_sent >= 20
    assert streamed < 20
    assert fields[2:8] == ["20", "Completed", "['Completed']", "ObjectNotFound", "1", "1"]
    assert int(fields[8]) >= 1  # of the async flow's 5 starts and 5 ends
    # The sync flow's thread waits for each task's start: while the database thread idles
    # (it does between most of them) it stores them itself. The async flow's loop does not.
    assert 1 <= int(fields[9]) <= direct_sent
    assert fields[10] == "0"
