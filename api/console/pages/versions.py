"""Versions, publishing and ISPs: what the list's subscribers receive.

The Versions page lists published versions with their adds and removes, the
signed checkpoint and the signer's health, and cuts a version on request;
the ISPs page shows every ISP token's last fetch so a stale one stands out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import ADMIN, ANALYST
from api.console.pages.common import (
    DOMAIN_ERRORS,
    acting_in_any,
    app_context,
    area_router,
    chosen_list,
    entry_view,
    failure,
    first_principal,
    need_person,
    posted,
    render_page,
    viewing_any,
)
from api.context import AppContext
from api.routes import admin as admin_routes
from api.routes import analyst as analyst_routes
from api.routes.ops import readiness
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions

__all__ = ["ISP_STALE_AFTER", "VERSIONS_SHOWN", "router"]

router = area_router()

#: Published versions listed on the Versions page (older ones: the API).
VERSIONS_SHOWN: Final = 20

#: An ISP whose last poll is older than this stands out as stale even when
#: it is on the current version: a client that polls stopped polling.
ISP_STALE_AFTER: Final = timedelta(hours=1)


#: Publishing and the ISPs page are for the list's analysts and admins.
_PUBLISHERS: Final = (ANALYST, ADMIN)


def _versions(ctx: AppContext, list_id: int) -> tuple[list[dict[str, Any]], str | None]:
    with ctx.db.read() as session:
        published = store_versions.recent_versions(session, list_id, VERSIONS_SHOWN)
        checkpoint = store_versions.get_checkpoint(session, list_id)
        out = [
            {
                "version": v.row.version,
                "time": v.row.time,
                "count": v.row.count,
                "adds": [entry_view(e) for e in v.adds],
                "removes": [entry_view(e) for e in v.removes],
            }
            for v in published
        ]
        return out, (checkpoint.note if checkpoint is not None else None)


async def _versions_page(
    request: Request, person: Any, list_name: str | None, **extra: Any
) -> Response:
    ctx = app_context(request)
    versions: list[dict[str, Any]] = []
    note: str | None = None
    info = ctx.resolve_list(list_name) if list_name is not None else None
    if info is not None:
        versions, note = await run_in_threadpool(_versions, ctx, info.id)
    ready, checks = await run_in_threadpool(readiness, ctx)
    return render_page(
        request,
        "versions.html",
        "versions",
        person,
        list_name,
        versions=versions,
        checkpoint=note,
        ready=ready,
        checks=sorted(checks.items()),
        may_publish=first_principal(person, _PUBLISHERS, list_name) is not None,
        **extra,
    )


@router.get("/versions", response_class=HTMLResponse)
async def versions(request: Request) -> Response:
    """Published versions with adds and removes, the checkpoint, signer health."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    return await _versions_page(request, person, chosen_list(request, person))


@router.post("/publish", response_class=HTMLResponse)
async def publish_now(request: Request) -> Response:
    """Cut a version from everything approved now."""
    person, form, refusal = await posted(request)
    if refusal is not None:
        return refusal
    acting = acting_in_any(request, person, _PUBLISHERS, form, "publishing needs analyst or admin")
    if isinstance(acting, Response):
        return acting
    list_name = acting.list_name
    message: str | None = None
    error: str | None = None
    try:
        answer = await analyst_routes.publish(app_context(request), acting.principal, list_name)
        document = json.loads(bytes(answer.body))
        if answer.status_code == 202:
            message = "Publish requested: the signer will cut the version shortly."
        elif document.get("published"):
            message = f"Published version {document['version']}."
        else:
            message = f"Nothing to publish: version {document['version']} is current."
    except DOMAIN_ERRORS as e:
        _, error = failure(e)
    return await _versions_page(request, person, list_name, message=message, error=error)


@router.get("/isps", response_class=HTMLResponse)
async def isps(request: Request) -> Response:
    """Every ISP token: last fetched version, how far behind, last poll; stale ones stand out."""
    acting = await viewing_any(request, _PUBLISHERS, "this page needs analyst or admin")
    if isinstance(acting, Response):
        return acting
    person, list_name = acting.person, acting.list_name
    ctx = app_context(request)
    out = await admin_routes.list_isps(ctx, acting.principal, list_name)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []

    def silent_isps() -> list[str]:
        # ISP tokens of this list that never fetched it: the most stale of all.
        seen = {isp.token_id for isp in out.isps}
        with ctx.db.read() as session:
            return [
                t.name
                for t in store_tokens.list_tokens(session)
                if t.role == "isp"
                and t.revoked_at is None
                and t.id not in seen
                and (not t.lists or list_name in {row.name for row in t.lists})
            ]

    for name in await run_in_threadpool(silent_isps):
        rows.append(
            {
                "name": name,
                "version": None,
                "behind": None,
                "at": None,
                "age_minutes": None,
                "stale": True,
            }
        )
    for isp in out.isps:
        behind = max(0, out.version - isp.version)
        age = now - isp.at
        rows.append(
            {
                "name": isp.name,
                "version": isp.version,
                "behind": behind,
                "at": isp.at,
                "age_minutes": int(age.total_seconds() // 60),
                "stale": behind > 0 or age > ISP_STALE_AFTER,
            }
        )
    return render_page(
        request,
        "isps.html",
        "isps",
        person,
        list_name,
        current=out.version,
        rows=rows,
        stale_after_minutes=int(ISP_STALE_AFTER.total_seconds() // 60),
    )
