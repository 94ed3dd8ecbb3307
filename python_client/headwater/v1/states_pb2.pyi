import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StateType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_TYPE_UNSPECIFIED: _ClassVar[StateType]
    STATE_TYPE_SCHEDULED: _ClassVar[StateType]
    STATE_TYPE_PENDING: _ClassVar[StateType]
    STATE_TYPE_RUNNING: _ClassVar[StateType]
    STATE_TYPE_COMPLETED: _ClassVar[StateType]
    STATE_TYPE_FAILED: _ClassVar[StateType]
    STATE_TYPE_CANCELLED: _ClassVar[StateType]
    STATE_TYPE_CANCELLING: _ClassVar[StateType]
    STATE_TYPE_CRASHED: _ClassVar[StateType]
    STATE_TYPE_PAUSED: _ClassVar[StateType]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ACCEPT: _ClassVar[Decision]
    DECISION_REJECT: _ClassVar[Decision]
    DECISION_WAIT: _ClassVar[Decision]
    DECISION_ABORT: _ClassVar[Decision]
STATE_TYPE_UNSPECIFIED: StateType
STATE_TYPE_SCHEDULED: StateType
STATE_TYPE_PENDING: StateType
STATE_TYPE_RUNNING: StateType
STATE_TYPE_COMPLETED: StateType
STATE_TYPE_FAILED: StateType
STATE_TYPE_CANCELLED: StateType
STATE_TYPE_CANCELLING: StateType
STATE_TYPE_CRASHED: StateType
STATE_TYPE_PAUSED: StateType
DECISION_UNSPECIFIED: Decision
DECISION_ACCEPT: Decision
DECISION_REJECT: Decision
DECISION_WAIT: Decision
DECISION_ABORT: Decision

class State(_message.Message):
    __slots__ = ("id", "type", "name", "message", "create_time", "scheduled_time", "result", "failure")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: StateType
    name: str
    message: str
    create_time: _timestamp_pb2.Timestamp
    scheduled_time: _timestamp_pb2.Timestamp
    result: StateResult
    failure: Failure
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[StateType, str]] = ..., name: _Optional[str] = ..., message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[StateResult, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class StateResult(_message.Message):
    __slots__ = ("json", "payload", "reference")
    JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    json: str
    payload: Payload
    reference: ResultReference
    def __init__(self, json: _Optional[str] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., reference: _Optional[_Union[ResultReference, _Mapping]] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("encoding", "data")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    encoding: str
    data: bytes
    def __init__(self, encoding: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ResultReference(_message.Message):
    __slots__ = ("storage_uri", "serializer")
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    SERIALIZER_FIELD_NUMBER: _ClassVar[int]
    storage_uri: str
    serializer: str
    def __init__(self, storage_uri: _Optional[str] = ..., serializer: _Optional[str] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("exception_type", "message", "traceback")
    EXCEPTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    exception_type: str
    message: str
    traceback: str
    def __init__(self, exception_type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class RunPolicy(_message.Message):
    __slots__ = ("retries", "retry_delay", "retry_delays", "retry_jitter_factor", "timeout")
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAYS_FIELD_NUMBER: _ClassVar[int]
    RETRY_JITTER_FACTOR_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    retries: int
    retry_delay: _duration_pb2.Duration
    retry_delays: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    retry_jitter_factor: float
    timeout: _duration_pb2.Duration
    def __init__(self, retries: _Optional[int] = ..., retry_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_delays: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ..., retry_jitter_factor: _Optional[float] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class OrchestrationResult(_message.Message):
    __slots__ = ("decision", "state", "reason", "wait")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    state: State
    reason: str
    wait: _duration_pb2.Duration
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., state: _Optional[_Union[State, _Mapping]] = ..., reason: _Optional[str] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
