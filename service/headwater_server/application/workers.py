"""Workers and serving processes: the long poll that hands them due runs, and their heartbeat.

``PollRuns`` claims due runs at once when there are any. Otherwise it waits on the event hub,
which every new run and every run state change wakes (a run created, or one put back to
SCHEDULED, is answered within milliseconds), until the earliest known future run is due, or
the ``wait`` ends. On PostgreSQL a run created through another server wakes the hub too
(LISTEN/NOTIFY); as a last resort, and for other processes on a SQLite file, the poll looks in
storage again every ``hub.poll_interval`` (the ``wake_recheck_seconds`` setting).

A caller that names itself (``worker_id``) holds the runs it claims as a lease, renewed by its
polls' claims and its heartbeats (from when the server heard each, see ``storage._leases``);
:mod:`headwater_server.liveness` releases the runs of a worker unheard of for the lease period.

A worker holds the runs of every claim it heard of, and says so in each heartbeat, with the
number of claims it heard of: when that is every claim made for it, a run leased to it that
the heartbeat leaves out was claimed by an answer lost on its way, and goes back to SCHEDULED
(see ``storage._leases``). A claim whose caller is gone by the time the database made it (its
deadline passed, or it hung up, while the claim queued behind other writes on a busy server) is
undone at once: nobody was told of those runs, and a worker that lives on, heartbeat after
heartbeat, would otherwise hold them PENDING until it stops.
"""

from __future__ import annotations

import asyncio
import logging
import time

from headwater.v1 import workers_pb2

from headwater_server import errors
from headwater_server.application import checks
from headwater_server.application.backend import Backend, time_remaining
from headwater_server.storage._workers import Claim, ClaimTarget
from headwater_server.storage.convert import now_us

logger = logging.getLogger("headwater_server.workers")

MAX_WAIT_SECONDS = 60.0
MAX_RUNS = 1000
# A long poll answers this long before the caller's deadline, so the (empty) answer arrives.
_DEADLINE_MARGIN_SECONDS = 0.2


def _target(request: workers_pb2.PollRunsRequest) -> ClaimTarget:
    """The request's pool or deployments, checked: exactly one of them."""
    if request.work_pool_name and request.deployment_ids:
        raise errors.invalid_argument(
            "deployment_ids",
            "is set together with work_pool_name; poll a work pool (a worker) or a set of "
            "deployments (a serving process), not both.",
        )
    if request.deployment_ids:
        if request.work_queue_names:
            raise errors.invalid_argument(
                "work_queue_names", "needs work_pool_name: queues belong to a work pool."
            )
        checks.at_most("deployment_ids", request.deployment_ids, MAX_RUNS, "ids")
        ids = tuple(
            dict.fromkeys(
                checks.uuid(f"deployment_ids[{index}]", deployment_id)
                for index, deployment_id in enumerate(request.deployment_ids)
            )
        )
        return ClaimTarget(deployment_ids=ids)
    if not request.work_pool_name:
        raise errors.invalid_argument(
            "work_pool_name",
            "is required: name the work pool to take runs from, or set deployment_ids.",
        )
    checks.name("work_pool_name", request.work_pool_name)
    checks.at_most("work_queue_names", request.work_queue_names, checks.MAX_FILTER_VALUES, "names")
    for index, name in enumerate(request.work_queue_names):
        checks.required_text(f"work_queue_names[{index}]", name)
        checks.name(f"work_queue_names[{index}]", name)
    return ClaimTarget(
        work_pool_name=request.work_pool_name,
        work_queue_names=tuple(dict.fromkeys(request.work_queue_names)),
    )


class _Caller:
    """Whether a poll's caller still waits for its answer."""

    __slots__ = ("deadline", "gone")

    def __init__(self) -> None:
        remaining = time_remaining.get()
        #: When the caller's deadline passes (monotonic seconds); None: it set none.
        self.deadline = None if remaining is None else time.monotonic() + remaining
        #: The call was cancelled: the caller hung up or its deadline passed.
        self.gone = False

    def waiting(self) -> bool:
        return not self.gone and (self.deadline is None or time.monotonic() < self.deadline)


#: Claims (and their undoing) still under way whose poll was cancelled: referenced until done.
_orphans: set[asyncio.Task[Claim]] = set()


def _keep_until_done(task: asyncio.Task[Claim]) -> None:
    """Hold ``task`` until it ends; its failure, which no caller awaits, is logged."""

    def done(task: asyncio.Task[Claim]) -> None:
        _orphans.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Undoing an unanswered claim failed", exc_info=task.exception())

    _orphans.add(task)
    task.add_done_callback(done)


async def _claim(
    backend: Backend,
    target: ClaimTarget,
    max_runs: int,
    worker_name: str,
    worker_id: str,
    caller: _Caller,
) -> Claim:
    """Claim due runs for ``caller``; undone if the caller stopped waiting meanwhile."""
    db = backend.db
    claim = await db.run(db.repository.claim_due_runs, target, max_runs, worker_name, worker_id)
    if not claim.runs or caller.waiting():
        return claim
    return await _undo(backend, claim, worker_name, worker_id)


async def _undo(backend: Backend, claim: Claim, worker_name: str, worker_id: str) -> Claim:
    """Put a claim nobody will hear of back: its runs go back to SCHEDULED for another poll."""
    message = (
        f"Rescheduled: {worker_name} polled for this run but stopped waiting for the answer "
        "(its deadline passed or it hung up) before the service could hand it over; another "
        "poll may take it."
    )
    run_ids = [run.id for run, _deployment in claim.runs]
    db = backend.db
    released = await db.run(db.repository.release_claims, run_ids, worker_id, message)
    for run in released:
        backend.hub.notify(run.id, run.last_sequence)  # wakes the pollers
    logger.warning(
        "%s stopped waiting for its poll before the claim was handed over; %d claimed flow "
        "run(s) went back to SCHEDULED: %s",
        worker_name,
        len(released),
        ", ".join(run.id for run in released),
    )
    return Claim((), claim.next_due_us)


def _wait_seconds(request: workers_pb2.PollRunsRequest) -> float:
    """The request's wait, cut to MAX_WAIT_SECONDS and to the caller's deadline."""
    if not request.HasField("wait"):
        return 0.0
    wait = min(checks.non_negative_duration("wait", request.wait), MAX_WAIT_SECONDS)
    remaining = time_remaining.get()
    if remaining is not None:
        wait = min(wait, max(remaining - _DEADLINE_MARGIN_SECONDS, 0.0))
    return wait


async def poll_runs(
    backend: Backend, request: workers_pb2.PollRunsRequest
) -> workers_pb2.PollRunsResponse:
    """Claim due runs for the caller; with none due, hold the call until one is (or ``wait``)."""
    checks.required_text("worker_name", request.worker_name)
    checks.name("worker_name", request.worker_name)
    target = _target(request)
    if request.max_runs < 0 or request.max_runs > MAX_RUNS:
        raise errors.invalid_argument(
            "max_runs", f"{request.max_runs} is out of range. Use 1 to {MAX_RUNS} (0 means 1)."
        )
    worker_id = checks.optional_uuid("worker_id", request.worker_id)
    max_runs = request.max_runs or 1
    deadline = time.monotonic() + _wait_seconds(request)
    caller = _Caller()
    while True:
        if backend.stopping.is_set():
            raise errors.unavailable(
                "The server is shutting down; poll again (another server, or this one once "
                "it is back)."
            )
        generation = backend.hub.runs_generation
        claiming = asyncio.ensure_future(
            _claim(backend, target, max_runs, request.worker_name, worker_id, caller)
        )
        try:
            # Shielded: a claim the database is making goes on if the caller hangs up, and
            # then undoes itself (see _claim), instead of being left made and unanswered.
            claim = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            caller.gone = True
            if not claiming.done():
                _keep_until_done(claiming)  # it sees the caller gone once the claim is made
            elif not claiming.cancelled() and claiming.exception() is None:
                made = claiming.result()  # made just before the caller hung up
                if made.runs:
                    undo = _undo(backend, made, request.worker_name, worker_id)
                    _keep_until_done(asyncio.ensure_future(undo))
            raise
        if claim.runs:
            for run, _deployment in claim.runs:
                backend.hub.notify(run.id, run.last_sequence)
            return workers_pb2.PollRunsResponse(
                runs=[
                    workers_pb2.ClaimedRun(flow_run=run, deployment=deployment)
                    for run, deployment in claim.runs
                ],
                claims=claim.claims,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            claims = 0
            if worker_id:  # so that a worker whose last claim's answer was lost learns of it
                claims = await backend.db.run(backend.db.repository.worker_claims, worker_id)
            return workers_pb2.PollRunsResponse(claims=claims)
        nap = min(remaining, backend.hub.poll_interval)
        if claim.next_due_us is not None:
            nap = min(nap, max((claim.next_due_us - now_us()) / 1_000_000, 0.0))
        await backend.hub.wait_for_runs_change(generation, nap)


async def heartbeat(
    backend: Backend, request: workers_pb2.HeartbeatRequest
) -> workers_pb2.HeartbeatResponse:
    """Renew the worker's lease (with a ``worker_id``) and answer which of its runs it should
    stop (cancelling, cancelled or gone)."""
    checks.required_text("worker_name", request.worker_name)
    checks.name("worker_name", request.worker_name)
    worker_id = checks.optional_uuid("worker_id", request.worker_id)
    checks.at_most("flow_run_ids", request.flow_run_ids, MAX_RUNS, "ids")
    ids = [
        checks.uuid(f"flow_run_ids[{index}]", run_id)
        for index, run_id in enumerate(request.flow_run_ids)
    ]
    if worker_id:
        # Heard now, whenever the write runs, and written even if the caller stops waiting for
        # the answer (its deadline passed while the write queued): it did call.
        seen = backend.db.run(
            backend.db.repository.worker_seen,
            worker_id,
            request.worker_name,
            now_us(),
            ids,
            request.claims_seen,
        )
        lost = await asyncio.shield(seen)
        for run in lost:
            backend.hub.notify(run.id, run.last_sequence)  # wakes the pollers
        if lost:
            logger.warning(
                "%s never received the claim of %d flow run(s), which went back to SCHEDULED: %s",
                request.worker_name,
                len(lost),
                ", ".join(run.id for run in lost),
            )
    stop = await backend.db.run(backend.db.repository.runs_to_stop, ids)
    return workers_pb2.HeartbeatResponse(cancel_flow_run_ids=stop)
