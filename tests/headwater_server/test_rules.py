"""The orchestration rules, exhaustively: every (current, proposed) pair and every special path.

The expected table is written out by hand from the service contract (notes/service.md), not
derived from the module's own tables, so a change to the rules has to change this file too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from headwater.v1 import states_pb2
from headwater_server.orchestration import rules
from headwater_server.orchestration.rules import Policy, Proposal, RunSnapshot, decide

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

T = {
    "NONE": states_pb2.STATE_TYPE_UNSPECIFIED,
    "SCHEDULED": states_pb2.STATE_TYPE_SCHEDULED,
    "PENDING": states_pb2.STATE_TYPE_PENDING,
    "RUNNING": states_pb2.STATE_TYPE_RUNNING,
    "COMPLETED": states_pb2.STATE_TYPE_COMPLETED,
    "FAILED": states_pb2.STATE_TYPE_FAILED,
    "CANCELLED": states_pb2.STATE_TYPE_CANCELLED,
    "CANCELLING": states_pb2.STATE_TYPE_CANCELLING,
    "CRASHED": states_pb2.STATE_TYPE_CRASHED,
    "PAUSED": states_pb2.STATE_TYPE_PAUSED,
}
D = {
    "A": states_pb2.DECISION_ACCEPT,
    "R": states_pb2.DECISION_REJECT,
    "W": states_pb2.DECISION_WAIT,
    "X": states_pb2.DECISION_ABORT,
}

# Rows: current state ("NONE" = the run has no state yet). Columns, in this order:
# SCHEDULED PENDING RUNNING COMPLETED FAILED CANCELLED CANCELLING CRASHED PAUSED
COLUMNS = [
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CANCELLING",
    "CRASHED",
    "PAUSED",
]
EXPECTED = {
    #              SCH  PEN  RUN  COM  FAI  CAN  CNG  CRA  PAU
    "NONE":       "A    A    R    R    R    R    R    R    R",
    "SCHEDULED":  "A    A    A    R    A    A    A    A    A",
    "PENDING":    "A    X    A    A    A    A    A    A    A",
    "RUNNING":    "R    R    X    A    A    A    A    A    A",
    "COMPLETED":  "R    R    R    R    R    R    R    R    R",
    "FAILED":     "R    R    R    R    R    R    R    R    R",
    "CANCELLED":  "R    R    R    R    R    R    R    R    R",
    "CANCELLING": "R    R    R    A    A    A    R    A    R",
    "CRASHED":    "R    R    R    R    R    R    R    R    R",
    "PAUSED":     "A    A    A    R    A    A    A    A    R",
}  # fmt: skip

PAIRS = [
    (current, proposed, expected)
    for current, row in EXPECTED.items()
    for proposed, expected in zip(COLUMNS, row.split(), strict=True)
]


def snapshot(state: str, **kwargs: object) -> RunSnapshot:
    values: dict[str, object] = {
        "state_type": T[state],
        "state_name": "" if state == "NONE" else rules.default_state_name(T[state]),
        "state_id": "" if state == "NONE" else "state-1",
    }
    values.update(kwargs)
    return RunSnapshot(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "proposed", "expected"), PAIRS)
def test_every_transition(current: str, proposed: str, expected: str) -> None:
    decision = decide(snapshot(current), Proposal(type=T[proposed]), NOW)

    assert decision.decision == D[expected], decision.reason
    if expected == "A":
        assert decision.store is not None
        assert decision.store.type == T[proposed]
        assert decision.proposal_matched
    else:
        # Nothing is written for a plain REJECT, a WAIT or an ABORT.
        assert decision.store is None
    assert decision.reason
    entering_running = proposed == "RUNNING" and current != "RUNNING" and expected == "A"
    assert decision.increments_run_count is entering_running


@pytest.mark.parametrize("terminal", ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"])
def test_terminal_reason_names_the_final_state(terminal: str) -> None:
    decision = decide(snapshot(terminal), Proposal(type=T["RUNNING"]), NOW)

    assert decision.decision == states_pb2.DECISION_REJECT
    assert "already finished" in decision.reason
    assert rules.default_state_name(T[terminal]) in decision.reason


def test_illegal_transition_reason_names_both_states() -> None:
    decision = decide(snapshot("RUNNING"), Proposal(type=T["PENDING"]), NOW)

    assert decision.decision == states_pb2.DECISION_REJECT
    assert "Running" in decision.reason and "Pending" in decision.reason


def test_running_to_running_aborts_as_another_engine() -> None:
    decision = decide(snapshot("RUNNING", run_count=1), Proposal(type=T["RUNNING"]), NOW)

    assert decision.decision == states_pb2.DECISION_ABORT
    assert "already running in another engine" in decision.reason
    assert decision.store is None
    assert not decision.increments_run_count


def test_pending_to_pending_aborts() -> None:
    decision = decide(snapshot("PENDING"), Proposal(type=T["PENDING"]), NOW)

    assert decision.decision == states_pb2.DECISION_ABORT
    assert "already picked up" in decision.reason


def test_task_runs_use_their_noun() -> None:
    decision = decide(snapshot("RUNNING"), Proposal(type=T["RUNNING"]), NOW, noun="task run")

    assert decision.reason.startswith("The task run ")


@pytest.mark.parametrize("current", ["SCHEDULED", "PAUSED"])
@pytest.mark.parametrize("proposed", ["PENDING", "RUNNING"])
def test_wait_until_scheduled_time(current: str, proposed: str) -> None:
    later = NOW + timedelta(seconds=42.5)
    decision = decide(snapshot(current, scheduled_time=later), Proposal(type=T[proposed]), NOW)

    assert decision.decision == states_pb2.DECISION_WAIT
    assert decision.wait_seconds == pytest.approx(42.5)
    assert decision.store is None
    assert "42.500 s" in decision.reason


def test_scheduled_time_reached_accepts() -> None:
    decision = decide(snapshot("SCHEDULED", scheduled_time=NOW), Proposal(type=T["RUNNING"]), NOW)

    assert decision.decision == states_pb2.DECISION_ACCEPT
    assert decision.increments_run_count


def test_future_schedule_does_not_block_cancellation() -> None:
    later = NOW + timedelta(hours=1)
    decision = decide(
        snapshot("SCHEDULED", scheduled_time=later), Proposal(type=T["CANCELLED"]), NOW
    )

    assert decision.decision == states_pb2.DECISION_ACCEPT


def test_retry_path_end_to_end() -> None:
    """FAILED with retries left -> AwaitingRetry; WAIT; Retrying ACCEPT; FAILED when exhausted."""
    policy = Policy(retries=2, retry_delay_seconds=10)

    # Attempt 1 fails: the service stores AwaitingRetry instead and says REJECT.
    first = decide(
        snapshot("RUNNING", run_count=1, policy=policy),
        Proposal(type=T["FAILED"], message="boom"),
        NOW,
    )
    assert first.decision == states_pb2.DECISION_REJECT
    assert first.store is not None
    assert first.store.type == T["SCHEDULED"]
    assert first.store.name == "AwaitingRetry"
    assert first.store.scheduled_time == NOW + timedelta(seconds=10)
    assert first.store.message == "Retry 1 of 2 after: boom"
    assert not first.proposal_matched
    assert not first.increments_run_count

    # The engine proposes Retrying too early: WAIT for the rest of the delay.
    awaiting = snapshot(
        "SCHEDULED",
        state_name="AwaitingRetry",
        scheduled_time=first.store.scheduled_time,
        run_count=1,
        policy=policy,
    )
    early = decide(
        awaiting, Proposal(type=T["RUNNING"], name="Retrying"), NOW + timedelta(seconds=4)
    )
    assert early.decision == states_pb2.DECISION_WAIT
    assert early.wait_seconds == pytest.approx(6)

    # After the delay: accepted, and the run count goes up.
    on_time = decide(
        awaiting, Proposal(type=T["RUNNING"], name="Retrying"), NOW + timedelta(seconds=10)
    )
    assert on_time.decision == states_pb2.DECISION_ACCEPT
    assert on_time.store is not None and on_time.store.name == "Retrying"
    assert on_time.increments_run_count

    # Attempt 2 fails: retry 2 of 2.
    second = decide(
        snapshot("RUNNING", run_count=2, policy=policy),
        Proposal(type=T["FAILED"], message="boom again"),
        NOW,
    )
    assert second.decision == states_pb2.DECISION_REJECT
    assert second.store is not None
    assert second.store.message == "Retry 2 of 2 after: boom again"

    # Attempt 3 fails with no retries left: FAILED is stored as proposed.
    last = decide(
        snapshot("RUNNING", run_count=3, policy=policy),
        Proposal(type=T["FAILED"], message="boom for good"),
        NOW,
    )
    assert last.decision == states_pb2.DECISION_ACCEPT
    assert last.store is not None
    assert last.store.type == T["FAILED"]
    assert last.store.message == "boom for good"


def test_retry_with_zero_delay_is_due_at_once() -> None:
    decision = decide(
        snapshot("RUNNING", run_count=1, policy=Policy(retries=1)),
        Proposal(type=T["FAILED"]),
        NOW,
    )

    assert decision.store is not None
    assert decision.store.scheduled_time == NOW
    assert decision.store.message == "Retry 1 of 1 after: no failure message"


def test_crashed_is_not_retried() -> None:
    decision = decide(
        snapshot("RUNNING", run_count=1, policy=Policy(retries=3)),
        Proposal(type=T["CRASHED"]),
        NOW,
    )

    assert decision.decision == states_pb2.DECISION_ACCEPT
    assert decision.store is not None and decision.store.type == T["CRASHED"]


def test_expected_state_id_mismatch_rejects_and_keeps_state() -> None:
    decision = decide(
        snapshot("PENDING", state_id="current-id"),
        Proposal(type=T["RUNNING"], expected_state_id="stale-id"),
        NOW,
    )

    assert decision.decision == states_pb2.DECISION_REJECT
    assert decision.store is None
    assert "stale-id" in decision.reason and "current-id" in decision.reason


def test_expected_state_id_match_proceeds() -> None:
    decision = decide(
        snapshot("PENDING", state_id="current-id"),
        Proposal(type=T["RUNNING"], expected_state_id="current-id"),
        NOW,
    )

    assert decision.decision == states_pb2.DECISION_ACCEPT


def test_expected_state_id_is_checked_even_with_force() -> None:
    decision = decide(
        snapshot("COMPLETED", state_id="current-id"),
        Proposal(type=T["RUNNING"], expected_state_id="stale-id", force=True),
        NOW,
    )

    assert decision.decision == states_pb2.DECISION_REJECT


@pytest.mark.parametrize(("current", "proposed"), [(c, p) for c, p, _ in PAIRS if c != "NONE"])
def test_force_accepts_anything(current: str, proposed: str) -> None:
    decision = decide(snapshot(current), Proposal(type=T[proposed], force=True), NOW)

    assert decision.decision == states_pb2.DECISION_ACCEPT
    assert decision.store is not None and decision.store.type == T[proposed]
    assert decision.reason.startswith("Forced")


def test_force_skips_the_retry_policy() -> None:
    decision = decide(
        snapshot("RUNNING", run_count=1, policy=Policy(retries=5)),
        Proposal(type=T["FAILED"], force=True),
        NOW,
    )

    assert decision.store is not None and decision.store.type == T["FAILED"]


@pytest.mark.parametrize(
    ("state_type", "name"),
    [
        ("SCHEDULED", "Scheduled"),
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
        ("FAILED", "Failed"),
        ("CANCELLED", "Cancelled"),
        ("CANCELLING", "Cancelling"),
        ("CRASHED", "Crashed"),
        ("PAUSED", "Paused"),
    ],
)
def test_default_names(state_type: str, name: str) -> None:
    assert rules.default_state_name(T[state_type]) == name
    decision = decide(snapshot("NONE"), Proposal(type=T["PENDING"]), NOW)
    assert decision.store is not None and decision.store.name == "Pending"
    forced = decide(snapshot("PENDING"), Proposal(type=T[state_type], force=True), NOW)
    assert forced.store is not None and forced.store.name == name


def test_given_name_is_kept() -> None:
    decision = decide(snapshot("PENDING"), Proposal(type=T["COMPLETED"], name="Cached"), NOW)

    assert decision.store is not None and decision.store.name == "Cached"


def test_decisions_are_frozen() -> None:
    decision = decide(snapshot("PENDING"), Proposal(type=T["RUNNING"]), NOW)

    with pytest.raises(AttributeError):
        decision.decision = states_pb2.DECISION_REJECT  # type: ignore[misc]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("SCHEDULED", "CANCELLED"),
        ("PENDING", "CANCELLED"),
        ("PAUSED", "CANCELLED"),
        ("RUNNING", "CANCELLING"),
        ("CANCELLING", None),
    ],
)
def test_cancellation_target(current: str, target: str | None) -> None:
    expected = None if target is None else T[target]
    assert rules.cancellation_target(T[current]) == expected


@pytest.mark.parametrize("terminal", ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"])
def test_finished_runs_cannot_be_cancelled(terminal: str) -> None:
    with pytest.raises(ValueError, match="cannot be cancelled"):
        rules.cancellation_target(T[terminal])


def test_the_service_and_the_sdk_agree_on_the_final_states() -> None:
    # Each side defines the set once (the SDK cannot import the service, nor the service the
    # SDK); this is where a state added on one side only would show.
    from headwater import FINAL_STATE_TYPES

    sdk_final = {
        states_pb2.StateType.Value(f"STATE_TYPE_{state_type.value}")
        for state_type in FINAL_STATE_TYPES
    }
    assert sdk_final == rules.TERMINAL_TYPES
    assert {t for t in rules.ALL_STATE_TYPES if rules.is_terminal(t)} == rules.TERMINAL_TYPES


@pytest.mark.parametrize(("retry", "delay"), [(1, 5.0), (2, 60.0), (3, 600.0), (4, 600.0)])
def test_a_delay_list_gives_one_delay_per_retry_and_repeats_its_last(
    retry: int, delay: float
) -> None:
    policy = Policy(retries=4, retry_delay_seconds=1.0, retry_delays=(5.0, 60.0, 600.0))
    assert policy.retry_delay(retry) == delay
    current = snapshot("RUNNING", run_count=retry, policy=policy)
    decision = decide(current, Proposal(type=T["FAILED"]), NOW)
    assert decision.store is not None
    assert decision.store.scheduled_time == NOW + timedelta(seconds=delay)


@pytest.mark.parametrize(("jitter", "delay"), [(-1.0, 50.0), (0.0, 100.0), (1.0, 150.0)])
def test_jitter_spreads_the_delay_by_its_factor(jitter: float, delay: float) -> None:
    policy = Policy(retries=1, retry_delay_seconds=100.0, retry_jitter_factor=0.5)
    current = snapshot("RUNNING", run_count=1, policy=policy)
    decision = decide(current, Proposal(type=T["FAILED"]), NOW, jitter=jitter)
    assert decision.store is not None
    assert decision.store.scheduled_time == NOW + timedelta(seconds=delay)


def test_a_large_jitter_never_makes_a_delay_negative() -> None:
    assert Policy(retry_delay_seconds=10.0, retry_jitter_factor=3.0).retry_delay(1, -1.0) == 0.0


@pytest.mark.parametrize("current", ["PENDING", "SCHEDULED"])
def test_a_cache_hit_answers_running_with_cached(current: str) -> None:
    hit = rules.CacheHit(task_run_id="abc")
    decision = decide(
        snapshot(current), Proposal(type=T["RUNNING"]), NOW, "task run", cache_hit=hit
    )
    assert decision.decision == D["R"]
    assert decision.store == rules.StoredState(
        type=T["COMPLETED"], name="Cached", message="Cached: the result of task run 'abc'."
    )
    assert (decision.cached_from, decision.increments_run_count) == ("abc", False)


def test_a_cache_hit_does_not_override_the_other_rules() -> None:
    hit = rules.CacheHit(task_run_id="abc")
    running = decide(snapshot("RUNNING"), Proposal(type=T["RUNNING"]), NOW, cache_hit=hit)
    assert running.decision == D["X"]  # another engine runs it
    done = decide(snapshot("PENDING"), Proposal(type=T["COMPLETED"]), NOW, cache_hit=hit)
    assert (done.decision, done.cached_from) == (D["A"], "")  # only RUNNING looks at the cache
    later = NOW + timedelta(seconds=5)
    waiting = decide(
        snapshot("SCHEDULED", scheduled_time=later), Proposal(type=T["RUNNING"]), NOW, cache_hit=hit
    )
    assert waiting.decision == D["W"]


# ---------------------------------------------------------------- concurrency slots

FULL_TAG = rules.FullLimit(what="tag 'db'", limit=5, active=5)


@pytest.mark.parametrize("current", ["PENDING", "SCHEDULED", "PAUSED"])
def test_a_full_limit_makes_running_wait_awaiting_a_concurrency_slot(current: str) -> None:
    decision = decide(
        RunSnapshot(state_type=T[current]),
        Proposal(type=T["RUNNING"]),
        NOW,
        "task run",
        full_limit=FULL_TAG,
    )
    assert decision.decision == D["W"]
    assert decision.store == rules.StoredState(
        type=T["SCHEDULED"],
        name="AwaitingConcurrencySlot",
        message="Waiting for a slot of the concurrency limit of tag 'db' (5 of its 5 slots taken).",
    )
    assert decision.wait_seconds == rules.SLOT_RETRY_SECONDS
    assert "tag 'db'" in decision.reason
    assert not decision.increments_run_count


def test_a_run_already_awaiting_a_slot_waits_without_a_new_state() -> None:
    current = RunSnapshot(state_type=T["SCHEDULED"], state_name="AwaitingConcurrencySlot")
    decision = decide(current, Proposal(type=T["RUNNING"]), NOW, full_limit=FULL_TAG)
    assert decision.decision == D["W"]
    assert decision.store is None


def test_a_full_deployment_limit_with_cancel_new_ends_the_run_cancelled() -> None:
    full = rules.FullLimit(what="deployment 'etl/nightly'", limit=1, active=1, cancel_new=True)
    decision = decide(
        RunSnapshot(state_type=T["PENDING"]), Proposal(type=T["RUNNING"]), NOW, full_limit=full
    )
    assert decision.decision == D["R"]
    assert decision.store is not None
    assert decision.store.type == T["CANCELLED"]
    assert "CANCEL_NEW" in decision.store.message
    assert "deployment 'etl/nightly'" in decision.store.message


def test_a_full_limit_does_not_touch_other_proposals_or_forced_ones() -> None:
    pending = RunSnapshot(state_type=T["PENDING"])
    failed = decide(pending, Proposal(type=T["FAILED"]), NOW, full_limit=FULL_TAG)
    assert failed.decision == D["A"]
    forced = decide(pending, Proposal(type=T["RUNNING"], force=True), NOW, full_limit=FULL_TAG)
    assert forced.decision == D["A"]


def test_a_cache_hit_completes_without_waiting_for_a_slot() -> None:
    decision = decide(
        RunSnapshot(state_type=T["PENDING"]),
        Proposal(type=T["RUNNING"]),
        NOW,
        "task run",
        cache_hit=rules.CacheHit("0b1c2d3e-0000-4000-8000-000000000009"),
        full_limit=FULL_TAG,
    )
    assert decision.store is not None
    assert decision.store.name == "Cached"


@pytest.mark.parametrize("running_name", ["Running", "Retrying"])
@pytest.mark.parametrize("name", ["", "Done"])
def test_a_plain_completion_is_what_decide_answers(running_name: str, name: str) -> None:
    """The storage layer's shortcut for a task's end gives exactly decide's answer."""
    current = RunSnapshot(state_type=T["RUNNING"], state_name=running_name, state_id="s")
    proposal = Proposal(type=T["COMPLETED"], name=name, message="ok")
    shortcut = rules.plain_completion(running_name, proposal)
    assert shortcut == decide(current, proposal, NOW, "task run")
    assert shortcut is not None and shortcut.decision == D["A"]


@pytest.mark.parametrize(
    "proposal",
    [
        Proposal(type=T["FAILED"]),
        Proposal(type=T["RUNNING"]),
        Proposal(type=T["CANCELLED"]),
        Proposal(type=T["COMPLETED"], force=True),
        Proposal(type=T["COMPLETED"], expected_state_id="another"),
    ],
)
def test_anything_but_a_plain_completion_is_left_to_decide(proposal: Proposal) -> None:
    assert rules.plain_completion("Running", proposal) is None


def test_a_plain_completion_made_twice_is_still_what_decide_answers() -> None:
    """The shortcut keeps one decision per wording: the second is the first, and both right."""
    current = RunSnapshot(state_type=T["RUNNING"], state_name="Running", state_id="s")
    proposal = Proposal(type=T["COMPLETED"])
    first = rules.plain_completion("Running", proposal)
    assert first is rules.plain_completion("Running", Proposal(type=T["COMPLETED"]))
    assert first == decide(current, proposal, NOW, "task run")


@pytest.mark.parametrize("pending_name", ["Pending", "Queued"])
def test_a_plain_start_is_what_decide_answers(pending_name: str) -> None:
    """The storage layer's shortcut for a task's start (no cache key, no limit) gives exactly
    decide's answer for a run in PENDING, however many runs it has had."""
    proposal = Proposal(type=T["RUNNING"])
    shortcut = rules.plain_start(T["PENDING"], pending_name, proposal)
    for run_count in (0, 2):
        current = RunSnapshot(
            state_type=T["PENDING"], state_name=pending_name, state_id="s", run_count=run_count
        )
        assert shortcut == decide(current, proposal, NOW, "task run")
    assert shortcut is not None and shortcut.decision == D["A"]
    assert shortcut.increments_run_count


@pytest.mark.parametrize(
    ("current_type", "proposal"),
    [
        (T["SCHEDULED"], Proposal(type=T["RUNNING"])),
        (T["PENDING"], Proposal(type=T["RUNNING"], name="Retrying")),
        (T["PENDING"], Proposal(type=T["RUNNING"], message="go")),
        (T["PENDING"], Proposal(type=T["RUNNING"], force=True)),
        (T["PENDING"], Proposal(type=T["RUNNING"], expected_state_id="another")),
        (T["PENDING"], Proposal(type=T["RUNNING"], scheduled_time=NOW)),
        (T["PENDING"], Proposal(type=T["FAILED"])),
    ],
)
def test_anything_but_a_plain_start_is_left_to_decide(
    current_type: int, proposal: Proposal
) -> None:
    assert rules.plain_start(current_type, "Pending", proposal) is None
