"""Server reflection from the descriptor image, so grpcurl shows the API with its documentation.

grpcio's own reflection servicer answers from the process's descriptor pool, which the generated
stubs fill without source info: every comment is gone, and a method cannot be looked up by name
(``describe headwater.v1.FlowRunService.GetFlowRun`` answers "Symbol not found"). This servicer
answers from the image ``buf build`` writes (``headwater.binpb`` beside this module, copied by
``make protos`` and checked by the staleness test), which keeps the comments, and indexes every
symbol in it: services, methods, messages, fields, enums, enum values, nested types included.

Files the image does not hold (the health and reflection services' own) come from the process's
descriptor pool, as grpcio's servicer would serve them.

Both reflection protocols are served, ``grpc.reflection.v1`` (what current tools try first) and
``grpc.reflection.v1alpha`` (grpcio's, and older tools'): their messages are the same on the wire,
so one servicer answers both. Only v1alpha is listed, as before: grpcio ships no descriptor of the
v1 service, so a tool that listed it could not describe it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.reflection_pb2 import ServerReflectionResponse as Response

__all__ = [
    "IMAGE_RESOURCE",
    "SERVICE_NAMES",
    "DescriptorImage",
    "ImageReflectionServicer",
    "add_reflection",
    "load_image",
]

#: The descriptor image shipped inside the package (a ``FileDescriptorSet`` with source info).
IMAGE_RESOURCE = "headwater.binpb"

#: The reflection services this module serves, newest first; only the last is listed.
SERVICE_NAMES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


class DescriptorImage:
    """The files of a descriptor set, and which file declares each fully qualified symbol."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self.files: dict[str, descriptor_pb2.FileDescriptorProto] = {f.name: f for f in files}
        self.serialized = {name: f.SerializeToString() for name, f in self.files.items()}
        self.symbols: dict[str, str] = {}
        for file in self.files.values():
            prefix = f"{file.package}." if file.package else ""
            for message in file.message_type:
                self._add_message(file.name, prefix, message)
            for enum in file.enum_type:
                self._add_enum(file.name, prefix, enum)
            for service in file.service:
                self.symbols[prefix + service.name] = file.name
                for method in service.method:
                    self.symbols[f"{prefix}{service.name}.{method.name}"] = file.name
            for extension in file.extension:
                self.symbols[prefix + extension.name] = file.name

    def _add_message(self, file: str, prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = prefix + message.name
        self.symbols[name] = file
        for item in (*message.field, *message.extension, *message.oneof_decl):
            self.symbols[f"{name}.{item.name}"] = file
        for nested in message.nested_type:
            self._add_message(file, f"{name}.", nested)
        for enum in message.enum_type:
            self._add_enum(file, f"{name}.", enum)

    def _add_enum(self, file: str, prefix: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self.symbols[prefix + enum.name] = file
        for value in enum.value:
            # Enum values are siblings of their enum in protobuf's scoping rules.
            self.symbols[prefix + value.name] = file

    def with_dependencies(self, name: str) -> list[bytes]:
        """The serialized file ``name`` first, then every file it imports, transitively."""
        ordered: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop()
            if current in ordered:
                continue
            ordered.append(current)
            pending.extend(d for d in self.files[current].dependency if d in self.files)
        return [self.serialized[n] for n in ordered]


@cache
def load_image() -> DescriptorImage:
    """The packaged descriptor image, read once per process."""
    data = resources.files("headwater_server").joinpath(IMAGE_RESOURCE).read_bytes()
    return DescriptorImage(descriptor_pb2.FileDescriptorSet.FromString(data).file)


# grpcio-reflection ships no type stubs for its generated servicer base.
class ImageReflectionServicer(reflection_pb2_grpc.ServerReflectionServicer):  # type: ignore[misc]
    """``grpc.reflection.v1alpha.ServerReflection`` answering from a :class:`DescriptorImage`.

    Args:
        service_names: The services ``list`` shows, fully qualified.
        image: The descriptor image; the packaged one by default.
    """

    def __init__(self, service_names: Iterable[str], image: DescriptorImage | None = None) -> None:
        self._service_names = tuple(sorted(service_names))
        self._image = image or load_image()
        self._pool = descriptor_pool.Default()

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterator[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[Response]:
        """Answer each reflection request on the stream, in order."""
        async for request in request_iterator:
            yield self._answer(request)

    def _answer(self, request: reflection_pb2.ServerReflectionRequest) -> Response:
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            services = [reflection_pb2.ServiceResponse(name=n) for n in self._service_names]
            return Response(
                original_request=request,
                list_services_response=reflection_pb2.ListServiceResponse(service=services),
            )
        if kind == "file_by_filename":
            return self._file(request, request.file_by_filename, self._pool.FindFileByName)
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol.lstrip(".")
            file = self._image.symbols.get(symbol)
            if file is not None:
                return self._file(request, file, self._pool.FindFileByName)
            return self._file(request, symbol, self._pool.FindFileContainingSymbol)
        if kind == "file_containing_extension":
            extension = request.file_containing_extension
            return self._file(
                request,
                extension.containing_type,
                lambda name: (
                    self._pool.FindExtensionByNumber(
                        self._pool.FindMessageTypeByName(name), extension.extension_number
                    ).file
                ),
            )
        if kind == "all_extension_numbers_of_type":
            try:
                message = self._pool.FindMessageTypeByName(request.all_extension_numbers_of_type)
            except KeyError:
                return _error(request, grpc.StatusCode.NOT_FOUND)
            numbers = sorted(e.number for e in self._pool.FindAllExtensions(message))
            return Response(
                original_request=request,
                all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                    base_type_name=message.full_name, extension_number=numbers
                ),
            )
        return _error(request, grpc.StatusCode.INVALID_ARGUMENT)

    def _file(
        self, request: reflection_pb2.ServerReflectionRequest, name: str, find: Any
    ) -> Response:
        """The file ``name`` with its imports: from the image when it holds it, else the pool."""
        if name in self._image.files:
            protos = self._image.with_dependencies(name)
        else:
            try:
                protos = _pool_file_with_dependencies(find(name))
            except KeyError:
                return _error(request, grpc.StatusCode.NOT_FOUND)
        return Response(
            original_request=request,
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=protos
            ),
        )


def _pool_file_with_dependencies(file: Any) -> list[bytes]:
    seen: dict[str, Any] = {}
    pending = [file]
    while pending:
        current = pending.pop()
        if current.name in seen:
            continue
        seen[current.name] = current
        pending.extend(current.dependencies)
    protos = []
    for descriptor in seen.values():
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        protos.append(proto.SerializeToString())
    return protos


def _error(request: reflection_pb2.ServerReflectionRequest, code: grpc.StatusCode) -> Response:
    return Response(
        original_request=request,
        error_response=reflection_pb2.ErrorResponse(
            error_code=code.value[0], error_message=code.value[1]
        ),
    )


def add_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection (v1 and v1alpha) on ``server``, listing ``service_names`` and its own.

    Args:
        server: The server, before it starts.
        service_names: The application's services, fully qualified, for ``list``.
    """
    servicer = ImageReflectionServicer((*service_names, SERVICE_NAMES[-1]))
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in SERVICE_NAMES
        )
    )
