"""Alembic migrations for the Headwater schema; applied by ``storage.migrate.ensure_schema``."""
