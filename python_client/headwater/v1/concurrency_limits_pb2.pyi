import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConcurrencyLimit(_message.Message):
    __slots__ = ("id", "tag", "concurrency_limit", "active_slots", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    tag: str
    concurrency_limit: int
    active_slots: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., tag: _Optional[str] = ..., concurrency_limit: _Optional[int] = ..., active_slots: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateConcurrencyLimitRequest(_message.Message):
    __slots__ = ("tag", "concurrency_limit", "request_id")
    TAG_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tag: str
    concurrency_limit: int
    request_id: str
    def __init__(self, tag: _Optional[str] = ..., concurrency_limit: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateConcurrencyLimitResponse(_message.Message):
    __slots__ = ("concurrency_limit", "created")
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    concurrency_limit: ConcurrencyLimit
    created: bool
    def __init__(self, concurrency_limit: _Optional[_Union[ConcurrencyLimit, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetConcurrencyLimitRequest(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: str
    def __init__(self, tag: _Optional[str] = ...) -> None: ...

class GetConcurrencyLimitResponse(_message.Message):
    __slots__ = ("concurrency_limit",)
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    concurrency_limit: ConcurrencyLimit
    def __init__(self, concurrency_limit: _Optional[_Union[ConcurrencyLimit, _Mapping]] = ...) -> None: ...

class ListConcurrencyLimitsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConcurrencyLimitsResponse(_message.Message):
    __slots__ = ("concurrency_limits", "next_page_token")
    CONCURRENCY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    concurrency_limits: _containers.RepeatedCompositeFieldContainer[ConcurrencyLimit]
    next_page_token: str
    def __init__(self, concurrency_limits: _Optional[_Iterable[_Union[ConcurrencyLimit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteConcurrencyLimitRequest(_message.Message):
    __slots__ = ("tag", "request_id")
    TAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tag: str
    request_id: str
    def __init__(self, tag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteConcurrencyLimitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetConcurrencyLimitRequest(_message.Message):
    __slots__ = ("tag", "request_id")
    TAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tag: str
    request_id: str
    def __init__(self, tag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResetConcurrencyLimitResponse(_message.Message):
    __slots__ = ("concurrency_limit",)
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    concurrency_limit: ConcurrencyLimit
    def __init__(self, concurrency_limit: _Optional[_Union[ConcurrencyLimit, _Mapping]] = ...) -> None: ...
