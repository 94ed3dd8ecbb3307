"""Storage: SQLAlchemy Core tables, Alembic migrations and the repository the servicers call.

Imports nothing heavy at package import; use ``storage.database.Database``.
"""
