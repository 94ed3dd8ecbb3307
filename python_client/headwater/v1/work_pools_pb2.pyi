import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkPool(_message.Message):
    __slots__ = ("id", "name", "type", "description", "paused", "concurrency_limit", "base_job_template_json", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BASE_JOB_TEMPLATE_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: str
    description: str
    paused: bool
    concurrency_limit: int
    base_job_template_json: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., paused: _Optional[bool] = ..., concurrency_limit: _Optional[int] = ..., base_job_template_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WorkQueue(_message.Message):
    __slots__ = ("id", "name", "work_pool_name", "description", "paused", "concurrency_limit", "priority", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    work_pool_name: str
    description: str
    paused: bool
    concurrency_limit: int
    priority: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., work_pool_name: _Optional[str] = ..., description: _Optional[str] = ..., paused: _Optional[bool] = ..., concurrency_limit: _Optional[int] = ..., priority: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWorkPoolRequest(_message.Message):
    __slots__ = ("work_pool", "request_id")
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    work_pool: WorkPool
    request_id: str
    def __init__(self, work_pool: _Optional[_Union[WorkPool, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateWorkPoolResponse(_message.Message):
    __slots__ = ("work_pool",)
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    work_pool: WorkPool
    def __init__(self, work_pool: _Optional[_Union[WorkPool, _Mapping]] = ...) -> None: ...

class GetWorkPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetWorkPoolResponse(_message.Message):
    __slots__ = ("work_pool",)
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    work_pool: WorkPool
    def __init__(self, work_pool: _Optional[_Union[WorkPool, _Mapping]] = ...) -> None: ...

class ListWorkPoolsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkPoolsResponse(_message.Message):
    __slots__ = ("work_pools", "next_page_token")
    WORK_POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_pools: _containers.RepeatedCompositeFieldContainer[WorkPool]
    next_page_token: str
    def __init__(self, work_pools: _Optional[_Iterable[_Union[WorkPool, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateWorkPoolRequest(_message.Message):
    __slots__ = ("name", "work_pool", "update_mask")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    work_pool: WorkPool
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, name: _Optional[str] = ..., work_pool: _Optional[_Union[WorkPool, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateWorkPoolResponse(_message.Message):
    __slots__ = ("work_pool",)
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    work_pool: WorkPool
    def __init__(self, work_pool: _Optional[_Union[WorkPool, _Mapping]] = ...) -> None: ...

class DeleteWorkPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteWorkPoolResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateWorkQueueRequest(_message.Message):
    __slots__ = ("work_pool_name", "work_queue", "request_id")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    work_queue: WorkQueue
    request_id: str
    def __init__(self, work_pool_name: _Optional[str] = ..., work_queue: _Optional[_Union[WorkQueue, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateWorkQueueResponse(_message.Message):
    __slots__ = ("work_queue",)
    WORK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    work_queue: WorkQueue
    def __init__(self, work_queue: _Optional[_Union[WorkQueue, _Mapping]] = ...) -> None: ...

class ListWorkQueuesRequest(_message.Message):
    __slots__ = ("work_pool_name", "page_size", "page_token")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    page_size: int
    page_token: str
    def __init__(self, work_pool_name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkQueuesResponse(_message.Message):
    __slots__ = ("work_queues", "next_page_token")
    WORK_QUEUES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_queues: _containers.RepeatedCompositeFieldContainer[WorkQueue]
    next_page_token: str
    def __init__(self, work_queues: _Optional[_Iterable[_Union[WorkQueue, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateWorkQueueRequest(_message.Message):
    __slots__ = ("work_pool_name", "name", "work_queue", "update_mask")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    name: str
    work_queue: WorkQueue
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, work_pool_name: _Optional[str] = ..., name: _Optional[str] = ..., work_queue: _Optional[_Union[WorkQueue, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateWorkQueueResponse(_message.Message):
    __slots__ = ("work_queue",)
    WORK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    work_queue: WorkQueue
    def __init__(self, work_queue: _Optional[_Union[WorkQueue, _Mapping]] = ...) -> None: ...

class DeleteWorkQueueRequest(_message.Message):
    __slots__ = ("work_pool_name", "name")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    name: str
    def __init__(self, work_pool_name: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteWorkQueueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
