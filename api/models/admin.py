"""Models of the administrators' routes: tokens, lists and which ISP saw which version."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from api.models.common import Country, Forbid, ListName, Out, Role, Url, UtcTime
from blocklist.store.models import ListRow, TokenRow

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_TOKEN_LISTS",
    "IspListOut",
    "IspStatusOut",
    "ListCreateIn",
    "ListCreatedOut",
    "ListOut",
    "RevokeIn",
    "TokenCreateIn",
    "TokenCreatedOut",
    "TokenOut",
    "list_out",
    "token_out",
]

#: Longest token or list name in a request (the store's column sizes).
MAX_NAME_CHARS = 128

#: Most lists one token can be granted in one request.
MAX_TOKEN_LISTS = 100


class RevokeIn(Forbid):
    """Revoke a token (no fields; the body may be omitted)."""


class TokenCreateIn(Forbid):
    """A token to issue."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
    role: Role
    lists: Annotated[list[ListName], Field(max_length=MAX_TOKEN_LISTS)] = []  # noqa: RUF012 (pydantic copies a field default)
    plaintext: bool = False
    full_audit: bool = False
    expires_at: UtcTime | None = None


class TokenOut(Out):
    """A token's metadata (never its secret)."""

    id: int
    name: str
    role: Role
    prefix: str
    lists: list[str]
    plaintext: bool
    full_audit: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by: str


class TokenCreatedOut(TokenOut):
    """A new token: ``token`` is shown once and never stored."""

    token: str


class ListCreateIn(Forbid):
    """A list to create."""

    name: ListName
    origin: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    approvals_required: Literal[1, 2] = 2
    home_country: Country | None = None
    canary: Url | None = Field(default=None, description="canary URL (default under .invalid)")
    public: bool = False


class ListOut(Out):
    """A list's configuration and latest version."""

    name: str
    origin: str
    approvals_required: int
    home_country: str | None
    canary_url: str
    public: bool
    created_at: datetime
    version: int


class ListCreatedOut(ListOut):
    """A new list and the root vkey its ISPs must pin."""

    root_vkey: str


class IspStatusOut(Out):
    """Which ISP token last fetched which version of a list."""

    token_id: int
    name: str
    version: int
    at: datetime


class IspListOut(Out):
    """Every ISP token's last-seen version of a list."""

    list: str
    version: int
    isps: builtins.list[IspStatusOut]


def token_out(row: TokenRow) -> TokenOut:
    """Serialise a token row (no secret)."""
    return TokenOut(
        id=row.id,
        name=row.name,
        role=row.role,  # type: ignore[arg-type]
        prefix=row.prefix,
        lists=[lst.name for lst in row.lists],
        plaintext=row.plaintext,
        full_audit=row.full_audit,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def list_out(row: ListRow, version: int) -> ListOut:
    """Serialise a list row with its latest version."""
    return ListOut(
        name=row.name,
        origin=row.origin,
        approvals_required=row.approvals_required,
        home_country=row.home_country,
        canary_url=row.canary_url,
        public=row.public,
        created_at=row.created_at,
        version=version,
    )
