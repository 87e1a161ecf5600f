"""Transparency reports: ``GET /v1/lists/{list}/transparency?period=YYYY-MM``.

DESIGN.md part 2, "Transparency report" (issue 17 item 5): a signed note
``cleanfeed-transparency/v1`` per list and calendar month, issued on the
first request after the month ended (:func:`signer.transparency.issue_report`)
and never re-signed. Public for a public list (anyone, rate-limited per
address); otherwise for auditor and admin tokens of the list.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.auth import (
    ADMIN,
    AUDITOR,
    ContextDep,
    OptionalPrincipalDep,
    authorised_list,
    rate_limit_anonymous,
    resolve_list,
)
from api.errors import ApiProblem
from api.routes.common import ListPath, problems
from signer.transparency import issue_report

__all__ = ["PERIOD_PATTERN", "router", "transparency_report"]

router = APIRouter(prefix="/v1", tags=["transparency"])

#: ``YYYY-MM``.
PERIOD_PATTERN: Final = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


@router.get(
    "/lists/{list}/transparency",
    response_class=PlainTextResponse,
    responses=problems(401, 403, 404, 409, 503),
    summary="The signed transparency report of a month (public lists: no token)",
)
async def transparency_report(
    ctx: ContextDep,
    request: Request,
    p: OptionalPrincipalDep,
    list_name: ListPath,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM, ended")],
) -> PlainTextResponse:
    """The report note; the same bytes on every request."""
    if p is None:
        info = await resolve_list(ctx, list_name)
        if info is None or not info.public:
            raise ApiProblem("unauthenticated", "this list's reports need an auditor token")
        rate_limit_anonymous(request, ctx)
        public = True
    else:
        listed = await resolve_list(ctx, list_name)
        if (listed is None or not listed.public) and p.role not in (AUDITOR, ADMIN):
            raise ApiProblem("forbidden", "this endpoint needs a token with role admin or auditor")
        info = listed if listed is not None and listed.public else None
        if info is None:
            info = await authorised_list(ctx, p, list_name)
        public = info.public
    note = await run_in_threadpool(issue_report, ctx.db, info.name, period, ctx.settings.keys_dir)
    # A report never changes once issued: shared caches may keep a public one.
    cache = "public, max-age=86400, immutable" if public else "private, max-age=86400"
    return PlainTextResponse(
        note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": cache}
    )
