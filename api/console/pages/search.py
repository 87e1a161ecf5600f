"""Search: one page of a list's entries matching every filter given.

Filters travel in a POST body, so the URLs an analyst searches for stay out
of access logs; the page shows what a URL was canonicalised to.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import ANALYST, authorised_list
from api.console.pages.common import (
    DOMAIN_ERRORS,
    Acting,
    app_context,
    area_router,
    entry_view,
    failure,
    form_text,
    posting,
    render_page,
    viewing,
)
from api.errors import ApiProblem
from api.routes import analyst as analyst_routes
from blocklist import canonical
from blocklist.store import search as store_search
from blocklist.store.models import ENTRY_STATUSES

__all__ = ["SEARCH_PAGE_SIZE", "router"]

router = area_router()

#: Entries per search page.
SEARCH_PAGE_SIZE: Final = 50

_SEARCH_FIELDS: Final = (
    "url",
    "expression",
    "hash",
    "reference",
    "analyst",
    "status",
    "from",
    "to",
    "cursor",
)


def _day(text: str | None, *, end: bool) -> datetime | None:
    if text is None:
        return None
    day = date.fromisoformat(text)
    moment = datetime.combine(day, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment


def _search_page(
    request: Request, acting: Acting, values: dict[str, str | None], **extra: Any
) -> HTMLResponse:
    return render_page(
        request,
        "search.html",
        "search",
        acting.person,
        acting.list_name,
        statuses=ENTRY_STATUSES,
        values=values,
        **extra,
    )


@router.get("/search", response_class=HTMLResponse)
async def search_form(request: Request) -> Response:
    """The search form (filters go in a POST body, so URLs stay out of access logs)."""
    acting = await viewing(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    return _search_page(request, acting, {})


@router.post("/search", response_class=HTMLResponse)
async def search_submit(request: Request) -> Response:
    """One page of entries matching every filter given."""
    acting = await posting(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    values = {k: form_text(acting.form, k) for k in _SEARCH_FIELDS}
    ctx = app_context(request)
    error: str | None = None
    items: list[dict[str, Any]] = []
    next_cursor: int | None = None
    canonical_url: str | None = None
    try:
        info = await authorised_list(ctx, acting.principal, acting.list_name)
        digest: bytes | None = None
        if values["hash"] is not None:
            digest = analyst_routes._parse_hash(values["hash"])
        if values["expression"] is not None:
            by_expression = canonical.expression_hash(values["expression"])
            if digest is not None and digest != by_expression:
                raise ApiProblem("validation_error", "hash and expression name different entries")
            digest = by_expression
        if values["url"] is not None:
            # As lookups do (DESIGN.md, "Canonical URLs"): the page shows what
            # the URL was canonicalised to.
            canonical_url = canonical.canonicalize(values["url"])
        status_filter = values["status"]
        if status_filter is not None and status_filter not in ENTRY_STATUSES:
            raise ApiProblem(
                "validation_error", f"status must be one of {', '.join(ENTRY_STATUSES)}"
            )
        created_from = _day(values["from"], end=False)
        created_to = _day(values["to"], end=True)
        cursor = int(values["cursor"]) if values["cursor"] is not None else None

        def work() -> store_search.EntryPage:
            with ctx.db.read() as session:
                return store_search.search(
                    session,
                    info.id,
                    url=values["url"],
                    hash=digest,
                    status=status_filter,
                    reference=values["reference"],
                    created_by=values["analyst"],
                    created_from=created_from,
                    created_before=created_to,
                    cursor=cursor,
                    limit=SEARCH_PAGE_SIZE,
                )

        page = await run_in_threadpool(work)
        items = [entry_view(row) for row in page.items]
        next_cursor = page.next_cursor
    except ValueError as e:
        error = f"{e}"
    except DOMAIN_ERRORS as e:
        _, error = failure(e)
    return _search_page(
        request,
        acting,
        values,
        items=items,
        searched=error is None,
        next_cursor=next_cursor,
        canonical_url=canonical_url,
        error=error,
        status=422 if error else 200,
    )
