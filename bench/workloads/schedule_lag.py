"""Child: how late scheduled runs start, with 1,000 deployments on 1-minute schedules.

Usage: python schedule_lag.py headwater DEPLOYMENTS WINDOW_SECONDS SERVER_PID

Against the server at ``HEADWATER_API_URL`` (its process is SERVER_PID), creates a work pool
and DEPLOYMENTS deployments in it, each on a 1-minute interval schedule. Their anchors are
spread evenly over the minute (1,000 deployments: one run due every 60 ms), as schedules made
at different times are; the service's scheduler creates their runs ahead of time as usual. One
worker long-polls the pool (``WorkerService.PollRuns``, as ``headwater worker start`` does),
and for each run it is handed proposes RUNNING at once, then COMPLETED. The worker does no
work of its own: a subprocess per run would measure process start-up, which pickup_latency
covers, and 17 of them a second would swamp a small machine.

The scheduler's first passes create an hour of runs ahead (60,000 with the server's defaults);
the workload waits until they are over (the server logs "Scheduled N upcoming flow runs" in
``$HEADWATER_HOME/server.log``: a pass creating fewer runs than there are deployments is a
steady one), so the window measures the steady state; ``fill_s`` is how long that took. The
runs due during the WINDOW_SECONDS after a warm-up are measured, with the service's own times
(so the worker's clock adds nothing):

- ``claimed_s``: scheduled time -> PENDING (the poll answering and claiming the run);
- ``running_s``: scheduled time -> RUNNING (adds the worker's RUNNING proposal);

and the server process's CPU time over the window (as a share of one core) and its resident
memory (now and peak).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import emit, peak_rss_mib, sdk_from_argv, sdk_version

SCHEDULE_SECONDS = 60
# After the scheduler's first fill, before the first measured run: the worker's first claims
# (of the runs that fell due during the fill) behind it.
WARMUP_SECONDS = 10.0
# The longest the scheduler's first fill may take before the workload gives up.
FILL_TIMEOUT_SECONDS = 240.0
# The worker's long poll; it answers at once when a run falls due.
POLL_WAIT_SECONDS = 10.0
POOL = "bench-schedule-lag"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_SCHEDULED = re.compile(r"Scheduled (\d+) upcoming flow runs")


def _wait_for_first_fill(log: Path, since: int, count: int) -> None:
    """Wait until the scheduler's first fill is over: a pass logged after ``since`` (the log's
    size once the deployments existed) created fewer runs than there are deployments, as the
    steady passes do (about 1,000 / 12 every 5 s), while the fill's passes create thousands.
    On a busy machine creating the deployments takes longer than a pass, so the fill can be
    spread over several passes: the first pass logged is not always the end of it."""
    deadline = time.monotonic() + FILL_TIMEOUT_SECONDS
    while True:
        with log.open("rb") as text:
            text.seek(since)
            created = [int(n) for n in _SCHEDULED.findall(text.read().decode(errors="replace"))]
        if any(n < count for n in created):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the scheduler's first fill took over {FILL_TIMEOUT_SECONDS} s")
        time.sleep(0.2)


def _seconds(later: Any, earlier: Any) -> float:
    return (later.ToNanoseconds() - earlier.ToNanoseconds()) / 1e9


class Worker:
    """One worker: long-polls the pool, starts each run it gets, records the lags."""

    def __init__(self, channel: Any) -> None:
        from headwater.v1 import flow_runs_pb2_grpc, workers_pb2_grpc

        self._workers = workers_pb2_grpc.WorkerServiceStub(channel)
        self._flow_runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
        # Nothing is measured until measure() names the window.
        self._from = self._until = datetime.max.replace(tzinfo=UTC)
        self.claimed: list[float] = []
        self.running: list[float] = []
        self.stop = threading.Event()
        # COMPLETED is proposed off the polling thread: only RUNNING is on the measured path.
        self._finisher = ThreadPoolExecutor(2)

    def measure(self, measure_from: datetime, measure_until: datetime) -> None:
        """Record the runs due from ``measure_from`` until ``measure_until``."""
        self._from, self._until = measure_from, measure_until

    def run(self) -> None:
        from headwater.v1 import workers_pb2

        request = workers_pb2.PollRunsRequest(
            worker_name="bench-worker", work_pool_name=POOL, max_runs=100
        )
        request.wait.FromNanoseconds(int(POLL_WAIT_SECONDS * 1e9))
        while not self.stop.is_set():
            answer = self._workers.PollRuns(request, timeout=POLL_WAIT_SECONDS + 30)
            for claimed in answer.runs:
                self._start(claimed.flow_run)
        self._finisher.shutdown(wait=True)

    def _start(self, run: Any) -> None:
        from headwater.v1 import states_pb2

        running = self._propose(run.id, states_pb2.STATE_TYPE_RUNNING)
        self._finisher.submit(self._propose, run.id, states_pb2.STATE_TYPE_COMPLETED)
        due = run.expected_start_time
        if not self._from <= due.ToDatetime(tzinfo=UTC) < self._until:
            return
        self.claimed.append(_seconds(run.state.create_time, due))
        self.running.append(_seconds(running.flow_run.state.create_time, due))

    def _propose(self, run_id: str, state_type: int) -> Any:
        from headwater.v1 import flow_runs_pb2, states_pb2

        request = flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id,
            state=states_pb2.State(type=state_type),
            transition_id=str(uuid.uuid4()),
        )
        answer = self._flow_runs.SetFlowRunState(request, timeout=60)
        if answer.result.decision != states_pb2.DECISION_ACCEPT:
            raise SystemExit(f"run {run_id} was refused {state_type}: {answer.result.reason}")
        return answer


def create_pool(channel: Any) -> None:
    """The work pool the deployments send their runs to."""
    from headwater.v1 import work_pools_pb2, work_pools_pb2_grpc

    work_pools_pb2_grpc.WorkPoolServiceStub(channel).CreateWorkPool(
        work_pools_pb2.CreateWorkPoolRequest(work_pool=work_pools_pb2.WorkPool(name=POOL))
    )


def create_deployments(channel: Any, count: int, first_due: datetime) -> None:
    """``count`` deployments in the pool, anchors spread evenly over one schedule period."""
    from headwater.v1 import deployments_pb2, deployments_pb2_grpc, schedules_pb2

    stub = deployments_pb2_grpc.DeploymentServiceStub(channel)
    step = timedelta(seconds=SCHEDULE_SECONDS) / count

    def create(index: int) -> None:
        interval = schedules_pb2.IntervalSchedule()
        interval.interval.FromSeconds(SCHEDULE_SECONDS)
        interval.anchor_time.FromDatetime(first_due + index * step)
        deployment = deployments_pb2.Deployment(
            flow_name="lagged",
            name=f"every-minute-{index:04d}",
            entrypoint="flows.py:lagged",
            work_pool_name=POOL,
            schedules=[
                schedules_pb2.DeploymentSchedule(schedule=schedules_pb2.Schedule(interval=interval))
            ],
        )
        stub.CreateDeployment(deployments_pb2.CreateDeploymentRequest(deployment=deployment))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(count)))


def main() -> None:
    sdk = sdk_from_argv()
    count, window, server_pid = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    import grpc

    with grpc.insecure_channel(os.environ["HEADWATER_API_URL"]) as channel:
        create_pool(channel)
        # The worker polls from the start: on a busy machine creating the deployments takes
        # longer than a scheduler pass, and runs falling due meanwhile must not pile up.
        worker = Worker(channel)
        polling = threading.Thread(target=worker.run, name="worker")
        polling.start()
        start = datetime.now(UTC)
        create_deployments(channel, count, start)
        created_s = (datetime.now(UTC) - start).total_seconds()
        log = Path(os.environ["HEADWATER_HOME"]) / "server.log"
        _wait_for_first_fill(log, log.stat().st_size, count)
        fill_s = (datetime.now(UTC) - start).total_seconds() - created_s
        measure_from = datetime.now(UTC) + timedelta(seconds=WARMUP_SECONDS)
        measure_until = measure_from + timedelta(seconds=window)
        worker.measure(measure_from, measure_until)
        time.sleep(max((measure_from - datetime.now(UTC)).total_seconds(), 0))
        cpu_before, clock_before = _cpu_seconds(server_pid), time.monotonic()
        # Measured runs are those due in the window; the last may start a little after it.
        time.sleep(max((measure_until - datetime.now(UTC)).total_seconds(), 0) + 2.0)
        cpu_s = _cpu_seconds(server_pid) - cpu_before
        elapsed = time.monotonic() - clock_before
        rss, peak = _rss_mib(server_pid), peak_rss_mib(server_pid)
        worker.stop.set()
        polling.join(timeout=POLL_WAIT_SECONDS + 60)
    expected = int(window * count / SCHEDULE_SECONDS)
    if len(worker.running) < expected * 0.9:
        raise SystemExit(
            f"only {len(worker.running)} of about {expected} runs due in the window started"
        )
    emit(
        {
            "version": sdk_version(sdk),
            "deployments": count,
            "create_deployments_s": created_s,
            "fill_s": fill_s,
            "claimed_s": worker.claimed,
            "running_s": worker.running,
            "server_cpu_share": cpu_s / elapsed,
            "server_rss_mib": rss,
            "server_peak_rss_mib": peak,
        }
    )


if __name__ == "__main__":
    main()
