"""``python -m headwater_server``: run the Headwater gRPC server in the foreground.

Usage: ``python -m headwater_server [--host 127.0.0.1] [--port 4200] [--database-url URL]``.
The default database is HEADWATER_DATABASE_URL, else the SQLite file in HEADWATER_HOME.
``headwater server start`` takes the same options and calls the same :func:`serve`; a server
that cannot start (busy port, unreachable database) prints one line and exits 1 from both.
"""

from __future__ import annotations

import argparse
import sys

from headwater_server.server import DEFAULT_HOST, DEFAULT_PORT, ServerStartError, serve


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m headwater_server", description="Run the Headwater gRPC server."
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: HEADWATER_DATABASE_URL or $HEADWATER_HOME/headwater.db)",
    )
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.database_url)
    except ServerStartError as exc:
        # One line a person can act on; a traceback would only hide it.
        print(f"headwater server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
