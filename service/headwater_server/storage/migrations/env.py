"""Alembic environment for Headwater.

``storage.migrate`` runs Alembic programmatically and hands over a connection that is already
inside a locked transaction (``config.attributes["connection"]``), so the migration and the lock
are one unit. Run by hand (``alembic -x url=sqlite:///path upgrade head`` with a ``Config`` whose
``script_location`` points here), it builds its own engine from the URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from headwater_server.storage.schema import metadata, objects_on

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=True,
        compare_type=True,
        include_object=objects_on(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on the caller's connection, or on a fresh engine for command-line use."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from headwater_server.storage.engine import create_database_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("No database URL: pass -x url=... or set sqlalchemy.url.")
    engine = create_database_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("Headwater migrations run online only (they need a connection).")
run_migrations_online()
