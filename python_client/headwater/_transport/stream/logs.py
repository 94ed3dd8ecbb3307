"""`LogBuffer`: run log lines waiting to go to the service, sent in batches without waiting.

A batch goes when it is full, about a second after its first line, and whenever the engine
flushes (always before it proposes a run's final state), so no line is lost and a quiet run
pays nothing. One buffer per transport, so lines go to the service their run lives on.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from headwater._transport.interface import LogLine
from headwater.v1 import logs_pb2

__all__ = ["LogBuffer"]

#: Lines per CreateLogs request: the service takes at most 1000.
BATCH_SIZE = 500
#: How long a line may wait in the buffer before it is sent.
FLUSH_INTERVAL_SECONDS = 1.0


class LogBuffer:
    """Buffers log lines and hands them to ``send`` in batches, from a daemon thread.

    Args:
        send: Sends one ``CreateLogs`` request without waiting for the answer.
    """

    def __init__(self, send: Callable[[logs_pb2.CreateLogsRequest], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._pending: list[LogLine] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported_error = False
        #: How many lines were added so far; the engine compares it before and after a run.
        self.added = 0

    def add(self, line: LogLine) -> None:
        with self._lock:
            self._pending.append(line)
            self.added += 1
            count = len(self._pending)
        if count >= BATCH_SIZE:
            self.send()
        elif count == 1:
            if self._thread is None:
                self._start()
            self._wake.set()

    def send(self) -> None:
        """Send every buffered line now (fire and forget: the stream keeps them in order)."""
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
        for start in range(0, len(batch), BATCH_SIZE):
            request = logs_pb2.CreateLogsRequest()
            for line in batch[start : start + BATCH_SIZE]:
                message = request.logs.add(
                    flow_run_id=line.flow_run_id,
                    task_run_id=line.task_run_id,
                    logger_name=line.logger_name,
                    level=line.level,
                    message=line.message,
                )
                seconds = int(line.created)
                message.log_time.seconds = seconds
                message.log_time.nanos = int((line.created - seconds) * 1e9)
            self._send(request)

    def report_error(self, exc: BaseException) -> None:
        """Say once on stderr that lines could not be sent (they are still printed locally)."""
        if not self._reported_error:
            self._reported_error = True
            sys.stderr.write(
                f"headwater: could not send run logs to the service ({type(exc).__name__}: "
                f"{exc}). Lines are still printed locally; check that the service is "
                "reachable.\n"
            )

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="headwater-log-shipper", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(FLUSH_INTERVAL_SECONDS)
            self._wake.clear()
            try:
                self.send()
            except Exception as exc:  # never let a log problem kill the shipper
                self.report_error(exc)
