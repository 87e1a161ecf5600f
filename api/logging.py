"""Structured JSON logs.

One JSON object per line on stderr. What is logged, and what never is:

- each request: method, route *template* (``/v1/lists/{list}/entries``, never
  the concrete path with a query), status, duration, token name;
- each ISP fetch: token name, list, version served, resource
  (DESIGN.md, "Operations": ISP fetches are logged per token);
- never a URL, an expression or a hash from a request body: the list is
  sensitive (Clayton, PET 2005), and logs travel further than the database.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from typing import Final

from blocklist.jsonlog import JsonFormatter

__all__ = [
    "API_LOGGER",
    "ISP_LOGGER",
    "LOG_BUFFER_BYTES",
    "LOG_FLUSH_SECONDS",
    "BufferedStreamHandler",
    "JsonFormatter",
    "configure_logging",
    "flush_logs",
]

#: Longest time a log line waits in the buffer (seconds).
LOG_FLUSH_SECONDS: Final = 1.0

#: Size of the log buffer: a few hundred lines.
LOG_BUFFER_BYTES: Final = 64 * 1024

#: Logger of the API (requests, errors).
API_LOGGER: Final = "cleanfeed.api"

#: Logger of ISP fetches (one line per fetch).
ISP_LOGGER: Final = "cleanfeed.isp"


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes through a buffer, flushed at most every second.

    One log line per request (the ISP fetch log) would otherwise cost a
    ``write`` system call per request on the hottest path. Under traffic,
    lines reach the stream within :data:`LOG_FLUSH_SECONDS`; warnings and
    errors are flushed at once; :func:`flush_logs` (run by the app's usage
    flusher every few seconds) and closing the handler (interpreter exit)
    write out the rest.
    """

    def __init__(self, fd: int) -> None:
        """Write to file descriptor ``fd`` (not closed with the handler)."""
        raw = io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw, LOG_BUFFER_BYTES), encoding="utf-8", write_through=False
        )
        super().__init__(stream)
        self._last_flush = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        """Format and buffer ``record``; flush when due or when it matters."""
        self._urgent = record.levelno >= logging.WARNING
        super().emit(record)

    def flush(self) -> None:
        """Flush when a second has passed or the last record was a warning."""
        now = time.monotonic()
        if getattr(self, "_urgent", False) or now - self._last_flush >= LOG_FLUSH_SECONDS:
            self.force_flush()

    def close(self) -> None:
        """Flush everything, then close (logging.shutdown at exit calls this)."""
        self.force_flush()
        super().close()

    def force_flush(self) -> None:
        """Write out everything buffered."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.flush()
            self._last_flush = time.monotonic()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not break a request
        finally:
            self.release()


def flush_logs() -> None:
    """Write out buffered log lines (shutdown, periodic flush)."""
    for handler in logging.getLogger("cleanfeed").handlers:
        if isinstance(handler, BufferedStreamHandler):
            handler.force_flush()


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    """Send cleanfeed's loggers to stderr, as JSON unless ``json_logs`` is False.

    JSON logs (the service mode) are buffered (:class:`BufferedStreamHandler`);
    plain-text logs (development) go straight to ``sys.stderr``. Idempotent:
    calling it again replaces the handler it installed before.
    """
    handler: logging.Handler
    if json_logs and _has_fileno(sys.stderr):
        handler = BufferedStreamHandler(sys.stderr.fileno())
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.set_name("cleanfeed")
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("cleanfeed")
    for old in [h for h in root.handlers if h.get_name() == "cleanfeed"]:
        root.removeHandler(old)
        if isinstance(old, BufferedStreamHandler):
            old.force_flush()
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def _has_fileno(stream: object) -> bool:
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True
