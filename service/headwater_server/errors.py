"""The one catalogue of errors the service returns.

Every error a caller can get from Headwater is declared here with its gRPC status code, a stable
machine-readable reason (sent as ``google.rpc.ErrorInfo`` in the status details, domain
``headwater.dev``) and a message that tells a person what to do. SDKs map code and reason to
typed exceptions, so the reasons below are part of the API: never rename one.

The application layer (its request checks) and storage raise :class:`ServiceError`; the gRPC layer
turns it into a rich status with :func:`to_rpc_status`, and the engine stream turns it into an
``OperationError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from google.rpc import status_pb2

DOMAIN = "headwater.dev"

# Echoed values are cut to this many characters: a 4 KB id echoed whole (in the message and again
# in the BadRequest detail) overflows the 8 KB metadata limit of HTTP/2 clients, which then see
# RESOURCE_EXHAUSTED instead of the error meant for them.
SHOWN_CHARACTERS = 64
# A last guard for messages built from text this module did not shorten (driver errors, say):
# the status message and each field description stay well below that metadata limit.
MAX_MESSAGE_CHARACTERS = 1000


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one request field, reported as a ``google.rpc.BadRequest`` entry."""

    field: str
    description: str


@dataclass
class ServiceError(Exception):
    """An error the service returns to a caller: status code, stable reason, human message."""

    code: grpc.StatusCode
    reason: str
    message: str
    violations: tuple[FieldViolation, ...] = ()
    resource_type: str = ""
    resource_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def shown(value: str, limit: int = SHOWN_CHARACTERS) -> str:
    """``value`` quoted for an error message, shortened when long so the trailer stays small.

    >>> shown("x" * 5000)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (5000 characters)"
    """
    if len(value) <= limit:
        return f"'{value}'"
    return f"'{value[:limit]}...' ({len(value)} characters)"


def capped(text: str) -> str:
    """``text`` cut to MAX_MESSAGE_CHARACTERS, for messages that may hold unshortened input."""
    if len(text) <= MAX_MESSAGE_CHARACTERS:
        return text
    return text[: MAX_MESSAGE_CHARACTERS - 3] + "..."


def invalid_argument(
    field_name: str, description: str, reason: str = "INVALID_ARGUMENT"
) -> ServiceError:
    """A request field is missing or malformed; the message names the field and the fix."""
    return ServiceError(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        reason=reason,
        message=f"Invalid request field '{field_name}': {description}",
        violations=(FieldViolation(field_name, description),),
    )


def invalid_arguments(problems: list[tuple[str, str]]) -> ServiceError:
    """Several request fields are wrong at once (each a BadRequest entry); the message names
    the first and counts the others."""
    first_field, first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return ServiceError(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        reason="INVALID_ARGUMENT",
        message=f"Invalid request field '{first_field}': {first}{more}",
        violations=tuple(FieldViolation(name, text) for name, text in problems),
    )


def undecodable_request(method: str, problem: str) -> ServiceError:
    """The request bytes are not a valid message of the method's request type."""
    return ServiceError(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        reason="INVALID_ARGUMENT",
        message=(
            f"The request to {method} could not be decoded ({capped(problem)}). Send a message "
            "built from the headwater.v1 .proto files (generated stubs, or grpcurl with "
            "protos/headwater.binpb)."
        ),
    )


def not_found(resource_type: str, resource_id: str) -> ServiceError:
    """The named resource does not exist (or was deleted)."""
    label = resource_type.replace("_", " ")
    list_method = "List" + "".join(part.title() for part in resource_type.split("_")) + "s"
    return ServiceError(
        code=grpc.StatusCode.NOT_FOUND,
        reason=f"{resource_type.upper()}_NOT_FOUND",
        message=(
            f"No {label} with id {shown(resource_id)} exists. Check the id ({list_method} lists "
            "them), or create it first."
        ),
        resource_type=resource_type,
        resource_name=resource_id,
    )


def not_found_by_name(resource_type: str, name: str) -> ServiceError:
    """The resource named ``name`` does not exist (for resources looked up by name)."""
    label = resource_type.replace("_", " ")
    list_method = "List" + "".join(part.title() for part in resource_type.split("_")) + "s"
    return ServiceError(
        code=grpc.StatusCode.NOT_FOUND,
        reason=f"{resource_type.upper()}_NOT_FOUND",
        message=(
            f"No {label} named {shown(name)} exists. Check the name ({list_method} lists "
            "them), or create it first."
        ),
        resource_type=resource_type,
        resource_name=name,
    )


def deployment_paused(deployment_id: str, name: str) -> ServiceError:
    """A run of a paused deployment was asked for."""
    return failed_precondition(
        "DEPLOYMENT_PAUSED",
        f"Deployment '{name}' is paused, so it creates no runs. Resume it (ResumeDeployment, "
        f"or `headwater deployment resume '{name}'`) first.",
        resource_type="deployment",
        resource_name=deployment_id,
    )


def already_exists(resource_type: str, resource_name: str, detail: str) -> ServiceError:
    """Creating the resource would duplicate a unique name or key.

    ``resource_name`` is the id of the resource that already exists; it is also sent as
    ``existing_<resource_type>_id`` in the ErrorInfo metadata, so a client can use that resource
    without parsing the message.
    """
    return ServiceError(
        code=grpc.StatusCode.ALREADY_EXISTS,
        reason=f"{resource_type.upper()}_ALREADY_EXISTS",
        message=detail,
        resource_type=resource_type,
        resource_name=resource_name,
        metadata={f"existing_{resource_type}_id": resource_name},
    )


def failed_precondition(
    reason: str, message: str, resource_type: str = "", resource_name: str = ""
) -> ServiceError:
    """The request is well formed but the resource is in a state that does not allow it."""
    return ServiceError(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        reason=reason,
        message=message,
        resource_type=resource_type,
        resource_name=resource_name,
    )


def unavailable(message: str) -> ServiceError:
    """The service cannot answer right now (shutting down, database unreachable); retry."""
    return ServiceError(
        code=grpc.StatusCode.UNAVAILABLE, reason="SERVICE_UNAVAILABLE", message=message
    )


def internal(message: str) -> ServiceError:
    """A bug or an unexpected failure; the message says where to look."""
    return ServiceError(code=grpc.StatusCode.INTERNAL, reason="INTERNAL", message=message)


def to_rpc_status(error: ServiceError) -> status_pb2.Status:
    """Build the ``google.rpc.Status`` (with ErrorInfo, BadRequest, ResourceInfo details)."""
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    details.append(info)
    if error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=capped(v.field), description=capped(v.description)
                    )
                    for v in error.violations
                ]
            )
        )
    if error.resource_type:
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=f"headwater.v1.{error.resource_type}",
                resource_name=capped(error.resource_name),
            )
        )
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return status_pb2.Status(
        code=error.code.value[0], message=capped(error.message), details=packed
    )
