"""The Headwater gRPC service behind headwater.v1, in layers a newcomer can find by folder.

- ``servicers/``: the gRPC layer. Thin translations from a request to an application operation
  and back, plus the engine stream (``servicers/engine.py``); errors become statuses there.
- ``application/``: the application layer. One module per resource (flows, flow runs, task runs,
  logs, the engine stream's operations) where each operation checks its request
  (``application/checks.py``, the one home of request checks), calls storage, then publishes
  the change to the event hub (``events.py``). Servicers, the engine stream and in-process
  callers (a scheduler, workers, a UI) all go through it.
- ``orchestration/``: the rules. Pure functions that decide every proposed state
  (``orchestration/rules.py``, which also defines the final states once for the service).
- ``storage/``: the storage. SQLAlchemy Core tables, Alembic migrations and the repository,
  one transaction per operation, applying the rules inside the run's lock.

Beside them: ``server.py`` (start and stop), ``settings.py`` (the server's own settings),
``errors.py`` (the catalogue of every error the service returns), ``events.py`` (the event hub),
``reflection.py`` (server reflection from the packaged descriptor image, comments included),
``housekeeping.py`` (background upkeep) and ``telemetry.py`` (OpenTelemetry spans). The service
imports nothing from the SDK package but the generated ``headwater.v1`` stubs.
"""
