"""Crash detection: runs whose process died end CRASHED, and abandoned cancellations end.

Every SDK process reports through one engine stream and names itself on it (an engine id, its
host and pid). The server holding the stream keeps the engine's row fresh
(:func:`refresh_engines_forever`) and records when the stream ends. A process killed with
``kill -9`` breaks its stream at once; one on a lost machine stops answering gRPC keepalive
pings, which ends the stream too; one whose server died with it (the embedded server) stops
being refreshed. :func:`reap_forever`, run by every server on the database, then ends the dead
engine's unfinished runs: its task runs first, then its flow runs (subflows before parents),
so a flow run's final state still comes after every one of its task runs'.

The end goes through the ordinary proposals, so the states are stored, numbered and streamed
to watchers like any other, and a run that its engine finished meanwhile simply rejects it.
A CANCELLING run whose engine is gone ends CANCELLED rather than CRASHED: the user asked for
it to stop, and it has. A CANCELLING flow run that no live engine runs at all (started through
the unary API, which has no stream) ends CANCELLED after ``cancelling_timeout_seconds``.

Workers hold the runs they claimed as leases (``storage._leases``): a worker unheard of for
``worker_lease_seconds`` is gone, and its runs still PENDING (claimed, never started) go back
to SCHEDULED, which wakes the pollers of this server so another worker takes them at once.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2

from headwater_server.application import flow_runs, task_runs
from headwater_server.orchestration import rules
from headwater_server.storage.convert import now_us

if TYPE_CHECKING:
    from headwater_server.application.backend import Backend
    from headwater_server.storage._engines import DeadEngine, OrphanRun

__all__ = ["LivenessPolicy", "reap_forever", "reap_once", "refresh_engines_forever"]

logger = logging.getLogger("headwater_server.liveness")

#: How often a server looks for dead engines and abandoned cancellations.
REAP_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class LivenessPolicy:
    """How long engines and cancellations get (from the server's settings)."""

    grace_seconds: float
    timeout_seconds: float
    cancelling_timeout_seconds: float
    worker_lease_seconds: float

    @property
    def refresh_seconds(self) -> float:
        """How often a server refreshes the engines it holds: four times per timeout."""
        return self.timeout_seconds / 4


async def refresh_engines_forever(backend: Backend, policy: LivenessPolicy) -> None:
    """Mark the engines whose streams this server holds as seen, every ``refresh_seconds``.

    Runs until cancelled. A failed refresh is logged and retried at the next interval; a few
    missed refreshes are within the timeout.
    """
    while True:
        await asyncio.sleep(policy.refresh_seconds)
        held = [
            (session.engine_id, session.engine_session)
            for session in tuple(backend.engine_sessions)
            if session.engine_id
        ]
        try:
            await backend.db.run(backend.db.repository.engines_seen, held)
        except Exception:
            logger.exception(
                "Refreshing %d engine streams failed; retrying in %.1f s. If this persists for "
                "%.0f s, other servers will take these engines for dead.",
                len(held),
                policy.refresh_seconds,
                policy.timeout_seconds,
            )


async def reap_forever(backend: Backend, policy: LivenessPolicy) -> None:
    """Run :func:`reap_once` every second until cancelled; a failed pass is logged and retried.

    Engines unseen when this server started get the timeout again, counted from its start, so
    that clients of a restarted server have time to reconnect before their runs are ended.
    """
    started = time.monotonic()
    while True:
        await asyncio.sleep(REAP_INTERVAL_SECONDS)
        # Until a timeout has passed since this server started, engines get it on top: the
        # clients of a restarted server are reconnecting, and nobody refreshed them meanwhile.
        # Workers likewise get their lease on top, to send a heartbeat to a server again.
        waited = time.monotonic() - started
        try:
            await reap_once(
                backend,
                policy,
                timeout_seconds=_after_start(policy.timeout_seconds, waited),
                lease_seconds=_after_start(policy.worker_lease_seconds, waited),
            )
        except Exception:
            logger.exception(
                "Looking for crashed runs failed; retrying in %.0f s.", REAP_INTERVAL_SECONDS
            )


def _after_start(seconds: float, waited: float) -> float:
    """``seconds``, plus what is left of ``seconds`` since this server started."""
    return seconds + max(seconds - waited, 0.0)


async def reap_once(
    backend: Backend,
    policy: LivenessPolicy,
    *,
    timeout_seconds: float | None = None,
    lease_seconds: float | None = None,
) -> int:
    """End the unfinished runs of dead engines and abandoned cancellations, and put the runs
    dead workers claimed back to SCHEDULED, once.

    Returns:
        How many runs were ended or rescheduled.
    """
    repository = backend.db.repository
    timeout = policy.timeout_seconds if timeout_seconds is None else timeout_seconds
    dead = await backend.db.run(repository.dead_engines, _us(policy.grace_seconds), _us(timeout))
    ended = 0
    for engine in dead:
        ended += await _end_engine_runs(backend, engine, policy)
    stale = await backend.db.run(
        repository.stale_cancelling_flow_runs, _us(policy.cancelling_timeout_seconds)
    )
    for run_id in stale:
        message = (
            f"Cancelled: no engine reported this run cancelled within "
            f"{policy.cancelling_timeout_seconds:g} s of the request (it was not started by an "
            "SDK process, or that process is gone), so the service ended it "
            "(HEADWATER_CANCELLING_TIMEOUT_SECONDS)."
        )
        if await _propose_flow_run(backend, run_id, states_pb2.STATE_TYPE_CANCELLED, message):
            ended += 1
            logger.warning("Flow run %s: %s", run_id, message)
    lease = policy.worker_lease_seconds if lease_seconds is None else lease_seconds
    return ended + await _release_dead_workers(backend, policy, lease)


async def _release_dead_workers(backend: Backend, policy: LivenessPolicy, lease: float) -> int:
    """Put the PENDING runs of workers unheard of for ``lease`` back to SCHEDULED."""

    def why(worker: str) -> str:
        return (
            f"Rescheduled: {worker} claimed this run, then sent no heartbeat for "
            f"{policy.worker_lease_seconds:g} s (HEADWATER_WORKER_LEASE_SECONDS) before "
            "starting it; that worker is taken for gone, and another may run it."
        )

    # Decided now: heartbeats heard before this point count even if their writes are still
    # queued ahead of this call (see storage._leases).
    dead = await backend.db.run(
        backend.db.repository.release_dead_workers, _us(lease), why, decided_us=now_us()
    )
    released = 0
    for worker in dead:
        for run in worker.released:
            backend.hub.notify(run.id, run.last_sequence)  # wakes the pollers
        if worker.released:
            released += len(worker.released)
            logger.warning(
                "Worker %r (%s) sent no heartbeat since %s; its %s went back to SCHEDULED.",
                worker.name,
                worker.id,
                _clock(worker.last_heartbeat_time),
                _counted(len(worker.released), "claimed flow run", [r.id for r in worker.released]),
            )
    return released


async def _end_engine_runs(backend: Backend, engine: DeadEngine, policy: LivenessPolicy) -> int:
    why = _why_dead(engine, policy)
    ended = 0
    for run in engine.task_runs:
        final, message = _final_state(run, "task run", why)
        if await _propose_task_run(backend, run.id, final, message):
            ended += 1
    crashed_flows = []
    for run in engine.flow_runs:
        final, message = _final_state(run, "flow run", why)
        if await _propose_flow_run(backend, run.id, final, message):
            ended += 1
            crashed_flows.append(run.id)
    forgotten = await backend.db.run(backend.db.repository.forget_engine, engine)
    if crashed_flows or engine.task_runs:
        logger.warning(
            "An SDK process %s. Ended its unfinished runs: %s. Engine %s.%s",
            why,
            _counted(len(crashed_flows), "flow run", crashed_flows)
            + " and "
            + _counted(len(engine.task_runs), "task run", []),
            engine.id,
            " It reconnected meanwhile; its row is kept." if not forgotten else "",
        )
    return ended


def _counted(count: int, noun: str, ids: list[str]) -> str:
    listed = f" ({', '.join(ids)})" if ids else ""
    return f"{count} {noun}{'' if count == 1 else 's'}{listed}"


def _final_state(run: OrphanRun, noun: str, why: str) -> tuple[states_pb2.StateType, str]:
    """CANCELLED for a run being cancelled, CRASHED for every other unfinished run."""
    if run.state_type == rules.CANCELLING:
        return (
            states_pb2.STATE_TYPE_CANCELLED,
            f"Cancelled: the process running this {noun} {why}, while it was being cancelled.",
        )
    return (
        states_pb2.STATE_TYPE_CRASHED,
        f"Crashed: the process running this {noun} {why}. It was probably killed (kill -9, out "
        "of memory) or its machine was lost; run it again.",
    )


def _why_dead(engine: DeadEngine, policy: LivenessPolicy) -> str:
    where = f"(pid {engine.pid} on {engine.host or 'an unknown host'})"
    if engine.disconnected_time is not None:
        return (
            f"{where} lost its connection to the service at {_clock(engine.disconnected_time)} "
            f"and did not reconnect within {policy.grace_seconds:g} s "
            "(HEADWATER_ENGINE_GRACE_SECONDS)"
        )
    return (
        f"{where} was last heard from at {_clock(engine.last_seen_time)}, more than "
        f"{policy.timeout_seconds:g} s ago (HEADWATER_ENGINE_TIMEOUT_SECONDS)"
    )


def _clock(us: int) -> str:
    moment = _dt.datetime.fromtimestamp(us / 1_000_000, _dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


async def _propose_flow_run(
    backend: Backend, run_id: str, state_type: states_pb2.StateType, message: str
) -> bool:
    response = await flow_runs.set_flow_run_state(
        backend,
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id, state=states_pb2.State(type=state_type, message=message)
        ),
    )
    return bool(response.result.decision == states_pb2.DECISION_ACCEPT)


async def _propose_task_run(
    backend: Backend, run_id: str, state_type: states_pb2.StateType, message: str
) -> bool:
    response = await task_runs.set_task_run_state(
        backend,
        task_runs_pb2.SetTaskRunStateRequest(
            task_run_id=run_id, state=states_pb2.State(type=state_type, message=message)
        ),
    )
    return bool(response.result.decision == states_pb2.DECISION_ACCEPT)


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)
