"""Schema set-up at start-up: the create-and-stamp path for new databases against Alembic.

A new database skips Alembic (``create_all`` from ``schema.py`` + stamp head) because running the
migrations costs a large slice of the cold-start budget. These tests make sure that shortcut is
invisible: the database it makes is the same, object for object, as the one ``alembic upgrade
head`` makes, on SQLite and PostgreSQL, and Alembic accepts it as being at head, so a later
revision applies on top of it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from headwater_server.storage import migrate, schema
from headwater_server.storage.database import Database
from headwater_server.storage.engine import create_database_engine
from sqlalchemy import Connection, Engine, inspect, text


@pytest.fixture
def engine(database_url: str) -> Any:
    engine = create_database_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _alembic_upgrade(engine: Engine, script_location: Path | None = None) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn, script_location), "head")  # type: ignore[arg-type]


def _drop_everything(engine: Engine) -> None:
    with engine.begin() as conn:
        schema.metadata.drop_all(conn)
        conn.execute(text(f"DROP TABLE {migrate.VERSION_TABLE}"))
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []


def _ddl_clauses(sql: str) -> list[str]:
    """A SQLite CREATE statement as its sorted clauses: the order of constraints is not part of
    the schema, everything else (types, NOT NULL, names, ON DELETE) is compared as text."""
    head, _, body = sql.partition("(")
    # A table SQLite rebuilt for a migration (batch mode) has its name quoted.
    return [
        head.strip().replace('"', ""),
        *sorted(line.strip().rstrip(",") for line in body.splitlines()),
    ]


def _snapshot(conn: Connection) -> dict[str, Any]:
    """Everything a schema is made of, in a form that compares equal across creation paths."""
    inspector = inspect(conn)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name),
            "fks": sorted(
                (
                    fk["name"] or "",
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    tuple(sorted(fk["options"].items())),
                )
                for fk in inspector.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (ix["name"] or "", tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(name)
            ),
            "uniques": sorted(
                (uq["name"] or "", tuple(uq["column_names"]))
                for uq in inspector.get_unique_constraints(name)
            ),
        }
    snapshot: dict[str, Any] = {"tables": tables}
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master")).all()
        snapshot["sqlite_master"] = sorted(
            (kind, name, table, _ddl_clauses(sql) if sql else None)
            for kind, name, table, sql in rows
        )
    else:
        snapshot["constraints"] = sorted(
            conn.execute(
                text(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                    "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
                )
            ).all()
        )
        snapshot["indexes"] = sorted(
            conn.execute(
                text(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = current_schema()"
                )
            ).all()
        )
        snapshot["columns"] = sorted(
            conn.execute(
                text(
                    "SELECT table_name, column_name, data_type, character_maximum_length, "
                    "is_nullable, column_default FROM information_schema.columns "
                    "WHERE table_schema = current_schema()"
                )
            ).all()
        )
    snapshot["version"] = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return snapshot


def test_new_database_is_identical_to_alembic_upgrade_head(engine: Engine) -> None:
    assert migrate.ensure_schema(engine) is True
    with engine.connect() as conn:
        created = _snapshot(conn)
    _drop_everything(engine)

    _alembic_upgrade(engine)
    with engine.connect() as conn:
        migrated = _snapshot(conn)

    assert set(created["tables"]) == {*schema.metadata.tables, migrate.VERSION_TABLE}
    assert created == migrated
    assert created["version"] == [(migrate.HEAD_REVISION,)]


def test_stamped_database_takes_later_migrations(engine: Engine, tmp_path: Path) -> None:
    """A revision written after the stamp applies on top of a database the fast path made."""
    assert migrate.ensure_schema(engine) is True
    # Alembic agrees the database is at head: upgrading with the real scripts changes nothing.
    _alembic_upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD_REVISION

    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_later.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "9999"
            down_revision = {migrate.HEAD_REVISION!r}
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                with op.batch_alter_table("flows") as batch_op:
                    batch_op.add_column(sa.Column("owner", sa.String(64), nullable=True))
            """
        )
    )
    _alembic_upgrade(engine, scripts)

    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "9999"
        assert "owner" in {c["name"] for c in inspect(conn).get_columns("flows")}


def test_current_database_is_left_alone(database_url: str) -> None:
    with Database.open(database_url) as first:
        assert first.migrated
    with Database.open(database_url) as second:
        assert not second.migrated
        with second.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION


def test_new_database_does_not_import_alembic(database_url: str) -> None:
    code = (
        "import sys\n"
        "from headwater_server.storage.database import Database\n"
        f"db = Database.open({database_url!r})\n"
        "assert db.migrated\n"
        "db.close()\n"
        "assert 'alembic' not in sys.modules, 'alembic was imported for a new database'\n"
        "assert 'sqlalchemy.orm' not in sys.modules, 'the ORM was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_partial_schema_without_revision_goes_to_alembic(engine: Engine) -> None:
    """A database holding some of Headwater's tables but no revision is not created over: the
    fast path only handles empty databases, and Alembic then reports the clash."""
    with engine.begin() as conn:
        schema.flows.create(conn)
    with pytest.raises(Exception, match="flows"):
        migrate.ensure_schema(engine)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == ["flows"]


def test_upgrading_an_old_database_keeps_every_runs_history(engine: Engine) -> None:
    # Revision 0003 rebuilds flow_runs; on SQLite that drops the old table, and with foreign
    # keys on the drop cascaded into flow_run_states, task_runs and logs: all history gone.
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0002")  # type: ignore[arg-type]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO flows VALUES ('f', 'etl', '[]', 1)"))
        conn.execute(
            text(
                "INSERT INTO flow_runs (id, flow_id, flow_name, name, flow_version, state_type, "
                "state_name, state_message, state_time, run_count, total_run_time_us, "
                "last_sequence, policy_retries, policy_retry_delay_seconds, tags, "
                "parameters_json, create_time, update_time) VALUES ('r', 'f', 'etl', 'r', '', "
                "1, 'Scheduled', '', 1, 0, 0, 1, 0, 0, '[]', '{}', 1, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO flow_run_states (id, flow_run_id, sequence, type, name, message, "
                "create_time, forced) VALUES ('s', 'r', 1, 1, 'Scheduled', '', 1, false)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO logs (id, flow_run_id, logger_name, level, message, log_time) "
                "VALUES ('l', 'r', 'x', 20, 'hello', 1)"
            )
        )

    assert migrate.ensure_schema(engine) is True

    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD_REVISION
        counts = [
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("flow_runs", "flow_run_states", "logs")
        ]
        if conn.dialect.name == "sqlite":  # enforcement is back on for the service
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    assert counts == [1, 1, 1]


def test_upgrading_keeps_stored_answers_replayable(engine: Engine) -> None:
    """Revision 0023 drops the key prefixes of request_log: answers stored before it still
    answer their retries after it (a UUID stored under both prefixes keeps its create's)."""
    import uuid

    from alembic import command
    from headwater.v1 import flow_runs_pb2

    created, proposed, both = (str(uuid.uuid4()) for _ in range(3))
    answers = {
        name: flow_runs_pb2.CreateFlowRunResponse(
            flow_run=flow_runs_pb2.FlowRun(id=str(uuid.uuid4()), name=name)
        )
        for name in ("created", "both")
    }
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0022")  # type: ignore[arg-type]
    with engine.begin() as conn:
        insert = text(
            "INSERT INTO request_log (key, method, subject, response, create_time) "
            "VALUES (:key, :method, '', :response, 1)"
        )
        conn.execute(
            insert,
            [
                {
                    "key": f"req:{created}",
                    "method": "CreateFlowRun",
                    "response": answers["created"].SerializeToString(),
                },
                {"key": f"transition:{proposed}", "method": "SetFlowRunState", "response": b""},
                {
                    "key": f"req:{both}",
                    "method": "CreateFlowRun",
                    "response": answers["both"].SerializeToString(),
                },
                {"key": f"transition:{both}", "method": "SetFlowRunState", "response": b""},
            ],
        )

    assert migrate.ensure_schema(engine) is True
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT key, method FROM request_log")).all())
        indexes = {index["name"] for index in inspect(conn).get_indexes("task_runs")}
    assert stored == {
        created: "CreateFlowRun",
        proposed: "SetFlowRunState",
        both: "CreateFlowRun",
    }
    assert "ix_task_runs_state_type" not in indexes

    db = Database.open(str(engine.url.render_as_string(hide_password=False)))
    try:
        for request_id, name in ((created, "created"), (both, "both")):
            replay = db.repository.create_flow_run(
                flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", request_id=request_id)
            )
            assert replay == answers[name]
    finally:
        db.close()
