"""The parent's answer when the process running a task died: the task run ends CRASHED.

A task run reports its own states from the process it runs in, so when that process dies
mid-run (``os._exit``, SIGKILL, the out-of-memory killer, a Dask worker lost) nobody is left to
end it, and it would stay RUNNING forever. The parent chose the run's id when the task was
submitted, so it proposes CRASHED for it, with a message naming the process, and the future's
result raises `CrashedRun` with the same message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.exceptions import CrashedRun, ObjectNotFound

if TYPE_CHECKING:
    from headwater._states import State
    from headwater._transport.interface import Transport

__all__ = ["crash_task_run", "process_died", "stopped_short"]


def process_died(where: str, detail: str = "") -> str:
    """The message of a task run whose process died: ``where`` names the process."""
    message = (
        f"The process running this task ({where}) died before the task finished: it exited "
        "or was killed (os._exit, a signal, or out of memory)."
    )
    return f"{message} {detail}" if detail else message


def stopped_short(where: str, error: BaseException | None) -> str:
    """The message of a task run whose process lives but did not report a final state."""
    if error is None:
        return (
            f"The task's process ({where}) sent back no final state for it: another process "
            "ran it first and the service refused a second run."
        )
    return (
        f"The task's process ({where}) raised before the task run reported a final state: "
        f"{type(error).__name__}: {error}"
    )


def crash_task_run(transport: Transport, task_run_id: str, message: str) -> State[Any] | None:
    """Propose CRASHED for a task run whose process died; return the state it ended in.

    Returns:
        The CRASHED state (its data the `CrashedRun` its future raises); or, when the run had
        already ended before its process died (only its answer was lost), the final state the
        service kept; or None when the service has no such run: the call never started, so
        it can be shipped again.
    """
    from headwater._states import Crashed
    from headwater._transport.interface import DecisionKind, Proposal

    error = CrashedRun(message)
    state = Crashed(message=message, data=error)
    try:
        decision = transport.propose_task_run_state(task_run_id, Proposal(state, failure=error))
    except ObjectNotFound:
        return None
    if decision.kind is DecisionKind.ACCEPT:
        return state
    kept = decision.state
    if kept is not None and kept.is_final():
        return kept
    return state
