"""DaskTaskRunner: tasks run on dask.distributed workers that report to the service themselves.

Flows run on the embedded service; the workers reach it through its abstract unix socket.
A temporary LocalCluster is started per flow run where that is what is tested; the tests of an
existing scheduler share one module-scoped LocalCluster (the machine has 2 CPUs).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import Reader, current_run_id, unique
from headwater import StateType, flow, task
from headwater._runners.dask import DaskCluster, DaskSettings
from headwater._runs import TaskRun
from headwater.exceptions import CrashedRun
from headwater.task_runners import DaskTaskRunner, get_async_dask_client, get_dask_client

distributed = pytest.importorskip("distributed")

#: Every cluster here serves its dashboard on a free port: with 8787 taken (another cluster on
#: this machine), Dask warns, and this suite turns warnings into errors.
FREE_PORT = {"dashboard_address": ":0"}
TWO_WORKERS = {"n_workers": 2, "processes": True, "threads_per_worker": 1, **FREE_PORT}


@pytest.fixture(scope="module")
def scheduler() -> Iterator[tuple[str, set[int]]]:
    """A running 2-worker cluster, as a user's would be: its address and its workers' pids."""
    with (
        distributed.LocalCluster(**TWO_WORKERS) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        pids = set(client.run(os.getpid).values())
        yield cluster.scheduler_address, pids


def stored(reader: Reader, flow_run_id: str) -> dict[str, TaskRun]:
    return {run.name: run for run in reader.client.list_task_runs(flow_run_id)}


def state_type(run: TaskRun) -> StateType:
    assert run.state is not None
    return run.state.type


@task(task_run_name="pid-{x}")
def pid_of(x: int) -> tuple[int, int]:
    return x, os.getpid()


@task(task_run_name="exits")
def exits() -> None:
    os._exit(1)


def test_a_temporary_two_worker_cluster_runs_the_tasks(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=DaskTaskRunner(cluster_kwargs=TWO_WORKERS))
    def pipeline() -> list[tuple[int, int]]:
        seen["flow_run_id"] = current_run_id()
        futures = pid_of.map(range(4))
        seen["worker_pids"] = set(pipeline_runner_pids())
        return futures.result()

    results = pipeline()
    assert [x for x, _ in results] == [0, 1, 2, 3]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids
    assert pids <= seen["worker_pids"]
    runs = stored(reader, seen["flow_run_id"])
    assert sorted(runs) == ["pid-0", "pid-1", "pid-2", "pid-3"]
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}


def pipeline_runner_pids() -> list[int]:
    """The pids of the workers of the Dask client the current flow run's runner holds."""
    client = distributed.get_client()
    return list(client.run(os.getpid).values())


def test_a_task_whose_worker_dies_ends_crashed(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=DaskTaskRunner(cluster_kwargs=TWO_WORKERS))
    def pipeline() -> tuple[int, int]:
        seen["flow_run_id"] = current_run_id()
        victim = exits.submit()
        victim.wait()
        with pytest.raises(CrashedRun, match=r"Dask worker tcp://\S+, pid \d+\) died"):
            victim.result()
        result: tuple[int, int] = pid_of.submit(7).result()  # the cluster goes on
        return result

    assert pipeline()[0] == 7
    runs = stored(reader, seen["flow_run_id"])
    assert state_type(runs["exits"]) is StateType.CRASHED
    assert runs["exits"].state is not None
    assert "died before the task finished" in (runs["exits"].state.message or "")
    assert runs["exits"].run_count == 1  # Dask did not run it again on the other worker
    assert state_type(runs["pid-7"]) is StateType.COMPLETED


@task(task_run_name="add-{a}-{b}")
def add(a: int, b: int) -> int:
    return a + b


def test_calls_assigned_to_a_worker_that_died_run_on_another(reader: Reader) -> None:
    # One worker: the scheduler hands it the next call too while the first one kills it.
    one_worker = {"n_workers": 1, "processes": True, "threads_per_worker": 1, **FREE_PORT}
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=DaskTaskRunner(cluster_kwargs=one_worker))
    def pipeline() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        victim = exits.submit()
        queued = add.map(range(3), 100)
        victim.wait()
        return queued.result()

    assert pipeline() == [100, 101, 102]
    runs = stored(reader, seen["flow_run_id"])
    assert state_type(runs.pop("exits")) is StateType.CRASHED
    assert sorted(runs) == ["add-0-100", "add-1-100", "add-2-100"]
    for run in runs.values():
        assert state_type(run) is StateType.COMPLETED
        assert run.run_count == 1


def test_a_running_scheduler_runs_the_tasks(
    reader: Reader, scheduler: tuple[str, set[int]]
) -> None:
    address, worker_pids = scheduler
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=DaskTaskRunner(address=address))
    def pipeline() -> list[tuple[int, int]]:
        seen["flow_run_id"] = current_run_id()
        return pid_of.map(range(3)).result()

    results = pipeline()
    assert {pid for _, pid in results} <= worker_pids
    runs = stored(reader, seen["flow_run_id"])
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}
    assert len(runs) == 3


def test_workers_that_cannot_reach_the_service_are_told_what_to_do(
    scheduler: tuple[str, set[int]],
) -> None:
    address, _ = scheduler
    cluster = DaskCluster(DaskSettings(address=address))
    cluster.start()
    try:
        with pytest.raises(RuntimeError) as raised:
            cluster.check_reachable("unix-abstract:headwater-of-another-machine")
    finally:
        cluster.close()
    message = str(raised.value)
    assert "embedded Headwater service" in message
    assert "headwater server start" in message
    assert "HEADWATER_API_URL" in message
    assert "ConnectionRefusedError" in message  # each worker's own answer


def test_the_arguments_are_checked_and_kept() -> None:
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1}, adapt_kwargs={"maximum": 2})
    assert runner.duplicate() == runner
    assert runner != DaskTaskRunner(address="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="either address="):
        DaskTaskRunner(address="tcp://127.0.0.1:8786", cluster_kwargs={"n_workers": 1})
    with pytest.raises(ValueError, match="'asynchronous' in client_kwargs"):
        DaskTaskRunner(client_kwargs={"asynchronous": True})
    named = DaskSettings(cluster_class="distributed.LocalCluster")
    assert named.resolved_cluster_class() is distributed.LocalCluster
    with pytest.raises(ValueError, match="not an import path"):
        DaskSettings(cluster_class="LocalCluster").resolved_cluster_class()


def test_workers_forked_from_the_flows_process_are_refused() -> None:
    import dask.config

    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, **FREE_PORT})
    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "fork"}),
        pytest.raises(ValueError, match="forked from the flow's process"),
        runner,
    ):
        pass


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_without_the_extra_the_runner_says_what_to_install() -> None:
    # As if dask.distributed were not installed: its import fails.
    done = run_python(
        "import sys; sys.modules['distributed'] = None\n"
        "from headwater.task_runners import DaskTaskRunner\n"
        "try:\n"
        "    DaskTaskRunner()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'headwater[dask]'" in done.stdout


def test_importing_the_runners_does_not_import_dask() -> None:
    done = run_python(
        "import sys\n"
        "import headwater\n"
        "from headwater.task_runners import DaskTaskRunner, ProcessPoolTaskRunner\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_cluster_of_threads_in_this_process_reports_on_the_flows_stream(
    reader: Reader,
) -> None:
    seen: dict[str, Any] = {}
    threads = {"n_workers": 1, "processes": False, "threads_per_worker": 2, **FREE_PORT}

    @flow(name=unique(), task_runner=DaskTaskRunner(cluster_kwargs=threads))
    def pipeline() -> list[tuple[int, int]]:
        seen["flow_run_id"] = current_run_id()
        return pid_of.map(range(2)).result()

    assert {pid for _, pid in pipeline()} == {os.getpid()}
    # The flow's process kept its own service: nothing pointed it elsewhere.
    assert "HEADWATER_API_URL" not in os.environ
    runs = stored(reader, seen["flow_run_id"])
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}


def test_a_cluster_class_by_name_scaled_by_adapt_kwargs(reader: Reader) -> None:
    # No workers of its own: only adapt() can start the one that runs the task.
    runner = DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 0, "processes": True, **FREE_PORT},
        adapt_kwargs={"minimum": 1, "maximum": 1},
    )

    @flow(name=unique(), task_runner=runner)
    def pipeline() -> tuple[int, int]:
        result: tuple[int, int] = pid_of.submit(5).result()
        return result

    x, pid = pipeline()
    assert x == 5
    assert pid != os.getpid()


def test_a_performance_report_without_bokeh_says_what_to_install() -> None:
    if importlib.util.find_spec("bokeh") is not None:
        pytest.skip("bokeh is installed: the report can be rendered")
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 0, **FREE_PORT},
        performance_report_path="report.html",
    )
    with pytest.raises(ImportError, match="pip install bokeh"), runner:
        pass


@task(task_run_name="bag-total-{n}")
def bag_total(n: int, **client_kwargs: Any) -> tuple[int, int]:
    """What prefect-dask's docs do in a task: compute a collection on the whole cluster."""
    import dask.bag

    with get_dask_client(**client_kwargs) as client:
        total = client.compute(dask.bag.from_sequence(range(n), npartitions=4).sum()).result()
    return total, os.getpid()


def test_a_task_on_a_worker_computes_a_collection_on_the_whole_cluster(
    reader: Reader, scheduler: tuple[str, set[int]]
) -> None:
    address, worker_pids = scheduler
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=DaskTaskRunner(address=address))
    def pipeline() -> list[tuple[int, int]]:
        seen["flow_run_id"] = current_run_id()
        on_worker = bag_total.submit(100)  # the worker's own client
        own_client = bag_total.submit(10, timeout="20s", name="headwater-test")  # a new one
        return [on_worker.result(), own_client.result()]

    (total, pid), (small_total, small_pid) = pipeline()
    assert (total, small_total) == (sum(range(100)), sum(range(10)))
    assert {pid, small_pid} <= worker_pids
    runs = stored(reader, seen["flow_run_id"])
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}


def test_a_flows_own_code_gets_a_client_of_its_cluster(
    reader: Reader, scheduler: tuple[str, set[int]]
) -> None:
    address, worker_pids = scheduler

    @flow(name=unique(), task_runner=DaskTaskRunner(address=address))
    def pipeline() -> int:
        with get_dask_client() as client:  # nothing submitted yet: the runner starts now
            pid: int = client.submit(os.getpid, pure=False).result()
        return pid

    @flow(name=unique(), task_runner=DaskTaskRunner(address=address))
    async def async_pipeline() -> int:
        async with get_async_dask_client() as client:
            pid: int = await client.submit(os.getpid, pure=False)
        return pid

    assert pipeline() in worker_pids
    import asyncio

    assert asyncio.run(async_pipeline()) in worker_pids


def test_without_a_dask_cluster_get_dask_client_says_where_to_call_it(reader: Reader) -> None:
    @flow(name=unique())
    def threads() -> None:
        with get_dask_client():
            pass

    with pytest.raises(RuntimeError, match="found no Dask cluster: call it inside a task"):
        threads()
    with pytest.raises(RuntimeError, match="found no Dask cluster"), get_dask_client():
        pass
