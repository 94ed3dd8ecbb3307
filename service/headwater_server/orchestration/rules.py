"""The orchestration rules for flow runs and task runs.

A run moves between states only through proposals, and this module decides each one: ACCEPT
(store the proposal), REJECT (keep the current state, or store a different one such as
AwaitingRetry), WAIT (propose again later) or ABORT (stop, another engine owns the run). The
rules are the same for flow runs and task runs; only the noun in the reasons differs.

Everything here is a pure function of frozen values and ``now``: the storage layer reads the run,
calls :func:`decide` and writes what the decision says, inside one locked transaction. The enum
values are the generated protobuf ints (``states_pb2.StateType``, ``states_pb2.Decision``), so a
decision goes onto the wire without translation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from headwater.v1 import states_pb2

SCHEDULED = states_pb2.STATE_TYPE_SCHEDULED
PENDING = states_pb2.STATE_TYPE_PENDING
RUNNING = states_pb2.STATE_TYPE_RUNNING
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
FAILED = states_pb2.STATE_TYPE_FAILED
CANCELLED = states_pb2.STATE_TYPE_CANCELLED
CANCELLING = states_pb2.STATE_TYPE_CANCELLING
CRASHED = states_pb2.STATE_TYPE_CRASHED
PAUSED = states_pb2.STATE_TYPE_PAUSED
NO_STATE = states_pb2.STATE_TYPE_UNSPECIFIED

ACCEPT = states_pb2.DECISION_ACCEPT
REJECT = states_pb2.DECISION_REJECT
WAIT = states_pb2.DECISION_WAIT
ABORT = states_pb2.DECISION_ABORT

ALL_STATE_TYPES: tuple[int, ...] = (
    SCHEDULED,
    PENDING,
    RUNNING,
    COMPLETED,
    FAILED,
    CANCELLED,
    CANCELLING,
    CRASHED,
    PAUSED,
)
TERMINAL_TYPES: frozenset[int] = frozenset({COMPLETED, FAILED, CANCELLED, CRASHED})
INITIAL_TYPES: frozenset[int] = frozenset({PENDING, SCHEDULED})

# Where a run may go from each non-terminal state. Anything else is refused, so a buggy or
# stale engine cannot, say, move a finished run back to RUNNING.
LEGAL_TRANSITIONS: dict[int, frozenset[int]] = {
    SCHEDULED: frozenset(
        {PENDING, RUNNING, SCHEDULED, CANCELLING, CANCELLED, CRASHED, FAILED, PAUSED}
    ),
    PENDING: frozenset(
        {RUNNING, COMPLETED, FAILED, CRASHED, CANCELLING, CANCELLED, SCHEDULED, PAUSED}
    ),
    RUNNING: frozenset({COMPLETED, FAILED, CRASHED, CANCELLING, CANCELLED, PAUSED}),
    CANCELLING: frozenset({CANCELLED, COMPLETED, FAILED, CRASHED}),
    PAUSED: frozenset({RUNNING, PENDING, SCHEDULED, CANCELLING, CANCELLED, CRASHED, FAILED}),
}

AWAITING_RETRY = "AwaitingRetry"
CACHED = "Cached"
#: The SCHEDULED state a run waits in while a concurrency limit it needs is full (Prefect's name).
AWAITING_CONCURRENCY_SLOT = "AwaitingConcurrencySlot"
#: States in which a run holds the concurrency slots it took: its code may still execute while
#: it is CANCELLING, so the slot is given back only when it leaves both.
SLOT_HOLDING_TYPES: frozenset[int] = frozenset({RUNNING, CANCELLING})
#: How long a run waiting for a slot is told to wait before proposing again. The service answers
#: such a WAIT only once a slot frees (or after holding it this long), so the engine re-proposes
#: at once; this is the pause for a client that gets the answer without the hold.
SLOT_RETRY_SECONDS = 0.0


def _type_name(state_type: int) -> str:
    if state_type == NO_STATE:
        return "no state"
    name: str = states_pb2.StateType.Name(state_type)
    return name.removeprefix("STATE_TYPE_").title()


#: Every type's display name, built once: a proposal looks several up (its reason's labels).
_TYPE_NAMES: dict[int, str] = {
    number: _type_name(number) for number in states_pb2.StateType.values()
}


def default_state_name(state_type: int) -> str:
    """The display name of a type: ``STATE_TYPE_RUNNING`` becomes ``"Running"``."""
    name = _TYPE_NAMES.get(state_type)
    return name if name is not None else _type_name(state_type)  # unknown: Name() raises


def is_terminal(state_type: int) -> bool:
    """True for COMPLETED, FAILED, CANCELLED and CRASHED: a run never leaves these by itself."""
    return state_type in TERMINAL_TYPES


@dataclass(frozen=True)
class Policy:
    """What the service enforces for a run: how often it may retry and how long it waits.

    ``retry_delays`` (one per retry, the last repeating) wins over ``retry_delay_seconds``;
    ``retry_jitter_factor`` spreads each delay over [d * (1 - f), d * (1 + f)].
    """

    retries: int = 0
    retry_delay_seconds: float = 0.0
    retry_delays: tuple[float, ...] = ()
    retry_jitter_factor: float = 0.0

    def retry_delay(self, retry: int, jitter: float = 0.0) -> float:
        """The delay before retry number ``retry`` (1 for the first), never negative.

        ``jitter`` is a draw from [-1, 1] made by the caller (the rules stay pure and testable):
        it scales the jitter factor, so -1 gives the shortest delay and 1 the longest.
        """
        if self.retry_delays:
            base = self.retry_delays[min(retry, len(self.retry_delays)) - 1]
        else:
            base = self.retry_delay_seconds
        return max(base * (1.0 + self.retry_jitter_factor * jitter), 0.0)


@dataclass(frozen=True)
class RunSnapshot:
    """The run as stored, read under the run's lock just before the decision.

    ``state_type`` is ``STATE_TYPE_UNSPECIFIED`` for a run that has no state yet (the create).
    """

    state_type: int = NO_STATE
    state_name: str = ""
    state_id: str = ""
    scheduled_time: datetime | None = None
    run_count: int = 0
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class Proposal:
    """A proposed state and the conditions the proposer attached to it."""

    type: int
    name: str = ""
    message: str = ""
    scheduled_time: datetime | None = None
    expected_state_id: str = ""
    force: bool = False


@dataclass(frozen=True)
class CacheHit:
    """A valid cache entry for the proposing task run's cache key: a COMPLETED task run."""

    task_run_id: str
    """The task run whose result is reused."""


@dataclass(frozen=True)
class FullLimit:
    """A concurrency limit the run needs a slot of, found full under its lock."""

    what: str
    """The limit, for people: ``tag 'database'`` or ``deployment 'etl/nightly'``."""
    limit: int
    active: int
    """How many slots are taken."""
    cancel_new: bool = False
    """True for a deployment whose collision strategy is CANCEL_NEW: the run ends CANCELLED."""


@dataclass(frozen=True)
class StoredState:
    """A state the storage layer must write as the run's new current state."""

    type: int
    name: str
    message: str = ""
    scheduled_time: datetime | None = None


@dataclass(frozen=True)
class RuleDecision:
    """The answer to a proposal.

    Attributes:
        decision: ``states_pb2.DECISION_*``.
        store: the state to write, or None to keep the current state unchanged. An ACCEPT
            stores the proposal; a REJECT may store something else (AwaitingRetry).
        reason: why, in words the person reading the run history can act on.
        wait_seconds: for WAIT, how long until proposing again makes sense.
        increments_run_count: True when the run enters RUNNING from another state.
        proposal_matched: True when ``store`` is the proposal itself (so its result and failure
            payload belong with it).
        cached_from: For a cache hit, the task run whose result the stored state carries.
    """

    decision: int
    store: StoredState | None
    reason: str
    wait_seconds: float = 0.0
    increments_run_count: bool = False
    proposal_matched: bool = False
    cached_from: str = ""


def _label(state_type: int, name: str) -> str:
    """``Running`` or ``Retrying (RUNNING)`` for reasons: the name people know plus the type."""
    type_name = default_state_name(state_type)
    if not name or name == type_name:
        return type_name
    return f"{name} ({type_name})"


def _accept(current: RunSnapshot, proposal: Proposal, name: str, noun: str) -> RuleDecision:
    stored = StoredState(
        type=proposal.type,
        name=name,
        message=proposal.message,
        scheduled_time=proposal.scheduled_time,
    )
    if current.state_type == NO_STATE:
        reason = f"The {noun} was created in state {_label(proposal.type, name)}."
    else:
        reason = (
            f"The {noun} moved from {_label(current.state_type, current.state_name)} "
            f"to {_label(proposal.type, name)}."
        )
    return RuleDecision(
        decision=ACCEPT,
        store=stored,
        reason=reason,
        increments_run_count=proposal.type == RUNNING and current.state_type != RUNNING,
        proposal_matched=True,
    )


def _reject(reason: str) -> RuleDecision:
    return RuleDecision(decision=REJECT, store=None, reason=reason)


def decide(
    current: RunSnapshot,
    proposal: Proposal,
    now: datetime,
    noun: str = "flow run",
    *,
    cache_hit: CacheHit | None = None,
    jitter: float = 0.0,
    full_limit: FullLimit | None = None,
) -> RuleDecision:
    """Decide what happens to ``proposal`` given the run as it is ``now``.

    The checks run in a fixed order, each one a rule of the service contract: optimistic
    concurrency, operator force, the initial state, terminal states, duplicate starts,
    legality, scheduled times, the cache, and finally the retry policy. ``noun`` ("flow run" or
    "task run") only changes the wording of reasons.

    Args:
        current: the run as stored, read under its lock.
        proposal: the proposed state.
        now: the current time (timezone-aware UTC), passed in so tests control the clock.
        noun: what the run is called in reasons.
        cache_hit: a valid cache entry for the run's cache key (task runs that cache; the
            caller looks it up only for RUNNING proposals): RUNNING is then answered with
            COMPLETED "Cached" instead, as the run's code need not execute.
        jitter: a draw from [-1, 1] for the retry delay's jitter (see :meth:`Policy.retry_delay`).
        full_limit: a concurrency limit of the run that has no free slot (the caller looks
            limits up only for a run entering RUNNING): the run waits AwaitingConcurrencySlot,
            or ends CANCELLED for a deployment limit with the CANCEL_NEW strategy.

    Returns:
        The decision, including the state to store (if any).
    """
    name = proposal.name or default_state_name(proposal.type)
    current_label = _label(current.state_type, current.state_name)
    proposed_label = _label(proposal.type, name)

    if proposal.expected_state_id and proposal.expected_state_id != current.state_id:
        return _reject(
            f"The {noun} is no longer in the state you expected: expected state id "
            f"'{proposal.expected_state_id}', but its current state is {current_label} "
            f"(id '{current.state_id}'). Read the run again and decide from its current state."
        )

    if proposal.force:
        decision = _accept(current, proposal, name, noun)
        return RuleDecision(
            decision=ACCEPT,
            store=decision.store,
            reason=f"Forced by the caller: {decision.reason}",
            increments_run_count=decision.increments_run_count,
            proposal_matched=True,
        )

    if current.state_type == NO_STATE:
        if proposal.type in INITIAL_TYPES:
            return _accept(current, proposal, name, noun)
        return _reject(
            f"A new {noun} must start in PENDING or SCHEDULED, not {proposed_label}. "
            f"Create it without a state (PENDING) or SCHEDULED with a scheduled time, then "
            f"propose {proposed_label}."
        )

    if is_terminal(current.state_type):
        return _reject(
            f"The {noun} already finished in state {current_label}; a finished run does not "
            f"change state. Start a new run instead (or force the change as an operator)."
        )

    if proposal.type == current.state_type and proposal.type in (RUNNING, PENDING):
        what = "is already running" if proposal.type == RUNNING else "was already picked up"
        return RuleDecision(
            decision=ABORT,
            store=None,
            reason=(
                f"The {noun} {what} in another engine (state {current_label}); stop here "
                f"and leave it to that engine."
            ),
        )

    if proposal.type not in LEGAL_TRANSITIONS[current.state_type]:
        return _reject(
            f"A {noun} in state {current_label} cannot move to {proposed_label}; it stays "
            f"{current_label}. Propose a state it can move to from here."
        )

    if (
        current.state_type in (SCHEDULED, PAUSED)
        and proposal.type in (PENDING, RUNNING)
        and current.scheduled_time is not None
        and current.scheduled_time > now
    ):
        wait = (current.scheduled_time - now).total_seconds()
        return RuleDecision(
            decision=WAIT,
            store=None,
            reason=(
                f"The {noun} is {current_label} until "
                f"{current.scheduled_time.isoformat(timespec='milliseconds')}; propose "
                f"{proposed_label} again in {wait:.3f} s."
            ),
            wait_seconds=wait,
        )

    if cache_hit is not None and proposal.type == RUNNING:
        return RuleDecision(
            decision=REJECT,
            store=StoredState(
                type=COMPLETED,
                name=CACHED,
                message=f"Cached: the result of {noun} '{cache_hit.task_run_id}'.",
            ),
            reason=(
                f"A valid cache entry exists for this {noun}'s cache key (the result of "
                f"{noun} '{cache_hit.task_run_id}'); it is COMPLETED (Cached) without running. "
                f"Refresh the cache to run it anyway."
            ),
            cached_from=cache_hit.task_run_id,
        )

    if full_limit is not None and proposal.type == RUNNING:
        return _no_free_slot(current, full_limit, noun)

    # A RUNNING run has run at least once; max() guards a run forced into RUNNING oddly.
    attempt = max(current.run_count, 1)
    if (
        current.state_type == RUNNING
        and proposal.type == FAILED
        and attempt <= current.policy.retries
    ):
        retry = attempt
        total = current.policy.retries
        delay = current.policy.retry_delay(retry, jitter)
        scheduled = now + timedelta(seconds=delay)
        failure = proposal.message or "no failure message"
        return RuleDecision(
            decision=REJECT,
            store=StoredState(
                type=SCHEDULED,
                name=AWAITING_RETRY,
                message=f"Retry {retry} of {total} after: {failure}",
                scheduled_time=scheduled,
            ),
            reason=(
                f"The {noun} failed on attempt {attempt} and has retries left "
                f"(retry {retry} of {total}); it is AwaitingRetry until "
                f"{scheduled.isoformat(timespec='milliseconds')}. Propose RUNNING (Retrying) "
                f"to run it again."
            ),
        )

    return _accept(current, proposal, name, noun)


def plain_completion(
    current_name: str, proposal: Proposal, noun: str = "task run"
) -> RuleDecision | None:
    """:func:`decide` for the commonest proposal of all: COMPLETED for a RUNNING run, made
    without conditions (no expected state id, not forced). Every rule lets it through (a
    RUNNING run is neither new nor finished, RUNNING -> COMPLETED is legal, the cache, the
    limits and the retries judge other proposals), so it is accepted, with the reason
    :func:`decide` gives; the storage layer's lean path calls this instead of building a
    snapshot for :func:`decide`. None when the proposal is not that one (then call
    :func:`decide`).
    """
    if proposal.type != COMPLETED or proposal.force or proposal.expected_state_id:
        return None
    if proposal.scheduled_time is None:
        name, message = proposal.name, proposal.message
        return _plain_accept(RUNNING, current_name, COMPLETED, name, message, noun)
    return _accept(
        RunSnapshot(state_type=RUNNING, state_name=current_name),
        proposal,
        proposal.name or _TYPE_NAMES[COMPLETED],
        noun,
    )


def plain_start(current_type: int, current_name: str, proposal: Proposal) -> RuleDecision | None:
    """:func:`decide` for a task run's commonest start: RUNNING, without conditions, name or
    message, for a run in plain PENDING that the caller found under no concurrency limit and
    with no cache key (so no cache entry and no limit can answer instead). PENDING -> RUNNING
    is legal, there is no scheduled time to wait for and retries judge failures only, so it is
    accepted, with the reason :func:`decide` gives. None when it is not that proposal.
    """
    if (
        current_type != PENDING
        or proposal.type != RUNNING
        or proposal.name
        or proposal.message
        or proposal.force
        or proposal.expected_state_id
        or proposal.scheduled_time is not None
    ):
        return None
    return _plain_accept(PENDING, current_name, RUNNING, "", "", "task run")


@functools.lru_cache(maxsize=1024)
def _plain_accept(
    current_type: int, current_name: str, proposed: int, name: str, message: str, noun: str
) -> RuleDecision:
    """The (immutable) acceptance of a plain proposal, made once per distinct wording: a
    thousand task runs ending alike share one decision instead of building one each."""
    return _accept(
        RunSnapshot(state_type=current_type, state_name=current_name),
        Proposal(type=proposed, name=name, message=message),
        name or _TYPE_NAMES[proposed],
        noun,
    )


def _no_free_slot(current: RunSnapshot, full: FullLimit, noun: str) -> RuleDecision:
    """WAIT in AwaitingConcurrencySlot, or CANCELLED for CANCEL_NEW: the limit is full."""
    taken = f"{full.active} of its {full.limit} slot{'' if full.limit == 1 else 's'} taken"
    if full.cancel_new:
        message = (
            f"Cancelled: the concurrency limit of {full.what} is reached ({taken}) and its "
            "collision strategy is CANCEL_NEW, so this run was not started."
        )
        return RuleDecision(
            decision=REJECT,
            store=StoredState(type=CANCELLED, name=default_state_name(CANCELLED), message=message),
            reason=message,
        )
    waiting = current.state_type == SCHEDULED and current.state_name == AWAITING_CONCURRENCY_SLOT
    message = f"Waiting for a slot of the concurrency limit of {full.what} ({taken})."
    return RuleDecision(
        decision=WAIT,
        # Stored once: proposals repeated while it waits leave the history alone.
        store=None
        if waiting
        else StoredState(type=SCHEDULED, name=AWAITING_CONCURRENCY_SLOT, message=message),
        reason=(
            f"The {noun} waits for a slot: the concurrency limit of {full.what} is reached "
            f"({taken}). Propose RUNNING again; the service answers this WAIT once a slot frees."
        ),
        wait_seconds=SLOT_RETRY_SECONDS,
    )


def cancellation_target(current_type: int) -> int | None:
    """The state a cancel request moves a run to, or None when there is nothing to change.

    A run that is not executing is CANCELLED at once; a RUNNING run goes to CANCELLING so its
    engine can stop the code and report CANCELLED itself; a CANCELLING run stays as it is.
    Finished runs are the caller's error (FAILED_PRECONDITION), checked with :func:`is_terminal`.

    Raises:
        ValueError: for a terminal or unknown state type.
    """
    if current_type in (SCHEDULED, PENDING, PAUSED):
        return CANCELLED
    if current_type == RUNNING:
        return CANCELLING
    if current_type == CANCELLING:
        return None
    raise ValueError(f"a run in state {default_state_name(current_type)} cannot be cancelled")
