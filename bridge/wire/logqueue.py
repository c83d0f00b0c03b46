"""Logging that never blocks the serving threads: records go through a bounded queue to one writer thread.

A server whose stderr is a pipe nobody reads would otherwise stop in ``write()`` as soon as the pipe fills. Here the
serving threads only ``put_nowait`` into a queue of ``LOG_QUEUE`` records; when it is full the record is dropped and
counted (``dropped()``, reported in ``stats`` as ``log_dropped``). The writer thread alone may block on the stream.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading

LOG_QUEUE = 10_000  # records waiting for the writer; past this they are dropped and counted
_STOP = None

_lock = threading.Lock()
_dropped = 0
_active: DroppingQueueHandler | None = None


def dropped() -> int:
    """Records dropped so far because the log writer could not keep up (0 when this handler is not installed)."""
    return _dropped


def size() -> int:
    """Records waiting for the writer now."""
    return _active.queue.qsize() if _active is not None else 0


class DroppingQueueHandler(logging.Handler):
    """Formats in the caller's thread (so the record is complete) and queues the line; drops when full."""

    def __init__(self, target: logging.Handler, maxsize: int = LOG_QUEUE):
        super().__init__()
        self.target = target
        self.queue: queue.Queue[logging.LogRecord | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._write_loop, name="bridge-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        global _dropped
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted must not stop the caller either
            self.handleError(record)
            return
        copy = logging.makeLogRecord({"msg": line, "levelno": record.levelno, "levelname": record.levelname})
        try:
            self.queue.put_nowait(copy)
        except queue.Full:
            with _lock:
                _dropped += 1

    def _write_loop(self) -> None:
        while True:
            record = self.queue.get()
            if record is _STOP:
                return
            self.target.handle(record)

    def close(self) -> None:
        """Stop the writer after what is queued; waits briefly only, as the stream may never drain."""
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(_STOP)
        self._thread.join(timeout=1.0)
        super().close()


def install(logger: logging.Logger, stream_handler: logging.Handler, formatter: logging.Formatter) -> None:
    """Route ``logger`` through a dropping queue to ``stream_handler`` (which writes the preformatted line)."""
    global _active
    stream_handler.setFormatter(logging.Formatter("%(message)s"))
    handler = DroppingQueueHandler(stream_handler)
    handler.setFormatter(formatter)
    old = _active
    logger.handlers[:] = [handler]
    _active = handler
    if old is not None:
        old.close()
