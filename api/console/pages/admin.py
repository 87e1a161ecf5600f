"""The admin page: accounts and enrolment links, tokens, witnesses, lists.

Every action goes through the admin API's route functions (and the second
administrator's confirmation of a role grant), with the person's admin
principal as the actor of the audit record.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.accounts import admin as accounts_admin
from api.auth import ADMIN, ANALYST
from api.console.pages.common import (
    DOMAIN_ERRORS,
    app_context,
    area_router,
    chosen_list,
    failure,
    form_text,
    need_admin,
    person_page,
    posted_by_admin,
    refused,
    render_page,
)
from api.models.admin import ListCreateIn, TokenCreateIn
from api.models.witnesses import WitnessIn
from api.routes import admin as admin_routes

__all__ = ["router"]

router = area_router()


async def _admin_page(request: Request, person: Any, **extra: Any) -> Response:
    ctx = app_context(request)
    list_name = chosen_list(request, person, extra.pop("chosen", None))
    principal = need_admin(request, person)
    if isinstance(principal, Response):
        return principal
    tokens = await admin_routes.list_tokens(ctx, principal)
    lists = await admin_routes.list_lists(ctx, principal)
    witnesses = (
        (await admin_routes.list_witnesses(ctx, principal, list_name)).witnesses
        if list_name is not None
        else []
    )
    people = (await accounts_admin.list_accounts(ctx, principal)).accounts
    return render_page(
        request,
        "admin.html",
        "admin",
        person,
        list_name,
        tokens=tokens,
        all_lists=lists,
        witnesses=witnesses,
        people=people,
        **extra,
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> Response:
    """Accounts, enrolment links, tokens, witnesses, lists."""
    return await person_page(request, _admin_page)


@router.post("/admin/{action}", response_class=HTMLResponse)
async def admin_action(request: Request, action: str) -> Response:
    """Create an account, a token or a list; revoke a token; add or remove a witness."""
    admin = await posted_by_admin(request)
    if isinstance(admin, Response):
        return admin
    person, form, principal = admin
    ctx = app_context(request)
    list_name = chosen_list(request, person, form_text(form, "list"))
    message: str | None = None
    error: str | None = None
    secret: str | None = None
    try:
        if action == "token":
            role = form_text(form, "role") or "isp"
            lists = [list_name] if list_name is not None and role != ADMIN else []
            created = await admin_routes.create_token(
                ctx,
                principal,
                TokenCreateIn.model_validate(
                    {"name": form_text(form, "name") or "", "role": role, "lists": lists}
                ),
            )
            message = f"Token {created.name} created; copy it now, it is shown once."
            secret = created.token
        elif action == "revoke":
            token_id = int(form_text(form, "token_id") or "0")
            await admin_routes.revoke_token(ctx, principal, token_id)
            message = f"Token {token_id} revoked."
        elif action == "witness" and list_name is not None:
            row = await admin_routes.add_witness(
                ctx, principal, list_name, WitnessIn(vkey=form_text(form, "vkey") or "")
            )
            message = f"Witness {row.name} registered."
        elif action == "unwitness" and list_name is not None:
            witness_id = int(form_text(form, "witness_id") or "0")
            await admin_routes.remove_witness(ctx, principal, list_name, witness_id)
            message = f"Witness {witness_id} removed."
        elif action == "list":
            created_list = await admin_routes.create_list(
                ctx,
                principal,
                ListCreateIn.model_validate(
                    {
                        "name": form_text(form, "name") or "",
                        "origin": form_text(form, "origin") or "",
                    }
                ),
            )
            message = f"List {created_list.name} created."
        elif action == "account":
            role = form_text(form, "role") or ANALYST
            created_account = await accounts_admin.create_account(
                ctx,
                principal,
                accounts_admin.AccountCreateIn.model_validate(
                    {
                        "name": form_text(form, "name") or "",
                        "role": role,
                        "lists": [list_name] if list_name is not None else [],
                    }
                ),
            )
            waiting = [g for g in created_account.grants if g.status == "pending"]
            message = f"Account {created_account.name} created. Hand over this one-time link"
            if waiting:
                message += " (the role waits for a second administrator's confirmation)"
            message += ":"
            secret = created_account.enrol_url
        elif action == "reset":
            reset = await accounts_admin.reset_account(
                ctx, principal, form_text(form, "name") or ""
            )
            message = f"New enrolment link for {reset.name} (the old factors stop working):"
            secret = reset.enrol_url
        elif action == "disable":
            disabled = await accounts_admin.disable_account(
                ctx, principal, form_text(form, "name") or ""
            )
            message = f"Account {disabled.name} disabled; its tokens are revoked."
        elif action == "confirm":
            grant_id = int(form_text(form, "grant") or "0")
            confirmed = await accounts_admin.confirm_grant(ctx, principal, grant_id)
            message = f"Grant {confirmed.grant} confirmed: {confirmed.role} on {confirmed.list}."
        else:
            return refused(request, person, 404, "No such action", action)
    except ValidationError as e:
        # The page stays a 200: the admin page shows the error above its forms.
        _, error = failure(e)
    except ValueError as e:
        error = str(e)
    except DOMAIN_ERRORS as e:
        _, error = failure(e)
    return await _admin_page(
        request, person, chosen=list_name, message=message, error=error, secret=secret
    )
