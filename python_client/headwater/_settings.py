"""The one settings object of the SDK and the server, read from ``HEADWATER_*`` variables.

Settings are read once into a frozen object so every part of a process sees the same values and
no call site reads ``os.environ`` itself. Importing pydantic-settings costs tens of milliseconds,
so nothing imports this module at ``import headwater`` time: callers import it inside the
function that first needs a setting.

Example::

    from headwater._settings import get_settings

    settings = get_settings()
    settings.api_url                  # "127.0.0.1:4200", or None for the embedded server
    settings.resolved_database_url()  # "sqlite:////home/me/.headwater/headwater.db"
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "reset_settings"]

# Schemes people paste out of habit (Prefect's PREFECT_API_URL is an http URL). gRPC targets
# have none, so they are dropped rather than refused.
_IGNORED_SCHEMES = ("grpc://", "http://", "https://")


def _default_home() -> Path:
    return Path.home() / ".headwater"


class Settings(BaseSettings):
    """Every ``HEADWATER_*`` setting, validated and frozen.

    Attributes:
        api_url: The service address, ``host:port`` (or ``unix:path``, ``unix-abstract:name``).
            Unset means the SDK starts an embedded server in-process on the local database.
        home: Where Headwater keeps its local database and results; created on first use.
        database_url: The server's SQLAlchemy URL. Unset means SQLite at ``home/headwater.db``.
        client_retry_timeout_seconds: How long the engine keeps reconnecting when the service
            is unavailable (a restart) before its operations fail.
        keepalive_time_ms: How often the client pings an idle connection, so long waits
            survive proxies and NAT tables that drop silent connections.
        logging_level: The level of Headwater's own loggers and of run loggers.
        log_prints: Whether ``print`` inside flows is captured as logs when a flow leaves
            ``log_prints`` unset.
        results_persist_by_default: Whether results are persisted when a flow leaves
            ``persist_result`` unset.
    """

    model_config = SettingsConfigDict(env_prefix="HEADWATER_", frozen=True, extra="ignore")

    api_url: str | None = None
    home: Path = Field(default_factory=_default_home)
    database_url: str | None = None
    client_retry_timeout_seconds: float = Field(default=60.0, ge=0)
    keepalive_time_ms: int = Field(default=20000, gt=0)
    logging_level: str = "INFO"
    log_prints: bool = False
    results_persist_by_default: bool = False

    @field_validator("api_url", "database_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An exported-but-empty variable (``HEADWATER_API_URL=``) means "not set"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("api_url")
    @classmethod
    def _plain_target(cls, value: str | None) -> str | None:
        """Reduce a URL to the gRPC target it names: ``http://host:4200/`` -> ``host:4200``."""
        if value is None:
            return None
        value = value.strip()
        for scheme in _IGNORED_SCHEMES:
            if value.lower().startswith(scheme):
                value = value[len(scheme) :]
                break
        return value.rstrip("/")

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        """Accept ``~/somewhere``, as a shell would, and pin it to an absolute path."""
        return value.expanduser().absolute()

    @field_validator("logging_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"HEADWATER_LOGGING_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                f"not {value!r}"
            )
        return level

    def resolved_database_url(self) -> str:
        """The database the server uses: ``database_url``, or SQLite inside ``home``.

        Creates ``home`` for the SQLite default, because SQLite cannot create a file in a
        directory that does not exist.
        """
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'headwater.db'}"


_settings: Settings | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """The process's settings, read from the environment on first call and then cached."""
    global _settings
    settings = _settings
    if settings is None:
        with _lock:
            if _settings is None:
                _settings = Settings()
            settings = _settings
    return settings


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings` reads the environment again.

    For tests that change ``HEADWATER_*`` variables; a running connection keeps the settings it
    was built with.
    """
    global _settings
    with _lock:
        _settings = None
