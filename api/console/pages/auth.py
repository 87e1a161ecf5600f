"""Login, enrolment and logout: the only pages a person reaches without a session.

Login checks both factors (password and TOTP) through :mod:`api.accounts`
and issues a new session id (no fixation); enrolment spends a one-time link
to set the password and the TOTP secret.
"""

from __future__ import annotations

import io
from typing import Final

import segno
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import accounts
from api.console.pages.common import (
    app_context,
    area_router,
    call,
    form_text,
    posted,
    refused,
    render,
    session_person,
)
from api.console.security import CONSOLE_PREFIX, cross_site

__all__ = ["router"]

router = area_router()


def _safe_next(value: str | None) -> str:
    # Only a path of this console: never an open redirect to another host.
    if value and value.startswith(CONSOLE_PREFIX + "/") and "//" not in value and "\\" not in value:
        return value
    return f"{CONSOLE_PREFIX}/queue"


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """Send a logged-in person to the queue, anyone else to the login form."""
    person = await session_person(request)
    target = "queue" if person is not None else "login"
    return RedirectResponse(f"{CONSOLE_PREFIX}/{target}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    """The login form (name, password, TOTP code)."""
    return render(request, "login.html", next=_safe_next(request.query_params.get("next")))


#: What the login page says per ``LoginRefused.code``.
_LOGIN_REFUSALS: Final = {
    "bad_credentials": "Name, password or code is wrong.",
    "totp_reused": "This code was already used: wait for the next code of your app.",
    "account_disabled": "This account is disabled: ask an administrator.",
}


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    """Check both factors; a new session (new id: no fixation) on success."""
    why = cross_site(request)
    if why is not None:
        return refused(request, None, 403, "Refused: cross-site request", why)
    form = await request.form()
    name = form_text(form, "name") or ""
    password = form.get("password")
    code = form_text(form, "totp") or ""
    target = _safe_next(form_text(form, "next"))
    client = request.client.host if request.client is not None else ""
    error: str | None = None
    status = 200
    headers: dict[str, str] = {}
    try:
        cookie, _person = await call(
            accounts.login,
            app_context(request),
            name,
            password if isinstance(password, str) else "",
            code,
            client,
            # Session fixation: a cookie the browser already had is ended,
            # never promoted; the new session gets a new id.
            previous_cookie=request.cookies.get(accounts.SESSION_COOKIE),
        )
    except accounts.LoginBackoff as e:
        wait = int(getattr(e, "retry_after", 1) + 0.999)
        error = f"Too many failed logins: wait {wait} seconds before trying again."
        status = 429
        headers["Retry-After"] = str(wait)
    except accounts.LoginRefused as e:
        # The accounts layer words its refusals so that they never tell
        # which factor was wrong (bad_credentials covers all three).
        error = _LOGIN_REFUSALS.get(e.code, _LOGIN_REFUSALS["bad_credentials"])
        status = 401
    if error is not None:
        page = render(request, "login.html", status=status, error=error, name=name, next=target)
        page.headers.update(headers)
        return page
    # The cookie is the new session's: a cookie planted before login is never
    # adopted (session fixation; accounts.login issues a fresh id).
    response = RedirectResponse(target, status_code=303)
    accounts.set_session_cookie(response, cookie, secure=request.url.scheme == "https")
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    """End the session on the server and drop the cookie."""
    _, _, refusal = await posted(request)
    if refusal is not None:
        return refusal
    await call(accounts.logout, app_context(request), request.cookies.get(accounts.SESSION_COOKIE))
    response = RedirectResponse(f"{CONSOLE_PREFIX}/login", status_code=303)
    accounts.clear_session_cookie(response)
    return response


def _qr_svg(uri: str) -> str:
    # Drawn here as SVG markup: no script, no image host, no data: URL.
    qr = segno.make(uri, error="m")
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True, title="TOTP secret")
    return out.getvalue().decode("utf-8")


async def _enrol_page(
    request: Request, token: str, *, error: str | None = None, status: int = 200
) -> Response:
    try:
        info = await call(accounts.enrolment_info, app_context(request), token)
    except accounts.EnrolmentInvalid:
        return refused(
            request,
            None,
            404,
            "This enrolment link is not valid",
            "It was used already, expired or replaced. Ask an administrator for a new link.",
        )
    return render(
        request,
        "enrol.html",
        status=status,
        name=info.name,
        secret=info.totp_secret,
        qr_svg=_qr_svg(info.provisioning_uri),
        token=token,
        error=error,
    )


@router.get("/enrol/{token}", response_class=HTMLResponse)
async def enrol_form(request: Request, token: str) -> Response:
    """Set the password, scan the TOTP secret, confirm a code."""
    return await _enrol_page(request, token)


@router.post("/enrol/{token}", response_class=HTMLResponse)
async def enrol_submit(request: Request, token: str) -> Response:
    """Complete enrolment; the link is spent and the person logs in."""
    why = cross_site(request)
    if why is not None:
        return refused(request, None, 403, "Refused: cross-site request", why)
    form = await request.form()
    password = form.get("password")
    repeat = form.get("password2")
    code = form_text(form, "totp") or ""
    if not isinstance(password, str) or password != repeat:
        return await _enrol_page(request, token, error="The two passwords differ.", status=422)
    try:
        await call(accounts.complete_enrolment, app_context(request), token, password, code)
    except accounts.EnrolmentInvalid as e:
        code_name = getattr(e, "code", "enrolment_invalid")
        return await _enrol_page(
            request, token, error=f"Enrolment refused ({code_name}): {e}", status=422
        )
    return render(request, "enrolled.html")
