"""Orchestration: the rules that decide what happens to a proposed run state.

Pure functions over plain values, with no gRPC or SQL in them, so every transition is unit-tested
on its own and the storage layer only has to apply the decision. ``rules.TERMINAL_TYPES`` (with
``is_terminal``) is the service's one definition of the final states.
"""

from headwater_server.orchestration.rules import (
    TERMINAL_TYPES,
    CacheHit,
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
    "TERMINAL_TYPES",
    "CacheHit",
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
