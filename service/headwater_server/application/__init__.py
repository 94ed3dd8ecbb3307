"""The application layer: every operation of the service, one module per resource.

An operation is ``async def op(backend, request) -> response`` over the generated headwater.v1
messages, and it does three things in this order: it checks the request (:mod:`.checks`, the one
home of request checks), it makes the storage call (:mod:`headwater_server.storage`, where the
orchestration rules are applied inside the run's transaction), and it publishes what changed to
the event hub (:mod:`headwater_server.events`), which wakes watches and long polls.

Callers never do any of the three themselves: the gRPC servicers
(:mod:`headwater_server.servicers`) translate a request into a call here and the answer back, the
engine stream runs the operations listed in :mod:`.engine`, and in-process callers to come (a
scheduler, workers, a UI) call these functions with a :class:`~.backend.Backend`.

Modules: :mod:`.flows`, :mod:`.flow_runs`, :mod:`.flow_run_events` (event-log reads and watches),
:mod:`.task_runs`, :mod:`.logs`, :mod:`.engine` (the engine stream's operations).
"""
