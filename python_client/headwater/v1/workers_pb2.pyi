import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from headwater.v1 import deployments_pb2 as _deployments_pb2
from headwater.v1 import flow_runs_pb2 as _flow_runs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PollRunsRequest(_message.Message):
    __slots__ = ("worker_name", "work_pool_name", "work_queue_names", "deployment_ids", "max_runs", "wait", "worker_id")
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAMES_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_name: str
    work_pool_name: str
    work_queue_names: _containers.RepeatedScalarFieldContainer[str]
    deployment_ids: _containers.RepeatedScalarFieldContainer[str]
    max_runs: int
    wait: _duration_pb2.Duration
    worker_id: str
    def __init__(self, worker_name: _Optional[str] = ..., work_pool_name: _Optional[str] = ..., work_queue_names: _Optional[_Iterable[str]] = ..., deployment_ids: _Optional[_Iterable[str]] = ..., max_runs: _Optional[int] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., worker_id: _Optional[str] = ...) -> None: ...

class PollRunsResponse(_message.Message):
    __slots__ = ("runs", "claims")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[ClaimedRun]
    claims: int
    def __init__(self, runs: _Optional[_Iterable[_Union[ClaimedRun, _Mapping]]] = ..., claims: _Optional[int] = ...) -> None: ...

class ClaimedRun(_message.Message):
    __slots__ = ("flow_run", "deployment")
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    flow_run: _flow_runs_pb2.FlowRun
    deployment: _deployments_pb2.Deployment
    def __init__(self, flow_run: _Optional[_Union[_flow_runs_pb2.FlowRun, _Mapping]] = ..., deployment: _Optional[_Union[_deployments_pb2.Deployment, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_name", "flow_run_ids", "worker_id", "claims_seen")
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_SEEN_FIELD_NUMBER: _ClassVar[int]
    worker_name: str
    flow_run_ids: _containers.RepeatedScalarFieldContainer[str]
    worker_id: str
    claims_seen: int
    def __init__(self, worker_name: _Optional[str] = ..., flow_run_ids: _Optional[_Iterable[str]] = ..., worker_id: _Optional[str] = ..., claims_seen: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("cancel_flow_run_ids",)
    CANCEL_FLOW_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    cancel_flow_run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancel_flow_run_ids: _Optional[_Iterable[str]] = ...) -> None: ...
