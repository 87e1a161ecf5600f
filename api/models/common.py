"""Shared pieces of every request and response model.

The two bases (:class:`Forbid` for requests, :class:`Out` for responses),
the limits a request is checked against and the constrained field types
(:data:`Url`, :data:`ListName`, :data:`UtcTime` …) that the area modules
build on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from blocklist.store.submissions import (
    MAX_CATEGORY_CHARS,
    MAX_REASON_CHARS,
    MAX_REFERENCE_CHARS,
    MAX_URL_CHARS,
)

__all__ = [
    "MAX_INT",
    "Category",
    "Country",
    "Forbid",
    "HashText",
    "ListName",
    "Out",
    "Reason",
    "Reference",
    "Role",
    "Scope",
    "Status",
    "Url",
    "UtcTime",
]

#: Largest integer accepted anywhere in a request: a signed 64-bit column.
MAX_INT = 2**63 - 1

Scope = Literal["page", "prefix", "host"]
Status = Literal["pending", "active", "expired", "removed", "referred"]
Role = Literal["admin", "analyst", "isp", "auditor"]

Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_CHARS)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REFERENCE_CHARS)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CATEGORY_CHARS)]
Country = Annotated[str, StringConstraints(min_length=2, max_length=2)]
ListName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
#: A hash in a JSON body: base64 (44 characters) or 64 hex digits.
HashText = Annotated[str, StringConstraints(min_length=44, max_length=64)]


def _representable_in_utc(value: datetime) -> datetime:
    # A time such as 9999-12-31T23:59:59-23:59 parses but lies past year
    # 9999 once converted to UTC: refuse it as bad input (422), never a 500.
    try:
        return value.astimezone(UTC)
    except OverflowError as e:
        raise ValueError("time is out of range once converted to UTC") from e


#: An RFC 3339 time with an offset that is representable in UTC.
UtcTime = Annotated[AwareDatetime, AfterValidator(_representable_in_utc)]


class Forbid(BaseModel):
    """Base of request models: unknown fields are an error (mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Out(BaseModel):
    """Base of response models."""

    model_config = ConfigDict(extra="forbid")
