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

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

#: Logger of the API (requests, errors).
API_LOGGER: Final = "cleanfeed.api"

#: Logger of ISP fetches (one line per fetch).
ISP_LOGGER: Final = "cleanfeed.isp"

#: Attributes of every LogRecord; anything else passed via ``extra`` is a field.
_RESERVED: Final = frozenset(
    vars(logging.LogRecord("n", logging.INFO, "p", 0, "m", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, extras."""

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
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    """Send cleanfeed's loggers to stderr, as JSON unless ``json_logs`` is False.

    Idempotent: calling it again replaces the handler it installed before.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("cleanfeed")
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("cleanfeed")
    for old in [h for h in root.handlers if h.get_name() == "cleanfeed"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
