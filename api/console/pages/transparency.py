"""Transparency reports (issue 17 item 6): the list's monthly figures as bars.

Each shown month's signed report comes from the API's route, which issues it
on first request after the month ended; the page draws added and removed
entries as SVG bars and links the signed note text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import ADMIN, ANALYST, AUDITOR
from api.console.pages.common import (
    DOMAIN_ERRORS,
    app_context,
    area_router,
    failure,
    refused,
    render_page,
    viewing_any,
)
from api.routes import transparency as transparency_routes
from blocklist import transparency as reports
from blocklist.store import lists as store_lists
from blocklist.store.errors import InvalidState
from blocklist.store.tokens import Principal
from signer.note import parse_note

__all__ = ["REPORT_BAR_WIDTH", "REPORT_MONTHS_SHOWN", "ended_periods", "router"]

router = area_router()

#: Months on the Transparency page (older reports: the API, by period). Each
#: shown month's report is issued on the page's first visit after the month
#: ended, as the API does, so the bound also bounds the signing work.
REPORT_MONTHS_SHOWN: Final = 12

#: Width of the longest bar on the Transparency page, in SVG user units.
REPORT_BAR_WIDTH: Final = 300


#: The API serves a list's reports to its admins and auditors (anyone for a
#: public list): the console asks with the strongest role held.
_REPORT_ROLES: Final = (ADMIN, AUDITOR, ANALYST)

_REPORT_REFUSED: Final = "this page needs a role on a list"


def ended_periods(created: datetime, now: datetime) -> list[str]:
    """The calendar months from the list's creation that have ended, newest first."""
    periods: list[str] = []
    year, month = now.year, now.month
    first = (created.astimezone(UTC).year, created.astimezone(UTC).month)
    while len(periods) < REPORT_MONTHS_SHOWN:
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        if (year, month) < first:
            break
        periods.append(f"{year:04d}-{month:02d}")
    return periods


async def _report_note(
    request: Request, principal: Principal, list_name: str, period: str
) -> str | None:
    """The signed note of ``period`` via the API's route; ``None`` if none can exist."""
    try:
        answer = await transparency_routes.transparency_report(
            app_context(request), request, principal, list_name, period
        )
    except InvalidState:
        # Nothing was published before the month ended: no version names
        # the list's state then, so there is no report to sign.
        return None
    return bytes(answer.body).decode("utf-8")


@router.get("/transparency", response_class=HTMLResponse)
async def transparency_page(request: Request) -> Response:
    """The list's monthly reports: entries added and removed as a bar per month."""
    reader = await viewing_any(request, _REPORT_ROLES, _REPORT_REFUSED)
    if isinstance(reader, Response):
        return reader
    person, principal, list_name = reader.person, reader.principal, reader.list_name
    ctx = app_context(request)

    def created_at() -> datetime:
        with ctx.db.read() as session:
            return store_lists.get_list(session, list_name).created_at

    months: list[dict[str, Any]] = []
    try:
        for period in ended_periods(await run_in_threadpool(created_at), datetime.now(UTC)):
            note = await _report_note(request, principal, list_name, period)
            if note is None:
                continue
            figures = reports.parse_report(parse_note(note).text).figures
            removed = sum(
                int(figures[f])
                for f in ("removed_analyst", "removed_expiry", "removed_gone", "removed_appeal")
            )
            months.append(
                {
                    "period": period,
                    "added": int(figures["entries_added"]),
                    "removed": removed,
                    "figures": figures,
                }
            )
    except DOMAIN_ERRORS as e:
        status, detail = failure(e)
        return refused(request, person, status, "No reports", detail)
    largest = max([1, *(m["added"] for m in months), *(m["removed"] for m in months)])
    for m in months:
        # Bars are SVG rectangles drawn here: no script, no inline style
        # (the CSP forbids it), nothing from another host.
        m["added_width"] = m["added"] * REPORT_BAR_WIDTH // largest
        m["removed_width"] = m["removed"] * REPORT_BAR_WIDTH // largest
    return render_page(
        request,
        "transparency.html",
        "transparency",
        person,
        list_name,
        months=months,
        bar_width=REPORT_BAR_WIDTH,
        shown=REPORT_MONTHS_SHOWN,
    )


@router.get("/transparency/{period}.txt")
async def transparency_note(request: Request, period: str) -> Response:
    """The signed note text of one month, as the API serves it (for the person's session)."""
    reader = await viewing_any(request, _REPORT_ROLES, _REPORT_REFUSED)
    if isinstance(reader, Response):
        return reader
    person, principal, list_name = reader.person, reader.principal, reader.list_name
    try:
        reports.parse_period(period)
        note = await _report_note(request, principal, list_name, period)
    except DOMAIN_ERRORS as e:
        status, detail = failure(e)
        return refused(request, person, status, "No report", detail)
    if note is None:
        return refused(request, person, 404, "No report", f"no report for {period}")
    return Response(note, media_type="text/plain; charset=utf-8")
