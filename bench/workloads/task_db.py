"""Micro-benchmark: what task runs cost the repository alone (no gRPC, no SDK), on SQLite.

Usage: python bench/workloads/task_db.py [seq|batched|lane|lane_queued|pages] [TASKS]

- ``seq``: as a flow calling tasks one after the other reaches the database: each
  transaction holds the previous task's COMPLETED end and the next task's create-and-start
  (the engine sends them in one message, and the database thread runs them as one group).
- ``batched``: as submitted tasks arrive: groups of 64 create-and-starts, then groups of 64
  ends, each group one call of `Repository.create_task_runs` / `set_task_run_states`.
- ``lane``: ``seq`` through a running server's direct lane (`RunningServer.direct_lane`), the
  way the embedded engine sends a sequential task: a thread hands each end-and-start over and
  waits for the answer, given after the commit; the database thread being idle, the lane lets
  the calling thread store them itself (``inline``). What the service costs a sequential task
  in-process, without the SDK.
- ``lane_queued``: ``lane`` with every hand-over queued for the database thread (as before
  ``inline``), which answers it and wakes the caller: the cost of those two thread switches.
- ``pages``: ``seq``, counting what its commits write to SQLite's WAL: pages per task, by the
  table or index each page belongs to. On this machine a commit costs about 15 us per page, so
  this says which B-tree a sequential task's commit pays for (TASKS defaults to 100 here: the
  WAL must not wrap while it is counted).

Ids are made as the SDK makes them (time-ordered UUIDs). Prints CPU and wall time per task and
one ``BENCH_RESULT {json}`` line. This is the floor the service's database path sets under a
task: compare ``seq`` with ``task_seq``'s figure to see what the rest costs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from headwater._ids import uuid7_str
from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2
from headwater_server.storage.database import Database
from headwater_server.storage.repository import Repository

RESULT_MARKER = "BENCH_RESULT "
GROUP = 64
_DONE = states_pb2.State(
    type=states_pb2.STATE_TYPE_COMPLETED, result=states_pb2.StateResult(json="null")
)


def _start(flow_run_id: str, index: int) -> task_runs_pb2.CreateTaskRunRequest:
    return task_runs_pb2.CreateTaskRunRequest(
        flow_run_id=flow_run_id,
        task_key="bench.task",
        dynamic_key=str(index),
        start=True,
        task_run_id=uuid7_str(),
        request_id=uuid7_str(),
    )


def _end(task_run_id: str) -> task_runs_pb2.SetTaskRunStateRequest:
    return task_runs_pb2.SetTaskRunStateRequest(
        task_run_id=task_run_id, state=_DONE, transition_id=uuid7_str()
    )


def _running_flow_run(repository: Repository) -> str:
    """A new flow run, RUNNING, for the task runs to belong to; its id."""
    flow_run = repository.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="bench")
    ).flow_run
    repository.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=flow_run.id,
            state=states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING),
        )
    )
    return flow_run.id


def sequential(repository: Repository, flow_run_id: str, first: int, count: int) -> None:
    previous = None
    for index in range(first, first + count):
        with repository.group():
            if previous is not None:
                repository.set_task_run_state(_end(previous))
            answer = repository.create_task_run(_start(flow_run_id, index))
            previous = answer.task_run.id
    if previous is not None:
        repository.set_task_run_state(_end(previous))


def batched(repository: Repository, flow_run_id: str, first: int, count: int) -> None:
    ids: list[str] = []
    for start in range(first, first + count, GROUP):
        requests = [_start(flow_run_id, i) for i in range(start, min(first + count, start + GROUP))]
        with repository.group():
            ids.extend(answer.task_run.id for answer in repository.create_task_runs(requests))
    for start in range(0, len(ids), GROUP):
        with repository.group():
            repository.set_task_run_states([_end(i) for i in ids[start : start + GROUP]])


def through_the_lane(url: str, tasks: int, inline: bool = True) -> tuple[float, float]:
    """CPU and wall microseconds per task for ``lane`` (see the module); ``lane_queued``
    without ``inline``."""
    import asyncio
    import threading
    import uuid

    from headwater.v1 import engine_pb2
    from headwater_server.server import start_server

    def lane_seq(lane: object, flow_run_id: str, first: int, count: int) -> None:
        previous: str | None = None
        answered = threading.Lock()
        answers: list[object] = []

        def deliver(outcomes: list[object]) -> None:
            answers[:] = outcomes
            answered.release()

        for index in range(first, first + count + 1):
            requests = []
            if previous is not None:
                requests.append(engine_pb2.ConnectRequest(set_task_run_state=_end(previous)))
            if index < first + count:
                requests.append(
                    engine_pb2.ConnectRequest(create_task_run=_start(flow_run_id, index))
                )
            answered.acquire()
            taken = lane.submit(requests, deliver, inline)  # type: ignore[attr-defined]
            assert taken
            if taken is not True:  # stored on this thread, in the database thread's place
                taken()
            answered.acquire()  # released by whichever thread stored them, once stored
            answered.release()
            assert not any(isinstance(answer, Exception) for answer in answers), answers
            previous = answers[-1].task_run.id if index < first + count else None  # type: ignore[attr-defined]

    async def measure() -> tuple[float, float]:
        server = await start_server(f"unix-abstract:headwater-bench-{uuid.uuid4().hex}", url)
        try:
            db = server._backend.db
            flow_run_id = await db.run(_running_flow_run, db.repository)
            lane = server.direct_lane(owned=True)
            await asyncio.to_thread(lane_seq, lane, flow_run_id, 10**6, 200)  # warm up
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.to_thread(lane_seq, lane, flow_run_id, 0, tasks)
            return (
                (time.process_time() - cpu) / tasks * 1e6,
                (time.perf_counter() - wall) / tasks * 1e6,
            )
        finally:
            await server.stop(1)

    return asyncio.run(measure())


def main() -> None:
    workload = sys.argv[1] if len(sys.argv) > 1 else "seq"
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    if workload in ("lane", "lane_queued"):
        home = Path(tempfile.mkdtemp(prefix="hw-bench-db-"))
        os.environ.setdefault("HEADWATER_HOME", str(home))
        inline = workload == "lane"
        cpu_us, wall_us = through_the_lane(f"sqlite:///{home / 'bench.db'}", tasks, inline)
        _report(workload, tasks, cpu_us, wall_us)
        return
    if workload == "pages":
        _pages_per_task(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
        return
    run = {"seq": sequential, "batched": batched}[workload]
    home = Path(tempfile.mkdtemp(prefix="hw-bench-db-"))
    os.environ.setdefault("HEADWATER_HOME", str(home))
    db = Database.open(f"sqlite:///{home / 'bench.db'}")
    try:
        repository = db.repository
        repository.fast_path.hold()  # as the database thread does
        flow_run_id = _running_flow_run(repository)
        run(repository, flow_run_id, 10**6, 200)  # warm up
        cpu, wall = time.process_time(), time.perf_counter()
        run(repository, flow_run_id, 0, tasks)
        cpu_us = (time.process_time() - cpu) / tasks * 1e6
        wall_us = (time.perf_counter() - wall) / tasks * 1e6
    finally:
        db.close()
    _report(workload, tasks, cpu_us, wall_us)


def _pages_per_task(tasks: int) -> None:
    """``pages`` (see the module): the WAL's frames after ``tasks`` sequential tasks, by owner."""
    import collections
    import sqlite3

    home = Path(tempfile.mkdtemp(prefix="hw-bench-db-"))
    path = home / "bench.db"
    db = Database.open(f"sqlite:///{path}")
    if db._checkpointer is not None:  # no checkpoint may reset the WAL while it is read
        db._checkpointer.stop()
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        repository = db.repository
        repository.fast_path.hold()
        flow_run_id = _running_flow_run(repository)
        sequential(repository, flow_run_id, 10**6, 3000)  # indexes of a realistic depth
        reader.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        sequential(repository, flow_run_id, 0, tasks)
        wal = (home / "bench.db-wal").read_bytes()
        reader.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        owners = _page_owners(reader, path.read_bytes())
    finally:
        reader.close()
        db.close()
    page_size = int.from_bytes(wal[8:12], "big")
    frames = collections.Counter()
    commits = 0
    for offset in range(32, len(wal) - page_size - 23, page_size + 24):
        page = int.from_bytes(wal[offset : offset + 4], "big")
        commits += int.from_bytes(wal[offset + 4 : offset + 8], "big") != 0
        frames[owners.get(page, "(database header, free pages)")] += 1
    total = sum(frames.values())
    print(f"pages: {tasks} tasks, {commits} commits, {total / tasks:.1f} WAL pages per task")
    for owner, count in frames.most_common():
        print(f"  {count / tasks:5.2f}  {owner}")
    result = {"workload": "pages", "tasks": tasks, "pages_per_task": total / tasks}
    result["by_owner"] = {owner: count / tasks for owner, count in frames.items()}
    print(RESULT_MARKER + json.dumps(result), flush=True)


def _page_owners(reader: object, data: bytes) -> dict[int, str]:
    """Page number -> the table or index whose B-tree holds it (walked from each root)."""
    page_size = int.from_bytes(data[16:18], "big")
    owners: dict[int, str] = {}

    def walk(page: int, name: str) -> None:
        owners[page] = name
        start = (page - 1) * page_size
        header = start + (100 if page == 1 else 0)
        if data[header] not in (2, 5):  # a leaf: no children
            return
        cells = int.from_bytes(data[header + 3 : header + 5], "big")
        for index in range(cells):
            at = header + 12 + 2 * index
            cell = start + int.from_bytes(data[at : at + 2], "big")
            walk(int.from_bytes(data[cell : cell + 4], "big"), name)
        walk(int.from_bytes(data[header + 8 : header + 12], "big"), name)

    roots = reader.execute(  # type: ignore[attr-defined]
        "SELECT name, rootpage FROM sqlite_master WHERE rootpage > 0"
    )
    for name, root in roots:
        walk(root, name)
    return owners


def _report(workload: str, tasks: int, cpu_us: float, wall_us: float) -> None:
    print(f"{workload}: {tasks} task runs, {cpu_us:.0f} us CPU and {wall_us:.0f} us wall per task")
    result = {"workload": workload, "tasks": tasks, "cpu_us": cpu_us, "wall_us": wall_us}
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
