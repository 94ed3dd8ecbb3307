"""Child: milliseconds per call of a trivial flow, in one warm process, plus its peak memory.

Usage: python flow_overhead.py {headwater|prefect} RUNS WARMUP [TRACING]

TRACING (Headwater's tracing_overhead, default off): ``off`` imports no OpenTelemetry; ``api``
imports it and sets no tracer provider; ``sdk`` sets an SDK TracerProvider with no span
processor (which Headwater notices, making no spans); ``otlp`` sets nothing here: the parent exports
``OTEL_EXPORTER_OTLP_ENDPOINT`` and Headwater installs a batch OTLP exporter from it.

The flow does nothing, so each call's time is the orchestration overhead alone: creating the
run, proposing its states and storing the result. Warm-up calls are left out so one-time costs
(starting the embedded or ephemeral server, opening the database) land in cold_start instead.
Peak RSS (VmHWM) is read at the end, for this process and for any children it started
(Prefect's ephemeral mode runs its server in a subprocess, Headwater's embedded mode in-process).
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import time
from pathlib import Path

from _common import emit, peak_rss_mib, sdk_from_argv, sdk_version


def _descendant_pids(root: int) -> list[int]:
    """Returns the pids of every live process below `root`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _tracing(mode: str) -> None:
    """Set up the tracing the TRACING argument names, before the SDK is imported."""
    if mode not in ("off", "api", "sdk", "otlp"):
        raise SystemExit(f"unknown tracing mode {mode!r}: off, api, sdk or otlp")
    if mode in ("api", "sdk"):
        from opentelemetry import trace

        if mode == "sdk":
            from opentelemetry.sdk.trace import TracerProvider

            trace.set_tracer_provider(TracerProvider())


def main() -> None:
    sdk = sdk_from_argv()
    runs, warmup = int(sys.argv[2]), int(sys.argv[3])
    _tracing(sys.argv[4] if len(sys.argv) > 4 else "off")
    flow = importlib.import_module(sdk).flow

    @flow
    def noop() -> int:
        return 1

    for _ in range(warmup):
        noop()

    times_ms: list[float] = []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        result = noop()
        times_ms.append((time.perf_counter() - start) * 1000)
        if result != 1:
            raise SystemExit(f"noop() returned {result!r} instead of 1: the flow did not run")
    cpu_ms = (time.process_time() - cpu_start) * 1000

    emit(
        {
            "version": sdk_version(sdk),
            "times_ms": times_ms,
            "cpu_ms_per_run": cpu_ms / runs,
            # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent
            # across fork and exec, so a child of a big parent reports the parent's size.
            "peak_rss_mib": peak_rss_mib(os.getpid()),
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_peak_rss_mib": sum(
                peak_rss_mib(pid) for pid in _descendant_pids(os.getpid())
            ),
        }
    )


if __name__ == "__main__":
    main()
