import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Schedule(_message.Message):
    __slots__ = ("interval", "cron", "rrule")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    RRULE_FIELD_NUMBER: _ClassVar[int]
    interval: IntervalSchedule
    cron: CronSchedule
    rrule: RRuleSchedule
    def __init__(self, interval: _Optional[_Union[IntervalSchedule, _Mapping]] = ..., cron: _Optional[_Union[CronSchedule, _Mapping]] = ..., rrule: _Optional[_Union[RRuleSchedule, _Mapping]] = ...) -> None: ...

class IntervalSchedule(_message.Message):
    __slots__ = ("interval", "anchor_time", "timezone")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    interval: _duration_pb2.Duration
    anchor_time: _timestamp_pb2.Timestamp
    timezone: str
    def __init__(self, interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., anchor_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ...) -> None: ...

class CronSchedule(_message.Message):
    __slots__ = ("cron", "timezone", "day_or")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    DAY_OR_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    day_or: bool
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., day_or: _Optional[bool] = ...) -> None: ...

class RRuleSchedule(_message.Message):
    __slots__ = ("rrule", "timezone")
    RRULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    rrule: str
    timezone: str
    def __init__(self, rrule: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class DeploymentSchedule(_message.Message):
    __slots__ = ("id", "schedule", "active", "max_scheduled_runs", "parameters_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_SCHEDULED_RUNS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    schedule: Schedule
    active: bool
    max_scheduled_runs: int
    parameters_json: str
    def __init__(self, id: _Optional[str] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., active: _Optional[bool] = ..., max_scheduled_runs: _Optional[int] = ..., parameters_json: _Optional[str] = ...) -> None: ...
