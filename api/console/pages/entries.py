"""The queue, the add form and an entry's page: an analyst's work on one entry.

The queue shows what waits for the person (colleagues' pending entries,
their own, guarded entries for admins, re-verification proposals); the add
form previews an entry's reach before storing it; an entry's page shows
its events and takes approve, expire and reinstate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import ADMIN, ANALYST
from api.console.pages.common import (
    DOMAIN_ERRORS,
    Acting,
    app_context,
    area_router,
    chosen_list,
    entry_view,
    failure,
    form_given,
    form_text,
    need_person,
    posting,
    principal_for,
    refused,
    render_page,
    to_queue,
    viewing,
)
from api.console.security import CONSOLE_PREFIX
from api.models.entries import EntryIn, EntryOut, ExpireIn, PreviewIn, ReinstateIn, entry_out
from api.routes import analyst as analyst_routes
from api.routes import reverify as reverify_routes
from blocklist.store import search as store_search
from blocklist.store.models import EntryRow

__all__ = ["router"]

router = area_router()

_SCOPES: Final = ("page", "prefix", "host")


@router.get("/queue", response_class=HTMLResponse)
async def queue(request: Request) -> Response:
    """What needs me: colleagues' entries awaiting approval, then my own pending ones."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    list_name = chosen_list(request, person)
    principal = principal_for(person, ANALYST, list_name)
    admin = principal_for(person, ADMIN, list_name)
    waiting: list[dict[str, Any]] = []
    mine: list[dict[str, Any]] = []
    guarded: list[EntryOut] = []
    proposals: list[Any] = []
    reader = principal or admin
    if reader is not None and list_name is not None:
        ctx = app_context(request)
        info = ctx.resolve_list(list_name)
        # Re-verification proposals (expiry, referral, unverified): the API's route.
        proposals = (await reverify_routes.get_proposals(ctx, reader, list_name)).proposals
        if info is not None:

            def work() -> list[EntryRow]:
                with ctx.db.read() as session:
                    page = store_search.search(
                        session, info.id, status="pending", limit=store_search.MAX_PAGE_SIZE
                    )
                    return page.items

            for row in await run_in_threadpool(work):
                if row.guard is not None and row.guard_approved_by is None:
                    # Guarded entries wait for an administrator's approval too.
                    guarded.append(entry_out(row, list_name))
                if principal is None:
                    continue
                view = entry_view(row)
                # Four-eyes counts persons: an entry this person submitted
                # through any of their tokens is theirs too.
                own = principal.name in (row.created_by, row.submitted_by) or (
                    row.submitted_person is not None
                    and row.submitted_person == principal.account_id
                )
                (mine if own else waiting).append(view)
    return render_page(
        request,
        "queue.html",
        "queue",
        person,
        list_name,
        analyst=principal is not None,
        admin=admin is not None,
        waiting=waiting,
        mine=mine,
        guarded=guarded,
        proposals=proposals,
        message=request.query_params.get("done"),
    )


def _add_page(
    request: Request, acting: Acting, values: dict[str, Any], **extra: Any
) -> HTMLResponse:
    return render_page(
        request,
        "add.html",
        "add",
        acting.person,
        acting.list_name,
        scopes=_SCOPES,
        values=values,
        **extra,
    )


@router.get("/add", response_class=HTMLResponse)
async def add_form(request: Request) -> Response:
    """The add-entry form; the reach preview comes before the entry is stored."""
    acting = await viewing(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    return _add_page(request, acting, {"scope": "page"})


def _parse_expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    # <input type="datetime-local"> sends "YYYY-MM-DDTHH:MM" without an
    # offset; the form says it is UTC.
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.post("/add", response_class=HTMLResponse)
async def add_submit(request: Request) -> Response:
    """``action=preview`` shows the reach; ``action=add`` stores the entry as pending."""
    acting = await posting(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    form, principal, list_name = acting.form, acting.principal, acting.list_name
    values = {
        k: form_text(form, k)
        for k in ("url", "scope", "reason", "reference", "category", "hosting_country", "expires")
    }
    ctx = app_context(request)
    error: str | None = None
    preview: Any = None
    status = 200
    try:
        preview = await analyst_routes.preview_entry(
            ctx,
            principal,
            list_name,
            PreviewIn.model_validate(
                {
                    "url": values["url"] or "",
                    "scope": values["scope"] or "page",
                    "hosting_country": values["hosting_country"],
                }
            ),
        )
        if form.get("action") == "add" and preview.accepted:
            entry = EntryIn.model_validate(
                {
                    "url": values["url"],
                    "scope": values["scope"],
                    "reason": values["reason"] or "",
                    "reference": values["reference"],
                    "category": values["category"],
                    "hosting_country": values["hosting_country"],
                    "expires_at": _parse_expiry(values["expires"]),
                }
            )
            answer = await analyst_routes.add_entry(ctx, principal, list_name, entry)
            entry_id = _json_id(answer)
            return RedirectResponse(
                f"{CONSOLE_PREFIX}/entries/{entry_id}?list={quote(list_name)}&added="
                + ("1" if answer.status_code == 201 else "0"),
                status_code=303,
            )
    except ValidationError as e:
        status, error = failure(e)
    except ValueError as e:
        # After ValidationError (itself a ValueError): a malformed expiry time,
        # and before DOMAIN_ERRORS, some of which are ValueErrors too.
        error = f"expiry: {e}"
        status = 422
    except DOMAIN_ERRORS as e:
        status, error = failure(e)
    return _add_page(request, acting, values, preview=preview, error=error, status=status)


def _json_id(response: Response) -> int:
    document = json.loads(bytes(response.body))
    value: int = document["id"]
    return value


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
async def entry_page(request: Request, entry_id: int) -> Response:
    """An entry: expression, hash, reach, status, every event with who and when."""
    acting = await viewing(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    return await _show_entry(request, acting, entry_id)


async def _show_entry(
    request: Request,
    acting: Acting,
    entry_id: int,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    ctx = app_context(request)
    person, principal, list_name = acting.person, acting.principal, acting.list_name
    try:
        entry = await analyst_routes.get_entry(ctx, principal, list_name, entry_id)
    except DOMAIN_ERRORS as e:
        code_status, detail = failure(e)
        return refused(request, person, code_status, "No such entry", detail)
    reach_view = None
    if entry.expression is not None:
        try:
            reach_view = await analyst_routes.preview_entry(
                ctx,
                principal,
                list_name,
                PreviewIn(url=entry.url or "http://" + entry.expression, scope=entry.scope),
            )
        except DOMAIN_ERRORS:
            reach_view = None
    own = principal.name in (entry.created_by, entry.submitted_by)
    if message is None and request.query_params.get("added") == "1":
        message = "Entry added as pending: a colleague must approve it."
    elif message is None and request.query_params.get("added") == "0":
        message = "This expression is already on the list: here is its entry."
    return render_page(
        request,
        "entry.html",
        "search",
        person,
        list_name,
        entry=entry,
        reach=reach_view.reach if reach_view is not None else None,
        own=own,
        message=message,
        error=error,
        status=status,
    )


#: What an entry's page says after each action.
_ENTRY_DONE: Final = {
    "approve": "Approved.",
    "expire": "Expired: it comes off the list at the next version.",
    "reinstate": "Reinstated as pending: it needs fresh approvals.",
}


@router.post("/entries/{entry_id}/{action}", response_class=HTMLResponse)
async def entry_action(request: Request, entry_id: int, action: str) -> Response:
    """Approve, expire or reinstate one entry (the API's rules, the person as actor)."""
    acting = await posting(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    form, principal, list_name = acting.form, acting.principal, acting.list_name
    ctx = app_context(request)
    if action not in _ENTRY_DONE:
        return refused(request, acting.person, 404, "No such action", action)
    try:
        if action == "approve":
            await analyst_routes.approve_entry(ctx, principal, list_name, entry_id)
        elif action == "expire":
            await analyst_routes.expire_entry(
                ctx,
                principal,
                list_name,
                entry_id,
                ExpireIn.model_validate(form_given(form, "reason")),
            )
        else:
            await analyst_routes.reinstate_entry(
                ctx,
                principal,
                list_name,
                entry_id,
                ReinstateIn.model_validate(form_given(form, "reason")),
            )
    except ValidationError as e:
        return await _show_entry(
            request, acting, entry_id, error=str(e.errors()[0]["msg"]), status=422
        )
    except DOMAIN_ERRORS as e:
        status, error = failure(e)
        return await _show_entry(
            request, acting, entry_id, error=f"Refused: {error}", status=status
        )
    if form_text(form, "back") == "queue":
        return to_queue(list_name, _ENTRY_DONE[action])
    return await _show_entry(request, acting, entry_id, message=_ENTRY_DONE[action])
