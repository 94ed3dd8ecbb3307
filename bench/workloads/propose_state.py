"""Micro-benchmark: what one flow-run state proposal costs the server, hop to the database included.

Usage: python bench/workloads/propose_state.py [sqlite|postgres|URL] [RUNS] [ROUNDS]

Every flow run costs the server three database calls (create the run, propose RUNNING, propose
COMPLETED), and each is handed from the asyncio loop to a database thread and back
(``Database.run``). This measures that path three ways, in one process:

- ``hop``: ``await db.run(<no-op>)``: the thread hop alone.
- ``db.run``: ``await db.run(repository.set_flow_run_state, request)``: hop plus the SQL.
- ``stream``: ``set_flow_run_state`` over a real ``EngineService.Connect`` stream to an
  in-process server on an abstract unix socket, one operation in flight at a time, client and
  server on one loop as in the SDK's embedded mode. Also ``stream run``: create + RUNNING +
  COMPLETED, the server's share of one flow run.

On SQLite, when the ``Database`` has a swappable hop (``Database._hop``), each figure is taken for
both hops, the old one (``run_in_executor`` on a one-thread pool) and the current one,
alternating in rounds so a noisy machine drifts both alike; the table shows medians of the
per-round medians. Prints one ``BENCH_RESULT {json}`` line at the end for ``python -m bench``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from headwater.v1 import engine_pb2, engine_pb2_grpc, flow_runs_pb2, states_pb2

RESULT_MARKER = "BENCH_RESULT "
ADMIN_URL = "postgresql://postgres@127.0.0.1:54320/test"
S = states_pb2
FR = flow_runs_pb2

Timings = dict[str, list[float]]


@contextmanager
def database_url(target: str) -> Iterator[str]:
    """A throwaway database: a temporary SQLite file, a fresh PostgreSQL database, or ``target``."""
    if target == "sqlite":
        with tempfile.TemporaryDirectory(prefix="hw-bench-") as home:
            yield f"sqlite:///{home}/bench.db"
    elif target == "postgres":
        import psycopg

        name = f"hw_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:54320/{name}"
        finally:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield target


def proposal(run_id: str, state_type: int) -> FR.SetFlowRunStateRequest:
    return FR.SetFlowRunStateRequest(
        flow_run_id=run_id, state=S.State(type=state_type), transition_id=str(uuid.uuid4())
    )


async def time_calls(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def bench_db_run(db: Any, runs: int, out: Timings) -> None:
    repo = db.repository
    out.setdefault("hop", []).append(
        statistics.median(await time_calls(lambda: db.run(int), runs * 2))
    )
    samples = []
    for _ in range(runs):
        run = (
            await db.run(repo.create_flow_run, FR.CreateFlowRunRequest(flow_name="bench"))
        ).flow_run
        for state_type in (S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED):
            start = time.perf_counter()
            answer = await db.run(repo.set_flow_run_state, proposal(run.id, state_type))
            samples.append(time.perf_counter() - start)
            assert answer.result.decision == S.DECISION_ACCEPT, answer
    out.setdefault("db.run", []).append(statistics.median(samples))


class Stream:
    """One EngineService.Connect stream, one operation in flight at a time."""

    def __init__(self, stub: engine_pb2_grpc.EngineServiceStub) -> None:
        self._requests: asyncio.Queue[engine_pb2.ConnectRequest | None] = asyncio.Queue()
        self._call = stub.Connect(self._request_iterator())
        self._sequence = 0

    async def _request_iterator(self):  # type: ignore[no-untyped-def]
        while (request := await self._requests.get()) is not None:
            yield request

    async def ask(self, **operation: Any) -> engine_pb2.ConnectResponse:
        self._sequence += 1
        await self._requests.put(engine_pb2.ConnectRequest(sequence=self._sequence, **operation))
        answer = await self._call.read()
        assert answer.sequence == self._sequence and answer.WhichOneof("outcome") != "error", answer
        return answer

    async def close(self) -> None:
        """Half-close and read to the end, as a polite client does."""
        import grpc.aio

        await self._requests.put(None)
        while await self._call.read() is not grpc.aio.EOF:
            pass


async def bench_stream(stream: Stream, runs: int, out: Timings) -> None:
    states: list[float] = []
    whole: list[float] = []
    for _ in range(runs):
        begin = time.perf_counter()
        created = await stream.ask(create_flow_run=FR.CreateFlowRunRequest(flow_name="bench"))
        run_id = created.create_flow_run.flow_run.id
        for state_type in (S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED):
            start = time.perf_counter()
            await stream.ask(set_flow_run_state=proposal(run_id, state_type))
            states.append(time.perf_counter() - start)
        whole.append(time.perf_counter() - begin)
    out.setdefault("stream", []).append(statistics.median(states))
    out.setdefault("stream run", []).append(statistics.median(whole))


def hop_variants(db: Any) -> dict[str, Callable[[], None]]:
    """Ways to switch ``db`` between hops; just the current one when there is nothing to compare.

    Only SQLite changed hops; PostgreSQL keeps its pool. (Code from before the change has no
    ``_hop``, so the script also measures that, as "current".)
    """
    if not hasattr(db, "_hop") or db.dialect != "sqlite":
        return {"current": lambda: None}
    from headwater_server.storage.hops import PoolHop

    current = db._hop
    pool = PoolHop(ThreadPoolExecutor(1, thread_name_prefix="bench-pool"))

    def use(hop: Any) -> Callable[[], None]:
        def switch() -> None:
            db._hop = hop

        return switch

    return {"pool (old)": use(pool), f"{type(current).__name__} (new)": use(current)}


async def main_async(url: str, runs: int, rounds: int) -> dict[str, Any]:
    import grpc.aio
    from headwater_server.server import start_server

    server = await start_server(f"unix-abstract:hw-bench-{uuid.uuid4().hex[:8]}", url)
    db = server._backend.db
    variants = hop_variants(db)
    results: dict[str, Timings] = {name: {} for name in variants}
    channel = grpc.aio.insecure_channel(server.address)
    stream = Stream(engine_pb2_grpc.EngineServiceStub(channel))
    try:
        # Warm up: connections, statement caches, the stream.
        for switch in variants.values():
            switch()
            await bench_db_run(db, 50, {})
            await bench_stream(stream, 50, {})
        for round_number in range(rounds):
            order = list(variants.items())
            if round_number % 2:
                order.reverse()
            for name, switch in order:
                switch()
                await bench_db_run(db, runs, results[name])
                await bench_stream(stream, runs, results[name])
    finally:
        for switch in list(variants.values())[-1:]:
            switch()
        await stream.close()
        await channel.close()
        await server.stop(1.0)
    return {
        "dialect": db.dialect,
        "runs_per_round": runs,
        "rounds": rounds,
        "round_medians_us": {
            name: {figure: [round(x * 1e6, 1) for x in v] for figure, v in timings.items()}
            for name, timings in results.items()
        },
        "median_us": {
            name: {figure: statistics.median(v) * 1e6 for figure, v in timings.items()}
            for name, timings in results.items()
        },
    }


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    os.environ.setdefault("HEADWATER_HOME", tempfile.mkdtemp(prefix="hw-bench-home-"))
    with database_url(target) as url:
        result = asyncio.run(main_async(url, runs, rounds))
    medians = result["median_us"]
    figures = list(next(iter(medians.values())))
    print(f"{result['dialect']}: {runs} runs x {rounds} rounds, median of round medians, µs")
    print(f"  {'':22s}" + "".join(f"{figure:>12s}" for figure in figures))
    for name, values in medians.items():
        print(f"  {name:22s}" + "".join(f"{values[figure]:12.1f}" for figure in figures))
    if len(medians) == 2:
        # Each round measured both hops back to back: the median of the per-round differences
        # cancels most of the drift of a shared machine.
        old, new = result["round_medians_us"].values()
        result["paired_difference_us"] = {
            figure: statistics.median(b - a for a, b in zip(old[figure], new[figure], strict=True))
            for figure in figures
        }
        print(
            f"  {'new - old (paired)':22s}"
            + "".join(f"{result['paired_difference_us'][figure]:12.1f}" for figure in figures)
        )
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
