"""``python -m headwater_server``: run the Headwater gRPC server in the foreground.

Usage: ``python -m headwater_server [--host 127.0.0.1] [--port 4200] [--database-url URL]``.
The other settings, and the default database (HEADWATER_DATABASE_URL, else the SQLite file in
HEADWATER_HOME), come from :class:`headwater_server.settings.ServerSettings`.
``headwater server start`` takes the same options and calls the same :func:`serve`; a server
that cannot start (busy port, unreachable database) prints one line and exits 1 from both.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from headwater_server.server import DEFAULT_HOST, DEFAULT_PORT, ServerStartError, serve
from headwater_server.settings import ServerSettings, ServerSettingsError


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
        settings = ServerSettings.from_environ()
        if args.database_url:
            settings = dataclasses.replace(settings, database_url=args.database_url)
        serve(args.host, args.port, settings)
    except (ServerStartError, ServerSettingsError) as exc:
        # One line a person can act on; a traceback would only hide it.
        print(f"headwater server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
