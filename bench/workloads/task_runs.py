"""Micro-benchmark: what a task run costs the service through the engine stream.

Usage: python bench/workloads/task_runs.py [headwater] [sqlite|postgres|URL] [TASKS] [ROUNDS]
[--server-process]

An in-process server on an abstract unix socket, one ``EngineService.Connect`` stream, client and
server on one loop (as in the SDK's embedded mode). Inside one RUNNING flow run it measures:

- ``sequential``: per task, create-and-start (one round trip, RUNNING decided by the service)
  then COMPLETED, each waiting for its answer: what a task called in a flow costs at most.
- ``end nowait``: per task, create-and-start waiting, COMPLETED sent without waiting (it rides
  with the next message); the time runs until the flow's final state is accepted, which the
  service applies only after every earlier operation, so every task run is stored COMPLETED.
- ``submitted``: TASKS tasks at once: every create-and-start in flight together, then every
  COMPLETED, then the flow's final state; the time until that answer is "TASKS submitted tasks
  stored", and TASKS / time is task runs stored per second (each stored twice: start and end).
- ``batched``: ``submitted`` with the operations packed 64 to a ``batch`` message (and so the
  answers batched too), as the SDK's stream writes whatever is queued together.

With ``--server-process`` the service runs as ``headwater server start`` in a process of its own
(as deployed), the workloads drive it over TCP from this process, and each figure's CPU time is
the server process's alone (``server_cpu_us``): what a task run costs the service, and so how
many task runs per second one service process can store with a core to itself.

Each figure also has its CPU time (``cpu_us``: the whole process, client and server, per task;
``batched`` and ``submitted`` per task too), steadier than wall time on a busy machine.

Prints a table and one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from headwater.v1 import (
    engine_pb2,
    engine_pb2_grpc,
    flow_runs_pb2,
    states_pb2,
    task_runs_pb2,
)
from propose_state import RESULT_MARKER, Stream, database_url, proposal

S = states_pb2
T = task_runs_pb2
#: Operations per ``batch`` message in ``batched`` (the SDK's stream packs up to 64).
BATCH = 64


class PipelinedStream(Stream):
    """A Stream that can also send without reading, then collect answers by sequence."""

    def send(self, **operation: Any) -> int:
        self._sequence += 1
        self._requests.put_nowait(engine_pb2.ConnectRequest(sequence=self._sequence, **operation))
        return self._sequence

    def send_batch(self, operations: list[dict[str, Any]]) -> list[int]:
        """Send ``operations`` in ``batch`` messages of at most BATCH each; their sequences."""
        sequences = []
        for start in range(0, len(operations), BATCH):
            batch = engine_pb2.ConnectRequest()
            for operation in operations[start : start + BATCH]:
                self._sequence += 1
                sequences.append(self._sequence)
                batch.batch.requests.append(
                    engine_pb2.ConnectRequest(sequence=self._sequence, **operation)
                )
            self._requests.put_nowait(batch)
        return sequences

    async def collect(self, *until: int) -> dict[int, engine_pb2.ConnectResponse]:
        """Read answers until those numbered ``until`` have all arrived (in any order)."""
        answers: dict[int, engine_pb2.ConnectResponse] = {}
        missing = set(until)
        while missing:
            message = await self._call.read()
            inner = message.batch.responses if message.WhichOneof("outcome") == "batch" else ()
            for answer in inner or (message,):
                assert answer.WhichOneof("outcome") != "error", answer
                answers[answer.sequence] = answer
                missing.discard(answer.sequence)
        return answers


def _start(flow_run_id: str, index: int) -> T.CreateTaskRunRequest:
    return T.CreateTaskRunRequest(
        flow_run_id=flow_run_id, task_key="bench.task", dynamic_key=str(index), start=True
    )


def _end(task_run_id: str) -> T.SetTaskRunStateRequest:
    return T.SetTaskRunStateRequest(
        task_run_id=task_run_id,
        state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="null")),
        transition_id=str(uuid.uuid4()),
    )


async def _running_flow(stream: PipelinedStream) -> str:
    created = await stream.ask(create_flow_run=flow_runs_pb2.CreateFlowRunRequest(flow_name="b"))
    run_id = created.create_flow_run.flow_run.id
    await stream.ask(set_flow_run_state=proposal(run_id, S.STATE_TYPE_RUNNING))
    return run_id


async def _finish(stream: PipelinedStream, run_id: str) -> None:
    final = stream.send(set_flow_run_state=proposal(run_id, S.STATE_TYPE_COMPLETED))
    answer = (await stream.collect(final))[final].set_flow_run_state
    assert answer.result.decision == S.DECISION_ACCEPT, answer


async def sequential(stream: PipelinedStream, tasks: int) -> float:
    run_id = await _running_flow(stream)
    begin = time.perf_counter()
    for index in range(tasks):
        started = (await stream.ask(create_task_run=_start(run_id, index))).create_task_run
        assert started.result.decision == S.DECISION_ACCEPT
        await stream.ask(set_task_run_state=_end(started.task_run.id))
    elapsed = time.perf_counter() - begin
    await _finish(stream, run_id)
    return elapsed / tasks


async def end_nowait(stream: PipelinedStream, tasks: int) -> float:
    run_id = await _running_flow(stream)
    begin = time.perf_counter()
    for index in range(tasks):
        sequence = stream.send(create_task_run=_start(run_id, index))
        # The answers read on the way are earlier ends, which nobody waits for.
        started = (await stream.collect(sequence))[sequence].create_task_run
        stream.send(set_task_run_state=_end(started.task_run.id))
    await _finish(stream, run_id)
    return (time.perf_counter() - begin) / tasks


async def submitted(stream: PipelinedStream, tasks: int) -> float:
    run_id = await _running_flow(stream)
    begin = time.perf_counter()
    sequences = [stream.send(create_task_run=_start(run_id, i)) for i in range(tasks)]
    answers = await stream.collect(*sequences)  # answers may come in any order (PostgreSQL)
    for sequence in sequences:
        stream.send(set_task_run_state=_end(answers[sequence].create_task_run.task_run.id))
    await _finish(stream, run_id)
    return time.perf_counter() - begin


async def batched(stream: PipelinedStream, tasks: int) -> float:
    run_id = await _running_flow(stream)
    begin = time.perf_counter()
    sequences = stream.send_batch([{"create_task_run": _start(run_id, i)} for i in range(tasks)])
    answers = await stream.collect(*sequences)
    stream.send_batch(
        [
            {"set_task_run_state": _end(answers[sequence].create_task_run.task_run.id)}
            for sequence in sequences
        ]
    )
    await _finish(stream, run_id)
    return time.perf_counter() - begin


def _process_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` (None: this process), from /proc."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(
    workload: Any,
    stream: PipelinedStream,
    tasks: int,
    cpu: dict[str, list[float]],
    name: str,
    pid: int | None,
) -> float:
    """Run one workload; record the CPU time per task (µs) of process ``pid`` (None: this
    one) under ``name``."""
    before = _process_cpu(pid)
    result: float = await workload(stream, tasks)
    cpu.setdefault(name, []).append((_process_cpu(pid) - before) / tasks * 1e6)
    return result


@contextlib.asynccontextmanager
async def _service(url: str, own_process: bool) -> AsyncIterator[tuple[str, str, int | None]]:
    """A running service: (address, dialect, its pid when it runs in a process of its own)."""
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    if not own_process:
        from headwater_server.server import start_server

        server = await start_server(f"unix-abstract:hw-bench-{uuid.uuid4().hex[:8]}", url)
        try:
            yield server.address, server._backend.db.dialect, None
        finally:
            await server.stop(1.0)
        return
    cli = "from headwater.cli import main; main()"
    command = [sys.executable, "-c", cli, "server", "start", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        found = re.search(r"listening on (\S+?),", line)
        if found is None:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield found.group(1), dialect, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def main_async(url: str, tasks: int, rounds: int, own_process: bool) -> dict[str, Any]:
    import grpc.aio

    results: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    cpu: dict[str, list[float]] = {}
    async with _service(url, own_process) as (address, dialect, pid):
        channel = grpc.aio.insecure_channel(address)
        stream = PipelinedStream(engine_pb2_grpc.EngineServiceStub(channel))
        try:
            await sequential(stream, 50)  # warm up
            for _ in range(rounds):
                for name, workload in WORKLOADS.items():
                    results[name].append(await _timed(workload, stream, tasks, cpu, name, pid))
            await stream.close()
        finally:
            await channel.close()
    return {
        "version": importlib.metadata.version("headwater"),
        "dialect": dialect,
        "server_process": own_process,
        "tasks": tasks,
        "rounds": rounds,
        "per_task_us": {
            name: statistics.median(results[name]) * 1e6 for name in ("sequential", "end nowait")
        },
        "submitted_s": statistics.median(results["submitted"]),
        "stored_per_second": tasks / statistics.median(results["submitted"]),
        "batched_s": statistics.median(results["batched"]),
        "batched_stored_per_second": tasks / statistics.median(results["batched"]),
        "cpu_us": {name: statistics.median(values) for name, values in cpu.items()},
    }


WORKLOADS = {
    "sequential": sequential,
    "end nowait": end_nowait,
    "submitted": submitted,
    "batched": batched,
}


def main() -> None:
    own_process = "--server-process" in sys.argv
    args = [arg for arg in sys.argv[1:] if arg != "--server-process"]
    if args[:1] == ["headwater"]:  # as `make bench` runs every workload: the SDK's name first
        args = args[1:]
    target = args[0] if args else "sqlite"
    tasks = int(args[1]) if len(args) > 1 else 1000
    rounds = int(args[2]) if len(args) > 2 else 3
    os.environ.setdefault("HEADWATER_HOME", tempfile.mkdtemp(prefix="hw-bench-home-"))
    with database_url(target) as url:
        result = asyncio.run(main_async(url, tasks, rounds, own_process))
    where = "service in its own process" if own_process else "client and service in one process"
    print(f"{result['dialect']}: {tasks} tasks x {rounds} rounds, medians ({where})")
    for name, value in result["per_task_us"].items():
        print(f"  {name:12s} {value:9.1f} µs per task (start + end, until stored)")
    for name, rate in (
        ("submitted", "stored_per_second"),
        ("batched", "batched_stored_per_second"),
    ):
        print(
            f"  {name:12s} {result[name + '_s']:9.3f} s for {tasks} tasks until all stored "
            f"COMPLETED: {result[rate]:.0f} task runs stored per second"
        )
    whose = "server process" if own_process else "process"
    print(
        f"  CPU ({whose}, µs per task): "
        + ", ".join(f"{name} {value:.0f}" for name, value in result["cpu_us"].items())
    )
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
