"""Child: trivial tasks in one flow, timed as the flow sees them and until stored, plus memory.

Usage: python tasks.py {headwater|prefect} {seq|submit|map|memory} COUNT

- ``seq``: one flow calls a trivial task COUNT times, one after the other.
- ``submit``: one flow submits COUNT trivial tasks, then waits for all their results.
- ``map``: one flow maps a trivial task over COUNT items, then waits for all results.
- ``memory``: ``seq`` with a large COUNT; what matters is the peak resident memory (the
  stored time is not waited for: ``stored_s`` is null).

Each figure is taken twice: ``seen_s``, how long the flow call took, and ``stored_s``, how long
until the service reports every one of the flow run's COUNT task runs COMPLETED, both counted
from the flow call's start. "Stored" is read through each SDK's own client (Headwater's
``HeadwaterClient.list_task_runs``, counting those COMPLETED; Prefect's ``/task_runs/count``
API), polled from the moment the flow returns; the figure is the end of the first poll that
saw them all (an upper bound: it includes that one read). Prefect 3 records task states from
events after the fact, so its stored time is much later than its flow's end; Headwater accepts
a flow run's final state only after every task run's, so its first poll already sees them all.

One untimed warm-up flow with a few tasks runs first, so starting the (embedded or ephemeral)
server and importing lands outside the figures. Peak RSS (VmHWM) is read at the end, for this
process and any child processes (Prefect's ephemeral server runs in one; Headwater's embedded
server runs in this process).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable

from _common import emit, peak_rss_mib, sdk_from_argv, sdk_version
from flow_overhead import _descendant_pids

WORKLOADS = ("seq", "submit", "map", "memory")
#: Seconds between polls of the service while waiting for every task run to be stored.
POLL_INTERVAL = 0.1
#: Give up waiting for the stored state after this long (Prefect may lag far behind).
STORED_TIMEOUT = 900.0


def _flows(sdk: str, workload: str) -> Callable[[int], str]:
    """The flow for ``workload``, built with ``sdk``'s own decorators; it returns its run id."""
    module = importlib.import_module(sdk)
    flow, task = module.flow, module.task
    runtime = importlib.import_module(f"{sdk}.runtime")

    @task
    def noop(x: int) -> int:
        return x

    @flow
    def sequential(count: int) -> str:
        for i in range(count):
            noop(i)
        return str(runtime.flow_run.id)

    @flow
    def submitted(count: int) -> str:
        futures = [noop.submit(i) for i in range(count)]
        results = [future.result() for future in futures]
        assert results == list(range(count))
        return str(runtime.flow_run.id)

    @flow
    def mapped(count: int) -> str:
        results = noop.map(range(count)).result()
        assert list(results) == list(range(count))
        return str(runtime.flow_run.id)

    chosen: Callable[[int], str] = {
        "seq": sequential,
        "memory": sequential,
        "submit": submitted,
        "map": mapped,
    }[workload]
    return chosen


def _completed_counter(sdk: str) -> Callable[[str], int]:
    """How many of a flow run's task runs the service has stored COMPLETED, by its client."""
    if sdk == "headwater":
        from headwater.client import get_client

        client = get_client(sync_client=True)

        def count_headwater(flow_run_id: str) -> int:
            runs = client.list_task_runs(flow_run_id)
            return sum(
                1 for run in runs if run.state is not None and run.state.type.value == "COMPLETED"
            )

        return count_headwater

    from prefect.client.orchestration import get_client as prefect_client

    def count_prefect(flow_run_id: str) -> int:
        with prefect_client(sync_client=True) as client:
            response = client._client.post(
                "/task_runs/count",
                json={
                    "task_runs": {
                        "flow_run_id": {"any_": [flow_run_id]},
                        "state": {"type": {"any_": ["COMPLETED"]}},
                    }
                },
            )
            return int(response.json())

    return count_prefect


def _wait_until_stored(
    count_completed: Callable[[str], int], flow_run_id: str, expected: int, begin: float
) -> float:
    """Seconds from ``begin`` to the end of the first poll that sees every task run stored."""
    deadline = time.perf_counter() + STORED_TIMEOUT
    while True:
        seen = count_completed(flow_run_id)
        now = time.perf_counter()
        if seen >= expected:
            return now - begin
        if now > deadline:
            raise SystemExit(
                f"only {seen} of {expected} task runs were stored COMPLETED "
                f"{STORED_TIMEOUT:.0f} s after the flow started"
            )
        time.sleep(POLL_INTERVAL)


def main() -> None:
    sdk = sdk_from_argv()
    workload, count = sys.argv[2], int(sys.argv[3])
    if workload not in WORKLOADS:
        raise SystemExit(f"usage: {sys.argv[0]} {sdk} {{{'|'.join(WORKLOADS)}}} COUNT")
    run = _flows(sdk, workload)
    count_completed = _completed_counter(sdk)

    warm_id = run(10)  # starts the server and loads everything, untimed
    _wait_until_stored(count_completed, warm_id, 10, time.perf_counter())

    cpu_start = time.process_time()
    begin = time.perf_counter()
    flow_run_id = run(count)
    seen_s = time.perf_counter() - begin
    cpu_s = time.process_time() - cpu_start
    # Memory is what ``memory`` measures; Prefect may take minutes to store 100,000 runs.
    stored_s = (
        None
        if workload == "memory"
        else _wait_until_stored(count_completed, flow_run_id, count, begin)
    )

    emit(
        {
            "version": sdk_version(sdk),
            "workload": workload,
            "count": count,
            "seen_s": seen_s,
            "stored_s": stored_s,
            "cpu_s": cpu_s,
            "peak_rss_mib": peak_rss_mib(os.getpid()),
            "children_peak_rss_mib": sum(
                peak_rss_mib(pid) for pid in _descendant_pids(os.getpid())
            ),
        }
    )


if __name__ == "__main__":
    main()
