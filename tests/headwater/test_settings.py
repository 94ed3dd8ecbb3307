"""The settings object: defaults, environment variables, validation, caching."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from headwater._settings import Settings, SettingsError, get_settings, reset_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HEADWATER_API_URL",
        "HEADWATER_HOME",
        "HEADWATER_DATABASE_URL",
        "HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS",
        "HEADWATER_KEEPALIVE_TIME_MS",
        "HEADWATER_LOGGING_LEVEL",
        "HEADWATER_LOG_PRINTS",
        "HEADWATER_RESULTS_PERSIST_BY_DEFAULT",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


def test_defaults() -> None:
    settings = Settings()
    assert settings.api_url is None
    assert settings.home == Path.home() / ".headwater"
    assert settings.client_retry_timeout_seconds == 60.0
    assert settings.keepalive_time_ms == 20000
    assert settings.logging_level == "INFO"
    assert settings.log_prints is False
    assert settings.results_persist_by_default is False


def test_reads_headwater_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADWATER_API_URL", "127.0.0.1:4200")
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("HEADWATER_KEEPALIVE_TIME_MS", "5000")
    monkeypatch.setenv("HEADWATER_LOGGING_LEVEL", "debug")
    monkeypatch.setenv("HEADWATER_LOG_PRINTS", "true")
    monkeypatch.setenv("HEADWATER_RESULTS_PERSIST_BY_DEFAULT", "1")
    settings = Settings()
    assert settings.api_url == "127.0.0.1:4200"
    assert settings.home == tmp_path
    assert settings.client_retry_timeout_seconds == 2.5
    assert settings.keepalive_time_ms == 5000
    assert settings.logging_level == "DEBUG"
    assert settings.log_prints is True
    assert settings.results_persist_by_default is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("   ", None),
        ("localhost:4200", "localhost:4200"),
        ("http://localhost:4200/", "localhost:4200"),
        ("grpc://10.0.0.1:4200", "10.0.0.1:4200"),
        ("unix-abstract:headwater-test", "unix-abstract:headwater-test"),
    ],
)
def test_api_url_is_reduced_to_a_grpc_target(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    monkeypatch.setenv("HEADWATER_API_URL", value)
    assert Settings().api_url == expected


def test_home_expands_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", "~/somewhere-else")
    assert Settings().home == Path.home() / "somewhere-else"


def test_server_only_variables_are_not_sdk_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server reads these itself (headwater_server.settings); the SDK neither reads nor
    # validates them, so a client of a remote server is not refused for the server's values.
    monkeypatch.setenv("HEADWATER_DATABASE_URL", "not a url")
    monkeypatch.setenv("HEADWATER_REQUEST_LOG_RETENTION_SECONDS", "a day")
    settings = Settings()
    assert not hasattr(settings, "database_url")
    assert not hasattr(settings, "request_log_retention_seconds")
    with pytest.raises(TypeError, match="database_url"):
        Settings(database_url="sqlite://")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError, match="HEADWATER_API_URL"):
        settings.api_url = "elsewhere:1"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.not_a_setting = 1  # type: ignore[attr-defined]
    assert settings.api_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEADWATER_LOGGING_LEVEL", "LOUD"),
        ("HEADWATER_KEEPALIVE_TIME_MS", "0"),
        ("HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS", "-1"),
        ("HEADWATER_LOG_PRINTS", "perhaps"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert name in str(caught.value)
    assert repr(value) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_LOGGING_LEVEL", "LOUD")
    monkeypatch.setenv("HEADWATER_KEEPALIVE_TIME_MS", "soon")
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert len(caught.value.problems) == 2
    assert "HEADWATER_KEEPALIVE_TIME_MS" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("YES", True),
        ("on", True),
        ("t", True),
        ("0", False),
        ("No", False),
        ("off", False),
        ("false", False),
    ],
)
def test_booleans_accept_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("HEADWATER_LOG_PRINTS", value)
    assert Settings().log_prints is expected


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEADWATER_HOME", "HEADWATER_LOG_PRINTS", "HEADWATER_KEEPALIVE_TIME_MS"):
        monkeypatch.setenv(name, " ")
    assert Settings() == Settings(environ={})


def test_variables_match_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("headwater_api_url", "lower:1")
    assert Settings().api_url == "lower:1"


def test_keyword_arguments_override_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HEADWATER_API_URL", "from-env:1")
    settings = Settings(api_url="http://given:2/", home=tmp_path)
    assert settings.api_url == "given:2"
    assert settings.home == tmp_path
    assert settings == Settings(api_url="given:2", home=str(tmp_path))
    with pytest.raises(TypeError, match="no_such_setting"):
        Settings(no_such_setting=1)


def test_settings_pickle_as_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy
    import pickle

    settings = Settings(api_url="here:1", log_prints=True)
    monkeypatch.setenv("HEADWATER_API_URL", "elsewhere:2")
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert copy.copy(settings) == settings


def test_get_settings_is_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_API_URL", "first:1")
    first = get_settings()
    monkeypatch.setenv("HEADWATER_API_URL", "second:2")
    assert get_settings() is first
    assert get_settings().api_url == "first:1"
    reset_settings()
    assert get_settings().api_url == "second:2"


def test_import_headwater_does_not_load_settings() -> None:
    """`import headwater` reads no settings and imports no validation framework."""
    code = (
        "import sys, headwater; "
        "print(sorted(m for m in ('headwater._settings', 'pydantic_settings', 'pydantic', "
        "'headwater_server', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
