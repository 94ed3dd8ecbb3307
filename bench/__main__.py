"""`python -m bench [--only NAME ...] [--quick] [--skip-prefect]`: Headwater beside Prefect 3.9.1.

Runs each workload on both SDKs in one go, prints a table and writes bench/results/latest.json.
Both sides run on the same machine within minutes of each other, which is the only way figures
from a noisy shared machine can be compared. A workload that fails on one side is reported as
an error in its row; the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._runner import (
    ROOT,
    BenchError,
    Sdk,
    headwater_server,
    percentile,
    run_workload,
    summarize,
    throwaway_dir,
    throwaway_postgres_database,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
PREFECT_VERSION = "3.9.1"
WORKLOAD_NAMES = (
    "flow_overhead",
    "cold_start",
    "import",
    "memory",
    "task_seq",
    "task_submit",
    "task_map",
    "task_memory",
    "task_throughput",
    "crash_detection",
    "pickup_latency",
    "schedule_lag",
    "client_round_trip",
    "tracing_overhead",
)

Measurement = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """How many samples each workload takes; --quick and BENCH_PREFECT_RUNS change it."""

    quick: bool
    headwater_flow_runs: int
    prefect_flow_runs: int
    warmup: int
    cold_runs: dict[str, int]
    import_runs: int
    tasks: int
    memory_tasks: dict[str, int]

    @classmethod
    def make(cls, quick: bool) -> Plan:
        # A trivial Prefect flow takes about 1.1 s, so 200 of them would take minutes: fewer
        # Prefect runs still give a stable median because its time hardly varies.
        prefect_runs = int(os.environ.get("BENCH_PREFECT_RUNS", 5 if quick else 20))
        # Prefect takes ~5 ms per sequential task as the flow sees it, and its server
        # lags further behind the more it gets: 100,000 would take the better part of an hour.
        prefect_memory = int(os.environ.get("BENCH_PREFECT_MEMORY_TASKS", 2000 if quick else 5000))
        return cls(
            quick=quick,
            headwater_flow_runs=50 if quick else 200,
            prefect_flow_runs=prefect_runs,
            warmup=3,
            cold_runs={"headwater": 3, "prefect": 2} if quick else {"headwater": 5, "prefect": 3},
            import_runs=3 if quick else 5,
            tasks=1000,
            memory_tasks={"headwater": 20_000 if quick else 100_000, "prefect": prefect_memory},
        )

    def flow_runs(self, sdk: Sdk) -> int:
        return self.prefect_flow_runs if sdk.name == "prefect" else self.headwater_flow_runs


@dataclass
class Section:
    """One workload's part of the table: measurements by label, compared in pairs."""

    name: str
    title: str
    unit: str
    # (key in a measurement's "figures", how the table names it)
    figures: list[tuple[str, str]]
    # (caption, Headwater measurement label, Prefect measurement label)
    pairs: list[tuple[str, str, str]]
    measurements: dict[str, Measurement] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The headings of a pair's two measurements and of their ratio (second / first).
    columns: tuple[str, str, str] = ("Headwater", "Prefect", "Prefect/HW")
    # Show the ratio as a difference in percent (for small overheads) rather than "1.2x".
    ratio_as_percent: bool = False


def headwater_sdk() -> Sdk:
    return Sdk("headwater", "Headwater", ROOT / ".venv" / "bin" / "python", {"DO_NOT_TRACK": "1"})


def prefect_sdk() -> Sdk:
    """Returns the Prefect side, building its virtualenv first when it is missing or wrong."""
    env = {
        # Keep Prefect offline and quiet about it: no server analytics, no SDK telemetry.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # The ephemeral server gets 20 s to start by default; on a busy 2-CPU machine a fresh
        # home's migrations can take longer, and a run that gives up measures nothing.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    python = ROOT / ".bench" / "prefect-venv" / "bin" / "python"
    label = f"Prefect {PREFECT_VERSION}"
    print(f"bench: checking the Prefect virtualenv ({python.parent.parent})", file=sys.stderr)
    proc = subprocess.run(
        ["bash", str(HERE / "ensure_prefect_venv.sh")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        problem = (
            f"bench/ensure_prefect_venv.sh could not build {python.parent.parent}"
            f" (exit {proc.returncode}); run it by hand to see why:\n{tail}"
        )
        return Sdk("prefect", label, python, env, unavailable=problem)
    return Sdk("prefect", label, python, env)


def measure(sdk: Sdk, what: str, take: Callable[[], Measurement]) -> Measurement:
    """Takes one measurement, turning any failure into an error entry for the table."""
    if sdk.unavailable:
        return {"error": sdk.unavailable}
    print(f"bench: {what} ...", file=sys.stderr, flush=True)
    try:
        return take()
    except BenchError as exc:
        return {"error": str(exc)}


def flow_overhead_raw(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> dict[str, Any]:
    """Runs the flow_overhead child for every mode once; memory reads the same processes."""
    if "flow_overhead" in cache:
        return cache["flow_overhead"]
    raw: dict[str, Measurement] = {}
    for sdk in sdks:
        runs = plan.flow_runs(sdk)
        args = [str(runs), str(plan.warmup)]
        timeout = 120 + runs * 3

        def local(sdk: Sdk = sdk, args: list[str] = args, timeout: float = timeout) -> Measurement:
            with throwaway_dir(f"{sdk.name}-home") as home:
                env = sdk.environ(**{sdk.home_var: str(home)})
                return run_workload(sdk, "flow_overhead", args, env, timeout)

        mode = "ephemeral" if sdk.name == "prefect" else "embedded"
        raw[f"{sdk.label} {mode}"] = measure(
            sdk, f"flow_overhead on {sdk.label} {mode}, {runs} runs", local
        )
        if sdk.name != "headwater":
            continue

        def remote(sdk: Sdk = sdk, args: list[str] = args, timeout: float = timeout) -> Measurement:
            with (
                throwaway_dir("headwater-server-home") as server_home,
                throwaway_dir("headwater-client-home") as home,
                headwater_server(sdk, server_home) as server,
            ):
                env = sdk.environ(HEADWATER_HOME=str(home), HEADWATER_API_URL=server.address)
                result = run_workload(sdk, "flow_overhead", args, env, timeout)
                # The server is the client's partner, not its child: count it here, so all
                # three modes add up client and server memory alike.
                result["children_peak_rss_mib"] += server.peak_rss_mib()
                return result

        raw[f"{sdk.label} server"] = measure(
            sdk, f"flow_overhead on {sdk.label} server subprocess, {runs} runs", remote
        )
    cache["flow_overhead"] = raw
    return raw


# Both Headwater modes are compared with Prefect's default (ephemeral) mode.
FLOW_PAIRS = [
    ("embedded vs ephemeral", "Headwater embedded", f"Prefect {PREFECT_VERSION} ephemeral"),
    ("server subprocess vs ephemeral", "Headwater server", f"Prefect {PREFECT_VERSION} ephemeral"),
]


def flow_overhead(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    section = Section(
        "flow_overhead",
        f"one trivial flow call, after {plan.warmup} warm-up calls",
        "ms",
        [("mean", "mean"), ("p50", "p50"), ("p95", "p95"), ("cpu", "CPU per call")],
        list(FLOW_PAIRS),
        notes=[
            f"Headwater {plan.headwater_flow_runs} calls per mode, Prefect"
            f" {plan.prefect_flow_runs} calls (BENCH_PREFECT_RUNS; a Prefect call takes ~1 s)",
            "embedded: no HEADWATER_API_URL; server: `headwater server start` in its own process",
        ],
    )
    for label, raw in flow_overhead_raw(sdks, plan, cache).items():
        if "error" in raw:
            section.measurements[label] = raw
            continue
        stats = summarize(raw["times_ms"])
        section.measurements[label] = {
            "version": raw["version"],
            "n": stats["n"],
            "figures": {**stats, "cpu": raw["cpu_ms_per_run"]},
            "raw": raw,
        }
    return section


def memory(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    section = Section(
        "memory",
        "peak RSS (VmHWM) of the flow_overhead processes, at their end",
        "MiB",
        [("process", "client process"), ("with_server", "+ server process(es)")],
        list(FLOW_PAIRS),
        notes=[
            "server: Prefect's ephemeral subprocess, Headwater's server subprocess,"
            " none apart when embedded",
        ],
    )
    for label, raw in flow_overhead_raw(sdks, plan, cache).items():
        if "error" in raw:
            section.measurements[label] = raw
            continue
        own = raw["peak_rss_mib"]
        section.measurements[label] = {
            "version": raw["version"],
            "n": 1,
            "figures": {"process": own, "with_server": own + raw["children_peak_rss_mib"]},
        }
    return section


def cold_start(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    section = Section(
        "cold_start",
        "`python -c` that imports, defines and runs one trivial flow, whole process",
        "s",
        [("mean", "mean"), ("p50", "median"), ("p95", "p95")],
        [
            ("fresh empty home per process", "Headwater fresh home", "Prefect fresh home"),
            ("warm home (database exists)", "Headwater warm home", "Prefect warm home"),
        ],
        notes=[
            f"Headwater {plan.cold_runs['headwater']} processes per home kind, Prefect"
            f" {plan.cold_runs['prefect']}; one untimed run first creates the warm home",
        ],
    )
    for sdk in sdks:
        runs = plan.cold_runs[sdk.name]
        short = "Prefect" if sdk.name == "prefect" else sdk.label

        def take(sdk: Sdk = sdk, runs: int = runs) -> Measurement:
            with throwaway_dir(f"{sdk.name}-cold") as scratch:
                timeout = 60 + (1 + 2 * runs) * 90
                return run_workload(
                    sdk, "cold_start", [str(runs), str(scratch)], sdk.environ(), timeout
                )

        raw = measure(sdk, f"cold_start on {sdk.label}, {1 + 2 * runs} processes", take)
        for kind in ("fresh", "warm"):
            label = f"{short} {kind} home"
            if "error" in raw:
                section.measurements[label] = raw
                continue
            stats = summarize(raw[f"{kind}_s"])
            section.measurements[label] = {
                "version": raw["version"],
                "n": stats["n"],
                "figures": stats,
                "raw": raw[f"{kind}_s"],
            }
    return section


def import_time(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    section = Section(
        "import",
        "importing the SDK in a fresh interpreter",
        "ms",
        [("mean", "mean"), ("p50", "median"), ("p95", "p95")],
        [
            ("`import <sdk>` (perf_counter)", "Headwater import", "Prefect import"),
            ("its whole process, spawn to exit", "Headwater process", "Prefect process"),
            ("`from <sdk> import flow`", "Headwater flow_import", "Prefect flow_import"),
        ],
        notes=[f"{plan.import_runs} interpreters per row, after one untimed run"],
    )
    for sdk in sdks:
        short = "Prefect" if sdk.name == "prefect" else sdk.label

        def take(sdk: Sdk = sdk) -> Measurement:
            with throwaway_dir(f"{sdk.name}-import") as home:
                timeout = 60 + (1 + plan.import_runs) * 30
                args = [str(plan.import_runs), str(home)]
                return run_workload(sdk, "import_time", args, sdk.environ(), timeout)

        raw = measure(sdk, f"import on {sdk.label}", take)
        for kind in ("import", "process", "flow_import"):
            label = f"{short} {kind}"
            if "error" in raw:
                section.measurements[label] = raw
                continue
            stats = summarize([seconds * 1000 for seconds in raw[f"{kind}_s"]])
            section.measurements[label] = {
                "version": raw["version"],
                "n": stats["n"],
                "figures": stats,
            }
    return section


def _tasks_child(sdk: Sdk, workload: str, count: int, timeout: float) -> Measurement:
    """One tasks.py child on a throwaway home; its raw result."""
    with throwaway_dir(f"{sdk.name}-tasks") as home:
        env = sdk.environ(**{sdk.home_var: str(home)})
        return run_workload(sdk, "tasks", [workload, str(count)], env, timeout)


# What each timed task workload runs in the child, and how the table names it.
TASK_WORKLOADS = {
    "task_seq": ("seq", "one flow calls a trivial task {n:,} times, one after the other"),
    "task_submit": ("submit", "one flow submits {n:,} trivial tasks and waits for all"),
    "task_map": ("map", "one flow maps a trivial task over {n:,} items and waits for all"),
}


def _task_timing(name: str) -> Callable[[Sequence[Sdk], Plan, dict[str, Any]], Section]:
    workload, title = TASK_WORKLOADS[name]
    sequential = workload == "seq"

    def measure_tasks(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
        n = plan.tasks
        unit = "ms per task" if sequential else "s"
        figures = [("seen", "as the flow sees it"), ("stored", "until all stored")]
        if not sequential:
            figures.append(("per_second", "stored per s (HW/P)"))
        section = Section(
            name,
            title.format(n=n),
            unit,
            figures,
            [("Headwater vs Prefect", f"Headwater {name}", f"Prefect {name}")],
            notes=[
                "seen: the flow call; until all stored: from the call's start until the"
                " service's API reports every task run COMPLETED (polled after the flow"
                " returns; includes that read)",
                "stored per s: task runs stored per second (count / until all stored); its"
                " ratio is Headwater / Prefect, so above 1 is better for Headwater as elsewhere"
                if not sequential
                else "one untimed warm-up flow first, in the same process",
            ],
        )
        for sdk in sdks:
            short = "Prefect" if sdk.name == "prefect" else "Headwater"
            label = f"{short} {name}"

            def take(sdk: Sdk = sdk) -> Measurement:
                return _tasks_child(sdk, workload, n, 120 + n * 1.0)

            raw = measure(sdk, f"{name} on {sdk.label}, {n} tasks", take)
            if "error" in raw:
                section.measurements[label] = raw
                continue
            scale = 1000 / n if sequential else 1.0
            section.measurements[label] = {
                "version": raw["version"],
                "n": 1,
                "figures": {
                    "seen": raw["seen_s"] * scale,
                    "stored": raw["stored_s"] * scale,
                    "per_second": n / raw["stored_s"],
                },
                "raw": raw,
            }
        return section

    return measure_tasks


def task_memory(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    hw_many, pf_many = plan.memory_tasks["headwater"], plan.memory_tasks["prefect"]
    section = Section(
        "task_memory",
        "peak RSS (VmHWM) of one flow of sequential trivial tasks, client + server processes",
        "MiB",
        [
            ("small", "1,000 tasks"),
            ("large", "many tasks"),
            ("growth", "growth"),
            ("seen", "ms per task (large)"),
        ],
        [("Headwater vs Prefect", "Headwater task_memory", "Prefect task_memory")],
        notes=[
            f"many tasks: Headwater {hw_many:,}, Prefect {pf_many:,} (scaled down: at ~5 ms per"
            " task and a server that lags further behind, 100,000 would take most of an hour;"
            " BENCH_PREFECT_MEMORY_TASKS sets it)",
            "growth = large - small; Headwater's embedded server is in its process,"
            " Prefect's ephemeral server is a child process (both counted)",
        ],
    )
    for sdk in sdks:
        short = "Prefect" if sdk.name == "prefect" else "Headwater"
        label = f"{short} task_memory"
        many = plan.memory_tasks[sdk.name]
        raws: list[Measurement] = []
        for count in (plan.tasks, many):

            def take(sdk: Sdk = sdk, count: int = count) -> Measurement:
                return _tasks_child(sdk, "memory", count, 300 + count * 0.1)

            raws.append(measure(sdk, f"task_memory on {sdk.label}, {count} tasks", take))
        failed = next((raw for raw in raws if "error" in raw), None)
        if failed is not None:
            section.measurements[label] = failed
            continue
        small, large = (raw["peak_rss_mib"] + raw["children_peak_rss_mib"] for raw in raws)
        section.measurements[label] = {
            "version": raws[0]["version"],
            "n": 1,
            "figures": {
                "small": small,
                "large": large,
                "growth": large - small,
                "seen": raws[1]["seen_s"] * 1000 / many,
            },
            "raw": raws,
        }
    return section


def task_throughput(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    """Task runs one service process stores per second on SQLite, fed over the engine stream.

    The service runs as ``headwater server start`` in a process of its own (a core to itself, as
    deployed); the workload's process sends create-and-starts, then COMPLETED ends, then the flow
    run's final state, and times until that is accepted (every task run stored COMPLETED).
    """
    tasks = 1000
    rounds = 3 if plan.quick else 5
    section = Section(
        "task_throughput",
        f"{tasks:,} task runs (start + end) through one service process on SQLite, until stored",
        "task runs per s; us",
        [
            ("batched", "stored per s, batches of 64"),
            ("submitted", "stored per s, one message each"),
            ("cpu", "service CPU us per task run, batched"),
        ],
        [("Headwater service process", "Headwater task_throughput", "Prefect task_throughput")],
        notes=[
            f"medians of {rounds} rounds; a task run is stored twice (RUNNING decided by the"
            " service, then COMPLETED); the flow run's final state is accepted only after all of"
            " them. Prefect 3.9.1 stores task states from events after the flow ends: see"
            " task_submit's stored per s for its figure.",
        ],
    )
    for sdk in sdks:
        if sdk.name != "headwater":
            continue

        def take(sdk: Sdk = sdk) -> Measurement:
            with throwaway_dir("headwater-throughput-home") as home:
                env = sdk.environ(HEADWATER_HOME=str(home))
                args = ["sqlite", str(tasks), str(rounds), "--server-process"]
                return run_workload(sdk, "task_runs", args, env, 600)

        raw = measure(sdk, f"task_throughput on {sdk.label}, {tasks} task runs", take)
        if "error" in raw:
            section.measurements["Headwater task_throughput"] = raw
            continue
        section.measurements["Headwater task_throughput"] = {
            "version": raw.get("version", ""),
            "n": rounds,
            "figures": {
                "batched": raw["batched_stored_per_second"],
                "submitted": raw["stored_per_second"],
                "cpu": raw["cpu_us"]["batched"],
            },
            "raw": raw,
        }
    return section


def crash_detection(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    """kill -9 of a flow process -> its run CRASHED, with the service's default settings."""
    runs = 2 if plan.quick else 5
    section = Section(
        "crash_detection",
        "kill -9 of a flow process until the service reports its run CRASHED",
        "s",
        [("mean", "mean"), ("p50", "median"), ("max", "max")],
        [
            ("stream broke (server subprocess)", "Headwater remote", "Prefect remote"),
            ("embedded server died too", "Headwater embedded", "Prefect embedded"),
            (
                "serving process killed, run subprocess died with it",
                "Headwater runner",
                "Prefect runner",
            ),
        ],
        notes=[
            f"{runs} kills per row. Prefect 3.9.1 does not detect a killed flow process by"
            " default (its run stays Running), so it has no figure here.",
        ],
    )
    for sdk in sdks:
        if sdk.name != "headwater":
            continue
        for mode in ("remote", "embedded", "runner"):

            def take(sdk: Sdk = sdk, mode: str = mode) -> Measurement:
                with (
                    throwaway_dir("headwater-crash-home") as home,
                    headwater_server(sdk, home) as server,
                ):
                    env = sdk.environ(HEADWATER_HOME=str(home), HEADWATER_API_URL=server.address)
                    args = [mode, str(runs)]
                    return run_workload(sdk, "crash_detection", args, env, 60 + runs * 120)

            raw = measure(sdk, f"crash_detection on {sdk.label} {mode}, {runs} kills", take)
            label = f"Headwater {mode}"
            if "error" in raw:
                section.measurements[label] = raw
                continue
            stats = summarize(raw["detected_s"])
            section.measurements[label] = {
                "version": raw["version"],
                "n": stats["n"],
                "figures": stats,
                "raw": raw["detected_s"],
            }
    return section


def pickup_latency(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    """A run created for a served deployment -> RUNNING on the idle serving process.

    On the home's SQLite, and also on PostgreSQL when ``BENCH_POSTGRES_URL`` names a server
    (as for schedule_lag).
    """
    runs = 20 if plan.quick else 100
    databases: list[tuple[str, str | None]] = [("", None)]
    if postgres := os.environ.get("BENCH_POSTGRES_URL"):
        databases.append((" (PostgreSQL)", postgres))
    section = Section(
        "pickup_latency",
        "run created for a served deployment until RUNNING (serving process idle)",
        "ms",
        [("p50", "median"), ("p99", "p99"), ("max", "max")],
        [
            (f"{what}{suffix}", f"Headwater {short}{suffix}", f"Prefect {short}{suffix}")
            for suffix, _ in databases
            for what, short in (
                ("claimed (created -> PENDING)", "claimed"),
                ("running (created -> RUNNING)", "running"),
            )
        ],
        notes=[
            f"{runs} runs, one at a time after a second idle, times from the service's state "
            "history. RUNNING includes handing the claim to a spare subprocess (SDK loaded, stream "
            "connected, the flow's file loaded ahead). Prefect 3.9.1's "
            "runner polls every "
            "10 s by default, so it has no figure here (its pickup is up to 10 s plus that).",
        ],
    )
    for sdk in sdks:
        if sdk.name != "headwater":
            continue
        for suffix, postgres in databases:

            def take(sdk: Sdk = sdk, postgres: str | None = postgres) -> Measurement:
                with (
                    throwaway_dir("headwater-pickup-home") as home,
                    contextlib.ExitStack() as stack,
                ):
                    url = (
                        stack.enter_context(throwaway_postgres_database(postgres))
                        if postgres
                        else None
                    )
                    server = stack.enter_context(headwater_server(sdk, home, database_url=url))
                    env = sdk.environ(HEADWATER_HOME=str(home), HEADWATER_API_URL=server.address)
                    args = [str(runs)]
                    return run_workload(sdk, "pickup_latency", args, env, 120 + runs * 10)

            raw = measure(sdk, f"pickup_latency on {sdk.label}{suffix}, {runs} runs", take)
            rows = (
                ("claimed_s", f"Headwater claimed{suffix}"),
                ("pickup_s", f"Headwater running{suffix}"),
            )
            _milliseconds(section, raw, rows)
    return section


def _milliseconds(section: Section, raw: Measurement, rows: Sequence[tuple[str, str]]) -> None:
    """Put the seconds lists of ``raw`` (key -> measurement label) in ``section``, as ms."""
    for key, label in rows:
        if "error" in raw:
            section.measurements[label] = raw
            continue
        millis = [seconds * 1000 for seconds in raw[key]]
        stats = summarize(millis)
        stats["p99"] = percentile(sorted(millis), 99)
        section.measurements[label] = {
            "version": raw["version"],
            "n": stats["n"],
            "figures": stats,
            "raw": millis,
        }


def client_round_trip(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    """Create -> cancel -> watch to the end, from the Python SDK's client and from Go's."""
    runs = 20 if plan.quick else 200
    section = Section(
        "client_round_trip",
        "a client creates a run of a deployment, cancels it and watches it to its end",
        "ms",
        [("p50", "median"), ("p99", "p99"), ("max", "max")],
        [
            ("Python client (HeadwaterClient)", "Headwater Python client", "Prefect Python"),
            ("Go client (go_client)", "Headwater Go client", "Prefect Go"),
        ],
        notes=[
            f"{runs} round trips each, one at a time, on one server; three calls per round trip."
            " Prefect 3.9.1 has no gRPC API and no Go client, so it has no figure here.",
        ],
    )
    for sdk in sdks:
        if sdk.name != "headwater":
            continue

        def take(sdk: Sdk = sdk) -> Measurement:
            with (
                throwaway_dir("headwater-round-trip-home") as home,
                headwater_server(sdk, home) as server,
            ):
                env = sdk.environ(HEADWATER_HOME=str(home), HEADWATER_API_URL=server.address)
                return run_workload(sdk, "client_round_trip", [str(runs)], env, 300 + runs)

        raw = measure(sdk, f"client_round_trip on {sdk.label}, {runs} runs", take)
        rows = (("python_s", "Headwater Python client"), ("go_s", "Headwater Go client"))
        _milliseconds(section, raw, rows)
    return section


def schedule_lag(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    """1,000 deployments on 1-minute schedules, one worker: scheduled time -> RUNNING.

    On the home's SQLite, and also on PostgreSQL when ``BENCH_POSTGRES_URL`` names a server
    (a libpq URL of a database to connect to; each measurement gets a database of its own).
    """
    deployments = 1000
    window = 30 if plan.quick else 60
    databases: list[tuple[str, str | None]] = [("", None)]
    if postgres := os.environ.get("BENCH_POSTGRES_URL"):
        databases.append((" (PostgreSQL)", postgres))
    section = Section(
        "schedule_lag",
        f"{deployments:,} deployments on 1-minute schedules, one worker: how late runs start",
        "ms",
        [("p50", "median"), ("p99", "p99"), ("max", "max")],
        [
            (
                f"{what}{suffix}",
                f"Headwater {short}{suffix}",
                f"Prefect {short}{suffix}",
            )
            for suffix, _ in databases
            for what, short in (
                ("claimed (scheduled -> PENDING)", "claimed"),
                ("running (scheduled -> RUNNING)", "running"),
            )
        ],
        notes=[
            f"anchors spread over the minute (a run due every {60_000 // deployments} ms); runs "
            f"due in a {window} s window, 10 s after the scheduler's first fill; times from the "
            "service's state history. The worker long-polls the pool and proposes RUNNING, then "
            "COMPLETED, itself (no subprocess per run: pickup_latency covers that). Prefect "
            "3.9.1's workers poll every 10 s (its scheduler every 60 s), so it has no figure here.",
        ],
    )
    for sdk in sdks:
        if sdk.name != "headwater":
            continue
        for suffix, postgres in databases:

            def take(sdk: Sdk = sdk, postgres: str | None = postgres) -> Measurement:
                with (
                    throwaway_dir("headwater-schedule-home") as home,
                    contextlib.ExitStack() as stack,
                ):
                    url = (
                        stack.enter_context(throwaway_postgres_database(postgres))
                        if postgres
                        else None
                    )
                    server = stack.enter_context(headwater_server(sdk, home, database_url=url))
                    env = sdk.environ(HEADWATER_HOME=str(home), HEADWATER_API_URL=server.address)
                    args = [str(deployments), str(window), str(server.pid)]
                    return run_workload(sdk, "schedule_lag", args, env, 300 + window)

            what = f"schedule_lag on {sdk.label}{suffix}, {deployments} deployments"
            raw = measure(sdk, what, take)
            _schedule_lag_figures(section, raw, suffix)
    return section


def _schedule_lag_figures(section: Section, raw: Measurement, suffix: str) -> None:
    """One database's schedule_lag measurement into the section: lags and the server's cost."""
    claimed, running = f"Headwater claimed{suffix}", f"Headwater running{suffix}"
    _milliseconds(section, raw, [("claimed_s", claimed), ("running_s", running)])
    if "error" not in raw:
        section.notes.append(
            f"server process{suffix}: {raw['server_cpu_share'] * 100:.0f}% of one core over the "
            f"window, {raw['server_rss_mib']:.0f} MiB resident at its end, peak "
            f"{raw['server_peak_rss_mib']:.0f} MiB; {len(raw['running_s'])} runs measured; "
            f"deployments created in {raw['create_deployments_s']:.1f} s, the scheduler's "
            f"first fill (an hour of runs ahead) took {raw['fill_s']:.1f} s more"
        )
        section.measurements[running]["server"] = {
            key: raw[key] for key in ("server_cpu_share", "server_rss_mib", "server_peak_rss_mib")
        }


# Tracing modes of tracing_overhead, each child in a fresh process: (key, mode argument of the
# flow_overhead child, label). The second "off" is an A/A control: it differs from the first in
# nothing but chance, so its difference is the noise floor the other rows must be read against.
TRACING_MODES = (
    ("off", "off", "tracing off"),
    ("off_again", "off", "A/A control: off again"),
    ("api", "api", "OTel imported, no provider"),
    ("sdk", "sdk", "SDK provider, no exporter"),
    ("otlp", "otlp", "OTLP exporter"),
)
# The same modes measured against tracing off in one process, in alternating blocks of calls:
# (key, mode argument, caption, (label of the blocks without, label of the blocks with)).
PAIRED_MODES = (
    ("paired_off", "paired-off", "A/A control, paired blocks", ("A/A blocks: a", "A/A blocks: b")),
    ("paired_api", "paired-api", "api, paired blocks", ("api blocks: hidden", "api blocks: on")),
    ("paired_sdk", "paired-sdk", "sdk, paired blocks", ("sdk blocks: hidden", "sdk blocks: on")),
    (
        "paired_otlp",
        "paired-otlp",
        "otlp, paired blocks",
        ("otlp blocks: detached", "otlp blocks: on"),
    ),
)
# What tracing_overhead reports per mode.
TRACING_FIGURES = (("p50", "p50"), ("mean", "mean"), ("cpu", "CPU per call"))


def _tracing_child(sdk: Sdk, mode: str, calls: int, warmup: int, endpoint: str) -> Measurement:
    """One flow_overhead child in one tracing mode, with a home of its own."""
    exporting = mode.endswith("otlp")
    with throwaway_dir("headwater-tracing-home") as home:
        extra = {"HEADWATER_HOME": str(home)}
        if exporting:
            extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
            extra["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
        env = {
            key: value
            for key, value in sdk.environ(**extra).items()
            if exporting or not key.startswith("OTEL_")
        }
        args = [str(calls), str(warmup), mode]
        return run_workload(sdk, "flow_overhead", args, env, 120 + calls * 3)


def _spread(values: Sequence[float], quartiles: bool = False) -> str:
    """ "+1.2% [-0.4..+2.0]": the median of ``values`` (differences in percent), and their
    range, or with ``quartiles`` their middle half."""
    ordered = sorted(values)
    low, high = ordered[0], ordered[-1]
    if quartiles:
        low, high = percentile(ordered, 25), percentile(ordered, 75)
    return f"{percentile(ordered, 50):+.1f}% [{low:+.1f}..{high:+.1f}]"


def tracing_overhead(sdks: Sequence[Sdk], plan: Plan, cache: dict[str, Any]) -> Section:
    """flow_overhead (embedded) with tracing off, OpenTelemetry present, and exporting spans.

    Two ways, because a busy machine makes one process differ from the next by more than the
    targets (2% and 10%). Fresh processes per mode, several rounds, the modes' order rotating
    per round, figures the median over rounds, and each mode's difference from "off" taken
    round by round beside an A/A control: what a user's process sees, noise included. And
    paired blocks: one process per mode, its tracing switched on and off every few calls, so
    both halves share the machine's moment; their difference is the hooks' cost alone.
    """
    calls = 200 if plan.quick else 500
    paired_calls = 400 if plan.quick else 1200
    rounds = 2 if plan.quick else 5
    warmup = 30
    section = Section(
        "tracing_overhead",
        "one trivial flow call (embedded), each tracing mode beside tracing off",
        "ms",
        list(TRACING_FIGURES),
        [(label, "tracing off", label) for _, _, label in TRACING_MODES[1:]]
        + [(caption, *labels) for _, _, caption, labels in PAIRED_MODES],
        columns=("tracing off", "this mode", "difference"),
        ratio_as_percent=True,
        notes=[
            f"{rounds} rounds; a round runs each mode in a fresh process ({calls} calls after "
            f"{warmup} warm-up calls) and each paired mode in one ({paired_calls} calls), in "
            "an order that rotates per round; CPU per call is the whole process's (every "
            "thread). Fresh-process figures: the median over rounds.",
            "api: opentelemetry imported, no provider set; sdk: a TracerProvider with no span "
            "processor; otlp: OTEL_EXPORTER_OTLP_ENDPOINT set (the SDK installs a batch OTLP "
            "exporter; the server its OTLP metrics) to a local sink that counts the spans.",
            "paired: blocks of 10 calls, on-off-off-on over and over in one process (A/A: "
            "tracing off in both); off is "
            "otlp's span processor detached (as sdk), or for api and sdk opentelemetry.trace "
            "hidden from sys.modules (what every hook checks to tell off from on); the span "
            "export thread's CPU is moved from the blocks it ran in to the exporting ones, in "
            "CPU and in wall time. Figures: the detached blocks' median (p50: of their calls), "
            "and that moved by the median of the groups' paired differences.",
        ],
    )
    sdk = next((candidate for candidate in sdks if candidate.name == "headwater"), None)
    if sdk is None:
        return section
    from bench._otlp_sink import otlp_sink

    children = [(key, mode, calls) for key, mode, _ in TRACING_MODES] + [
        (key, mode, paired_calls) for key, mode, _, _ in PAIRED_MODES
    ]
    per_round: dict[str, list[Measurement]] = {key: [] for key, _, _ in children}
    errors: dict[str, Measurement] = {}
    exported: list[float] = []
    with otlp_sink() as sink:
        for index in range(rounds):
            start = index % len(children)
            for key, mode, count in children[start:] + children[:start]:
                before = sink.spans
                raw = measure(
                    sdk,
                    f"flow_overhead on {sdk.label}, tracing {mode}, round {index + 1}/{rounds}",
                    functools.partial(_tracing_child, sdk, mode, count, warmup, sink.endpoint),
                )
                if "error" in raw:
                    errors[key] = raw
                    continue
                if "times_ms" in raw:
                    ordered = sorted(raw.pop("times_ms"))
                    raw.update(
                        p50=percentile(ordered, 50),
                        mean=statistics.fmean(ordered),
                        cpu=raw["cpu_ms_per_run"],
                    )
                per_round[key].append(raw)
                if mode == "otlp":
                    exported.append((sink.spans - before) / (count + warmup))
    _tracing_figures(section, per_round, errors)
    _tracing_notes(section, per_round, exported)
    return section


def _tracing_figures(
    section: Section, per_round: dict[str, list[Measurement]], errors: dict[str, Measurement]
) -> None:
    """Fresh-process modes: each figure's median over rounds. Paired: all blocks pooled."""
    for key, _, label in TRACING_MODES:
        results = per_round[key]
        if key in errors:
            section.measurements[label] = errors[key]
        elif results:
            section.measurements[label] = {
                "version": results[0]["version"],
                "n": len(results),
                "figures": {
                    name: percentile(sorted(result[name] for result in results), 50)
                    for name, _ in TRACING_FIGURES
                },
                "rounds": results,
            }
    for key, _, _, labels in PAIRED_MODES:
        if key in errors:
            section.measurements.update(dict.fromkeys(labels, errors[key]))
            continue
        results = per_round[key]
        if not results:
            continue
        # Detached: the median block (p50 over all its calls). Exporting: that, moved by the
        # median of the groups' differences, so the table's difference is the paired one.
        off_cpu = [c for r in results for c, on in zip(*_cpu_and_on(r), strict=True) if not on]
        off_wall = [
            w
            for r in results
            for w, on in zip(r["blocks"]["wall_ms"], r["blocks"]["on"], strict=True)
            if not on
        ]
        off_times = [t for r in results for t in r["blocks"]["times_off_ms"]]
        detached = {
            "p50": percentile(sorted(off_times), 50),
            "mean": percentile(sorted(off_wall), 50),
            "cpu": percentile(sorted(off_cpu), 50),
        }
        moved = {
            figure: percentile(
                sorted(d for r in results for d in _group_differences(r["blocks"], field)), 50
            )
            for figure, field in (("p50", "times"), ("mean", "wall_ms"), ("cpu", "cpu_ms"))
        }
        section.measurements[labels[0]] = {
            "version": results[0]["version"],
            "n": len(off_times),
            "figures": detached,
        }
        section.measurements[labels[1]] = {
            "version": results[0]["version"],
            "n": len(off_times),
            "figures": {name: detached[name] * (1 + moved[name] / 100) for name in detached},
            "rounds": [result["blocks"] for result in results],
        }


def _cpu_and_on(result: Measurement) -> tuple[list[float], list[float]]:
    return result["blocks"]["cpu_ms"], result["blocks"]["on"]


def _group_differences(blocks: Measurement, key: str) -> list[float]:
    """Per group of four blocks (on, off, off, on): the on blocks' difference from the off
    ones, in percent, of ``key``: "cpu_ms" or "wall_ms" (per call, over the blocks), or
    "times" (the median of the group's calls, on against off)."""
    found = []
    for group, first in enumerate(range(0, len(blocks["on"]) - 3, 4)):
        if key == "times":
            size = len(blocks["times_on_ms"]) // max(len(blocks["on"]) // 2, 1) * 2
            on = percentile(sorted(blocks["times_on_ms"][group * size : (group + 1) * size]), 50)
            off = percentile(sorted(blocks["times_off_ms"][group * size : (group + 1) * size]), 50)
        else:
            picked = range(first, first + 4)
            on = sum(blocks[key][i] for i in picked if blocks["on"][i])
            off = sum(blocks[key][i] for i in picked if not blocks["on"][i])
        found.append(100 * (on / off - 1))
    return found


def _tracing_notes(
    section: Section, per_round: dict[str, list[Measurement]], exported: list[float]
) -> None:
    """The differences from "off" with their spread, and where the CPU went."""
    base = per_round["off"]
    lines = []
    for key, _, label in TRACING_MODES[1:]:
        pairs = list(zip(base, per_round[key], strict=False))
        if pairs:
            cells = [
                f"{name} "
                + _spread([100 * (mine[figure] / off[figure] - 1) for off, mine in pairs])
                for figure, name in (("cpu", "CPU"), ("p50", "p50"), ("mean", "mean"))
            ]
            lines.append(f"  {label:28} " + ", ".join(cells))
    if lines:
        section.notes.append("fresh processes, difference from off (median [min..max] of rounds):")
        section.notes.extend(lines)
    lines = []
    for key, _, caption, _ in PAIRED_MODES:
        results = per_round[key]
        if results:
            cells = [
                f"{name} "
                + _spread(
                    [d for result in results for d in _group_differences(result["blocks"], field)],
                    quartiles=True,
                )
                for field, name in (("cpu_ms", "CPU"), ("times", "p50"), ("wall_ms", "mean"))
            ]
            groups = sum(len(result["blocks"]["on"]) // 4 for result in results)
            lines.append(f"  {caption:28} " + ", ".join(cells) + f" ({groups} groups)")
    if lines:
        section.notes.append("paired, on vs off per group of 4 blocks (median [quartiles]):")
        section.notes.extend(lines)
    for key in ("off", "otlp"):
        threads = _median_threads(per_round[key])
        if threads:
            shown = ", ".join(f"{name} {ms * 1000:.0f}" for name, ms in threads if ms >= 0.005)
            section.notes.append(f"CPU per call by thread, {key} (us): {shown}")
    if exported:
        section.notes.append(
            f"otlp: {percentile(sorted(exported), 50):.2f} spans reached the sink per flow call"
        )


def _median_threads(results: Sequence[Measurement]) -> list[tuple[str, float]]:
    """Each thread's median CPU per call over ``results``, biggest first."""
    names = {name for result in results for name in result.get("thread_cpu_ms_per_run", {})}
    medians = {
        name: percentile(
            sorted(result.get("thread_cpu_ms_per_run", {}).get(name, 0.0) for result in results),
            50,
        )
        for name in names
    }
    return sorted(medians.items(), key=lambda item: -item[1])


MEASURES: dict[str, Callable[[Sequence[Sdk], Plan, dict[str, Any]], Section]] = {
    "flow_overhead": flow_overhead,
    "cold_start": cold_start,
    "import": import_time,
    "memory": memory,
    "task_seq": _task_timing("task_seq"),
    "task_submit": _task_timing("task_submit"),
    "task_map": _task_timing("task_map"),
    "task_memory": task_memory,
    "task_throughput": task_throughput,
    "crash_detection": crash_detection,
    "pickup_latency": pickup_latency,
    "schedule_lag": schedule_lag,
    "client_round_trip": client_round_trip,
    "tracing_overhead": tracing_overhead,
}


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def _cell(measurement: Measurement | None, key: str) -> str:
    if measurement is None:
        return "skipped"
    if "error" in measurement:
        return "error"
    return _number(measurement["figures"][key])


# Figures where more is better: their ratio is Headwater / Prefect, so that in every row a
# ratio above 1 means Headwater does better.
HIGHER_IS_BETTER = frozenset({"per_second"})


def _ratio(
    headwater: Measurement | None, prefect: Measurement | None, key: str, percent: bool = False
) -> str:
    if not headwater or not prefect or "error" in headwater or "error" in prefect:
        return "-"
    numerator, denominator = prefect["figures"][key], headwater["figures"][key]
    if key in HIGHER_IS_BETTER:
        numerator, denominator = denominator, numerator
    if denominator <= 0:
        return "-"
    ratio = numerator / denominator
    if percent:
        return f"{100 * (ratio - 1):+.1f}%"
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def render(sections: Sequence[Section], header: Sequence[str]) -> str:
    """Returns the whole table as text, errors spelled out under the section they belong to."""
    lines = [*header, ""]
    for section in sections:
        lines.append(f"{section.name} ({section.unit}): {section.title}")
        lines.extend(f"  {note}" for note in section.notes)
        first, second, ratio = section.columns
        lines.append(f"  {'':54}{first:>12}{second:>12}{ratio:>12}")
        for caption, hw_label, pf_label in section.pairs:
            hw = section.measurements.get(hw_label)
            pf = section.measurements.get(pf_label)
            for index, (key, name) in enumerate(section.figures):
                left = caption if index == 0 else ""
                lines.append(
                    f"  {left:32}{name:>22}{_cell(hw, key):>12}{_cell(pf, key):>12}"
                    f"{_ratio(hw, pf, key, section.ratio_as_percent):>12}"
                )
        # One child's failure can fill several labels (cold_start's fresh and warm homes), and
        # two modes can fail alike: spell each distinct error once, naming all it hit.
        failed: dict[str, list[str]] = {}
        for label, measurement in section.measurements.items():
            if "error" in measurement:
                failed.setdefault(measurement["error"], []).append(label)
        for error, labels in failed.items():
            lines.append(f"  ! {', '.join(labels)}: " + error.replace("\n", "\n      "))
        lines.append("")
    return "\n".join(lines)


def _versions(sections: Sequence[Section]) -> dict[str, str]:
    found: dict[str, str] = {}
    for section in sections:
        for label, measurement in section.measurements.items():
            if "version" in measurement:
                found.setdefault(label.split()[0], measurement["version"])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Headwater beside Prefect 3.9.1 on the same workloads, in one run.",
        epilog="BENCH_PREFECT_RUNS=N sets how many Prefect flow calls flow_overhead times.",
    )
    parser.add_argument(
        "--only",
        choices=WORKLOAD_NAMES,
        action="append",
        help="run just this workload (repeat for several)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples everywhere")
    parser.add_argument("--skip-prefect", action="store_true", help="measure Headwater only")
    args = parser.parse_args(argv)

    plan = Plan.make(args.quick)
    started = datetime.datetime.now(datetime.UTC)
    sdks = [headwater_sdk()] + ([] if args.skip_prefect else [prefect_sdk()])
    cache: dict[str, Any] = {}
    names = list(dict.fromkeys(args.only)) if args.only else list(WORKLOAD_NAMES)
    sections = [MEASURES[name](sdks, plan, cache) for name in names]

    versions = _versions(sections)
    prefect = "skipped" if args.skip_prefect else versions.get("Prefect", "(no result)")
    header = [
        f"Headwater {versions.get('Headwater', '(no result)')} vs Prefect {prefect},"
        f" {'quick' if plan.quick else 'full'} run, {started:%Y-%m-%d %H:%M} UTC",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()};"
        " absolute times drift between runs: compare within this run only",
    ]
    print(render(sections, header))

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started_utc": started.isoformat(),
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(),
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "plan": dataclasses.asdict(plan),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions,
        "sections": [dataclasses.asdict(section) for section in sections],
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"bench: wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    failed = any("error" in m for s in sections for m in s.measurements.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
