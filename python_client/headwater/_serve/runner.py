"""The runner: take due runs by long poll and run each in a subprocess, as Prefect's runner does.

`Flow.serve`, `headwater.serve` and ``headwater worker start`` all drive one `Runner`. It polls
the service (``WorkerService.PollRuns``) for runs of its deployments or of its work pool: the
service answers the moment a run is due, with runs already claimed for this process (PENDING),
so two runners never start the same run. Each run starts as ``python -m headwater._serve.execute
<flow run id>`` in the deployment's code directory; that process loads the flow from the
deployment's entrypoint and runs it as that flow run on the ordinary engine. To start runs
fast, `SPARE_PROCESSES` such processes are kept waiting with the SDK loaded and connected
(spares, started as ``execute -``, see `headwater._serve.spare`); a run's claim is handed to
the oldest, and the next spare is started meanwhile. A run's job
variables (`headwater._serve.jobs`: ``env``, ``working_dir``) set its process's environment and
directory. A spare sets a run's ``env`` before loading its flow when nothing it did ahead read
those variables (`headwater._serve.handoff`): not when it loaded the flow's file ahead, nor for
variables its start-up read (``HEADWATER_*``, ``PYTHON*``, ``GRPC_*``, proxies...); such a run
starts in a fresh process. So a runner serving one deployment whose runs carry ``env`` keeps
its spares without the flow loaded ahead.

A heartbeat every `HEARTBEAT_SECONDS` tells the service which runs this process holds (renewing
its lease on the runs it claimed: if the heartbeats stop, those it has not started go back to
SCHEDULED for another runner, as does a run whose claim's answer never arrived; each goes out
on time, without waiting for the answer to the one before, which a busy service can be slow to
give) and learns which to stop (cancelled): their
subprocesses are terminated and the runs end CANCELLED. A subprocess that exits without its run
reaching a final state (it failed to import the flow, or was killed) ends the run CRASHED, and
the flow's ``on_crashed`` hooks then run in one more subprocess (``execute --on-crashed``), on
the flow loaded from the entrypoint again. These final states are reported in the background
and retried until the service hears them (`headwater._serve.endings`): while this process
lives, nothing else would end those runs. SIGTERM or SIGINT stop the runner: no new claims,
its runs are cancelled and given `STOP_GRACE_SECONDS` to end, what is left is terminated, and
the reports still under way get `END_GRACE_SECONDS`.

A runner killed outright (``kill -9``) takes its subprocesses with it: each dies with the runner
(`headwater._serve.execute.die_with_runner`), its engine stream breaks, and the service ends its
run CRASHED. Since the kernel's parent-death signal follows the thread that started a process,
every subprocess is started by one thread that lives as long as the runner (`_Spawner`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater._serve.endings import Endings
    from headwater._serve.jobs import Job, PoolTemplates
    from headwater._transport.client_workers import ClaimedRun, WorkerConnection

__all__ = ["Runner"]

logger = logging.getLogger("headwater.runner")

#: How long one poll waits for a due run before it is sent again.
POLL_WAIT_SECONDS = 10.0
#: How often the runner reports its runs and learns which were cancelled.
HEARTBEAT_SECONDS = 1.0
#: How many spare processes wait for runs. Two, not one: on a busy machine a spare's start-up
#: (the interpreter and the SDK, about a quarter of a CPU second) can take longer than the gap
#: between two runs, and a run handed to a spare still starting waits for it; the older of two
#: has had twice that time.
SPARE_PROCESSES = 2
#: How long runs get to end once cancelled (at shutdown or on request) before being killed.
STOP_GRACE_SECONDS = 10.0
#: How long a stopping runner keeps trying to report the final states of runs whose processes
#: it lost or stopped (see `headwater._serve.endings`) before it names those left and exits.
END_GRACE_SECONDS = 10.0
# With no limit, at most this many runs are claimed per poll.
_BATCH = 100


_Popen = subprocess.Popen[bytes]


class _Spawner:
    """Starts every subprocess of a runner from one thread that lives as long as the runner.

    A run's process asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), and
    the kernel counts the *thread* that forked it as that parent: a process started from a
    short-lived thread (a poll, a spare refill) would be killed as soon as that thread ended.
    """

    def __init__(self) -> None:
        self._requests: SimpleQueue[tuple[Callable[[], _Popen], Future[_Popen]] | None] = (
            SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name="headwater-spawner", daemon=True)
        self._closed = False
        self._thread.start()

    def start(self, popen: Callable[[], _Popen]) -> _Popen:
        """``popen()`` called on the spawner's thread; its result or its exception."""
        if self._closed:
            raise OSError("the runner is stopping; no new process is started")
        future: Future[_Popen] = Future()
        self._requests.put((popen, future))
        return future.result()

    def close(self) -> None:
        """End the thread once the requests before this one are served."""
        self._closed = True
        self._requests.put(None)
        self._thread.join(timeout=STOP_GRACE_SECONDS)

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            popen, future = request
            try:
                future.set_result(popen())
            except BaseException as exc:
                future.set_exception(exc)


@dataclass
class _Child:
    run: ClaimedRun
    process: subprocess.Popen[bytes]
    stopping: bool = False
    reason: str = ""


@dataclass
class Runner:
    """Runs the due runs of some deployments, or of a work pool, in subprocesses.

    Args:
        name: Names this process to the service ("Claimed by <name>").
        limit: The most runs at once; None means no limit.
        deployment_ids: The deployments whose runs to take (a serving process).
        work_pool_name: The pool whose runs to take (a worker); exclusive with deployments.
        work_queue_names: Only these queues of the pool (empty: all).
        address: The service; None means ``HEADWATER_API_URL`` or the embedded service.
        end_grace_seconds: How long stopping waits for the final states of runs still being
            reported (the service unreachable, say) before it names them and returns.
    """

    name: str = ""
    limit: int | None = None
    deployment_ids: list[str] = field(default_factory=list)
    work_pool_name: str = ""
    work_queue_names: tuple[str, ...] = ()
    address: str | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    end_grace_seconds: float = END_GRACE_SECONDS
    _children: dict[str, _Child] = field(default_factory=dict, init=False)
    #: Runs claimed and not started yet, runs whose final state is being reported, and how
    #: many claims' answers arrived (see `_heartbeat_loop`); changed together with
    #: `_children`, under the lock.
    _claimed: set[str] = field(default_factory=set, init=False)
    _ending: set[str] = field(default_factory=set, init=False)
    _claims_seen: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _changed: threading.Condition = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _spares: deque[_Spare] = field(default_factory=deque, init=False)
    _starting: int = field(default=0, init=False)
    #: What the next spare loads ahead (entrypoint, directory), once the runner knows it.
    _preload: tuple[str, str | None] | None = field(default=None, init=False)
    _signalled: bool = field(default=False, init=False)
    _templates: PoolTemplates | None = field(default=None, init=False)
    _spawner: _Spawner | None = field(default=None, init=False)
    _endings: Endings | None = field(default=None, init=False)
    #: Names this process to the service: what it claims is leased to this id.
    worker_id: str = field(default_factory=lambda: str(uuid.uuid4()), init=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
        if not self.name:
            self.name = f"runner-{uuid.uuid4().hex[:8]} on {socket.gethostname()}"
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be a positive integer or None, not {self.limit!r}.")

    def run_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Take and run due runs until SIGTERM or SIGINT (or `stop`), then stop cleanly.

        ``on_ready`` is called once the signal handlers are in place (say, to print that the
        process is serving): from then on SIGTERM stops it cleanly.
        """
        from headwater._serve.endings import Endings
        from headwater._transport.client_workers import WorkerConnection

        # Three channels: closing the polling one ends a poll in flight at once at shutdown,
        # while the others still report and cancels; the reports of runs' final states, retried
        # through outages, have one of their own.
        polling = WorkerConnection(self.name, self.address, self.worker_id)
        self.address = polling.address
        control = WorkerConnection(self.name, self.address, self.worker_id)
        self._endings = endings = Endings(WorkerConnection(self.name, self.address))
        self._spawner = _Spawner()
        restore = self._handle_signals()
        self._refill_spare()
        if on_ready is not None:
            on_ready()
        threads = [
            threading.Thread(target=self._poll_loop, args=(polling,), daemon=True),
            threading.Thread(target=self._heartbeat_loop, args=(control,), daemon=True),
        ]
        try:
            for thread in threads:
                thread.start()
            while not (self._signalled or self._stop.wait(0.2)):
                pass
        finally:
            self.stop()
            polling.close()
            self._drop_spare()
            self._shut_down(control)
            for thread in threads:
                thread.join(timeout=STOP_GRACE_SECONDS)
            endings.close(self.end_grace_seconds)
            control.close()
            self._spawner.close()
            restore()
            for callback in self.on_stop:
                try:
                    callback()
                except Exception as exc:
                    logger.warning("Stopping: %s", exc)

    def stop(self) -> None:
        """Stop taking runs; `run_forever` then cancels what runs and returns."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ loops

    def _room(self) -> int:
        with self._changed:
            while not self._stop.is_set():
                free = _BATCH if self.limit is None else self.limit - len(self._children)
                if free > 0:
                    return min(free, _BATCH)
                self._changed.wait(1.0)
        return 0

    def _poll_loop(self, connection: WorkerConnection) -> None:
        while not self._stop.is_set():
            room = self._room()
            if room == 0:
                return
            try:
                answer = connection.poll(
                    max_runs=room,
                    wait=POLL_WAIT_SECONDS,
                    deployment_ids=self.deployment_ids,
                    work_pool_name=self.work_pool_name,
                    work_queue_names=self.work_queue_names,
                )
            except Exception as exc:
                if self._stop.is_set():
                    return
                logger.warning("Polling for runs failed (%s); retrying in 1 s.", exc)
                self._stop.wait(1.0)
                continue
            with self._lock:  # held from now on: the next heartbeat lists them
                self._claimed.update(run.flow_run.id for run in answer.runs)
                self._claims_seen = max(self._claims_seen, answer.claims)
            for run in answer.runs:
                self._start(run)

    def _start(self, run: ClaimedRun) -> None:
        flow_run = run.flow_run
        logger.info("Running flow run %r (%s) of %s.", flow_run.name, flow_run.id, _named(run))
        try:
            job = self._job(run)
        except Exception as exc:
            self._end_claimed(run, "CRASHED", f"Crashed: its job variables are unusable: {exc}")
            return
        directory = job.working_dir or run.deployment.path or None
        process = self._hand_to_spare(run, directory, job.env)
        if process is not None and self._serves_one_deployment():
            # A flow loaded ahead would have read the environment without the run's variables.
            self._preload = None if job.env else _preload_of(run, directory)
        if process is None:
            try:
                process = self._spawn([flow_run.id], directory, job.environment(os.environ))
            except OSError as exc:
                message = f"Crashed: the runner could not start it: {exc}."
                self._end_claimed(run, "CRASHED", message)
                return
        with self._changed:
            self._children[flow_run.id] = _Child(run, process)
            self._claimed.discard(flow_run.id)
        threading.Thread(target=self._reap, args=(flow_run.id, process), daemon=True).start()
        threading.Thread(target=self._refill_spare, daemon=True).start()

    def _end_claimed(self, run: ClaimedRun, state_type: str, message: str) -> None:
        """End a claimed run that will not start here; held until the report is over."""
        with self._lock:
            self._claimed.discard(run.flow_run.id)
            self._ending.add(run.flow_run.id)
        self._end(run, state_type, message)

    def _spawn(
        self, args: list[str], directory: str | None, environ: Mapping[str, str] = os.environ
    ) -> subprocess.Popen[bytes]:
        """``python -m headwater._serve.execute ARGS`` with the service's address.

        A session of its own: Ctrl-C at the terminal reaches the runner only, which then
        cancels its runs cleanly instead of every run being interrupted at once. It dies with
        this process (``--runner-pid``), and is started on the spawner's thread (see `_Spawner`).
        """
        env = {**environ, "HEADWATER_API_URL": self.address or ""}
        command = [
            sys.executable,
            "-m",
            "headwater._serve.execute",
            "--runner-pid",
            str(os.getpid()),
            *args,
        ]
        stdin = subprocess.PIPE if args[-1:] == ["-"] else None

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command, cwd=directory, env=env, stdin=stdin, start_new_session=True
            )

        if self._spawner is None:
            raise OSError("the runner is not running (run_forever starts its processes)")
        return self._spawner.start(popen)

    def _job(self, run: ClaimedRun) -> Job:
        """The run's job: its own job variables over its deployment's, over its pool's
        template."""
        from headwater._serve.jobs import PoolTemplates, job_for

        pool = run.deployment.work_pool_name
        template = None
        if pool:
            if self._templates is None:
                self._templates = PoolTemplates(self.address)
            template = self._templates.get(pool)
        return job_for(run.deployment.job_variables, template, run.flow_run.job_variables)

    def _serves_one_deployment(self) -> bool:
        """Whether every run this runner takes is of one deployment (see `_preload_of`)."""
        return len(self.deployment_ids) == 1 and not self.work_pool_name

    def _hand_to_spare(
        self, run: ClaimedRun, directory: str | None, env: Mapping[str, str | None]
    ) -> subprocess.Popen[bytes] | None:
        """Give the run's claim to the oldest waiting spare process (`headwater._serve.spare`:
        SDK loaded, stream connected, the likeliest to be ready) that can give it its ``env``
        (see `headwater._serve.handoff`); None if there is none."""
        from headwater._serve.handoff import handoff_line, spare_may_set

        if not run.wire or (env and not spare_may_set(env)):
            return None
        while True:
            with self._lock:
                fit = [spare for spare in self._spares if not (env and spare.preloaded)]
                if not fit:
                    return None
                self._spares.remove(fit[0])
            process = fit[0].process
            if process.poll() is None and process.stdin is not None:
                break
        try:
            process.stdin.write(handoff_line(run, directory, env))
            process.stdin.close()
        except OSError:
            _kill(process)
            return None
        return process

    def _refill_spare(self) -> None:
        """Start spare processes until `SPARE_PROCESSES` wait, so the next runs start as fast
        as this one. Each is started outside the lock: a run arriving meanwhile is handed to
        one that is ready instead of waiting for the start."""
        while True:
            with self._lock:
                if self._stop.is_set() or len(self._spares) + self._starting >= SPARE_PROCESSES:
                    return
                self._starting += 1
                entrypoint, directory = self._preload or ("", None)
            args = ["--preload", entrypoint, "-"] if entrypoint else ["-"]
            spare = None
            try:
                spare = self._spawn(args, directory)
            except OSError as exc:
                logger.warning("Could not start a spare process: %s", exc)
            with self._lock:
                self._starting -= 1
                if spare is not None and not self._stop.is_set():
                    self._spares.append(_Spare(spare, preloaded=bool(entrypoint)))
                    continue
            if spare is None:
                return
            _dismiss(spare)  # the runner stopped while it started

    def _drop_spare(self) -> None:
        with self._lock:
            spares, self._spares = list(self._spares), deque()
        for spare in spares:
            _dismiss(spare.process)

    def _reap(self, flow_run_id: str, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        with self._changed:
            child = self._children.pop(flow_run_id, None)
            if child is not None and (child.stopping or code != 0):
                self._ending.add(flow_run_id)  # still held: its ending is to be reported
            self._changed.notify_all()
        if child is None:
            return
        if child.stopping:
            self._end(child.run, "CANCELLED", child.reason)
        elif code != 0:
            # Accepted only when the run did not reach a final state itself; its process could
            # not run the flow's on_crashed hooks, so they run in a new one.
            self._end(
                child.run,
                "CRASHED",
                f"Crashed: its process exited with code {code} before the run ended "
                "(see the runner's output).",
                then=lambda: self._run_crashed_hooks(child.run),
            )

    def _run_crashed_hooks(self, run: ClaimedRun) -> None:
        """Run the flow's on_crashed hooks in a subprocess (``execute --on-crashed``)."""
        flow_run_id = run.flow_run.id
        try:
            process = self._spawn(["--on-crashed", flow_run_id], run.deployment.path or None)
            code = process.wait()
        except OSError as exc:
            logger.warning(
                "Could not run the on_crashed hooks of flow run %s: %s", flow_run_id, exc
            )
            return
        if code not in (0, 1):
            logger.warning(
                "The on_crashed hooks of flow run %s could not run: their process exited with "
                "code %d (see the output above).",
                flow_run_id,
                code,
            )

    def _heartbeat_loop(self, connection: WorkerConnection) -> None:
        """A heartbeat every `HEARTBEAT_SECONDS`, each sent without waiting for the answer to
        the one before (see `WorkerConnection.send_heartbeat`).

        Each lists every run this process holds (those it runs, those claimed and not started
        yet, those whose final state is being reported), read in one piece with the number of
        claims whose answers came: the service then puts back a run it claimed for this process
        by an answer that was lost.
        """
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                held = list({*self._children, *self._claimed, *self._ending})
                claims_seen = self._claims_seen
            try:
                connection.send_heartbeat(held, self._heartbeat_answered, claims_seen)
            except Exception as exc:
                self._heartbeat_answered(None, exc)

    def _heartbeat_answered(self, doomed: list[str] | None, error: Exception | None) -> None:
        if error is not None:
            logger.warning("Heartbeat failed (%s); retrying.", error)
            return
        for flow_run_id in doomed or ():
            self._terminate(flow_run_id, "Cancelled: the runner stopped its process.")

    def _terminate(self, flow_run_id: str, reason: str) -> None:
        """Stop a cancelled run's subprocess: its engine gets the grace period to end the run
        itself (it watches for cancellation), then the process is killed and the run ended."""
        with self._lock:
            child = self._children.get(flow_run_id)
            if child is None or child.stopping:
                return
            child.stopping = True
            child.reason = reason
        logger.info("Stopping flow run %s: %s", flow_run_id, reason)
        threading.Timer(STOP_GRACE_SECONDS, _kill, args=(child.process,)).start()

    def _shut_down(self, connection: WorkerConnection) -> None:
        """Cancel the runs still running, give them the grace period, then kill what is left."""
        with self._lock:
            running = list(self._children)
        if not running:
            return
        logger.info("Shutting down: cancelling %d running flow run(s).", len(running))
        reason = "Cancelled: the runner serving it was stopped."
        failed: dict[str, Exception]
        try:
            failed = dict(connection.cancel_runs(running, reason))
        except Exception as exc:  # not even sent (the channel is unusable)
            failed = dict.fromkeys(running, exc)
        for flow_run_id, error in failed.items():
            # Its process is stopped anyway, and the run then ends CANCELLED (see _reap).
            logger.info("Could not ask the service to cancel flow run %s: %s", flow_run_id, error)
        for flow_run_id in running:
            self._terminate(flow_run_id, reason)
        with self._changed:
            self._changed.wait_for(lambda: not self._children, timeout=STOP_GRACE_SECONDS + 5)

    def _end(
        self,
        run: ClaimedRun,
        state_type: str,
        message: str,
        then: Callable[[], object] | None = None,
    ) -> None:
        """Report a final state for a run, in the background and until the service hears it
        (see `headwater._serve.endings`); ``then()`` once it is accepted. The run stays held
        (listed by the heartbeats) until the report is over."""
        if self._endings is None:
            raise RuntimeError("the runner is not running (run_forever reports its runs)")
        flow_run_id = run.flow_run.id

        def settled() -> None:
            with self._lock:
                self._ending.discard(flow_run_id)

        self._endings.end(run, state_type, message, then, settled)

    def _handle_signals(self) -> Callable[[], None]:
        """SIGTERM and SIGINT only raise a flag that the main loop reads within 0.2 s.

        The handler must take no lock: Python runs it in the main thread between two bytecodes,
        possibly while that thread holds the very lock (``Event.wait`` holds its condition's
        lock around the flag check), and then the process hangs forever instead of stopping.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def raise_flag(*_: object) -> None:
            self._signalled = True

        previous = {
            signum: signal.signal(signum, raise_flag) for signum in (signal.SIGTERM, signal.SIGINT)
        }

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore


@dataclass(frozen=True)
class _Spare:
    """A waiting spare process, and whether it loaded a flow's file ahead (`preloaded`)."""

    process: subprocess.Popen[bytes]
    preloaded: bool


def _dismiss(spare: subprocess.Popen[bytes]) -> None:
    """End a spare that got no run: at the end of its input it exits at once."""
    if spare.stdin is not None:
        with contextlib.suppress(OSError):
            spare.stdin.close()
    try:
        spare.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill(spare)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


def _preload_of(run: ClaimedRun, directory: str | None) -> tuple[str, str | None] | None:
    """What a spare may load ahead for the next run of ``run``'s deployment, in ``directory``."""
    from headwater._serve.handoff import preload_entrypoint

    entrypoint = preload_entrypoint(run.deployment)
    return None if entrypoint is None else (entrypoint, directory)


def _named(run: ClaimedRun) -> str:
    return f"deployment '{run.deployment.flow_name}/{run.deployment.name}'"
