"""Run logs: loggers that know their run, shipping their lines to the service, and print capture.

`get_run_logger()` returns a `logging.LoggerAdapter` over ``headwater.flow_runs`` that stamps
every record with the run's id and name. A handler on that logger hands each line (a
`headwater._transport.interface.LogLine`) to the transport of the run the code runs in (the
run context carries it; outside any run, the process's default transport). The transport sends
lines in batches without waiting for an answer, and the engine flushes them before it proposes
a run's final state, so no line is lost and a quiet run pays nothing.

With ``log_prints``, ``print()`` inside a flow becomes an INFO line of the run logger.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headwater._context import (
    FlowRunContext,
    TaskRunContext,
    _current_flow_run,
    _current_task_run,
    get_run_context,
)
from headwater._transport.interface import LogLine
from headwater.exceptions import MissingContextError

if TYPE_CHECKING:
    from headwater._transport.interface import Transport

__all__ = [
    "FLOW_RUN_LOGGER",
    "RunLoggerAdapter",
    "disable_run_logger",
    "get_logger",
    "get_run_logger",
    "setup_logging",
]

#: The logger engine messages and run loggers write to; Prefect's is ``prefect.flow_runs``.
FLOW_RUN_LOGGER = "headwater.flow_runs"
TASK_RUN_LOGGER = "headwater.task_runs"
_RUN_LOGGERS = (FLOW_RUN_LOGGER, TASK_RUN_LOGGER)


class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that adds the run's identity to every record, keeping the caller's extras."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = kwargs.get("extra")
        kwargs["extra"] = {**(self.extra or {}), **extra} if extra else self.extra
        return msg, kwargs


def local_record(
    logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...], extra: Any
) -> logging.LogRecord:
    """An engine progress record: printed on the console, never shipped to the service.

    The service already stores every state change as an event, and shipping the lines would
    add a write to every trivial run, so the record is marked ``headwater_local``. It has no
    caller (the engine is always the caller, so looking it up tells nobody anything), and the
    run's identity is set on it at once rather than checked key by key as `Logger.makeRecord`
    checks a caller's extras: the engine's own keys never clash with a record's attributes. A
    custom record factory or logger class still makes the record, as usual.
    """
    if logging.getLogRecordFactory() is _LogRecord and type(logger).makeRecord is _make_record:
        record = _LogRecord(logger.name, level, "", 0, msg, args, None)
        fields = record.__dict__
        fields.update(extra)
        fields["headwater_local"] = True
        return record
    return logger.makeRecord(
        logger.name, level, "", 0, msg, args, None, extra={**extra, "headwater_local": True}
    )


_LogRecord = logging.LogRecord
_make_record = logging.Logger.makeRecord


def get_run_logger(**extra: Any) -> RunLoggerAdapter:
    """The logger of the current flow run: its lines are stored with the run by the service.

    Args:
        **extra: Extra attributes to add to every record of the returned logger.

    Raises:
        MissingContextError: Called outside a flow or task run, unless run loggers are
            disabled (`disable_run_logger`): then a logger that drops every line, as
            Prefect's does, so a task's ``.fn`` can be tested on its own.

    Example:
        >>> @flow
        ... def etl():
        ...     get_run_logger().info("loaded %d rows", 42)
    """
    try:
        context = get_run_context()
    except MissingContextError:
        if _run_loggers_disabled():
            return RunLoggerAdapter(_dropping_logger(), {})
        raise
    logger = context.logger
    if logger is None:  # pragma: no cover - the engine always sets one
        if not isinstance(context, FlowRunContext):
            raise MissingContextError(
                f"Task run {context.task_run_id!r} has no run logger: it is not run by the "
                "engine. Call get_run_logger() from a flow or a task while it runs."
            )
        logger = run_logger(context.flow_run.id, context.flow_run.name, context.flow.name)
    if extra:
        return RunLoggerAdapter(logger.logger, {**(logger.extra or {}), **extra})
    return logger  # type: ignore[return-value]


def get_logger(name: str | None = None) -> logging.Logger:
    """A logger under ``headwater`` (Prefect's `get_logger` gives one under ``prefect``).

    Its lines go to the console as the SDK's own do, but are not stored with any run: use
    `get_run_logger` inside a flow or task for that.

    Args:
        name: The name below ``headwater`` (``"etl"`` gives ``headwater.etl``); None for the
            ``headwater`` logger itself.
    """
    if not name:
        return logging.getLogger("headwater")
    return logging.getLogger(name if name.startswith("headwater.") else f"headwater.{name}")


@contextlib.contextmanager
def disable_run_logger() -> Iterator[None]:
    """Silence the run loggers for a block, as Prefect's does for tests.

    Lines of flow and task runs (the engine's own included) are dropped, and `get_run_logger`
    called outside any run returns a logger that drops them too, so a test can call a task's
    ``.fn`` directly. Each logger is put back as it was when the block ends.

    Example:
        >>> with disable_run_logger():
        ...     assert my_task.fn(2) == 4
    """
    loggers = [logging.getLogger(name) for name in _RUN_LOGGERS]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def _run_loggers_disabled() -> bool:
    return all(logging.getLogger(name).disabled for name in _RUN_LOGGERS)


def _dropping_logger() -> logging.Logger:
    """A logger that drops every line, whatever its level (for `disable_run_logger`)."""
    logger = logging.getLogger("headwater.null")
    logger.disabled = True
    logger.propagate = False
    return logger


def run_logger(flow_run_id: str, flow_run_name: str, flow_name: str) -> RunLoggerAdapter:
    """A logger for one flow run (the engine makes one per run)."""
    return RunLoggerAdapter(
        logging.getLogger(FLOW_RUN_LOGGER),
        {"flow_run_id": flow_run_id, "flow_run_name": flow_run_name, "flow_name": flow_name},
    )


# -- shipping lines to the service ---------------------------------------------------------


def _transport_of(context: FlowRunContext | None) -> Transport:
    """The transport a line goes to: its run's, or the process's default one."""
    if context is not None and context.transport is not None:
        return context.transport
    from headwater._transport.runtime import default_transport

    return default_transport()


class _ServiceHandler(logging.Handler):
    """Turns records that carry a flow run id or a task run id into log lines for the service.

    A record logged outside any run context (a run logger kept after its run ended, used from
    another thread, or the logger of a task called outside any flow) goes to the process's
    default transport.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        # The engine's progress lines (one per task run's end) are printed, never shipped:
        # skipped before the handler's filters and lock rather than inside `emit`.
        if getattr(record, "headwater_local", False):
            return False
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "headwater_local", False):
            return
        context = _current_flow_run.get()
        flow_run_id = getattr(record, "flow_run_id", None)
        task_run_id = getattr(record, "task_run_id", None) or ""
        if not flow_run_id:
            if context is not None:
                flow_run_id = context.flow_run_id
            elif not task_run_id:
                return
            # else: a task run called outside any flow; its lines belong to it alone.
        try:
            message = record.getMessage()
            if record.exc_info:
                if not record.exc_text:
                    record.exc_text = _formatter.formatException(record.exc_info)
                message = f"{message}\n{record.exc_text}"
            line = LogLine(
                flow_run_id=flow_run_id or "",
                logger_name=record.name,
                level=record.levelno,
                message=message,
                created=record.created,
                task_run_id=task_run_id,
            )
            _transport_of(context).ship_log(line)
        except Exception:
            self.handleError(record)


class _ConsoleFormatter(logging.Formatter):
    """``12:00:00.123 | INFO    | Flow run 'crimson-otter' - message`` for run records.

    A task run's records name the task run (``Task run 'fetch-0' - message``). Every task
    run prints its end here, so the line is built directly rather than through the format
    string, and the clock text is made once per second rather than once per line (the output
    is the same as the format string's).
    """

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(run_label)s%(message)s",
            datefmt="%H:%M:%S",
        )
        #: The last (whole second, clock text) formatted: lines come many per second.
        self._clock: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None and datefmt != self.datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached_second, text = self._clock
        if second != cached_second:
            text = super().formatTime(record, self.datefmt)
            self._clock = (second, text)
        return text

    def format(self, record: logging.LogRecord) -> str:
        task_run_name = getattr(record, "task_run_name", None)
        if task_run_name:
            label = f"Task run {task_run_name!r} - "
        else:
            name = getattr(record, "flow_run_name", None)
            label = f"Flow run {name!r} - " if name else f"{record.name} - "
        record.run_label = label
        record.message = message = record.getMessage()
        record.asctime = clock = self.formatTime(record)
        text = f"{clock}.{int(record.msecs):03d} | {record.levelname:<7} | {label}{message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}" if text[-1:] != "\n" else text + record.exc_text
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            text = f"{text}\n{stack}" if text[-1:] != "\n" else text + stack
        return text


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console handler Headwater adds when the application configured none.

    Every task run prints its end, and with a thousand submitted tasks those lines come from
    dozens of worker threads at once. A plain `logging.StreamHandler` holds its lock while it
    writes, and the write releases the GIL: the other workers then queue on the lock, each
    put to sleep and woken in turn, which cost more CPU than the runs themselves. Here no
    thread waits for another's write: a line is put in a list under a lock that is never held
    across I/O, and the thread that found nobody writing writes, in one call, every line that
    came meanwhile, until none is left. Lines keep their order; one logged while another thread
    writes appears as soon as that write ends.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._writing = False

    def handle(self, record: logging.LogRecord) -> Any:
        # As `logging.Handler.handle`, without holding the handler's lock around `emit`.
        checked = self.filter(record)
        if isinstance(checked, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = checked
        if checked:
            self.emit(record)
        return checked

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        with self._pending_lock:
            self._pending.append(line)
            if self._writing:
                return  # the thread writing now writes this line next
            self._writing = True
        try:
            self._write_pending()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _write_pending(self) -> None:
        """Write what is pending, and what comes meanwhile, until nothing is left."""
        try:
            while True:
                with self._pending_lock:
                    if not self._pending:
                        self._writing = False
                        return
                    text = "".join(self._pending)
                    self._pending.clear()
                self.stream.write(text)
                self.flush()
        except BaseException:
            with self._pending_lock:
                self._writing = False
            raise


_formatter = logging.Formatter()
_setup_lock = threading.Lock()
_setup_done = False


def setup_logging() -> None:
    """Attach Headwater's handlers once per process (the engine calls this before a run).

    The service handler goes on the run loggers. A console handler is added to ``headwater``
    only when neither it nor the root logger has handlers, so an application that configured
    logging itself is not printed to twice.
    """
    global _setup_done
    if _setup_done:
        return
    with _setup_lock:
        if _setup_done:
            return
        from headwater._settings import get_settings

        level = get_settings().logging_level
        root = logging.getLogger("headwater")
        if root.level == logging.NOTSET:
            root.setLevel(level)
        if not root.handlers and not logging.getLogger().handlers:
            console = _ConsoleHandler(sys.stderr)
            console.setFormatter(_ConsoleFormatter())
            root.addHandler(console)
        service_handler = _ServiceHandler()
        for name in _RUN_LOGGERS:
            logging.getLogger(name).addHandler(service_handler)
        _setup_done = True


# -- print capture ---------------------------------------------------------------------------

_original_print = builtins.print
_print_lock = threading.Lock()
_print_users = 0


def _print_to_run_logger(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """``print`` while a ``log_prints`` run may be active: its lines go to the run logger.

    Inside a task the task run's setting and logger apply (its lines carry the task run's id),
    unless a subflow called from the task is what runs now.
    """
    context: FlowRunContext | TaskRunContext | None = _current_flow_run.get()
    task_context = _current_task_run.get()
    if task_context is not None and (
        context is None or task_context.flow_run_id == context.flow_run_id
    ):
        context = task_context
    if (
        context is None
        or not context.log_prints
        or context.logger is None
        or (file is not None and file is not sys.stdout)
    ):
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    buffer = io.StringIO()
    _original_print(*args, sep=sep, end="", file=buffer)
    context.logger.info(buffer.getvalue())


def capture_prints() -> None:
    """Route ``print`` to run loggers for runs with ``log_prints`` (reference counted)."""
    global _print_users
    with _print_lock:
        _print_users += 1
        if _print_users == 1:
            builtins.print = _print_to_run_logger


def release_prints() -> None:
    """Undo one `capture_prints`; the real ``print`` is back when no run needs capture."""
    global _print_users
    with _print_lock:
        _print_users -= 1
        if _print_users <= 0:
            _print_users = 0
            if builtins.print is _print_to_run_logger:
                builtins.print = _original_print
