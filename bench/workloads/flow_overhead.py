"""Child: milliseconds per call of a trivial flow, in one warm process, plus its peak memory.

Usage: python flow_overhead.py {headwater|prefect} RUNS WARMUP [TRACING]

TRACING (Headwater's tracing_overhead, default off): ``off`` imports no OpenTelemetry; ``api``
imports it and sets no tracer provider; ``sdk`` sets an SDK TracerProvider with no span
processor (which Headwater notices, making no spans); ``otlp`` sets nothing here: the parent exports
``OTEL_EXPORTER_OTLP_ENDPOINT`` and Headwater installs a batch OTLP exporter from it.
``paired-otlp`` is ``otlp`` measured against itself: blocks of calls alternate between exporting
and not (the provider's span processors taken away, as in ``sdk``) in one process, so the
exporter's cost is read without the differences between processes that blur the other modes;
``paired-api`` and ``paired-sdk`` likewise alternate ``api`` or ``sdk`` with ``off`` (see
`_Presence`), and ``paired-off`` alternates ``off`` with itself (an A/A control).

The flow does nothing, so each call's time is the orchestration overhead alone: creating the
run, proposing its states and storing the result. Warm-up calls are left out so one-time costs
(starting the embedded or ephemeral server, opening the database) land in cold_start instead.
Peak RSS (VmHWM) is read at the end, for this process and for any children it started
(Prefect's ephemeral mode runs its server in a subprocess, Headwater's embedded mode in-process).
"""

from __future__ import annotations

import importlib
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each live Python thread, by name (numbers dropped, so the
    same thread of two processes has one name), read from the threads' own CPU clocks."""
    used: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            seconds = time.clock_gettime(clock)
        except (OSError, AttributeError):
            continue  # the thread ended, or the platform has no per-thread clocks
        name = re.sub(r"[-_]\d+", "", thread.name)
        used[name] = used.get(name, 0.0) + seconds
    return used


MODES = ("off", "api", "sdk", "otlp", "paired-off", "paired-api", "paired-sdk", "paired-otlp")


def _tracing(mode: str) -> None:
    """Set up the tracing the TRACING argument names, before the SDK is imported."""
    if mode not in MODES:
        raise SystemExit(f"unknown tracing mode {mode!r}: one of {', '.join(MODES)}")
    if mode.removeprefix("paired-") in ("api", "sdk"):
        from opentelemetry import trace

        if mode.endswith("sdk"):
            from opentelemetry.sdk.trace import TracerProvider

            trace.set_tracer_provider(TracerProvider())


#: Calls per block of the ``paired-*`` modes.
PAIRED_BLOCK = 10


class _Exporter:
    """paired-otlp's switch: the provider's span processors detached, or attached again.

    The batch processor exports on its own thread as it always does (512 spans a batch), so it
    lands in whichever block is running; `exporting_s` reads that thread's CPU clock, so its
    work can be moved to the blocks that made the spans.
    """

    def __init__(self) -> None:
        from opentelemetry import trace

        self._provider: Any = trace.get_tracer_provider()
        self._holder = self._provider._active_span_processor  # the tuple Headwater checks
        self._attached = self._holder._span_processors
        if not self._attached:
            raise SystemExit("paired-otlp: no span processor; is OTEL_EXPORTER_OTLP_ENDPOINT set?")
        worker = next(
            (t for t in threading.enumerate() if t.name.startswith("OtelBatchSpan")), None
        )
        if worker is None or worker.ident is None:
            raise SystemExit("paired-otlp: the batch span processor's thread is not running")
        self._clock = time.pthread_getcpuclockid(worker.ident)

    def turn(self, on: bool) -> None:
        self._holder._span_processors = self._attached if on else ()

    def exporting_s(self) -> float:
        """CPU seconds the export thread has used so far."""
        return time.clock_gettime(self._clock)

    def flush_s(self) -> float:
        """Export what is left; the CPU seconds that took on this thread."""
        started = time.thread_time()
        self._provider.force_flush()
        return time.thread_time() - started


class _Presence:
    """paired-api's and paired-sdk's switch: ``opentelemetry.trace`` hidden from sys.modules,
    or there again. Headwater's hooks ask exactly that to tell a process that imported no
    OpenTelemetry (tracing off) from one that did, so hiding it sends every hook down its "off"
    path in this very process, and showing it again down its "api" or "sdk" path."""

    def __init__(self) -> None:
        self._module = sys.modules["opentelemetry.trace"]

    def turn(self, on: bool) -> None:
        if on:
            sys.modules["opentelemetry.trace"] = self._module
        else:
            sys.modules.pop("opentelemetry.trace", None)
        if sys.modules.get("opentelemetry.trace", self._module) is not self._module:
            raise SystemExit("paired: opentelemetry.trace was imported again while hidden")

    def exporting_s(self) -> float:
        return 0.0

    def flush_s(self) -> float:
        return 0.0


class _Nothing:
    """paired-off's switch, which switches nothing: an A/A control of the paired method."""

    def turn(self, on: bool) -> None:
        pass

    def exporting_s(self) -> float:
        return 0.0

    def flush_s(self) -> float:
        return 0.0


def _paired(mode: str, noop: Callable[[], int], runs: int) -> dict[str, list[float]]:
    """The ``paired-*`` modes: blocks of `PAIRED_BLOCK` calls with the mode's tracing on and
    off in one process, in the order on-off-off-on (a steady drift cancels out within each
    group of four), so its cost is read without the differences between processes.

    The export thread's CPU (and a last flush's) is taken out of the blocks it fell in and
    spread over the exporting ones, in both CPU and wall time: while it encodes spans it holds
    the GIL the flow calls need.

    Returns:
        Per block: whether tracing was on (1.0 or 0.0), its CPU and wall time per call (ms,
        over the whole block, export moved as above); and each call's own wall time (ms), on
        and off.
    """
    switch: _Exporter | _Presence | _Nothing = (
        _Exporter()
        if mode == "paired-otlp"
        else _Nothing()
        if mode == "paired-off"
        else _Presence()
    )
    found: dict[str, list[float]] = {
        "on": [],
        "cpu_ms": [],
        "wall_ms": [],
        "export_ms": [],
        "times_on_ms": [],
        "times_off_ms": [],
    }
    for index in range(max(runs // PAIRED_BLOCK, 4) // 4 * 4):
        on = index % 4 in (0, 3)
        switch.turn(on)
        times = found["times_on_ms" if on else "times_off_ms"]
        exporting = switch.exporting_s()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(PAIRED_BLOCK):
            start = time.perf_counter()
            noop()
            times.append((time.perf_counter() - start) * 1000)
        wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        exported_s = switch.exporting_s() - exporting
        found["on"].append(1.0 if on else 0.0)
        found["export_ms"].append(exported_s * 1000 / PAIRED_BLOCK)
        found["cpu_ms"].append((cpu_s - exported_s) * 1000 / PAIRED_BLOCK)
        found["wall_ms"].append((wall_s - exported_s) * 1000 / PAIRED_BLOCK)
    switch.turn(True)
    exported_ms = sum(found["export_ms"]) + switch.flush_s() * 1000 / PAIRED_BLOCK
    share = exported_ms / max(sum(found["on"]), 1.0)  # per call of an exporting block
    for index, on in enumerate(found["on"]):
        found["cpu_ms"][index] += share * on
        found["wall_ms"][index] += share * on
    return found


def main() -> None:
    sdk = sdk_from_argv()
    runs, warmup = int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "off"
    _tracing(mode)
    flow = importlib.import_module(sdk).flow

    @flow
    def noop() -> int:
        return 1

    for _ in range(warmup):
        noop()
    if mode.startswith("paired-"):
        emit({"version": sdk_version(sdk), "blocks": _paired(mode, noop, runs)})
        return

    times_ms: list[float] = []
    threads_start = _thread_cpu_s()
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        result = noop()
        times_ms.append((time.perf_counter() - start) * 1000)
        if result != 1:
            raise SystemExit(f"noop() returned {result!r} instead of 1: the flow did not run")
    cpu_ms = (time.process_time() - cpu_start) * 1000
    threads_end = _thread_cpu_s()
    # What each thread spent per call (threads started during the calls count from zero); the
    # rest of cpu_ms_per_run is threads Python does not know (grpc's own, the database's).
    thread_cpu_ms = {
        name: (end - threads_start.get(name, 0.0)) * 1000 / runs
        for name, end in threads_end.items()
    }

    emit(
        {
            "version": sdk_version(sdk),
            "times_ms": times_ms,
            "cpu_ms_per_run": cpu_ms / runs,
            "thread_cpu_ms_per_run": thread_cpu_ms,
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
