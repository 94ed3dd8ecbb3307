"""Micro-benchmark: reading a flow run's task runs back, as the task rows' "until stored" poll,
``headwater flow-run inspect`` and ``headwater task-run ls`` do.

Usage: python bench/workloads/list_task_runs.py [TASKS] [CALLS]

A flow calls a trivial task TASKS times (default 1,000) on the embedded server, then
``HeadwaterClient().list_task_runs(flow_run_id)`` is timed CALLS times (default 30, after 3
untimed ones), with two of its parts apart:

- ``service``: `Repository.list_task_runs` for the same page on a second connection to the
  same database, on this thread (no gRPC): reading the rows and building the messages;
- ``convert``: the client's conversion of that page into ``TaskRun`` records, from a freshly
  parsed response each time (what `HeadwaterClient` does with each page).

Wall time and the process's CPU time (every thread: the embedded server's too) per call, as
median and minimum: on a shared machine the CPU figures drift less than the wall ones. Prints
one ``BENCH_RESULT {json}`` line. Run it with ``HEADWATER_HOME`` pointing at a scratch
directory.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULT_MARKER = "BENCH_RESULT "


def _times(call: Callable[[], Any], calls: int, clock: Callable[[], float]) -> list[float]:
    samples = []
    for _ in range(calls):
        start = clock()
        call()
        samples.append((clock() - start) * 1000)
    return samples


def _figures(samples: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(samples), 2), "min": round(min(samples), 2)}


def main(tasks: int, calls: int) -> dict[str, Any]:
    logging.disable(logging.CRITICAL)  # a thousand "Finished" lines would be timed too
    import headwater.runtime as runtime
    from headwater import flow, task
    from headwater._transport import client_convert
    from headwater.client import HeadwaterClient
    from headwater.v1 import task_runs_pb2
    from headwater_server.storage.database import Database

    @task
    def noop(value: int) -> int:
        return value

    @flow
    def many(count: int) -> str:
        for value in range(count):
            noop(value)
        return str(runtime.flow_run.id)

    flow_run_id = many(tasks)
    client = HeadwaterClient()
    for _ in range(3):
        assert len(client.list_task_runs(flow_run_id)) == tasks
    whole = _times(lambda: client.list_task_runs(flow_run_id), calls, time.perf_counter)
    whole_cpu = _times(lambda: client.list_task_runs(flow_run_id), calls, time.process_time)

    home = Path(os.environ["HEADWATER_HOME"])
    database = Database.open(f"sqlite:///{home / 'headwater.db'}")
    try:
        request = task_runs_pb2.ListTaskRunsRequest(
            page_size=min(tasks, 1000),
            filter=task_runs_pb2.TaskRunFilter(flow_run_id=flow_run_id),
        )
        list_page = database.repository.list_task_runs
        service = _times(lambda: list_page(request), calls, time.thread_time)
        page = list_page(request).SerializeToString()
    finally:
        database.close()

    def convert() -> None:
        response = task_runs_pb2.ListTaskRunsResponse.FromString(page)
        for message in response.task_runs:
            client_convert.task_run_from_proto(message)

    conversion = _times(convert, calls, time.thread_time)
    return {
        "tasks": tasks,
        "calls": calls,
        "list_task_runs_wall_ms": _figures(whole),
        "list_task_runs_cpu_ms": _figures(whole_cpu),
        "service_cpu_ms": _figures(service),
        "convert_cpu_ms": _figures(conversion),
    }


if __name__ == "__main__":
    result = main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 30,
    )
    for key, value in result.items():
        print(f"{key:24s} {value}")
    print(RESULT_MARKER + json.dumps(result))
