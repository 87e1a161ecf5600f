"""My API tokens: a person mints a token of their own for scripts.

The token is minted in the person's TOTP-authenticated session, belongs to
the person (four-eyes counts it as them) and is shown once.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from api import accounts
from api.auth import ANALYST
from api.console.pages.common import (
    DOMAIN_ERRORS,
    app_context,
    area_router,
    call,
    chosen_list,
    failure,
    form_text,
    need_person,
    posted,
    principal_for,
    render_page,
)

__all__ = ["router"]

router = area_router()


@router.get("/tokens", response_class=HTMLResponse)
async def my_tokens(request: Request) -> Response:
    """Mint an API token that belongs to me (for scripts)."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    return render_page(
        request, "tokens.html", "tokens", person, chosen_list(request, person), roles=(ANALYST,)
    )


@router.post("/tokens", response_class=HTMLResponse)
async def mint_token(request: Request) -> Response:
    """Mint the token in this TOTP-authenticated session; shown once."""
    person, form, refusal = await posted(request)
    if refusal is not None:
        return refusal
    list_name = chosen_list(request, person, form_text(form, "list"))
    role = form_text(form, "role") or ANALYST
    name = form_text(form, "name") or ""
    token: str | None = None
    error: str | None = None
    if list_name is None or principal_for(person, role, list_name) is None:
        error = f"you do not hold the {role} role on that list"
    else:
        try:
            token, _ = await call(
                accounts.mint_person_token, app_context(request), person, role, list_name, name
            )
        except DOMAIN_ERRORS as e:
            _, error = failure(e)
    return render_page(
        request,
        "tokens.html",
        "tokens",
        person,
        list_name,
        roles=(ANALYST,),
        token=token,
        error=error,
        status=422 if error else 200,
    )
