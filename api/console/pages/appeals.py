"""Appeals (issue 17 item 6): analysts decide appeals against their list's entries.

Analysts see the list's open appeals and decide one through the API's route
(its reviewer rule: not a person who created or approved the entry);
admins see the appeals that matched no list and close them with a reason.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.auth import ANALYST
from api.console.pages.common import (
    DOMAIN_ERRORS,
    FORM_ERRORS,
    Acting,
    admin_principal,
    app_context,
    area_router,
    chosen_list,
    failure,
    form_text,
    need_person,
    posted_by_admin,
    posting,
    principal_for,
    refused,
    render_page,
    viewing,
)
from api.console.security import CONSOLE_PREFIX
from api.routes import appeals as appeal_routes

__all__ = ["router"]

router = area_router()

#: The outcomes a reviewer may record (the API's DecideIn).
_OUTCOMES: Final = ("upheld", "removed", "suspended")


@router.get("/appeals", response_class=HTMLResponse)
async def appeals_page(request: Request) -> Response:
    """Analysts: the list's open appeals with their entries; admins: unmatched appeals."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    ctx = app_context(request)
    list_name = chosen_list(request, person)
    analyst = principal_for(person, ANALYST, list_name)
    admin = admin_principal(person)
    if analyst is None and admin is None:
        return refused(request, person, 403, "Not allowed", "this page needs the analyst role")
    matched = (
        (await appeal_routes.list_appeals(ctx, analyst, list_name or "", "open")).appeals
        if analyst is not None
        else None
    )
    unmatched = (
        (await appeal_routes.unmatched_appeals(ctx, admin, "open")).appeals
        if admin is not None
        else None
    )
    return render_page(
        request,
        "appeals.html",
        "appeals",
        person,
        list_name,
        matched=matched,
        unmatched=unmatched,
        message=request.query_params.get("done"),
    )


async def _appeal_page(
    request: Request,
    acting: Acting,
    appeal_id: int,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    listed = await appeal_routes.list_appeals(
        app_context(request), acting.principal, acting.list_name, "all"
    )
    links = [a for a in listed.appeals if a.id == appeal_id]
    if not links:
        return refused(
            request, acting.person, 404, "No such appeal", f"appeal {appeal_id} names no entry here"
        )
    return render_page(
        request,
        "appeal.html",
        "appeals",
        acting.person,
        acting.list_name,
        appeal_id=appeal_id,
        links=links,
        undecided=[a for a in links if a.status in ("open", "suspended")],
        outcomes=_OUTCOMES,
        message=message,
        error=error,
        status=status,
    )


@router.get("/appeals/{appeal_id}", response_class=HTMLResponse)
async def appeal_page(request: Request, appeal_id: int) -> Response:
    """One appeal: its state, block reference, matched entry (text) and the decide form."""
    acting = await viewing(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    return await _appeal_page(request, acting, appeal_id)


@router.post("/appeals/{appeal_id}/decide", response_class=HTMLResponse)
async def appeal_decide(request: Request, appeal_id: int) -> Response:
    """Record a decision through the API's route (its reviewer rule and audit record)."""
    acting = await posting(request, ANALYST)
    if isinstance(acting, Response):
        return acting
    error: str | None = None
    status = 200
    try:
        entry_text = form_text(acting.form, "entry")
        body = appeal_routes.DecideIn.model_validate(
            {
                "outcome": form_text(acting.form, "outcome") or "",
                "reason": form_text(acting.form, "reason") or "",
                "entry": int(entry_text) if entry_text is not None else None,
            }
        )
        done = await appeal_routes.decide_appeal(
            app_context(request), acting.principal, acting.list_name, appeal_id, body
        )
        return await _appeal_page(
            request, acting, appeal_id, message=f"Appeal {done.id} decided: {done.status}."
        )
    except ValidationError as e:
        status, error = failure(e)
    except ValueError:
        # After ValidationError (a ValueError): the entry field is not a number.
        error = "entry: not a number"
        status = 422
    except DOMAIN_ERRORS as e:
        status, error = failure(e)
    return await _appeal_page(request, acting, appeal_id, error=error, status=status)


@router.post("/appeals/{appeal_id}/close", response_class=HTMLResponse)
async def appeal_close(request: Request, appeal_id: int) -> Response:
    """An admin closes an appeal that matched no list (with a reason)."""
    closer = await posted_by_admin(request)
    if isinstance(closer, Response):
        return closer
    person, form, admin = closer
    list_name = chosen_list(request, person, form_text(form, "list"))
    try:
        body = appeal_routes.CloseIn.model_validate({"reason": form_text(form, "reason") or ""})
        await appeal_routes.close_appeal(app_context(request), admin, appeal_id, body)
    except FORM_ERRORS as e:
        status, detail = failure(e)
        return refused(request, person, status, "Not closed", detail)
    target = f"{CONSOLE_PREFIX}/appeals?done=" + quote(f"Appeal {appeal_id} closed.")
    if list_name is not None:
        target += "&list=" + quote(list_name)
    return RedirectResponse(target, status_code=303)
