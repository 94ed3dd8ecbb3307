import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from headwater.v1 import states_pb2 as _states_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskRun(_message.Message):
    __slots__ = ("id", "flow_run_id", "task_key", "dynamic_key", "name", "tags", "state", "policy", "run_count", "cache_key", "parameters_json", "start_time", "end_time", "total_run_time", "create_time", "update_time", "cache_expiration_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CACHE_EXPIRATION_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    flow_run_id: str
    task_key: str
    dynamic_key: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    state: _states_pb2.State
    policy: _states_pb2.RunPolicy
    run_count: int
    cache_key: str
    parameters_json: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_run_time: _duration_pb2.Duration
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    cache_expiration_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., flow_run_id: _Optional[str] = ..., task_key: _Optional[str] = ..., dynamic_key: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., policy: _Optional[_Union[_states_pb2.RunPolicy, _Mapping]] = ..., run_count: _Optional[int] = ..., cache_key: _Optional[str] = ..., parameters_json: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cache_expiration_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTaskRunRequest(_message.Message):
    __slots__ = ("flow_run_id", "task_key", "dynamic_key", "name", "tags", "policy", "state", "parameters_json", "cache_key", "request_id", "start", "cache_expiration_time", "refresh_cache", "task_run_id")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    CACHE_EXPIRATION_TIME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_CACHE_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    task_key: str
    dynamic_key: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    policy: _states_pb2.RunPolicy
    state: _states_pb2.State
    parameters_json: str
    cache_key: str
    request_id: str
    start: bool
    cache_expiration_time: _timestamp_pb2.Timestamp
    refresh_cache: bool
    task_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ..., task_key: _Optional[str] = ..., dynamic_key: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[_states_pb2.RunPolicy, _Mapping]] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., parameters_json: _Optional[str] = ..., cache_key: _Optional[str] = ..., request_id: _Optional[str] = ..., start: _Optional[bool] = ..., cache_expiration_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refresh_cache: _Optional[bool] = ..., task_run_id: _Optional[str] = ...) -> None: ...

class CreateTaskRunResponse(_message.Message):
    __slots__ = ("task_run", "result", "created")
    TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    task_run: TaskRun
    result: _states_pb2.OrchestrationResult
    created: bool
    def __init__(self, task_run: _Optional[_Union[TaskRun, _Mapping]] = ..., result: _Optional[_Union[_states_pb2.OrchestrationResult, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetTaskRunRequest(_message.Message):
    __slots__ = ("task_run_id",)
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    def __init__(self, task_run_id: _Optional[str] = ...) -> None: ...

class GetTaskRunResponse(_message.Message):
    __slots__ = ("task_run",)
    TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    task_run: TaskRun
    def __init__(self, task_run: _Optional[_Union[TaskRun, _Mapping]] = ...) -> None: ...

class TaskRunFilter(_message.Message):
    __slots__ = ("flow_run_id", "state_types", "task_key")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TYPES_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    state_types: _containers.RepeatedScalarFieldContainer[_states_pb2.StateType]
    task_key: str
    def __init__(self, flow_run_id: _Optional[str] = ..., state_types: _Optional[_Iterable[_Union[_states_pb2.StateType, str]]] = ..., task_key: _Optional[str] = ...) -> None: ...

class ListTaskRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "newest_first")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: TaskRunFilter
    newest_first: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[TaskRunFilter, _Mapping]] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class ListTaskRunsResponse(_message.Message):
    __slots__ = ("task_runs", "next_page_token")
    TASK_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_runs: _containers.RepeatedCompositeFieldContainer[TaskRun]
    next_page_token: str
    def __init__(self, task_runs: _Optional[_Iterable[_Union[TaskRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTaskRunStatesRequest(_message.Message):
    __slots__ = ("task_run_id", "page_size", "page_token")
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    page_size: int
    page_token: str
    def __init__(self, task_run_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTaskRunStatesResponse(_message.Message):
    __slots__ = ("states", "next_page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[_states_pb2.State]
    next_page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[_states_pb2.State, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteTaskRunRequest(_message.Message):
    __slots__ = ("task_run_id",)
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    def __init__(self, task_run_id: _Optional[str] = ...) -> None: ...

class DeleteTaskRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetTaskRunStateRequest(_message.Message):
    __slots__ = ("task_run_id", "state", "transition_id", "expected_state_id", "force", "cache_key", "cache_expiration_time", "refresh_cache")
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATE_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHE_EXPIRATION_TIME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_CACHE_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    state: _states_pb2.State
    transition_id: str
    expected_state_id: str
    force: bool
    cache_key: str
    cache_expiration_time: _timestamp_pb2.Timestamp
    refresh_cache: bool
    def __init__(self, task_run_id: _Optional[str] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., transition_id: _Optional[str] = ..., expected_state_id: _Optional[str] = ..., force: _Optional[bool] = ..., cache_key: _Optional[str] = ..., cache_expiration_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refresh_cache: _Optional[bool] = ...) -> None: ...

class SetTaskRunStateResponse(_message.Message):
    __slots__ = ("result", "task_run")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    result: _states_pb2.OrchestrationResult
    task_run: TaskRun
    def __init__(self, result: _Optional[_Union[_states_pb2.OrchestrationResult, _Mapping]] = ..., task_run: _Optional[_Union[TaskRun, _Mapping]] = ...) -> None: ...
