import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Log(_message.Message):
    __slots__ = ("id", "flow_run_id", "task_run_id", "logger_name", "level", "message", "log_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LOGGER_NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOG_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    flow_run_id: str
    task_run_id: str
    logger_name: str
    level: int
    message: str
    log_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., flow_run_id: _Optional[str] = ..., task_run_id: _Optional[str] = ..., logger_name: _Optional[str] = ..., level: _Optional[int] = ..., message: _Optional[str] = ..., log_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateLogsRequest(_message.Message):
    __slots__ = ("logs", "request_id")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[Log]
    request_id: str
    def __init__(self, logs: _Optional[_Iterable[_Union[Log, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateLogsResponse(_message.Message):
    __slots__ = ("created_count",)
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    created_count: int
    def __init__(self, created_count: _Optional[int] = ...) -> None: ...

class LogFilter(_message.Message):
    __slots__ = ("flow_run_id", "task_run_id", "min_level")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    task_run_id: str
    min_level: int
    def __init__(self, flow_run_id: _Optional[str] = ..., task_run_id: _Optional[str] = ..., min_level: _Optional[int] = ...) -> None: ...

class ListLogsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: LogFilter
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[LogFilter, _Mapping]] = ...) -> None: ...

class ListLogsResponse(_message.Message):
    __slots__ = ("logs", "next_page_token")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[Log]
    next_page_token: str
    def __init__(self, logs: _Optional[_Iterable[_Union[Log, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
