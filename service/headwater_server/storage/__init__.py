"""The storage layer: SQLAlchemy Core tables, Alembic migrations and the repository.

``storage.database.Database`` opens (and migrates) a database and runs repository calls on its
threads; ``storage.repository.Repository`` holds every read and write, one transaction per
method, with the orchestration rules applied inside the run's lock. Requests arrive checked by
the application layer (``headwater_server.application``), its only caller.

Imports nothing heavy at package import; use ``storage.database.Database``.
"""
