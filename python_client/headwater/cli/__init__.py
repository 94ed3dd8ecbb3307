"""The ``headwater`` command line.

``headwater server start`` runs the service; ``headwater flow-run ls | inspect | logs | watch |
cancel`` and ``headwater task-run ls | inspect | logs`` read (and cancel) runs, ``headwater
deployment ls | inspect | run | pause | resume`` and ``headwater work-pool ls | create`` manage
deployments and work pools, ``headwater worker start --pool NAME`` runs a pool's runs and
``headwater concurrency-limit create | ls | inspect | delete | reset`` limits task runs by tag,
from
``HEADWATER_API_URL``, or from the local database (through an embedded server) when it is
unset. Failures print one line to stderr and exit 2: a person at a terminal needs what went wrong
and what to do, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

#: Exit status of a command that could not do its job (bad input, unreachable server, ...).
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command; each sets ``handler`` to its function."""
    from headwater import __version__
    from headwater.cli import (
        _concurrency_limits,
        _deployments,
        _flow_runs,
        _server,
        _task_runs,
        _work_pools,
        _workers,
    )

    parser = argparse.ArgumentParser(
        prog="headwater",
        description="Headwater: workflow orchestration over a language-neutral gRPC API.",
    )
    parser.add_argument("--version", action="version", version=f"headwater {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _server.register(commands)
    _flow_runs.register(commands)
    _task_runs.register(commands)
    _deployments.register(commands)
    _work_pools.register(commands)
    _workers.register(commands)
    _concurrency_limits.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns (and, as a console script, exits with) its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `headwater flow-run ls | head`
        return 0
    except Exception as exc:
        print(f"Error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_ERROR


def describe_error(exc: BaseException) -> str:
    """One line that says what went wrong, for errors with or without a helpful message."""
    from headwater.exceptions import ServiceError

    if isinstance(exc, ServiceError):
        return exc.message or str(exc)
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
