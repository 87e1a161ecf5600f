"""The one JSON log line format of every cleanfeed process (API and signer).

Pure formatting, no I/O: a :class:`logging.LogRecord` becomes one JSON
object (time, level, logger, message, then each ``extra`` field as a
top-level key). Where the line goes (buffered stderr for the API, plain
stderr for the signer daemon) is each process's choice. It lives in
``blocklist`` because both ``api`` and ``signer`` may import it
(docs/architecture.md, dependency direction ``api → signer → blocklist``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["JsonFormatter"]

#: Attributes of every LogRecord; anything else passed via ``extra`` is a field.
_RESERVED: Final = frozenset(
    vars(logging.LogRecord("n", logging.INFO, "p", 0, "m", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, extras.

    An exception adds ``error`` (its class name) and either ``traceback``
    (the default: the API, whose operators debug from logs) or ``detail``
    (its message only: the signer daemon, one line per failed job).
    """

    def __init__(self, *, traceback: bool = True) -> None:
        """Render exceptions with their traceback, or with their message only."""
        super().__init__()
        self._traceback = traceback

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` with its ``extra`` fields as top-level keys."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
            if self._traceback:
                out["traceback"] = self.formatException(record.exc_info)
            else:
                out["detail"] = str(record.exc_info[1])
        return json.dumps(out, default=str, ensure_ascii=False)
