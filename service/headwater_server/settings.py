"""The server's own settings, read once from ``HEADWATER_*`` variables into a frozen object.

The service reads its settings itself rather than through the SDK's, so it depends on no client
code and an SDK setting can change without touching the server. Whoever starts a server builds
one :class:`ServerSettings` (``ServerSettings.from_environ()`` for the usual variables) and
passes it to :func:`headwater_server.server.start_server` or :func:`~headwater_server.server.serve`;
nothing else in the service reads ``os.environ``.

- ``HEADWATER_DATABASE_URL``: the database (a SQLAlchemy URL); default SQLite in the home.
- ``HEADWATER_HOME``: where that default SQLite file lives; default ``~/.headwater``.
- ``HEADWATER_REQUEST_LOG_RETENTION_SECONDS``: how long answers to retried requests are kept;
  default a day.
- ``HEADWATER_MAX_RECEIVE_MESSAGE_BYTES``: the largest request message accepted; default 4 MiB.
- ``HEADWATER_RUN_RETENTION_SECONDS``: how long finished flow runs (with their task runs,
  states and log lines) are kept; default unset, kept forever.
- ``HEADWATER_LOG_RETENTION_SECONDS``: how long log lines are kept, also of runs still kept;
  default unset, as long as their run.
- ``HEADWATER_LATE_RUN_AFTER_SECONDS``: how far past its scheduled time a SCHEDULED run is
  marked Late; default 15 s (Prefect's).
- ``HEADWATER_SCHEDULER_*``: how often the scheduler runs and how far ahead it creates runs
  (see :class:`ServerSettings`).
- ``HEADWATER_ENGINE_GRACE_SECONDS``: how long an SDK process whose stream ended may take to
  reconnect before its runs end CRASHED; default 5.
- ``HEADWATER_ENGINE_TIMEOUT_SECONDS``: how long an SDK process may go unseen (its server died
  with it, as the embedded one does) before its runs end CRASHED; default 10.
- ``HEADWATER_CANCELLING_TIMEOUT_SECONDS``: how long a CANCELLING run that no live engine runs
  waits before it ends CANCELLED; default 30.
- ``HEADWATER_WORKER_LEASE_SECONDS``: how long a worker may go without a heartbeat before the
  runs it claimed and has not started go back to SCHEDULED; default 10.
- ``HEADWATER_WAKE_RECHECK_SECONDS``: how often a waiting long poll, watch or concurrency-slot
  wait looks in storage for changes no notification announced; default 1 on SQLite, 10 on
  PostgreSQL (where servers notify each other).
- ``HEADWATER_METRICS_PORT``: serve a Prometheus scrape endpoint on this port (on the server's
  host); default unset, none. OTLP metrics and traces follow the standard ``OTEL_*`` variables.

As in the SDK, names are matched case-insensitively and an exported-but-empty variable means
unset. Every bad value is reported at once, each naming its variable.

Example::

    settings = ServerSettings.from_environ()
    settings = dataclasses.replace(settings, database_url="sqlite:////tmp/hw.db")
    running = await start_server("127.0.0.1:0", settings)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ServerSettings", "ServerSettingsError"]

ENV_PREFIX = "HEADWATER_"

DEFAULT_REQUEST_LOG_RETENTION_SECONDS = 86_400.0
# gRPC's own default; explicit so it is visible and can be changed in one place.
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024
# Crash detection: a killed SDK process's stream breaks at once; the grace lets a live one
# reconnect (a server restart, a network blip). A process whose server died with it (the
# embedded one) is caught when its row stops being refreshed. Both well within 15 s.
DEFAULT_ENGINE_GRACE_SECONDS = 5.0
DEFAULT_ENGINE_TIMEOUT_SECONDS = 10.0
DEFAULT_CANCELLING_TIMEOUT_SECONDS = 30.0
# Workers send a heartbeat every second; ten missed ones mean the worker is gone.
DEFAULT_WORKER_LEASE_SECONDS = 10.0


def _default_home() -> Path:
    return Path("~/.headwater").expanduser().absolute()


def _variable(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


class ServerSettingsError(ValueError):
    """One or more server settings hold values the server cannot use.

    Attributes:
        problems: One sentence per bad setting, each naming its variable and what it accepts.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid Headwater server settings: " + "; ".join(problems))


def _database_url(raw: str) -> str:
    """A SQLAlchemy URL, checked for its shape only: connecting is the server's start-up."""
    url = raw.strip()
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").replace("_", "").isalnum():
        raise ValueError(
            "must be a SQLAlchemy URL such as sqlite:////path/headwater.db or "
            "postgresql+psycopg://user@host/database"
        )
    return url


def _home(raw: str) -> Path:
    return Path(raw.strip()).expanduser().absolute()


@dataclass(frozen=True)
class _Number:
    """How one numeric setting is read from its variable and checked (also when set in code)."""

    unit: str  # "seconds" (any number), "bytes" or "" (whole numbers)
    positive: bool  # more than 0; otherwise 0 or more

    @property
    def requirement(self) -> str:
        what = {"seconds": "a number of seconds", "bytes": "a whole number of bytes"}
        bound = "more than 0" if self.positive else "0 or more"
        return f"must be {what.get(self.unit, 'a whole number')}, {bound}"

    def accepts(self, value: float) -> bool:
        # NaN fails both comparisons, so it is refused too.
        return (value > 0 if self.positive else value >= 0) and value != float("inf")

    def parse(self, raw: str) -> float:
        try:
            value = float(raw) if self.unit == "seconds" else int(raw.strip())
        except ValueError:
            raise ValueError(self.requirement) from None
        if not self.accepts(value):
            raise ValueError(self.requirement)
        return value


_SECONDS = _Number("seconds", positive=False)
_POSITIVE_SECONDS = _Number("seconds", positive=True)
_COUNT = _Number("", positive=True)

# Every numeric setting: how its variable is read, and what the value must be.
_NUMBERS: dict[str, _Number] = {
    "request_log_retention_seconds": _SECONDS,
    "max_receive_message_bytes": _Number("bytes", positive=True),
    "run_retention_seconds": _POSITIVE_SECONDS,
    "log_retention_seconds": _POSITIVE_SECONDS,
    "retention_loop_seconds": _POSITIVE_SECONDS,
    "late_run_after_seconds": _SECONDS,
    "late_runs_loop_seconds": _POSITIVE_SECONDS,
    "scheduler_loop_seconds": _POSITIVE_SECONDS,
    "scheduler_min_runs": _COUNT,
    "scheduler_max_runs": _COUNT,
    "scheduler_min_ahead_seconds": _SECONDS,
    "scheduler_max_ahead_seconds": _POSITIVE_SECONDS,
    "engine_grace_seconds": _POSITIVE_SECONDS,
    "engine_timeout_seconds": _POSITIVE_SECONDS,
    "cancelling_timeout_seconds": _POSITIVE_SECONDS,
    "worker_lease_seconds": _POSITIVE_SECONDS,
    "wake_recheck_seconds": _POSITIVE_SECONDS,
    "metrics_port": _COUNT,
}

# Setting -> how its variable's text becomes the value (ValueError says what would fit).
_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": _database_url,
    "home": _home,
    **{name: number.parse for name, number in _NUMBERS.items()},
}

# Settings where None is a value: the retention is off, no metrics port, or the server picks
# per database.
_OPTIONAL = {
    "run_retention_seconds",
    "log_retention_seconds",
    "metrics_port",
    "wake_recheck_seconds",
}


@dataclass(frozen=True)
class ServerSettings:
    """Everything a Headwater server is configured with.

    Attributes:
        database_url: The SQLAlchemy URL of the database; None means SQLite in ``home``.
        home: The directory of the default SQLite database.
        request_log_retention_seconds: How long the server keeps the answers it replays to
            retried requests (request ids, transition ids). Clients retry within a minute or so,
            so a day is ample; older answers are pruned.
        max_receive_message_bytes: The largest request message the server accepts; a larger one
            is refused with RESOURCE_EXHAUSTED before it is parsed.
        engine_grace_seconds: How long an SDK process whose engine stream ended may take to
            reconnect before the service ends its unfinished runs CRASHED.
        engine_timeout_seconds: How long an SDK process may go without its stream being seen
            by any server (its server died with it) before its runs end CRASHED. Servers
            refresh the streams they hold four times per timeout.
        cancelling_timeout_seconds: How long a CANCELLING flow run that no live engine runs
            (started through the unary API, or its process is gone) waits before the service
            ends it CANCELLED.
        worker_lease_seconds: How long a worker (a serving process, ``headwater worker
            start``) may go without a heartbeat before the runs it claimed and has not started
            (still PENDING) go back to SCHEDULED for another worker.
        metrics_port: The port of the Prometheus scrape endpoint (``/metrics``), served on the
            gRPC server's host; None serves none (see ``headwater_server.metrics``).
        run_retention_seconds: How long a flow run is kept after it reached a final state
            (COMPLETED, FAILED, CANCELLED, CRASHED), with its task runs, state history and log
            lines; a task run outside any flow likewise. None keeps them forever. Runs that have
            not finished are never expired, however old.
        log_retention_seconds: How long log lines are kept, whatever their run's state; None
            keeps them as long as their run. Logs are most of the data, so this may be shorter.
        retention_loop_seconds: How often the expiry pass runs (when a retention is set).
        late_run_after_seconds: A SCHEDULED run whose scheduled time is further in the past
            than this is moved to the Late state (still SCHEDULED), as Prefect does.
        late_runs_loop_seconds: How often the service looks for late runs.
        scheduler_loop_seconds: How often the scheduler creates upcoming runs of deployments.
        scheduler_min_runs: The scheduler keeps at least this many future runs of each active
            schedule, however far ahead they are (up to ``scheduler_max_ahead_seconds``).
        scheduler_max_runs: At most this many future runs of one schedule exist at once (a
            schedule's own ``max_scheduled_runs`` overrides it).
        scheduler_min_ahead_seconds: Runs due within this time ahead are always created (up to
            ``scheduler_max_runs``), so a frequent schedule never runs dry between passes.
        scheduler_max_ahead_seconds: No run further ahead than this is created.
        wake_recheck_seconds: How long a waiter (a worker's long poll, a watch, a run held
            waiting for a concurrency slot) waits for a notification before it looks in storage
            anyway. Notifications cover this server's writes, and on PostgreSQL other servers'
            too (LISTEN/NOTIFY), so this is a last resort; None picks 1 s on SQLite (other
            processes on the file cannot notify) and 10 s on PostgreSQL.

    Raises:
        ServerSettingsError: A value is out of range (also from ``dataclasses.replace``).
    """

    database_url: str | None = None
    home: Path = field(default_factory=_default_home)
    request_log_retention_seconds: float = DEFAULT_REQUEST_LOG_RETENTION_SECONDS
    max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
    run_retention_seconds: float | None = None
    log_retention_seconds: float | None = None
    retention_loop_seconds: float = 600.0
    late_run_after_seconds: float = 15.0
    late_runs_loop_seconds: float = 5.0
    scheduler_loop_seconds: float = 5.0
    scheduler_min_runs: int = 3
    scheduler_max_runs: int = 100
    scheduler_min_ahead_seconds: float = 3_600.0
    scheduler_max_ahead_seconds: float = 100 * 86_400.0
    engine_grace_seconds: float = DEFAULT_ENGINE_GRACE_SECONDS
    engine_timeout_seconds: float = DEFAULT_ENGINE_TIMEOUT_SECONDS
    cancelling_timeout_seconds: float = DEFAULT_CANCELLING_TIMEOUT_SECONDS
    worker_lease_seconds: float = DEFAULT_WORKER_LEASE_SECONDS
    wake_recheck_seconds: float | None = None
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        problems = []
        for name, number in _NUMBERS.items():
            value = getattr(self, name)
            if not (value is None and name in _OPTIONAL) and not number.accepts(value):
                problems.append(f"{_variable(name)} {number.requirement}, not {value!r}")
        if self.metrics_port is not None and self.metrics_port > 65535:
            problems.append(f"{_variable('metrics_port')} must be a port, 1 to 65535")
        if self.scheduler_min_runs > self.scheduler_max_runs:
            problems.append(
                f"{_variable('scheduler_min_runs')} ({self.scheduler_min_runs}) must not exceed "
                f"{_variable('scheduler_max_runs')} ({self.scheduler_max_runs})"
            )
        if problems:
            raise ServerSettingsError(problems)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> ServerSettings:
        """Read the server's ``HEADWATER_*`` variables from ``environ``; unset ones default.

        Raises:
            ServerSettingsError: Listing every bad variable by name, with what it accepts.
        """
        env = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in environ.items()
            if key[: len(ENV_PREFIX)].upper() == ENV_PREFIX
        }
        values: dict[str, Any] = {}
        problems = []
        for setting in fields(cls):
            raw = env.get(setting.name, "")
            if not raw.strip():
                continue  # unset, or exported but empty: the default
            try:
                values[setting.name] = _PARSERS[setting.name](raw)
            except ValueError as exc:
                problems.append(f"{_variable(setting.name)} {exc}, not {raw!r}")
        if problems:
            raise ServerSettingsError(problems)
        return cls(**values)

    def resolved_database_url(self) -> str:
        """The database to open: ``database_url``, or SQLite in ``home`` (created if missing).

        The home is checked here rather than left to SQLite, whose "unable to open database
        file" names neither the directory nor the variable.

        Raises:
            ServerSettingsError: ``home`` is a file, cannot be created, or is not writable
                (naming HEADWATER_HOME and the path).
        """
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.usable_home() / 'headwater.db'}"

    def usable_home(self) -> Path:
        """``home``, created if missing, once it is known to be a writable directory.

        Raises:
            ServerSettingsError: ``home`` is a file, cannot be created, or cannot be written to.
        """
        home = self.home
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror or type(exc).__name__})"
            if home.exists() and not home.is_dir():
                problem = "is a file, not a directory"
            raise ServerSettingsError([_home_problem(home, problem)]) from None
        if not os.access(home, os.W_OK | os.X_OK):
            raise ServerSettingsError([_home_problem(home, "is not writable by this process")])
        return home


def _home_problem(home: Path, problem: str) -> str:
    return (
        f"{_variable('home')} {str(home)!r} {problem}; point it at a directory you can write "
        f"to (the default SQLite database lives there), or set {_variable('database_url')}"
    )
