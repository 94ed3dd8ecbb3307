"""The SDK's settings object, read from the ``HEADWATER_*`` variables a client process uses.

Settings are read once into a frozen object so every part of a process sees the same values and
no call site reads ``os.environ`` itself. Callers import this module inside the function that
first needs a setting.

Server-only variables (``HEADWATER_DATABASE_URL``, ``HEADWATER_REQUEST_LOG_RETENTION_SECONDS``)
are not here: the server reads them itself (`headwater_server.settings`), including the embedded
server that `headwater._transport.embedded` starts when ``HEADWATER_API_URL`` is unset.

The object is plain Python rather than a pydantic-settings ``BaseSettings``: a few variables do
not need a validation framework, and importing pydantic and pydantic-settings and building the
model cost about 100 ms of CPU here, an eighth of a whole cold start (a process that runs one
flow), which often needs nothing else from pydantic. The behaviour is the same: variables are
matched case-insensitively, an exported-but-empty variable means unset, booleans accept the
usual spellings, and every bad value is reported at once, naming the variable.

Example::

    from headwater._settings import get_settings

    settings = get_settings()
    settings.api_url  # "127.0.0.1:4200", or None for the embedded server
    settings.home     # PosixPath("/home/me/.headwater")
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from headwater.exceptions import SettingsError

__all__ = ["Settings", "SettingsError", "get_settings", "reset_settings"]

ENV_PREFIX = "HEADWATER_"

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _optional_text(value: Any) -> str | None:
    """An exported-but-empty variable (``HEADWATER_API_URL=``) means "not set"."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _api_url(value: Any) -> str | None:
    """The gRPC target the address names (``http://host:4200/`` -> ``host:4200``).

    Raises:
        ValueError: The address can never work (no port, a path, not an address at all).
    """
    target = _optional_text(value)
    if target is None:
        return None
    from headwater._transport.channel import parse_target

    return parse_target(target)


def _home(value: Any) -> Path:
    """Accept ``~/somewhere``, as a shell would, and pin it to an absolute path."""
    text = _optional_text(value)
    path = Path(text) if text is not None else Path.home() / ".headwater"
    return path.expanduser().absolute()


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:  # also refuses NaN
        raise ValueError("must be a number of seconds, 0 or more")
    return seconds


def _keepalive(value: Any) -> int:
    try:
        milliseconds = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        milliseconds = 0
    if isinstance(milliseconds, bool) or milliseconds <= 0:
        raise ValueError("must be a whole number of milliseconds, more than 0")
    return milliseconds


def _level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in _LEVELS:
        raise ValueError(f"must be one of {', '.join(_LEVELS)}")
    return level


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("must be true or false (also accepted: 1/0, yes/no, on/off)")


# name -> (parser, default). A parser takes the raw value (a string from the environment, or
# whatever a caller passed) and returns the typed value or raises ValueError saying what fits.
_FIELDS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "api_url": (_api_url, None),
    "home": (_home, None),
    "client_retry_timeout_seconds": (_seconds, 60.0),
    "keepalive_time_ms": (_keepalive, 20000),
    "logging_level": (_level, "INFO"),
    "log_prints": (_flag, False),
    "results_persist_by_default": (_flag, False),
    "default_work_pool_name": (_optional_text, None),
}


class Settings:
    """Every ``HEADWATER_*`` setting, validated and frozen.

    ``Settings()`` reads the environment; keyword arguments override single settings (tests).

    Args:
        environ: The variables to read instead of ``os.environ``.
        **overrides: Values for single settings, validated like the variables.

    Attributes:
        api_url: The service address, ``host:port`` (or ``unix:path``, ``unix-abstract:name``).
            Unset means the SDK starts an embedded server in-process on the local database.
        home: Where Headwater keeps results (and the embedded server its SQLite database);
            created on first use.
        client_retry_timeout_seconds: How long the engine keeps reconnecting when the service
            is unavailable (a restart) before its operations fail.
        keepalive_time_ms: How often the client pings an idle connection, so long waits
            survive proxies and NAT tables that drop silent connections.
        logging_level: The level of Headwater's own loggers and of run loggers.
        log_prints: Whether ``print`` inside flows is captured as logs when a flow leaves
            ``log_prints`` unset.
        results_persist_by_default: Whether results are persisted when a flow leaves
            ``persist_result`` unset.
        default_work_pool_name: The work pool `Flow.deploy` and `headwater.deploy` use when
            given none.

    Raises:
        SettingsError: A variable (or override) holds a value that does not fit; every bad
            one is listed, by variable name.
        TypeError: An override names no setting.
    """

    __slots__ = tuple(_FIELDS)

    api_url: str | None
    home: Path
    client_retry_timeout_seconds: float
    keepalive_time_ms: int
    logging_level: str
    log_prints: bool
    results_persist_by_default: bool
    default_work_pool_name: str | None

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> None:
        unknown = sorted(set(overrides) - set(_FIELDS))
        if unknown:
            raise TypeError(f"Settings() got unknown settings {unknown}; known: {list(_FIELDS)}")
        # Matched case-insensitively, as environment-based settings conventionally are.
        env = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in (os.environ if environ is None else environ).items()
            if key[: len(ENV_PREFIX)].upper() == ENV_PREFIX
        }
        problems = []
        for name, (parse, default) in _FIELDS.items():
            if name in overrides:
                raw = overrides[name]
            elif env.get(name, "").strip():
                raw = env[name]
            else:  # unset, or exported but empty (``HEADWATER_LOG_PRINTS=``)
                raw = default
            try:
                value = parse(raw)
            except ValueError as exc:
                problems.append(f"{ENV_PREFIX}{name.upper()} {exc}, not {raw!r}")
                continue
            object.__setattr__(self, name, value)
        if problems:
            raise SettingsError(problems)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"Settings are read once and frozen; cannot set {name!r}. Set the variable "
            f"{ENV_PREFIX}{name.upper()} instead (tests: then call reset_settings())."
        )

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in _FIELDS))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (a process pool, say) as its values, not re-read from the other environment.
        return (_rebuild, ({name: getattr(self, name) for name in _FIELDS},))

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"Settings({values})"


def _rebuild(values: dict[str, Any]) -> Settings:
    return Settings(environ={}, **values)


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
