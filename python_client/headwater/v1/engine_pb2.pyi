from headwater.v1 import flow_runs_pb2 as _flow_runs_pb2
from headwater.v1 import logs_pb2 as _logs_pb2
from headwater.v1 import task_runs_pb2 as _task_runs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectRequest(_message.Message):
    __slots__ = ("sequence", "create_flow_run", "set_flow_run_state", "get_flow_run", "create_task_run", "set_task_run_state", "create_logs", "batch", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    SET_FLOW_RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    GET_FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    SET_TASK_RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_LOGS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    create_flow_run: _flow_runs_pb2.CreateFlowRunRequest
    set_flow_run_state: _flow_runs_pb2.SetFlowRunStateRequest
    get_flow_run: _flow_runs_pb2.GetFlowRunRequest
    create_task_run: _task_runs_pb2.CreateTaskRunRequest
    set_task_run_state: _task_runs_pb2.SetTaskRunStateRequest
    create_logs: _logs_pb2.CreateLogsRequest
    batch: ConnectRequestBatch
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, sequence: _Optional[int] = ..., create_flow_run: _Optional[_Union[_flow_runs_pb2.CreateFlowRunRequest, _Mapping]] = ..., set_flow_run_state: _Optional[_Union[_flow_runs_pb2.SetFlowRunStateRequest, _Mapping]] = ..., get_flow_run: _Optional[_Union[_flow_runs_pb2.GetFlowRunRequest, _Mapping]] = ..., create_task_run: _Optional[_Union[_task_runs_pb2.CreateTaskRunRequest, _Mapping]] = ..., set_task_run_state: _Optional[_Union[_task_runs_pb2.SetTaskRunStateRequest, _Mapping]] = ..., create_logs: _Optional[_Union[_logs_pb2.CreateLogsRequest, _Mapping]] = ..., batch: _Optional[_Union[ConnectRequestBatch, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConnectRequestBatch(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ConnectRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[ConnectRequest, _Mapping]]] = ...) -> None: ...

class ConnectResponseBatch(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[ConnectResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[ConnectResponse, _Mapping]]] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("sequence", "create_flow_run", "set_flow_run_state", "get_flow_run", "create_task_run", "set_task_run_state", "create_logs", "batch", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    SET_FLOW_RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    GET_FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    SET_TASK_RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_LOGS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    create_flow_run: _flow_runs_pb2.CreateFlowRunResponse
    set_flow_run_state: _flow_runs_pb2.SetFlowRunStateResponse
    get_flow_run: _flow_runs_pb2.GetFlowRunResponse
    create_task_run: _task_runs_pb2.CreateTaskRunResponse
    set_task_run_state: _task_runs_pb2.SetTaskRunStateResponse
    create_logs: _logs_pb2.CreateLogsResponse
    batch: ConnectResponseBatch
    error: OperationError
    def __init__(self, sequence: _Optional[int] = ..., create_flow_run: _Optional[_Union[_flow_runs_pb2.CreateFlowRunResponse, _Mapping]] = ..., set_flow_run_state: _Optional[_Union[_flow_runs_pb2.SetFlowRunStateResponse, _Mapping]] = ..., get_flow_run: _Optional[_Union[_flow_runs_pb2.GetFlowRunResponse, _Mapping]] = ..., create_task_run: _Optional[_Union[_task_runs_pb2.CreateTaskRunResponse, _Mapping]] = ..., set_task_run_state: _Optional[_Union[_task_runs_pb2.SetTaskRunStateResponse, _Mapping]] = ..., create_logs: _Optional[_Union[_logs_pb2.CreateLogsResponse, _Mapping]] = ..., batch: _Optional[_Union[ConnectResponseBatch, _Mapping]] = ..., error: _Optional[_Union[OperationError, _Mapping]] = ...) -> None: ...

class OperationError(_message.Message):
    __slots__ = ("code", "reason", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
