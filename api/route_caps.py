"""Per-route request body caps that differ from the middleware's defaults.

The JSON bulk add takes up to :data:`~blocklist.store.imports.MAX_BULK_ROWS`
rows (docs/api-errors.md, ``limit_exceeded``), so its body cap must hold that
many rows of the largest size the request model accepts (issue 13, item 9:
a 1 MiB cap let through about a hundred such rows, not 10,000). The cap is
derived from the field caps rather than written down, so raising a field
cap raises it too. Only authenticated analysts reach these routes' handlers;
caps that apply before authentication belong to the middleware.
"""

from __future__ import annotations

import json
from typing import Final

from blocklist.store.imports import MAX_BULK_ROWS
from blocklist.store.submissions import (
    MAX_CATEGORY_CHARS,
    MAX_REASON_CHARS,
    MAX_REFERENCE_CHARS,
    MAX_URL_CHARS,
)

__all__ = [
    "BULK_JSON_SUFFIX",
    "MAX_BULK_JSON_BODY_BYTES",
    "MAX_BULK_ROW_JSON_BYTES",
    "route_body_cap",
]

#: Path suffix of the JSON bulk add (``POST /v1/lists/{list}/entries/bulk``).
BULK_JSON_SUFFIX: Final = "/entries/bulk"

#: JSON escapes a reason's newlines and tabs (the only controls it may hold)
#: as two bytes each.
_ESCAPED_CONTROL_BYTES: Final = 2


def _largest_bulk_row() -> bytes:
    """The JSON of a bulk row with every field at its cap (ASCII text)."""
    row = {
        "url": "u" * MAX_URL_CHARS,
        "scope": "prefix",
        "reason": "r" * MAX_REASON_CHARS,
        "reference": "f" * MAX_REFERENCE_CHARS,
        "category": "c" * MAX_CATEGORY_CHARS,
        "hosting_country": "ZZ",
        "expires_at": "9999-12-31T23:59:59.999999+00:00",
    }
    return json.dumps(row, separators=(", ", ": ")).encode("ascii")


#: Bytes of the largest bulk row: every field at its cap, a reason made of
#: escaped newlines, a comma and a newline between rows.
MAX_BULK_ROW_JSON_BYTES: Final = (
    len(_largest_bulk_row()) + MAX_REASON_CHARS * (_ESCAPED_CONTROL_BYTES - 1) + 2
)

#: Body cap of the JSON bulk add: the documented row cap times the largest
#: row, plus the enclosing brackets.
MAX_BULK_JSON_BODY_BYTES: Final = MAX_BULK_ROWS * MAX_BULK_ROW_JSON_BYTES + 2


def route_body_cap(path: str) -> int | None:
    """The body cap of the route at ``path`` when it has its own, else None."""
    if path.endswith(BULK_JSON_SUFFIX):
        return MAX_BULK_JSON_BODY_BYTES
    return None
