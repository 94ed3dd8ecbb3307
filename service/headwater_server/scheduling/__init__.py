"""Scheduling: when runs are due, and the service's loops that act on it.

:mod:`.schedules` is pure arithmetic over the ``headwater.v1.Schedule`` messages (interval, cron,
rrule; daylight-saving rules documented there) with the schedule check the application layer
calls. The loops that use it live beside it: the scheduler (creating upcoming runs) and the
marking of late runs.
"""
