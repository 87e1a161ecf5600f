"""Pieces shared by the route modules: OpenAPI error responses, headers, one-entry changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Path
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import authorised_list
from api.context import AppContext
from api.errors import PROBLEM_MEDIA_TYPE
from api.models.common import MAX_INT
from api.models.entries import EntryOut, entry_out
from api.models.problems import ProblemOut
from blocklist.store.models import EntryRow
from blocklist.store.tokens import Principal

__all__ = [
    "GZIP_MINIMUM_SIZE",
    "IMMUTABLE_MAX_AGE",
    "TEXT_MEDIA_TYPE",
    "EntryIdPath",
    "ListPath",
    "cache_control",
    "change_entry",
    "entry_action",
    "problems",
]

#: Media type of every signed note (DESIGN.md interface table).
TEXT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"

#: Responses smaller than this are sent uncompressed: gzip's header and CPU
#: cost outweigh the saving (the checkpoint is about 400 bytes).
GZIP_MINIMUM_SIZE: Final = 1000

#: One year: what "immutable" responses may be cached for (RFC 8246).
IMMUTABLE_MAX_AGE: Final = 31_536_000

_DESCRIPTIONS: Final = {
    400: "Bad request (e.g. a token in the query string)",
    401: "Missing, malformed, expired or revoked token",
    403: "The token's role may not use this endpoint",
    404: "No such list (or the token may not read it), or no such object",
    409: "Conflicts with the current state",
    410: "Pruned by the list's retention policy (docs/operations.md, Retention)",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request (unknown fields, bad values, refused entry)",
    429: "Rate limited; see Retry-After",
    503: "Not ready (database unreachable, no signed checkpoint yet)",
}


_PROBLEM_SCHEMA: Final = {"$ref": "#/components/schemas/ProblemOut"}


def problems(
    *statuses: int, extra: Mapping[int, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for problem+json errors with these statuses (plus ``extra``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, response in (extra or {}).items():
        out[status] = response
    # 400 (token in the query string), 401, 422 and 429 can answer any call.
    for status in sorted({*statuses, 400, 401, 422, 429}):
        out[status] = {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "model": ProblemOut,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
    return out


def cache_control(*, shared: bool, immutable: bool) -> str:
    """``Cache-Control`` for an ISP document.

    DESIGN.md, "API shape": token-gated responses are private; only a public
    list's hash-only documents fetched without a token may be stored by
    shared caches. Immutable documents (a given statement, a full page, a
    given keyring serial) may be cached for a year; the rest must be
    revalidated on every use.
    """
    scope = "public" if shared else "private"
    if immutable:
        return f"{scope}, max-age={IMMUTABLE_MAX_AGE}, immutable"
    return f"{scope}, no-cache"


#: The ``{list}`` path parameter.
ListPath = Annotated[
    str,
    Path(alias="list", min_length=1, max_length=64, description="list name", examples=["main"]),
]

#: The ``{entry_id}`` path parameter.
EntryIdPath = Annotated[int, Path(ge=1, le=MAX_INT, description="entry id")]


async def change_entry(
    ctx: AppContext,
    p: Principal,
    list_name: str,
    change: Callable[[Session, int], EntryRow],
) -> EntryOut:
    """Run one store change of an entry of a list ``p`` may use; the entry after it.

    ``change(session, list_id)`` runs in its own transaction off the event
    loop (the store is synchronous), so a domain error rolls it back whole.

    Raises:
        ApiProblem: 404, for a missing list and a forbidden one alike.
        BlocklistError: what ``change`` raises (mapped to problem+json).
    """
    info = await authorised_list(ctx, p, list_name)

    def work() -> EntryOut:
        with ctx.db.transaction() as session:
            return entry_out(change(session, info.id), info.name)

    return await run_in_threadpool(work)


_Route = TypeVar("_Route", bound=Callable[..., Any])


def entry_action(router: APIRouter, action: str, summary: str) -> Callable[[_Route], _Route]:
    """Declare ``POST /lists/{list}/entries/{entry_id}/<action>`` on ``router``.

    Every such route changes one entry (approve, expire, guard-approve,
    refer …) and answers the entry after the change, or 403, 404 or 409.
    """
    return router.post(
        f"/lists/{{list}}/entries/{{entry_id}}/{action}",
        response_model=EntryOut,
        responses=problems(403, 404, 409),
        summary=summary,
    )
