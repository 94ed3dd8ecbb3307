"""Ending the runs a runner's processes left unfinished, and making sure the service hears it.

When a run's process exits before its run reached a final state (it died before it reached
the service, was killed, or was stopped because the run was cancelled), or the runner could
not start it at all, the runner proposes the run's final state (CRASHED or CANCELLED). Nobody
else will: while the runner lives, its heartbeats renew its lease on the runs it claimed, so
the service never takes such a run for orphaned. A report lost to a busy or briefly
unreachable service therefore left the run PENDING for as long as the runner lived.

So each report (`Endings.end`) is made on a thread of its own, never holding up the runner's
polls, starts or heartbeats, and retried with backoff (`FIRST_RETRY_SECONDS` doubling up to
`MAX_RETRY_SECONDS`) while the failure is one that passes (`TRANSIENT_CODES`), until the
service answers or the runner stops: `Endings.close` gives the reports left a bounded time and
names the runs it could not end. Those are not lost either: once the runner's heartbeats stop,
its lease lapses and the service puts its runs still PENDING back to SCHEDULED (runs whose
process reached the service end CRASHED when that process's connection is gone).

A retried report must not end a run that is no longer this runner's: after a long outage the
lease may have lapsed and another worker claimed the run again. Every proposal therefore
names the state it expects the run in (``expected_state_id``), first the PENDING state of this
runner's claim; if the run moved on, the report looks at the states since the claim and goes
on only if nobody claimed the run again (its own process moved it, say to RUNNING, before
dying), against the state it is in now. Each proposal carries a ``transition_id``, so one whose
answer was lost is applied once and answered the same when sent again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater._states import StateType
from headwater.exceptions import ServiceError

if TYPE_CHECKING:
    from headwater._transport.client_workers import ClaimedRun, EndAnswer, WorkerConnection

__all__ = ["TRANSIENT_CODES", "Ending", "Endings"]

logger = logging.getLogger("headwater.runner")

#: Status codes after which the same report may well succeed later: the service or the path to
#: it is down, overloaded or too slow right now, or the connection broke during the call.
TRANSIENT_CODES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED"}
)
#: The pause after a report's first failure; it doubles after each further one, up to the max.
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
#: While the runner stops, a report waits at most this long between attempts.
CLOSING_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Ending:
    """A final state to report for a run this runner claimed.

    Attributes:
        run: The claim (its PENDING state is the state the report expects first).
        state_type: "CRASHED" or "CANCELLED".
        message: The state's message, saying why.
        then: Called (on the report's thread) once the service accepted the state.
        settled: Called (on the report's thread) once the report is over, whatever its
            outcome: until then the runner still holds the run (its heartbeats list it).
    """

    run: ClaimedRun
    state_type: str
    message: str
    then: Callable[[], object] | None = None
    settled: Callable[[], object] | None = None

    @property
    def named(self) -> str:
        """The run for people: ``flow run <id> ('<name>')``."""
        return f"flow run {self.run.flow_run.id} ({self.run.flow_run.name!r})"


class Endings:
    """The reports of final states a runner has under way, each retried until it is heard.

    Args:
        connection: The channel the reports go over; closed by `close`.
    """

    def __init__(self, connection: WorkerConnection) -> None:
        self._connection = connection
        self._changed = threading.Condition()
        self._pending: dict[int, Ending] = {}
        self._numbers = itertools.count()
        #: Set when the runner stops: reports pause less between attempts.
        self._closing = threading.Event()
        #: Set once the runner stopped waiting: reports give up.
        self._abandoned = threading.Event()

    def end(
        self,
        run: ClaimedRun,
        state_type: str,
        message: str,
        then: Callable[[], object] | None = None,
        settled: Callable[[], object] | None = None,
    ) -> None:
        """Report ``state_type`` for ``run`` in the background; ``then()`` once accepted,
        ``settled()`` once the report is over (see `Ending`)."""
        ending = Ending(run, state_type, message, then, settled)
        if self._abandoned.is_set():
            logger.warning("Could not end %s %s: the runner stopped.", ending.named, state_type)
            _call(settled, ending, "Settling")
            return
        with self._changed:
            number = next(self._numbers)
            self._pending[number] = ending
        threading.Thread(
            target=self._report,
            args=(number, ending),
            name=f"headwater-end-{run.flow_run.id}",
            daemon=True,
        ).start()

    def close(self, timeout: float) -> list[Ending]:
        """Wait up to ``timeout`` seconds for the reports under way, then give up on the rest:
        logs each by id and name, says what becomes of it, and returns them."""
        self._closing.set()
        with self._changed:
            self._changed.wait_for(lambda: not self._pending, timeout=timeout)
            left = list(self._pending.values())
            self._pending.clear()
        self._abandoned.set()
        self._connection.close()
        if left:
            logger.warning(
                "Stopping without having ended %d flow run(s), the service could not be reached "
                "in time: %s. The service takes them over: those still PENDING go back to "
                "SCHEDULED for another worker once this runner's lease lapses "
                "(HEADWATER_WORKER_LEASE_SECONDS after its last heartbeat), and those whose "
                "process had reached it end CRASHED.",
                len(left),
                "; ".join(f"{ending.named} should end {ending.state_type}" for ending in left),
            )
        return left

    # ------------------------------------------------------------------ one report

    def _report(self, number: int, ending: Ending) -> None:
        try:
            accepted = self._settle(ending)
        except Exception:
            logger.exception("Could not end %s %s.", ending.named, ending.state_type)
            accepted = False
        with self._changed:
            given_up = self._pending.pop(number, None) is None  # by close(), which named it
            self._changed.notify_all()
        _call(ending.settled, ending, "Settling")
        if accepted and not given_up:
            _call(ending.then, ending, "After ending")

    def _settle(self, ending: Ending) -> bool:
        """Propose the ending until the service answers it; whether it accepted it."""
        flow_run = ending.run.flow_run
        expected = flow_run.state.id if flow_run.state is not None else None
        transition = str(uuid.uuid4())
        failures = 0
        delay = FIRST_RETRY_SECONDS
        while not self._abandoned.is_set():
            try:
                answer = self._connection.end_run(
                    flow_run.id,
                    ending.state_type,
                    ending.message,
                    transition_id=transition,
                    expected_state_id=expected or "",
                )
                if answer.accepted:
                    if failures:
                        logger.info(
                            "Ended %s %s after %d failed attempt(s).",
                            ending.named,
                            ending.state_type,
                            failures,
                        )
                    return True
                moved_to = self._still_ours(ending, answer, expected, failures)
            except ServiceError as error:
                if self._abandoned.is_set():
                    return False  # the call was cut off by close(), which names the run
                if error.code not in TRANSIENT_CODES:
                    logger.warning(
                        "Gave up ending %s %s: the service refused (%s: %s).%s",
                        ending.named,
                        ending.state_type,
                        error.code,
                        error.message or error,
                        " It no longer exists (it was deleted), so there is nothing to end."
                        if error.code == "NOT_FOUND"
                        else "",
                    )
                    return False
                failures += 1
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure
                    logger.warning(
                        "Could not end %s %s yet (%s: %s); retrying in %.1f s, until the "
                        "service answers or this runner stops.",
                        ending.named,
                        ending.state_type,
                        error.code,
                        error.message or error,
                        delay,
                    )
                self._pause(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            except ValueError:
                # The channel was closed under the call: the runner gave up waiting.
                return False
            if moved_to is None:
                return False
            expected, transition = moved_to, str(uuid.uuid4())
        return False

    def _still_ours(
        self, ending: Ending, answer: EndAnswer, expected: str | None, failures: int
    ) -> str | None:
        """After a refusal: the id of the state to propose against next, or None (logged why)
        when there is nothing more to do."""
        state = answer.state
        if state is not None and state.is_final():
            # Usually the run ended itself (FAILED) before its process exited non-zero.
            logger.log(
                logging.INFO if failures else logging.DEBUG,
                "Left %s as it is: it already ended %s, so it is not marked %s.",
                ending.named,
                state.type.value,
                ending.state_type,
            )
            return None
        if state is None or state.id == expected:
            logger.warning(
                "Gave up ending %s %s: the service refused (%s).",
                ending.named,
                ending.state_type,
                answer.reason,
            )
            return None
        claim = ending.run.flow_run
        claim_state = claim.state.id if claim.state is not None else None
        since = self._connection.states_since(claim.id, claim.last_sequence)
        if any(s.type is StateType.PENDING and s.id != claim_state for s in since):
            logger.info(
                "Left %s to its new claim: after this runner's lease on it lapsed, the service "
                "gave it to be run again, and it is %s now (%s). It is not marked %s.",
                ending.named,
                state.type.value,
                state.message or state.name,
                ending.state_type,
            )
            return None
        logger.debug(
            "The service refused to end %s %s (%s): it is %s now; proposing again against that "
            "state.",
            ending.named,
            ending.state_type,
            answer.reason,
            state.type.value,
        )
        return state.id

    def _pause(self, seconds: float) -> None:
        """Wait before the next attempt. The runner starting to stop ends the wait (one more
        attempt at once), and from then on the waits are short."""
        if self._closing.is_set():
            self._abandoned.wait(min(seconds, CLOSING_RETRY_SECONDS))
        else:
            self._closing.wait(seconds)


def _call(callback: Callable[[], object] | None, ending: Ending, doing: str) -> None:
    """Run a report's callback; its failure is logged (it runs on the report's thread)."""
    if callback is None:
        return
    try:
        callback()
    except Exception:
        logger.exception("%s %s %s:", doing, ending.named, ending.state_type)
