"""Orchestration: the rules that decide what happens to a proposed run state.

Pure functions over plain values, with no gRPC or SQL in them, so every transition is unit-tested
on its own and the storage layer only has to apply the decision.
"""

from headwater_server.orchestration.rules import (
    Policy,
    Proposal,
    RuleDecision,
    RunSnapshot,
    StoredState,
    cancellation_target,
    decide,
    default_state_name,
    is_terminal,
)

__all__ = [
    "Policy",
    "Proposal",
    "RuleDecision",
    "RunSnapshot",
    "StoredState",
    "cancellation_target",
    "decide",
    "default_state_name",
    "is_terminal",
]
