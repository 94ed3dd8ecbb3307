"""The console line of run records (`headwater._logging`): built directly, printed as documented.

The formatter builds the line without going through its format string and reuses the clock
text within a second; what it prints must stay exactly what the format string gives.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from typing import Any

import pytest
from headwater._logging import TASK_RUN_LOGGER, _ConsoleFormatter, _ConsoleHandler

_DOCUMENTED = logging.Formatter(
    "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(run_label)s%(message)s", datefmt="%H:%M:%S"
)


def _documented(record: logging.LogRecord) -> str:
    """The line as the format string gives it, with the run label the formatter documents."""
    task_run_name = getattr(record, "task_run_name", None)
    flow_run_name = getattr(record, "flow_run_name", None)
    if task_run_name:
        record.run_label = f"Task run {task_run_name!r} - "
    elif flow_run_name:
        record.run_label = f"Flow run {flow_run_name!r} - "
    else:
        record.run_label = f"{record.name} - "
    return _DOCUMENTED.format(record)


def _pair(level: int, extra: dict[str, Any], **fields: Any) -> tuple[logging.LogRecord, ...]:
    """Two identical records (formatting one caches its exception text on it)."""
    logger = logging.getLogger(TASK_RUN_LOGGER)
    records = tuple(
        logger.makeRecord(TASK_RUN_LOGGER, level, "", 0, "Ended in %s", ("Completed()",), **fields)
        for _ in range(2)
    )
    for record in records:
        record.__dict__.update(extra)
        record.created, record.msecs = 1_700_000_000.042, 42.0
    return records


def _raised() -> Any:
    try:
        raise ValueError("boom")
    except ValueError:
        return sys.exc_info()


@pytest.mark.parametrize(
    "extra",
    [
        {"task_run_name": "double-3", "flow_run_name": "crimson-otter"},
        {"flow_run_name": "crimson-otter"},
        {},
    ],
    ids=["task run", "flow run", "no run"],
)
@pytest.mark.parametrize(
    "fields",
    [
        {"exc_info": None},
        {"exc_info": _raised()},
        {"exc_info": None, "sinfo": "Stack (most recent call last):\n  here"},
    ],
    ids=["plain", "exception", "stack"],
)
def test_the_line_is_what_the_documented_format_gives(
    extra: dict[str, Any], fields: dict[str, Any]
) -> None:
    ours, reference = _pair(logging.ERROR, extra, **fields)
    assert _ConsoleFormatter().format(ours) == _documented(reference)


def test_the_clock_follows_the_records_second() -> None:
    formatter = _ConsoleFormatter()
    first, later = _pair(logging.INFO, {"flow_run_name": "crimson-otter"}, exc_info=None)
    later.created, later.msecs = first.created + 61.5, 542.0
    for record in (first, later, first):
        line = formatter.format(record)
        assert line == _documented(record)
    assert formatter.format(first)[:8] != formatter.format(later)[:8]


def test_an_explicit_date_format_is_honoured() -> None:
    formatter = _ConsoleFormatter()
    record = _pair(logging.INFO, {}, exc_info=None)[0]
    assert formatter.formatTime(record, "%Y") == _DOCUMENTED.formatTime(record, "%Y")


class _SlowStream(io.StringIO):
    """A stream whose writes release the GIL for a while, as a terminal's or a pipe's do."""

    def write(self, text: str) -> int:
        time.sleep(0.001)
        return super().write(text)


def _console(stream: io.StringIO) -> tuple[logging.Logger, _ConsoleHandler]:
    handler = _ConsoleHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"headwater.tests.console.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


def test_lines_from_many_threads_are_all_written_whole_and_in_order() -> None:
    stream = _SlowStream()
    logger, _ = _console(stream)

    def log_lines(thread: int) -> None:
        for line in range(50):
            logger.info("thread %d line %d", thread, line)

    threads = [threading.Thread(target=log_lines, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == sorted(f"thread {t} line {n}" for t in range(8) for n in range(50))
    for number in range(8):
        mine = [line for line in lines if line.startswith(f"thread {number} ")]
        assert mine == [f"thread {number} line {n}" for n in range(50)]


def test_a_line_nobody_else_is_writing_is_written_before_the_call_returns() -> None:
    stream = io.StringIO()
    logger, _ = _console(stream)
    logger.warning("at once")
    assert stream.getvalue() == "at once\n"


def test_a_broken_stream_is_reported_and_the_next_line_is_tried_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken(io.StringIO):
        fail = True

        def write(self, text: str) -> int:
            if self.fail:
                raise OSError("disk full")
            return super().write(text)

    stream = Broken()
    logger, _ = _console(stream)
    logger.warning("lost")
    stream.fail = False
    logger.warning("written")
    assert "OSError: disk full" in capsys.readouterr().err  # logging's own error report
    assert stream.getvalue() == "written\n"
