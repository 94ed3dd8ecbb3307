"""Turn a failed RPC into the SDK's typed exception, the same way for every transport.

The engine stream reports a failed operation as an ``OperationError`` (code, reason, message)
and the unary client gets a gRPC status whose details carry a ``google.rpc.ErrorInfo``. Both go
through :func:`service_error`, so a caller catches the same `ObjectNotFound` with the same
``reason`` whichever path the request took.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from headwater.exceptions import ServiceError

if TYPE_CHECKING:
    from headwater.v1 import engine_pb2

__all__ = ["from_operation_error", "from_rpc_error", "service_error"]

_CODE_NAMES: dict[int, str] = {code.value[0]: code.name for code in grpc.StatusCode}


def service_error(code: grpc.StatusCode | int | str, reason: str, message: str) -> ServiceError:
    """The typed exception for a status code, the service's stable reason and its message.

    Args:
        code: The status code as a `grpc.StatusCode`, its number (5) or its name ("NOT_FOUND").
        reason: The ``google.rpc.ErrorInfo`` reason, e.g. "FLOW_RUN_NOT_FOUND"; may be empty.
        message: The service's explanation, kept word for word.
    """
    if isinstance(code, grpc.StatusCode):
        name = code.name
    elif isinstance(code, int):
        name = _CODE_NAMES.get(code, f"CODE_{code}")
    else:
        name = code
    return ServiceError.from_status(name, reason, message)


def from_operation_error(error: engine_pb2.OperationError) -> ServiceError:
    """The exception for an operation that failed on the engine stream."""
    return service_error(error.code, error.reason, error.message)


def from_rpc_error(error: grpc.RpcError) -> ServiceError:
    """The exception for a failed RPC, with the reason read from its status details."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or ""
    return service_error(code or grpc.StatusCode.UNKNOWN, _error_info_reason(error), message)


def _error_info_reason(error: grpc.RpcError) -> str:
    """The ``ErrorInfo.reason`` in the call's ``grpc-status-details-bin`` trailer, or ""."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status

        # A failed call's RpcError is also its grpc.Call, which is what from_call reads.
        status = rpc_status.from_call(error)
    except Exception:
        # A garbled or inconsistent details trailer must not hide the error itself.
        return ""
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason: str = info.reason
            return reason
    return ""
