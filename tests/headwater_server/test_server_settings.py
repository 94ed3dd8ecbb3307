"""The server's own settings: read once from HEADWATER_* variables, frozen, bad values named."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import grpc
import pytest
from headwater.v1 import flows_pb2, flows_pb2_grpc
from headwater_server.server import ServerStartError, start_server
from headwater_server.settings import ServerSettings, ServerSettingsError


def test_defaults_when_nothing_is_set() -> None:
    settings = ServerSettings.from_environ({})
    assert settings.database_url is None
    assert settings.home == Path("~/.headwater").expanduser().absolute()
    assert settings.request_log_retention_seconds == 86_400
    assert settings.max_receive_message_bytes == 4 * 1024 * 1024
    assert settings == ServerSettings()


def test_variables_are_read_case_insensitively_and_empty_means_unset(tmp_path: Path) -> None:
    settings = ServerSettings.from_environ(
        {
            "HEADWATER_DATABASE_URL": "postgresql+psycopg://db/hw",
            "headwater_home": str(tmp_path),
            "HEADWATER_REQUEST_LOG_RETENTION_SECONDS": "60.5",
            "HEADWATER_MAX_RECEIVE_MESSAGE_BYTES": "  ",
            "HEADWATER_API_URL": "not the server's business",
            "OTHER": "ignored",
        }
    )
    assert settings.database_url == "postgresql+psycopg://db/hw"
    assert settings.home == tmp_path
    assert settings.request_log_retention_seconds == 60.5
    assert settings.max_receive_message_bytes == ServerSettings().max_receive_message_bytes


def test_every_bad_value_is_reported_at_once_naming_its_variable() -> None:
    with pytest.raises(ServerSettingsError) as caught:
        ServerSettings.from_environ(
            {
                "HEADWATER_REQUEST_LOG_RETENTION_SECONDS": "a day",
                "HEADWATER_MAX_RECEIVE_MESSAGE_BYTES": "-1",
            }
        )
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("HEADWATER_REQUEST_LOG_RETENTION_SECONDS must be a number")
    assert "'a day'" in problems[0]
    assert problems[1].startswith("HEADWATER_MAX_RECEIVE_MESSAGE_BYTES must be a whole number")
    assert str(caught.value).startswith("Invalid Headwater server settings: ")


@pytest.mark.parametrize("value", ["nan", "inf", "-5"])
def test_retention_must_be_finite_and_not_negative(value: str) -> None:
    with pytest.raises(ServerSettingsError, match="HEADWATER_REQUEST_LOG_RETENTION_SECONDS"):
        ServerSettings.from_environ({"HEADWATER_REQUEST_LOG_RETENTION_SECONDS": value})


def test_values_set_in_code_are_checked_too() -> None:
    with pytest.raises(ServerSettingsError, match="HEADWATER_REQUEST_LOG_RETENTION_SECONDS"):
        dataclasses.replace(ServerSettings(), request_log_retention_seconds=math.nan)
    with pytest.raises(ServerSettingsError, match="HEADWATER_MAX_RECEIVE_MESSAGE_BYTES"):
        ServerSettings(max_receive_message_bytes=0)


def test_retention_late_runs_and_scheduler_settings() -> None:
    defaults = ServerSettings()
    assert defaults.run_retention_seconds is None  # kept forever
    assert defaults.log_retention_seconds is None
    assert defaults.late_run_after_seconds == 15
    assert (defaults.scheduler_min_runs, defaults.scheduler_max_runs) == (3, 100)
    settings = ServerSettings.from_environ(
        {
            "HEADWATER_RUN_RETENTION_SECONDS": "604800",
            "HEADWATER_LOG_RETENTION_SECONDS": "86400.5",
            "HEADWATER_LATE_RUN_AFTER_SECONDS": "0",
            "HEADWATER_SCHEDULER_LOOP_SECONDS": "0.5",
            "HEADWATER_SCHEDULER_MAX_RUNS": "10",
            "HEADWATER_SCHEDULER_MAX_AHEAD_SECONDS": "3600",
        }
    )
    assert settings.run_retention_seconds == 604_800
    assert settings.log_retention_seconds == 86_400.5
    assert settings.late_run_after_seconds == 0
    assert settings.scheduler_loop_seconds == 0.5
    assert settings.scheduler_max_runs == 10
    assert settings.scheduler_max_ahead_seconds == 3600


def test_bad_retention_late_runs_and_scheduler_settings_are_named() -> None:
    with pytest.raises(ServerSettingsError) as caught:
        ServerSettings.from_environ(
            {
                "HEADWATER_RUN_RETENTION_SECONDS": "0",
                "HEADWATER_LOG_RETENTION_SECONDS": "a week",
                "HEADWATER_LATE_RUN_AFTER_SECONDS": "-1",
                "HEADWATER_SCHEDULER_MAX_RUNS": "1.5",
            }
        )
    assert [problem.split(" must ")[0] for problem in caught.value.problems] == [
        "HEADWATER_RUN_RETENTION_SECONDS",
        "HEADWATER_LOG_RETENTION_SECONDS",
        "HEADWATER_LATE_RUN_AFTER_SECONDS",
        "HEADWATER_SCHEDULER_MAX_RUNS",
    ]
    assert "more than 0" in caught.value.problems[0]
    with pytest.raises(ServerSettingsError, match="HEADWATER_SCHEDULER_MIN_RUNS \\(5\\) must not"):
        ServerSettings(scheduler_min_runs=5, scheduler_max_runs=4)
    with pytest.raises(ServerSettingsError, match="HEADWATER_SCHEDULER_LOOP_SECONDS"):
        ServerSettings(scheduler_loop_seconds=math.inf)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServerSettings().database_url = "sqlite://"  # type: ignore[misc]


def test_the_default_database_is_sqlite_in_home_which_is_created(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "home"
    url = ServerSettings(home=home).resolved_database_url()
    assert url == f"sqlite:///{home / 'headwater.db'}"
    assert home.is_dir()
    assert ServerSettings(database_url="sqlite://", home=home).resolved_database_url() == (
        "sqlite://"
    )


def test_a_home_that_cannot_be_created_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ServerSettingsError) as caught:
        ServerSettings(home=blocker / "home").resolved_database_url()
    assert "HEADWATER_HOME" in str(caught.value) and str(blocker / "home") in str(caught.value)


async def test_start_server_reports_an_impossible_home_as_a_start_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ServerStartError, match="HEADWATER_HOME"):
        await start_server("127.0.0.1:0", ServerSettings(home=blocker / "home"))


async def test_the_server_refuses_requests_over_its_message_size_limit(tmp_path: Path) -> None:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'hw.db'}", max_receive_message_bytes=2048
    )
    server = await start_server("127.0.0.1:0", settings)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            flows = flows_pb2_grpc.FlowServiceStub(channel)
            created = await flows.CreateFlow(flows_pb2.CreateFlowRequest(name="small"))
            assert created.flow.name == "small"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await flows.CreateFlow(flows_pb2.CreateFlowRequest(name="x", tags=["t" * 200] * 20))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop()


@pytest.mark.parametrize("value", ["not a url", "/tmp/headwater.db", "://host/db"])
def test_a_database_url_without_a_scheme_names_the_variable(value: str) -> None:
    with pytest.raises(ServerSettingsError, match="HEADWATER_DATABASE_URL must be a SQLAlchemy"):
        ServerSettings.from_environ({"HEADWATER_DATABASE_URL": value})


def test_a_home_that_is_a_file_names_the_variable(tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("")
    with pytest.raises(ServerSettingsError, match="is a file, not a directory"):
        ServerSettings(home=home).resolved_database_url()
