"""What the ``flow-run`` and ``task-run`` command groups share: the client, the error a person
can fix, the listing options, and following log lines until a run ends."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from headwater._runs import Log
    from headwater._states import State
    from headwater.client import HeadwaterClient

#: How often `logs --follow` asks for new lines.
FOLLOW_INTERVAL_SECONDS = 0.5


class CommandError(Exception):
    """A problem the person can fix, printed as one ``Error:`` line by `headwater.cli.main`."""


def open_client(timeout: float | None = 30.0) -> HeadwaterClient:
    """The blocking client on ``HEADWATER_API_URL`` (or the local database)."""
    from headwater.client import HeadwaterClient

    return HeadwaterClient(timeout=timeout)


def add_list_options(parser: argparse.ArgumentParser, noun: str) -> None:
    """``--state TYPE`` (repeatable) and ``--limit N`` (default 20) for an ``ls`` command."""
    parser.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="TYPE",
        help=f"only {noun} in this state type (COMPLETED, FAILED, RUNNING, ...); repeatable",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=20, help=f"how many {noun} (default 20)"
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def final_types_text() -> str:
    """The final state types in their declared order, "COMPLETED, FAILED, ... or CANCELLED"."""
    from headwater._states import FINAL_STATE_TYPES, StateType

    names = [state_type.value for state_type in StateType if state_type in FINAL_STATE_TYPES]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def is_final(state: State[Any] | None) -> bool:
    return state is not None and state.is_final()


def follow_logs(
    read_lines: Callable[[], list[Log]],
    read_final: Callable[[], bool],
    render: Callable[[Log], str],
    *,
    follow: bool,
) -> None:
    """Print the lines ``read_lines`` returns, once each; with ``follow``, poll until final.

    The run's state is read before its lines: a run final by then has shipped all its lines
    (the engine flushes them before proposing a final state), so the last poll misses none.
    """
    from headwater.cli import _render

    out = _render.console()
    seen: set[str] = set()
    while True:
        final = read_final() if follow else True
        for line in read_lines():
            if line.id not in seen:
                seen.add(line.id)
                out.print(render(line))
        if final:
            return
        time.sleep(FOLLOW_INTERVAL_SECONDS)
