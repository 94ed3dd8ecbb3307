"""The shared error translation: service errors pass through, anything else becomes INTERNAL."""

from __future__ import annotations

import logging

import grpc
import pytest
from headwater.v1 import flow_runs_pb2
from headwater_server import errors
from headwater_server.servicers._common import resource_id_of, to_service_error


def test_a_service_error_is_returned_as_is() -> None:
    error = errors.not_found("flow_run", "abc")
    assert to_service_error(error, "FlowRunService.GetFlowRun", None) is error


def test_an_unexpected_exception_is_logged_with_the_run_and_becomes_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = flow_runs_pb2.GetFlowRunRequest(flow_run_id="0b1c2d3e-0000-4000-8000-000000000009")
    try:
        {}["missing"]
    except KeyError as exc:
        with caplog.at_level(logging.ERROR):
            error = to_service_error(exc, "FlowRunService.GetFlowRun", request)
    assert error.code == grpc.StatusCode.INTERNAL
    assert error.reason == "INTERNAL"
    assert "FlowRunService.GetFlowRun" in error.message and request.flow_run_id in error.message
    assert "KeyError" in error.message
    assert request.flow_run_id in caplog.text
    assert caplog.records[0].exc_info is not None


def test_the_resource_id_comes_from_the_most_specific_field() -> None:
    from headwater.v1 import logs_pb2, task_runs_pb2

    assert resource_id_of(task_runs_pb2.SetTaskRunStateRequest(task_run_id="t")) == "t"
    assert resource_id_of(task_runs_pb2.CreateTaskRunRequest(flow_run_id="f")) == "f"
    assert resource_id_of(logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(flow_run_id="r")])) == "r"
    assert resource_id_of(None) == ""
