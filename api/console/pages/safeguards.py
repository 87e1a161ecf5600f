"""Safeguards (issue 16 item 6): the guard list, guard approvals and referrals.

Admins keep the guard list of high-collateral hosts and approve guarded
entries with a justification; analysts agree to refer an entry proposed for
referral and admins may override the proposal. Each acts through the API's
safeguard routes, so their rules and audit records are the API's.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from api.auth import ADMIN, ANALYST
from api.console.pages.common import (
    FORM_ERRORS,
    acting_as,
    app_context,
    area_router,
    chosen_list,
    failure,
    form_given,
    form_text,
    need_admin,
    person_page,
    posted,
    posted_by_admin,
    posting,
    principal_for,
    refused,
    render_page,
    to_queue,
)
from api.models.safeguards import GuardApproveIn, GuardIn, GuardRemoveIn, ReferIn
from api.routes import safeguards as safeguard_routes

__all__ = ["router"]

router = area_router()


async def _guards_page(request: Request, person: Any, **extra: Any) -> Response:
    principal = need_admin(request, person)
    if isinstance(principal, Response):
        return principal
    listed = await safeguard_routes.list_guards(app_context(request), principal)
    return render_page(
        request,
        "guards.html",
        "guards",
        person,
        chosen_list(request, person, extra.pop("chosen", None)),
        guards=listed.guards,
        **extra,
    )


@router.get("/guards", response_class=HTMLResponse)
async def guards_page(request: Request) -> Response:
    """The guard list: high-collateral hosts whose entries need an admin's approval."""
    return await person_page(request, _guards_page)


@router.post("/guards/{action}", response_class=HTMLResponse)
async def guards_action(request: Request, action: str) -> Response:
    """Guard a host (``add``) or lift a guard with a reason (``remove``): the API's routes."""
    admin = await posted_by_admin(request)
    if isinstance(admin, Response):
        return admin
    person, form, principal = admin
    ctx = app_context(request)
    message: str | None = None
    error: str | None = None
    status = 200
    try:
        if action == "add":
            body = GuardIn.model_validate(form_given(form, "host", "note"))
            added = await safeguard_routes.add_guard(ctx, principal, body)
            message = f"Host {added.host} is guarded."
        elif action == "remove":
            removal = GuardRemoveIn.model_validate(form_given(form, "host", "reason"))
            await safeguard_routes.remove_guard(ctx, principal, removal)
            message = f"The guard on {removal.host} is lifted."
        else:
            return refused(request, person, 404, "No such action", action)
    except FORM_ERRORS as e:
        status, error = failure(e)
    return await _guards_page(
        request, person, chosen=form_text(form, "list"), message=message, error=error, status=status
    )


@router.post("/guard-approve/{entry_id}", response_class=HTMLResponse)
async def guard_approve(request: Request, entry_id: int) -> Response:
    """An administrator approves a guarded entry with a justification (the API's route)."""
    acting = await posting(request, ADMIN)
    if isinstance(acting, Response):
        return acting
    try:
        body = GuardApproveIn.model_validate(form_given(acting.form, "justification"))
        row = await safeguard_routes.guard_approve(
            app_context(request), acting.principal, acting.list_name, entry_id, body
        )
    except FORM_ERRORS as e:
        status, detail = failure(e)
        return refused(request, acting.person, status, "Not approved", detail)
    done = f"Guard approval recorded for entry {row.id} (now {row.status})."
    return to_queue(acting.list_name, done)


async def _referrals_page(request: Request, person: Any, **extra: Any) -> Response:
    list_name = chosen_list(request, person, extra.pop("chosen", None))
    analyst = principal_for(person, ANALYST, list_name)
    admin = principal_for(person, ADMIN, list_name)
    reader = analyst or admin
    if reader is None or list_name is None:
        return refused(request, person, 403, "Not allowed", "this page needs the analyst role")
    listed = await safeguard_routes.list_referrals(app_context(request), reader, list_name)
    return render_page(
        request,
        "referrals.html",
        "referrals",
        person,
        list_name,
        entries=listed.entries,
        analyst=analyst is not None,
        admin=admin is not None,
        **extra,
    )


@router.get("/referrals", response_class=HTMLResponse)
async def referrals_page(request: Request) -> Response:
    """Entries proposed for referral, with the hosting evidence behind each proposal."""
    return await person_page(request, _referrals_page)


@router.post("/referrals/{entry_id}/{action}", response_class=HTMLResponse)
async def referral_action(request: Request, entry_id: int, action: str) -> Response:
    """``refer`` (an analyst agrees) or ``override`` (an administrator), each with a reason."""
    person, form, refusal = await posted(request)
    if refusal is not None:
        return refusal
    role = {"refer": ANALYST, "override": ADMIN}.get(action)
    if role is None:
        return refused(request, person, 404, "No such action", action)
    acting = acting_as(request, person, role, form)
    if isinstance(acting, Response):
        return acting
    ctx = app_context(request)
    message: str | None = None
    error: str | None = None
    status = 200
    try:
        body = ReferIn.model_validate(form_given(form, "reason"))
        if action == "refer":
            row = await safeguard_routes.refer_entry(
                ctx, acting.principal, acting.list_name, entry_id, body
            )
            message = f"Entry {row.id} referred: it stays off the list ({row.status})."
        else:
            row = await safeguard_routes.override_referral(
                ctx, acting.principal, acting.list_name, entry_id, body
            )
            message = f"Referral of entry {row.id} overridden: four-eyes goes on as usual."
    except FORM_ERRORS as e:
        status, error = failure(e)
    return await _referrals_page(
        request, person, chosen=acting.list_name, message=message, error=error, status=status
    )
