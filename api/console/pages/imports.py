"""Bulk import: upload a CSV, see a result per row, approve the whole import.

The upload goes through the API's own bulk path (its limits, four-eyes and
audit records); the per-row table is kept in memory for download.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Scope

from api import accounts
from api.auth import ANALYST, authorised_list
from api.bodygate import SESSION_AUTH_ATTR, body_cap
from api.console.pages.common import (
    DOMAIN_ERRORS,
    MAX_IMPORT_BYTES,
    app_context,
    area_router,
    call,
    console_state,
    failure,
    need_person,
    posting,
    refused,
    render_page,
    viewing,
)
from api.context import AppContext
from api.errors import ApiProblem
from api.models.entries import ApproveManyIn
from api.routes import analyst as analyst_routes
from api.routes.analyst import parse_csv

__all__ = ["IMPORT_RESULTS_KEPT", "router"]

router = area_router()

#: Bulk-import result tables kept for download, per process (oldest dropped
#: first): the table is on the page too, so a dropped one costs nothing.
IMPORT_RESULTS_KEPT: Final = 64

_RESULT_COLUMNS: Final = ("row", "url", "status", "entry", "code", "message")


@router.get("/import", response_class=HTMLResponse)
async def import_form(request: Request) -> Response:
    """The CSV upload form."""
    acting = await viewing(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    return render_page(request, "import.html", "import", acting.person, acting.list_name)


async def _has_session(ctx: AppContext, scope: Scope) -> bool:
    """Whether a request carries a live console session (the body gate's check)."""
    cookie = Request(scope).cookies.get(accounts.SESSION_COOKIE)
    if not cookie:
        return False
    return await call(accounts.load_session, ctx, cookie) is not None


@router.post("/import", response_class=HTMLResponse)
@body_cap(MAX_IMPORT_BYTES)
async def import_submit(request: Request) -> Response:
    """Add the uploaded CSV's rows; a result per row, kept for download."""
    acting = await posting(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    form, principal, list_name = acting.form, acting.principal, acting.list_name
    upload = form.get("file")
    ctx = app_context(request)
    error: str | None = None
    rows: list[dict[str, Any]] = []
    import_id: int | None = None
    download: str | None = None
    counts: dict[str, int] = {}
    try:
        if not isinstance(upload, UploadFile):
            raise ApiProblem("validation_error", "choose a CSV file to upload")
        try:
            data = await upload.read()
        finally:
            await form.close()  # the spooled temporary file of the upload
        parsed = parse_csv(data)
        info = await authorised_list(ctx, principal, list_name)
        out = await run_in_threadpool(
            analyst_routes._bulk,
            ctx,
            info,
            principal.name,
            parsed,
            False,
            None,
            principal.account_id,
        )
        import_id = out.import_id
        counts = {
            "added": out.added,
            "existing": out.existing,
            "failed": out.failed,
            "skipped": out.skipped,
        }
        urls = [getattr(r, "url", None) for r in parsed]
        for result in out.results:
            rows.append(
                {
                    "row": result.index + 1,
                    "url": urls[result.index] if result.index < len(urls) else None,
                    "status": result.status,
                    "entry": result.id,
                    "code": result.code,
                    "message": result.message,
                }
            )
        download = _keep_results(request, rows)
    except DOMAIN_ERRORS as e:
        _, error = failure(e)
    return render_page(
        request,
        "import.html",
        "import",
        acting.person,
        list_name,
        rows=rows,
        counts=counts,
        import_id=import_id,
        download=download,
        error=error,
        status=422 if error else 200,
    )


# Issue 12, item 8: only a logged-in person may send the import's large
# body; anyone else gets no more than the small pre-authentication cap.
setattr(import_submit, SESSION_AUTH_ATTR, _has_session)


def _keep_results(request: Request, rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 section 2
    writer.writerow(_RESULT_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else str(row[c]) for c in _RESULT_COLUMNS])
    key = secrets.token_urlsafe(16)
    results = console_state(request).results
    person = getattr(request.state, "console_person_id", None)
    results[key] = (str(person), out.getvalue().encode("utf-8"))
    while len(results) > IMPORT_RESULTS_KEPT:
        results.popitem(last=False)
    return key


@router.get("/import/results/{key}.csv")
async def import_results(request: Request, key: str) -> Response:
    """The per-row result table of an upload, as CSV."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    found = console_state(request).results.get(key)
    if found is None:
        return refused(request, person, 404, "Results no longer kept", "upload the file again")
    return Response(
        found[1],
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="import-results.csv"'},
    )


@router.post("/import/{import_id}/approve", response_class=HTMLResponse)
async def import_approve(request: Request, import_id: int) -> Response:
    """Approve every entry of an import; a result per entry."""
    acting = await posting(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    ctx = app_context(request)
    results: list[Any] = []
    error: str | None = None
    summary: dict[str, int] = {}
    try:
        cursor: int | None = None
        while True:
            body = ApproveManyIn.model_validate({"import": import_id, "cursor": cursor})
            out = await analyst_routes.approve_entries(
                ctx, acting.principal, acting.list_name, body
            )
            results.extend(out.results)
            for key in ("approved", "activated", "refused"):
                summary[key] = summary.get(key, 0) + int(getattr(out, key))
            if out.next is None:
                break
            cursor = out.next
    except ValidationError as e:
        error = str(e.errors()[0]["msg"])
    except DOMAIN_ERRORS as e:
        _, error = failure(e)
    return render_page(
        request,
        "approved.html",
        "import",
        acting.person,
        acting.list_name,
        import_id=import_id,
        results=results,
        summary=summary,
        error=error,
    )
