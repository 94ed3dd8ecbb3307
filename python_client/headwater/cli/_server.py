"""``headwater server start``: run the service in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any


def register(commands: Any) -> None:
    """Add the ``server`` command group."""
    server = commands.add_parser("server", help="run the Headwater service")
    actions = server.add_subparsers(title="server commands", metavar="COMMAND", required=True)
    start = actions.add_parser(
        "start",
        help="start the service in the foreground (stop with Ctrl-C or SIGTERM)",
        description="Serve the headwater.v1 gRPC API until SIGTERM or Ctrl-C.",
    )
    start.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    start.add_argument(
        "--port",
        type=_port,
        default=4200,
        help="TCP port to listen on, 0 to 65535 (default 4200); 0 picks a free one and prints it",
    )
    start.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of the database (default: HEADWATER_DATABASE_URL, or SQLite in "
        "HEADWATER_HOME)",
    )
    start.set_defaults(handler=start_server)


#: Exit status when the server cannot start (busy port, unreachable database), as for
#: ``python -m headwater_server``: supervisors and scripts see the same outcome from both.
EXIT_CANNOT_START = 1


def start_server(args: argparse.Namespace) -> int:
    """Block serving until SIGTERM or Ctrl-C; the server prints where it listens.

    This runs in the console script's own process (no launcher in between), so SIGTERM sent to
    the ``headwater`` pid reaches :func:`headwater_server.server.serve`'s handler and stops the
    server cleanly.
    """
    # Imported only here: the server's stack is heavy and other commands never need it.
    from headwater_server.server import ServerStartError, serve
    from headwater_server.settings import ServerSettings, ServerSettingsError

    try:
        settings = ServerSettings.from_environ()
        if args.database_url:
            settings = dataclasses.replace(settings, database_url=args.database_url)
        serve(args.host, args.port, settings)
    except (ServerStartError, ServerSettingsError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return 0


def _port(text: str) -> int:
    """A TCP port for argparse: 0 to 65535, where 0 asks the system for a free one.

    Without this check a port outside that range reached the socket layer, which wraps it
    silently (99999 became 34463), so the server listened somewhere the user never asked for.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a TCP port: use 0 to 65535 (0 picks a free port)"
        )
    return value
