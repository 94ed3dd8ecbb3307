import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from headwater.v1 import logs_pb2 as _logs_pb2
from headwater.v1 import states_pb2 as _states_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowRun(_message.Message):
    __slots__ = ("id", "name", "flow_id", "flow_name", "flow_version", "deployment_id", "parent_flow_run_id", "parent_task_run_id", "parameters_json", "idempotency_key", "tags", "state", "policy", "run_count", "expected_start_time", "start_time", "end_time", "total_run_time", "create_time", "update_time", "last_sequence", "auto_scheduled", "trace_context", "job_variables_json")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    flow_id: str
    flow_name: str
    flow_version: str
    deployment_id: str
    parent_flow_run_id: str
    parent_task_run_id: str
    parameters_json: str
    idempotency_key: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    state: _states_pb2.State
    policy: _states_pb2.RunPolicy
    run_count: int
    expected_start_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_run_time: _duration_pb2.Duration
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    last_sequence: int
    auto_scheduled: bool
    trace_context: _containers.ScalarMap[str, str]
    job_variables_json: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., flow_id: _Optional[str] = ..., flow_name: _Optional[str] = ..., flow_version: _Optional[str] = ..., deployment_id: _Optional[str] = ..., parent_flow_run_id: _Optional[str] = ..., parent_task_run_id: _Optional[str] = ..., parameters_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., policy: _Optional[_Union[_states_pb2.RunPolicy, _Mapping]] = ..., run_count: _Optional[int] = ..., expected_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ..., auto_scheduled: _Optional[bool] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., job_variables_json: _Optional[str] = ...) -> None: ...

class FlowRunEvent(_message.Message):
    __slots__ = ("sequence", "flow_run_id", "event_time", "state_changed", "task_run_state_changed", "log")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    flow_run_id: str
    event_time: _timestamp_pb2.Timestamp
    state_changed: _states_pb2.State
    task_run_state_changed: TaskRunStateChanged
    log: _logs_pb2.Log
    def __init__(self, sequence: _Optional[int] = ..., flow_run_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_changed: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., task_run_state_changed: _Optional[_Union[TaskRunStateChanged, _Mapping]] = ..., log: _Optional[_Union[_logs_pb2.Log, _Mapping]] = ...) -> None: ...

class TaskRunStateChanged(_message.Message):
    __slots__ = ("task_run_id", "task_run_name", "state")
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    task_run_name: str
    state: _states_pb2.State
    def __init__(self, task_run_id: _Optional[str] = ..., task_run_name: _Optional[str] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ...) -> None: ...

class CreateFlowRunRequest(_message.Message):
    __slots__ = ("flow_id", "flow_name", "name", "flow_version", "parameters_json", "parent_flow_run_id", "parent_task_run_id", "tags", "policy", "state", "idempotency_key", "request_id", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    PARENT_FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    flow_name: str
    name: str
    flow_version: str
    parameters_json: str
    parent_flow_run_id: str
    parent_task_run_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    policy: _states_pb2.RunPolicy
    state: _states_pb2.State
    idempotency_key: str
    request_id: str
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, flow_id: _Optional[str] = ..., flow_name: _Optional[str] = ..., name: _Optional[str] = ..., flow_version: _Optional[str] = ..., parameters_json: _Optional[str] = ..., parent_flow_run_id: _Optional[str] = ..., parent_task_run_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[_states_pb2.RunPolicy, _Mapping]] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., request_id: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateFlowRunResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: FlowRun
    def __init__(self, flow_run: _Optional[_Union[FlowRun, _Mapping]] = ...) -> None: ...

class GetFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id",)
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ...) -> None: ...

class GetFlowRunResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: FlowRun
    def __init__(self, flow_run: _Optional[_Union[FlowRun, _Mapping]] = ...) -> None: ...

class FlowRunFilter(_message.Message):
    __slots__ = ("flow_ids", "flow_name", "state_types", "parent_flow_run_id", "tags", "name", "deployment_id")
    FLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_TYPES_FIELD_NUMBER: _ClassVar[int]
    PARENT_FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    flow_ids: _containers.RepeatedScalarFieldContainer[str]
    flow_name: str
    state_types: _containers.RepeatedScalarFieldContainer[_states_pb2.StateType]
    parent_flow_run_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    name: str
    deployment_id: str
    def __init__(self, flow_ids: _Optional[_Iterable[str]] = ..., flow_name: _Optional[str] = ..., state_types: _Optional[_Iterable[_Union[_states_pb2.StateType, str]]] = ..., parent_flow_run_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., deployment_id: _Optional[str] = ...) -> None: ...

class ListFlowRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: FlowRunFilter
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[FlowRunFilter, _Mapping]] = ...) -> None: ...

class ListFlowRunsResponse(_message.Message):
    __slots__ = ("flow_runs", "next_page_token")
    FLOW_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flow_runs: _containers.RepeatedCompositeFieldContainer[FlowRun]
    next_page_token: str
    def __init__(self, flow_runs: _Optional[_Iterable[_Union[FlowRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id", "name", "tags", "update_mask", "policy")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    update_mask: _field_mask_pb2.FieldMask
    policy: _states_pb2.RunPolicy
    def __init__(self, flow_run_id: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., policy: _Optional[_Union[_states_pb2.RunPolicy, _Mapping]] = ...) -> None: ...

class UpdateFlowRunResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: FlowRun
    def __init__(self, flow_run: _Optional[_Union[FlowRun, _Mapping]] = ...) -> None: ...

class DeleteFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id",)
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ...) -> None: ...

class DeleteFlowRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetFlowRunStateRequest(_message.Message):
    __slots__ = ("flow_run_id", "state", "transition_id", "expected_state_id", "force")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATE_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    state: _states_pb2.State
    transition_id: str
    expected_state_id: str
    force: bool
    def __init__(self, flow_run_id: _Optional[str] = ..., state: _Optional[_Union[_states_pb2.State, _Mapping]] = ..., transition_id: _Optional[str] = ..., expected_state_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class SetFlowRunStateResponse(_message.Message):
    __slots__ = ("result", "flow_run")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    result: _states_pb2.OrchestrationResult
    flow_run: FlowRun
    def __init__(self, result: _Optional[_Union[_states_pb2.OrchestrationResult, _Mapping]] = ..., flow_run: _Optional[_Union[FlowRun, _Mapping]] = ...) -> None: ...

class CancelFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id", "reason", "request_id")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    reason: str
    request_id: str
    def __init__(self, flow_run_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelFlowRunResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: FlowRun
    def __init__(self, flow_run: _Optional[_Union[FlowRun, _Mapping]] = ...) -> None: ...

class ListFlowRunEventsRequest(_message.Message):
    __slots__ = ("flow_run_id", "after_sequence", "page_size", "wait", "flow_run_states_only")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_STATES_ONLY_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    after_sequence: int
    page_size: int
    wait: _duration_pb2.Duration
    flow_run_states_only: bool
    def __init__(self, flow_run_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., page_size: _Optional[int] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., flow_run_states_only: _Optional[bool] = ...) -> None: ...

class ListFlowRunEventsResponse(_message.Message):
    __slots__ = ("events", "last_sequence", "finished")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FlowRunEvent]
    last_sequence: int
    finished: bool
    def __init__(self, events: _Optional[_Iterable[_Union[FlowRunEvent, _Mapping]]] = ..., last_sequence: _Optional[int] = ..., finished: _Optional[bool] = ...) -> None: ...

class WatchFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id", "after_sequence", "flow_run_states_only")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_STATES_ONLY_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    after_sequence: int
    flow_run_states_only: bool
    def __init__(self, flow_run_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., flow_run_states_only: _Optional[bool] = ...) -> None: ...

class WatchFlowRunResponse(_message.Message):
    __slots__ = ("snapshot", "event", "caught_up")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    snapshot: FlowRun
    event: FlowRunEvent
    caught_up: CaughtUp
    def __init__(self, snapshot: _Optional[_Union[FlowRun, _Mapping]] = ..., event: _Optional[_Union[FlowRunEvent, _Mapping]] = ..., caught_up: _Optional[_Union[CaughtUp, _Mapping]] = ...) -> None: ...

class CaughtUp(_message.Message):
    __slots__ = ("last_sequence",)
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    last_sequence: int
    def __init__(self, last_sequence: _Optional[int] = ...) -> None: ...
