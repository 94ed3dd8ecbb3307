"""Running submitted tasks on dask.distributed: a temporary `LocalCluster`, or a scheduler's.

Nothing here imports dask until a runner starts, so ``import headwater`` (and a flow that only
names a `DaskTaskRunner`) stays fast; without the extra, constructing the runner says what to
install.

Each task call travels to a worker as a pickled `TaskCall` with the address of the flow run's
service; the worker opens its own stream there and reports the task run's states itself. An
embedded service is a unix socket of the flow's machine: when the cluster was not started here,
each worker is first asked whether it can open the address, and a worker elsewhere makes the
submit fail with what to do instead (run ``headwater server start`` and set HEADWATER_API_URL).

A temporary cluster is started with Dask's ``allowed_failures`` at 0: when a worker dies
mid-task the task run ends CRASHED and the service decides any retry, instead of Dask running
the same task run again on another worker (which the service would refuse: the run is still
RUNNING in the process that died).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from headwater._runners.child import run_shipped, unreachable
from headwater._runners.crash import process_died, stopped_short
from headwater._runners.dispatch import Dispatcher
from headwater.task_runners import TaskRunner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator
    from types import TracebackType

    from headwater._engine.calls import TaskCall
    from headwater._engine.runnable import TaskRunnable
    from headwater.futures import TaskRunFuture

__all__ = [
    "DaskCluster",
    "DaskSettings",
    "DaskTaskRunner",
    "get_async_dask_client",
    "get_dask_client",
    "require_dask",
    "unreachable_from_workers",
]

INSTALL_HINT = "pip install 'headwater[dask]'"

#: How many submitted calls may wait for their upstream futures at once (threads of the flow's
#: process; the cluster decides how many run).
_PREPARERS = 16


class DaskTaskRunner(TaskRunner):
    """Runs submitted tasks on dask.distributed, as prefect-dask's ``DaskTaskRunner`` does.

    Without ``address``, a temporary cluster (``distributed.LocalCluster`` unless
    ``cluster_class`` names another) is started when the flow run starts submitting and closed
    when it ends; with ``address``, the runner connects to that running scheduler. Each worker
    reports its task runs' states to the flow run's service itself; arguments and results
    travel pickled, and a future passed as an argument is resolved in the flow's process first.
    If a worker dies mid-task, that task run ends CRASHED and its future's result raises
    `CrashedRun`.

    Needs the extra: ``pip install 'headwater[dask]'``.

    Args:
        cluster_class: The cluster to start: a class, or its import path
            (``"dask_kubernetes.KubeCluster"``); None means ``distributed.LocalCluster``.
        cluster_kwargs: Keyword arguments for ``cluster_class`` (``n_workers``,
            ``threads_per_worker``, ``processes``, ...).
        address: A running scheduler's address (``"tcp://10.0.0.5:8786"``); excludes the
            cluster arguments.
        client_kwargs: Keyword arguments for ``distributed.Client``.
        adapt_kwargs: When given, the temporary cluster scales adaptively:
            ``cluster.adapt(**adapt_kwargs)`` (``minimum``, ``maximum``).
        performance_report_path: Write Dask's performance report of the flow run's tasks to
            this HTML file.

    Raises:
        ImportError: dask.distributed is not installed.
        ValueError: ``address`` together with cluster arguments, or ``asynchronous`` in the
            keyword arguments (the runner's client is synchronous).
    """

    def __init__(
        self,
        cluster_class: Any = None,
        cluster_kwargs: dict[str, Any] | None = None,
        address: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        performance_report_path: str | None = None,
    ) -> None:
        require_dask()
        super().__init__()
        self._config = DaskSettings(
            cluster_class=cluster_class,
            cluster_kwargs=dict(cluster_kwargs or {}),
            address=address,
            client_kwargs=dict(client_kwargs or {}),
            adapt_kwargs=dict(adapt_kwargs or {}),
            performance_report_path=performance_report_path,
        )
        self.cluster_class = cluster_class
        self.cluster_kwargs = cluster_kwargs
        self.address = address
        self.client_kwargs = client_kwargs
        self.adapt_kwargs = adapt_kwargs
        self.performance_report_path = performance_report_path
        self._cluster: DaskCluster | None = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of the running flow run (None outside one)."""
        return self._cluster.client if self._cluster is not None else None

    def __enter__(self) -> Self:
        super().__enter__()
        cluster = DaskCluster(self._config)
        try:
            cluster.start()
        except BaseException:
            cluster.close()
            super().__exit__(None, None, None)
            raise
        self._cluster = cluster
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        cluster, self._cluster = self._cluster, None
        try:
            if cluster is not None:
                # An interrupt (Ctrl-C, SIGTERM, cancellation) cancels what is still on the
                # cluster; a run that had started there ends CRASHED.
                cluster.close(
                    interrupted=exc_type is not None and not issubclass(exc_type, Exception)
                )
        finally:
            super().__exit__(exc_type, exc_value, traceback)

    def submit(
        self,
        task: TaskRunnable,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
        dependencies: dict[str, Any] | None = None,
    ) -> TaskRunFuture[Any]:
        cluster = self._cluster
        if cluster is None:
            raise self._not_started()
        return cluster.dispatcher.submit_task(task, parameters, wait_for)


@contextlib.contextmanager
def get_dask_client(timeout: float | str | None = None, **client_kwargs: Any) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster the current code runs on, as prefect-dask's.

    A task running on a Dask worker has no client of its own: this is how it computes a Dask
    collection (a dask DataFrame, a Bag) on the whole cluster. On a worker, the client is the
    worker's (`distributed.worker_client`, which lets the worker run other work while this task
    waits), unless ``client_kwargs`` are given: then a new client of the worker's scheduler. In
    a flow run with a `DaskTaskRunner`, in the flow's own code, it is a new client of the flow
    run's cluster (started now if nothing was submitted yet), with the runner's
    ``client_kwargs``.

    Args:
        timeout: Seconds (or a Dask duration such as ``"10s"``) to wait for the scheduler.
        **client_kwargs: More arguments for ``distributed.Client``.

    Raises:
        ImportError: dask.distributed is not installed.
        RuntimeError: The code runs neither on a Dask worker nor in a flow run's code whose
            task runner is a `DaskTaskRunner`; the message says where to call it.

    Example:
        >>> @task
        ... def describe():
        ...     with get_dask_client() as client:
        ...         return client.compute(frame.describe()).result()
    """
    require_dask()
    worker = _current_worker()
    if worker is not None and not client_kwargs:
        from distributed import worker_client

        with worker_client(timeout=timeout) as client:
            yield client
        return
    from distributed import Client

    address, kwargs = _scheduler_of_current_code(worker, timeout, client_kwargs)
    with Client(address, set_as_default=False, **kwargs) as client:
        yield client


@contextlib.asynccontextmanager
async def get_async_dask_client(
    timeout: float | str | None = None, **client_kwargs: Any
) -> AsyncIterator[Any]:
    """`get_dask_client` for async code: an asynchronous ``distributed.Client`` of the same
    cluster (``await client.compute(...)``), closed when the block ends."""
    require_dask()
    from distributed import Client

    address, kwargs = _scheduler_of_current_code(_current_worker(), timeout, client_kwargs)
    async with Client(address, asynchronous=True, set_as_default=False, **kwargs) as client:
        yield client


def _current_worker() -> Any:
    """The Dask worker this code runs on, or None."""
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _scheduler_of_current_code(
    worker: Any, timeout: float | str | None, client_kwargs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The address of the scheduler the current code's cluster has, and the client arguments."""
    kwargs = dict(client_kwargs)
    if timeout is not None:
        kwargs["timeout"] = timeout
    if worker is not None:
        return worker.scheduler.address, kwargs
    from headwater._engine.submissions import current_submissions

    runner = current_submissions().runner_of_kind(DaskTaskRunner)
    if runner is None or runner.client is None:
        raise RuntimeError(
            "get_dask_client() found no Dask cluster: call it inside a task submitted to a flow "
            "run whose task_runner is DaskTaskRunner (it then runs on a Dask worker), or in "
            "such a flow's own code. A task called directly runs in the flow's process, not on "
            "the cluster: submit it (task.submit(...)) instead."
        )
    return runner.client.scheduler.address, {**runner._config.client_kwargs, **kwargs}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package broken, or the module blocked
        return False


def require_dask() -> None:
    """Raise a clear ImportError when dask.distributed is not installed (without importing it)."""
    if not _installed("distributed"):
        raise ImportError(
            f"DaskTaskRunner needs dask.distributed, which is not installed: {INSTALL_HINT}"
        )


@dataclass(frozen=True)
class DaskSettings:
    """What a `DaskTaskRunner` was configured with (see its docstring)."""

    cluster_class: Any = None
    cluster_kwargs: dict[str, Any] = field(default_factory=dict)
    address: str | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    adapt_kwargs: dict[str, Any] = field(default_factory=dict)
    performance_report_path: str | None = None

    def __post_init__(self) -> None:
        if self.address is not None and (
            self.cluster_class is not None or self.cluster_kwargs or self.adapt_kwargs
        ):
            raise ValueError(
                "DaskTaskRunner takes either address= (connect to a running scheduler) or "
                "cluster_class=/cluster_kwargs=/adapt_kwargs= (start a temporary cluster), "
                "not both."
            )
        for name in ("client_kwargs", "cluster_kwargs"):
            if "asynchronous" in getattr(self, name):
                raise ValueError(
                    f"DaskTaskRunner does not accept 'asynchronous' in {name}: the runner "
                    "manages the Dask client itself, synchronously."
                )

    def resolved_cluster_class(self) -> Any:
        """The cluster class: the one given, one named by its import path, or LocalCluster."""
        cluster_class = self.cluster_class
        if cluster_class is None:
            from distributed import LocalCluster

            return LocalCluster
        if isinstance(cluster_class, str):
            module_name, _, name = cluster_class.rpartition(".")
            if not module_name:
                raise ValueError(
                    f"cluster_class {cluster_class!r} is not an import path; give the class "
                    "or its full name, e.g. 'distributed.LocalCluster'."
                )
            return getattr(importlib.import_module(module_name), name)
        return cluster_class


class DaskCluster:
    """The Dask client of one flow run, and the temporary cluster it started (if any).

    It is the runner's `headwater._runners.dispatch.Backend`.
    """

    def __init__(self, settings: DaskSettings) -> None:
        self.settings = settings
        self.dispatcher = Dispatcher(self, preparers=_PREPARERS)
        self.cluster: Any = None
        self.client: Any = None
        self._report: Any = None
        self._reachable: set[str] = set()
        #: Dask futures of the calls on the cluster (cancelled on an interrupt).
        self._shipped: set[Any] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Connect to the scheduler, or start the temporary cluster and connect to it."""
        from distributed import Client, LocalCluster

        settings = self.settings
        if settings.address is not None:
            self.client = Client(settings.address, **settings.client_kwargs)
        else:
            cluster_class = settings.resolved_cluster_class()
            kwargs = dict(settings.cluster_kwargs)
            if isinstance(cluster_class, type) and issubclass(cluster_class, LocalCluster):
                _refuse_forked_workers(kwargs)
                scheduler_kwargs = dict(kwargs.get("scheduler_kwargs") or {})
                scheduler_kwargs.setdefault("allowed_failures", 0)
                kwargs["scheduler_kwargs"] = scheduler_kwargs
            self.cluster = cluster_class(**kwargs)
            if settings.adapt_kwargs:
                self.cluster.adapt(**settings.adapt_kwargs)
            self.client = Client(self.cluster, **settings.client_kwargs)
        if settings.performance_report_path is not None:
            from distributed import performance_report

            if isinstance(self.cluster, LocalCluster) and not _installed("bokeh"):
                # The scheduler (here, in this process) renders the report with bokeh, and
                # would fail only when the flow run ends.
                raise ImportError(
                    "performance_report_path needs bokeh to render Dask's report: pip install bokeh"
                )

            self._report = performance_report(filename=settings.performance_report_path)
            self._report.__enter__()

    def check_reachable(self, address: str) -> None:
        """Fail when a worker cannot open the service address (once per address).

        A LocalCluster started here runs on this machine, so only a scheduler's workers (or
        another cluster class's) are asked.

        Raises:
            RuntimeError: A worker cannot reach the service; the message says what to do.
        """
        from distributed import LocalCluster

        if isinstance(self.cluster, LocalCluster) or address in self._reachable:
            return
        problems = unreachable_from_workers(self.client, address)
        if problems:
            workers = "; ".join(f"{worker}: {reason}" for worker, reason in problems.items())
            embedded = address.startswith(("unix:", "unix-abstract:"))
            cause = (
                "the flow uses the embedded Headwater service, a unix socket that only "
                "processes on this machine can open"
                if embedded
                else f"they cannot connect to {address}"
            )
            raise RuntimeError(
                f"The Dask workers cannot report task runs to Headwater: {cause} ({workers}). "
                "Run `headwater server start` on a machine the workers can reach, and set "
                "HEADWATER_API_URL to its host:port for the flow and on every worker."
            )
        self._reachable.add(address)

    def ship(self, call: TaskCall, payload: bytes, address: str) -> Future[bytes]:
        """Run ``payload`` on a worker; its answer completes the returned future."""
        outer: Future[bytes] = Future()
        # A key of its own per shipping: a call shipped again after its worker died must not
        # find the erred task of its first shipping under the same key.
        key = f"{call.task.name}-{call.task_run_id}-{uuid.uuid4().hex[:8]}"
        dask_future = self.client.submit(run_shipped, payload, address, key=key, pure=False)

        def landed(done: Any) -> None:
            with self._lock:
                self._shipped.discard(done)
            try:
                outer.set_result(done.result())
            except BaseException as exc:
                outer.set_exception(exc)

        with self._lock:
            self._shipped.add(dask_future)
        dask_future.add_done_callback(landed)
        return outer

    def lost(self, call: TaskCall, error: BaseException | None) -> tuple[str, bool]:
        """The CRASHED message for a call whose worker died (or raised), and whether it died."""
        from distributed.scheduler import KilledWorker

        if isinstance(error, KilledWorker):
            worker = error.last_worker
            pid = getattr(worker, "pid", 0)
            where = f"Dask worker {worker.address}" + (f", pid {pid}" if pid else "")
            return process_died(where), True
        return stopped_short("a Dask worker", error), False

    def close(self, interrupted: bool = False) -> None:
        """Wait for every submitted call, then close the client and the temporary cluster.

        Args:
            interrupted: Cancel the calls still on the cluster first.
        """
        try:
            if interrupted and self.client is not None:
                with self._lock:
                    shipped = list(self._shipped)
                self.client.cancel(shipped)
            self.dispatcher.wait()
        finally:
            report, self._report = self._report, None
            if report is not None:
                report.__exit__(None, None, None)
            client, self.client = self.client, None
            cluster, self.cluster = self.cluster, None
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


def _refuse_forked_workers(cluster_kwargs: dict[str, Any]) -> None:
    """Refuse a local cluster whose worker processes would be forked from this one.

    The flow's process runs gRPC (its stream to the service, perhaps the embedded server),
    and gRPC aborts a process forked while its threads are busy: the workers would die as
    they start. Dask spawns them unless configured otherwise.
    """
    import dask.config

    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if method == "fork" and cluster_kwargs.get("processes", True):
        raise ValueError(
            "DaskTaskRunner cannot start a LocalCluster whose workers are forked from the "
            "flow's process (distributed.worker.multiprocessing-method is 'fork'): the "
            "process runs gRPC, which a forked worker cannot inherit. Use 'spawn' (Dask's "
            "default) or 'forkserver', or processes=False for a cluster of threads."
        )


def unreachable_from_workers(client: Any, address: str) -> dict[str, str]:
    """Ask every worker whether it can open ``address``: worker -> why not (only failures)."""
    answers: dict[str, str] = client.run(unreachable, address)
    return {worker: reason for worker, reason in answers.items() if reason}
