import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from headwater.v1 import flow_runs_pb2 as _flow_runs_pb2
from headwater.v1 import schedules_pb2 as _schedules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CollisionStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLLISION_STRATEGY_UNSPECIFIED: _ClassVar[CollisionStrategy]
    COLLISION_STRATEGY_ENQUEUE: _ClassVar[CollisionStrategy]
    COLLISION_STRATEGY_CANCEL_NEW: _ClassVar[CollisionStrategy]
COLLISION_STRATEGY_UNSPECIFIED: CollisionStrategy
COLLISION_STRATEGY_ENQUEUE: CollisionStrategy
COLLISION_STRATEGY_CANCEL_NEW: CollisionStrategy

class Deployment(_message.Message):
    __slots__ = ("id", "name", "flow_id", "flow_name", "description", "version", "tags", "entrypoint", "code", "parameters_json", "parameter_schema_json", "enforce_parameter_schema", "schedules", "paused", "concurrency_limit", "collision_strategy", "work_pool_name", "work_queue_name", "job_variables_json", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    ENFORCE_PARAMETER_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    COLLISION_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    flow_id: str
    flow_name: str
    description: str
    version: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    entrypoint: str
    code: CodeLocation
    parameters_json: str
    parameter_schema_json: str
    enforce_parameter_schema: bool
    schedules: _containers.RepeatedCompositeFieldContainer[_schedules_pb2.DeploymentSchedule]
    paused: bool
    concurrency_limit: int
    collision_strategy: CollisionStrategy
    work_pool_name: str
    work_queue_name: str
    job_variables_json: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., flow_id: _Optional[str] = ..., flow_name: _Optional[str] = ..., description: _Optional[str] = ..., version: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., entrypoint: _Optional[str] = ..., code: _Optional[_Union[CodeLocation, _Mapping]] = ..., parameters_json: _Optional[str] = ..., parameter_schema_json: _Optional[str] = ..., enforce_parameter_schema: _Optional[bool] = ..., schedules: _Optional[_Iterable[_Union[_schedules_pb2.DeploymentSchedule, _Mapping]]] = ..., paused: _Optional[bool] = ..., concurrency_limit: _Optional[int] = ..., collision_strategy: _Optional[_Union[CollisionStrategy, str]] = ..., work_pool_name: _Optional[str] = ..., work_queue_name: _Optional[str] = ..., job_variables_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CodeLocation(_message.Message):
    __slots__ = ("directory", "git")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    GIT_FIELD_NUMBER: _ClassVar[int]
    directory: str
    git: GitRepository
    def __init__(self, directory: _Optional[str] = ..., git: _Optional[_Union[GitRepository, _Mapping]] = ...) -> None: ...

class GitRepository(_message.Message):
    __slots__ = ("url", "branch", "commit")
    URL_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    url: str
    branch: str
    commit: str
    def __init__(self, url: _Optional[str] = ..., branch: _Optional[str] = ..., commit: _Optional[str] = ...) -> None: ...

class CreateDeploymentRequest(_message.Message):
    __slots__ = ("deployment", "request_id")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    request_id: str
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "name")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    name: str
    def __init__(self, deployment_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class DeploymentFilter(_message.Message):
    __slots__ = ("flow_name", "name", "tags", "work_pool_name", "paused")
    FLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    flow_name: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    work_pool_name: str
    paused: bool
    def __init__(self, flow_name: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., work_pool_name: _Optional[str] = ..., paused: _Optional[bool] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: DeploymentFilter
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[DeploymentFilter, _Mapping]] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "next_page_token")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    next_page_token: str
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "deployment", "update_mask")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    deployment: Deployment
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, deployment_id: _Optional[str] = ..., deployment: _Optional[_Union[Deployment, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id",)
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    def __init__(self, deployment_id: _Optional[str] = ...) -> None: ...

class DeleteDeploymentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "request_id")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    request_id: str
    def __init__(self, deployment_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PauseDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ResumeDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "request_id")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    request_id: str
    def __init__(self, deployment_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class DeploymentRun(_message.Message):
    __slots__ = ("parameters_json", "name", "tags", "idempotency_key", "scheduled_time", "job_variables_json")
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    parameters_json: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    scheduled_time: _timestamp_pb2.Timestamp
    job_variables_json: str
    def __init__(self, parameters_json: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_variables_json: _Optional[str] = ...) -> None: ...

class CreateFlowRunFromDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "parameters_json", "name", "tags", "idempotency_key", "scheduled_time", "request_id", "job_variables_json")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    parameters_json: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    scheduled_time: _timestamp_pb2.Timestamp
    request_id: str
    job_variables_json: str
    def __init__(self, deployment_id: _Optional[str] = ..., parameters_json: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., job_variables_json: _Optional[str] = ...) -> None: ...

class CreateFlowRunFromDeploymentResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: _flow_runs_pb2.FlowRun
    def __init__(self, flow_run: _Optional[_Union[_flow_runs_pb2.FlowRun, _Mapping]] = ...) -> None: ...

class BatchCreateFlowRunsFromDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "runs", "request_id")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    runs: _containers.RepeatedCompositeFieldContainer[DeploymentRun]
    request_id: str
    def __init__(self, deployment_id: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[DeploymentRun, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchCreateFlowRunsFromDeploymentResponse(_message.Message):
    __slots__ = ("flow_runs",)
    FLOW_RUNS_FIELD_NUMBER: _ClassVar[int]
    flow_runs: _containers.RepeatedCompositeFieldContainer[_flow_runs_pb2.FlowRun]
    def __init__(self, flow_runs: _Optional[_Iterable[_Union[_flow_runs_pb2.FlowRun, _Mapping]]] = ...) -> None: ...
