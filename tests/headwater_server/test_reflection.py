"""Reflection answers from the packaged descriptor image: every symbol by name, comments kept."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from headwater.v1 import (
    deployments_pb2,
    engine_pb2,
    flow_runs_pb2,
    flows_pb2,
    logs_pb2,
    schedules_pb2,
    states_pb2,
    task_runs_pb2,
    work_pools_pb2,
)
from headwater_server.reflection import load_image
from headwater_server.server import start_server

GENERATED = (
    deployments_pb2,
    engine_pb2,
    flow_runs_pb2,
    flows_pb2,
    logs_pb2,
    schedules_pb2,
    states_pb2,
    task_runs_pb2,
    work_pools_pb2,
)


def _names(file: object) -> list[str]:
    names: list[str] = []

    def message(m: object) -> None:
        names.append(m.full_name)  # type: ignore[attr-defined]
        names.extend(f.full_name for f in m.fields)  # type: ignore[attr-defined]
        for nested in m.nested_types:  # type: ignore[attr-defined]
            message(nested)
        names.extend(e.full_name for e in m.enum_types)  # type: ignore[attr-defined]

    for m in file.message_types_by_name.values():  # type: ignore[attr-defined]
        message(m)
    names.extend(e.full_name for e in file.enum_types_by_name.values())  # type: ignore[attr-defined]
    for service in file.services_by_name.values():  # type: ignore[attr-defined]
        names.append(service.full_name)
        names.extend(m.full_name for m in service.methods)
    return names


def test_the_image_knows_every_symbol_of_the_generated_stubs() -> None:
    image = load_image()
    for module in GENERATED:
        names = _names(module.DESCRIPTOR)
        assert names
        for name in names:
            assert image.symbols.get(name) == module.DESCRIPTOR.name, name


def test_the_image_keeps_the_comments() -> None:
    image = load_image()
    for module in GENERATED:
        file = image.files[module.DESCRIPTOR.name]
        comments = [loc.leading_comments for loc in file.source_code_info.location]
        assert sum(1 for c in comments if c.strip()) > 5, file.name


def test_a_file_comes_with_its_imports_first_file_first() -> None:
    image = load_image()
    served = [
        descriptor_pb2.FileDescriptorProto.FromString(raw).name
        for raw in image.with_dependencies("headwater/v1/flow_runs.proto")
    ]
    assert served[0] == "headwater/v1/flow_runs.proto"
    assert "headwater/v1/states.proto" in served
    assert "google/protobuf/timestamp.proto" in served
    assert len(served) == len(set(served))


@pytest.fixture
async def channel(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = await start_server("127.0.0.1:0", f"sqlite:///{tmp_path / 'hw.db'}")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield channel
    finally:
        await server.stop()


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> object:
    return reflection_pb2_grpc.ServerReflectionStub(channel)


async def _ask(stub: object, **request: object) -> reflection_pb2.ServerReflectionResponse:
    call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]))  # type: ignore[attr-defined]
    answers = [answer async for answer in call]
    assert len(answers) == 1
    return answers[0]


async def test_a_method_is_found_by_name_with_its_comment(stub: object) -> None:
    answer = await _ask(stub, file_containing_symbol="headwater.v1.FlowRunService.GetFlowRun")
    first = descriptor_pb2.FileDescriptorProto.FromString(
        answer.file_descriptor_response.file_descriptor_proto[0]
    )
    assert first.name == "headwater/v1/flow_runs.proto"
    comments = " ".join(loc.leading_comments for loc in first.source_code_info.location)
    assert "GetFlowRun returns one flow run" in comments


async def test_files_outside_the_image_come_from_the_process(stub: object) -> None:
    answer = await _ask(stub, file_containing_symbol="grpc.health.v1.Health")
    names = [
        descriptor_pb2.FileDescriptorProto.FromString(raw).name
        for raw in answer.file_descriptor_response.file_descriptor_proto
    ]
    assert names[0].endswith("health.proto")


async def test_an_unknown_symbol_or_file_is_not_found(stub: object) -> None:
    for request in (
        {"file_containing_symbol": "headwater.v1.Nothing"},
        {"file_by_filename": "nothing.proto"},
        {"all_extension_numbers_of_type": "headwater.v1.Nothing"},
    ):
        answer = await _ask(stub, **request)
        assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], request


async def test_reflection_v1_is_served_too(channel: grpc.aio.Channel) -> None:
    # Current tools try grpc.reflection.v1 first; its messages are v1alpha's on the wire.
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="headwater.v1.FlowRunService.GetFlowRun"
    )
    answers = [answer async for answer in call(iter([request]))]
    first = descriptor_pb2.FileDescriptorProto.FromString(
        answers[0].file_descriptor_response.file_descriptor_proto[0]
    )
    assert first.name == "headwater/v1/flow_runs.proto"
