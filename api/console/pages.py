"""The console's pages: login and enrolment, then the analysts' and admins' work.

Every page needs a session (:func:`api.accounts.load_session`) except
login and enrolment. Every state-changing form is a POST carrying the
session's CSRF token and is refused (403 page) when the token is wrong or
the request came from another site (:func:`api.console.security.cross_site`).

Pages act through the JSON API's own route functions and store calls, with
the :class:`~blocklist.store.tokens.Principal` the person holds for one role
on one list: the console adds no rule of its own to four-eyes, limits or
the audit log. Listed URLs and expressions are rendered as escaped text
(Jinja2 autoescaping), never as links.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import segno
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api import accounts
from api.accounts import admin as accounts_admin
from api.auth import ADMIN, ANALYST, AUDITOR, authorised_list
from api.bodygate import SESSION_AUTH_ATTR, body_cap
from api.console.security import CONSOLE_PREFIX, cross_site
from api.context import AppContext
from api.errors import ApiProblem, status_for
from api.middleware import MAX_CSV_BODY_BYTES
from api.models.admin import ListCreateIn, TokenCreateIn
from api.models.entries import (
    ApproveManyIn,
    EntryIn,
    EntryOut,
    ExpireIn,
    PreviewIn,
    ReinstateIn,
    entry_out,
)
from api.models.safeguards import GuardApproveIn, GuardIn, GuardRemoveIn, ReferIn
from api.models.witnesses import WitnessIn
from api.routes import admin as admin_routes
from api.routes import analyst as analyst_routes
from api.routes import appeals as appeal_routes
from api.routes import reverify as reverify_routes
from api.routes import safeguards as safeguard_routes
from api.routes import transparency as transparency_routes
from api.routes.analyst import parse_csv
from api.routes.ops import readiness
from blocklist import canonical
from blocklist import transparency as reports
from blocklist.encoding import b64encode
from blocklist.errors import BlocklistError
from blocklist.store import lists as store_lists
from blocklist.store import search as store_search
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.errors import InvalidState
from blocklist.store.models import ENTRY_STATUSES, EntryRow, VersionRow
from blocklist.store.tokens import Principal
from signer.note import parse_note

__all__ = [
    "IMPORT_RESULTS_KEPT",
    "ISP_STALE_AFTER",
    "REPORT_MONTHS_SHOWN",
    "SEARCH_PAGE_SIZE",
    "STATIC_PATH",
    "VERSIONS_SHOWN",
    "install_console",
    "router",
]

router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)

#: Where the console's CSS and script are served from (this package's files).
STATIC_PATH: Final = CONSOLE_PREFIX + "/static"

#: Entries per search page.
SEARCH_PAGE_SIZE: Final = 50

#: Published versions listed on the Versions page (older ones: the API).
VERSIONS_SHOWN: Final = 20

#: An ISP whose last poll is older than this stands out as stale even when
#: it is on the current version: a client that polls stopped polling.
ISP_STALE_AFTER: Final = timedelta(hours=1)

#: Bulk-import result tables kept for download, per process (oldest dropped
#: first): the table is on the page too, so a dropped one costs nothing.
IMPORT_RESULTS_KEPT: Final = 64

#: Months on the Transparency page (older reports: the API, by period). Each
#: shown month's report is issued on the page's first visit after the month
#: ended, as the API does, so the bound also bounds the signing work.
REPORT_MONTHS_SHOWN: Final = 12

#: Width of the longest bar on the Transparency page, in SVG user units.
REPORT_BAR_WIDTH: Final = 300

#: Largest import form the console accepts: the API's CSV cap, plus room
#: for the multipart framing and the form's other fields.
MAX_IMPORT_BYTES: Final = MAX_CSV_BODY_BYTES + 64 * 1024

_TEMPLATES = Environment(
    loader=PackageLoader("api.console", "templates"),
    autoescape=select_autoescape(("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_TEMPLATES.filters["when"] = _fmt_time


@dataclass
class _ConsoleState:
    """Per-app console state (on ``app.state.console``)."""

    results: OrderedDict[str, tuple[str, bytes]]


# --- plumbing --------------------------------------------------------------------


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an accounts function whether it is a coroutine function or blocking."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await run_in_threadpool(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.cf
    return ctx


def _state(request: Request) -> _ConsoleState:
    state: _ConsoleState = request.app.state.console
    return state


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _render(
    request: Request,
    template: str,
    *,
    person: Any = None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    page = _TEMPLATES.get_template(template).render(
        request=request,
        person=person,
        csrf=getattr(person, "csrf_token", ""),
        csrf_name=accounts.CSRF_FIELD,
        prefix=CONSOLE_PREFIX,
        static=STATIC_PATH,
        lists=_person_lists(request, person) if person is not None else [],
        is_admin=person is not None and _holds_anywhere(person, ADMIN),
        # The nav shows the Referrals and Appeals pages to those who work them.
        is_analyst=person is not None and _holds_anywhere(person, ANALYST),
        **values,
    )
    return HTMLResponse(page, status_code=status)


def _refused(request: Request, person: Any, status: int, title: str, detail: str) -> HTMLResponse:
    return _render(request, "error.html", person=person, status=status, title=title, detail=detail)


def _holds_anywhere(person: Any, role: str) -> bool:
    return bool(person.holds(role, None))


def _person_lists(request: Request, person: Any) -> list[str]:
    cached: list[str] | None = getattr(request.state, "console_lists", None)
    if cached is not None:
        return cached
    ctx = _ctx(request)
    with ctx.db.read() as session:
        every = [row.name for row in store_lists.list_lists(session)]
    names = every if "*" in person.roles else [n for n in every if n in person.roles]
    request.state.console_lists = names
    return names


def _chosen_list(request: Request, person: Any, value: str | None = None) -> str | None:
    wanted = value or request.query_params.get("list")
    names = _person_lists(request, person)
    if wanted in names:
        return wanted
    return names[0] if names else None


def _principal(person: Any, role: str, list_name: str | None) -> Principal | None:
    if list_name is None or not person.holds(role, list_name):
        return None
    principal: Principal = person.principal(role, list_name)
    return principal


def _problem_text(error: BaseException) -> tuple[int, str, str]:
    """Status, code and message of an API problem or a domain error."""
    if isinstance(error, ApiProblem):
        return error.status, error.code, error.detail
    status = status_for(error)
    code = str(getattr(error, "code", "internal_error"))
    detail = str(error) if status < 500 else "the server could not do this; see its log"
    return status, code, detail


_DOMAIN_ERRORS: Final = (ApiProblem, BlocklistError)


def _login_redirect(request: Request) -> RedirectResponse:
    path = request.url.path
    target = f"{CONSOLE_PREFIX}/login"
    if path.startswith(CONSOLE_PREFIX + "/") and request.method == "GET":
        target += "?next=" + quote(path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(target, status_code=303)


def _safe_next(value: str | None) -> str:
    # Only a path of this console: never an open redirect to another host.
    if value and value.startswith(CONSOLE_PREFIX + "/") and "//" not in value and "\\" not in value:
        return value
    return f"{CONSOLE_PREFIX}/queue"


async def _session(request: Request) -> Any:
    cookie = request.cookies.get(accounts.SESSION_COOKIE)
    if not cookie:
        return None
    return await _call(accounts.load_session, _ctx(request), cookie)


async def _form(request: Request, person: Any) -> tuple[FormData | None, Response | None]:
    """The POSTed form, or the 403 page for a cross-site request or a bad CSRF token."""
    why = cross_site(request)
    if why is not None:
        return None, _refused(request, person, 403, "Refused: cross-site request", why)
    form = await request.form(max_part_size=MAX_IMPORT_BYTES)
    submitted = form.get(accounts.CSRF_FIELD)
    if not isinstance(submitted, str) or not accounts.check_csrf(person, submitted):
        return None, _refused(
            request,
            person,
            403,
            "Refused: the form's security token is missing or stale",
            "reload the page and submit the form again",
        )
    return form, None


def _given(form: FormData, *names: str) -> dict[str, str]:
    """The named fields that were filled in (empty ones keep the model's default)."""
    return {n: v for n in names if (v := _text(form, n)) is not None}


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


# --- login, enrolment, logout -----------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """Send a logged-in person to the queue, anyone else to the login form."""
    person = await _session(request)
    target = "queue" if person is not None else "login"
    return RedirectResponse(f"{CONSOLE_PREFIX}/{target}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    """The login form (name, password, TOTP code)."""
    return _render(request, "login.html", next=_safe_next(request.query_params.get("next")))


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
        return _refused(request, None, 403, "Refused: cross-site request", why)
    form = await request.form()
    name = _text(form, "name") or ""
    password = form.get("password")
    code = _text(form, "totp") or ""
    target = _safe_next(_text(form, "next"))
    client = request.client.host if request.client is not None else ""
    error: str | None = None
    status = 200
    headers: dict[str, str] = {}
    try:
        cookie, _person = await _call(
            accounts.login,
            _ctx(request),
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
        page = _render(request, "login.html", status=status, error=error, name=name, next=target)
        page.headers.update(headers)
        return page
    # The cookie is the new session's: a cookie planted before login is never
    # adopted (session fixation; accounts.login issues a fresh id).
    response = RedirectResponse(target, status_code=303)
    accounts.set_session_cookie(response, cookie, secure=_secure(request))
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    """End the session on the server and drop the cookie."""
    person = await _session(request)
    if person is None:
        return _login_redirect(request)
    _, refusal = await _form(request, person)
    if refusal is not None:
        return refusal
    await _call(accounts.logout, _ctx(request), request.cookies.get(accounts.SESSION_COOKIE))
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
        info = await _call(accounts.enrolment_info, _ctx(request), token)
    except accounts.EnrolmentInvalid:
        return _refused(
            request,
            None,
            404,
            "This enrolment link is not valid",
            "It was used already, expired or replaced. Ask an administrator for a new link.",
        )
    return _render(
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


#: Shortest password the enrolment form takes (NIST SP 800-63B 5.1.1.2:
#: at least 8; a hotline's accounts guard a blocklist, so more).
MIN_PASSWORD_CHARS: Final = 12


@router.post("/enrol/{token}", response_class=HTMLResponse)
async def enrol_submit(request: Request, token: str) -> Response:
    """Complete enrolment; the link is spent and the person logs in."""
    why = cross_site(request)
    if why is not None:
        return _refused(request, None, 403, "Refused: cross-site request", why)
    form = await request.form()
    password = form.get("password")
    repeat = form.get("password2")
    code = _text(form, "totp") or ""
    if not isinstance(password, str) or password != repeat:
        return await _enrol_page(request, token, error="The two passwords differ.", status=422)
    try:
        await _call(accounts.complete_enrolment, _ctx(request), token, password, code)
    except accounts.EnrolmentInvalid as e:
        code_name = getattr(e, "code", "enrolment_invalid")
        return await _enrol_page(
            request, token, error=f"Enrolment refused ({code_name}): {e}", status=422
        )
    return _render(request, "enrolled.html")


# --- the analysts' pages ----------------------------------------------------------


async def _need(request: Request) -> tuple[Any, Response | None]:
    person = await _session(request)
    if person is None:
        return None, _login_redirect(request)
    return person, None


async def _posted(request: Request) -> tuple[Any, FormData, Response | None]:
    """The session's person and the POSTed form, or the page that refuses them.

    Every state-changing console route starts here: no session redirects to
    the login page; a cross-site request or a bad CSRF token gets the 403
    page (:func:`_form`).
    """
    person, refusal = await _need(request)
    if refusal is not None:
        return None, FormData(), refusal
    form, refusal = await _form(request, person)
    if refusal is not None or form is None:
        return person, FormData(), refusal or _login_redirect(request)
    return person, form, None


def _need_role(
    request: Request, person: Any, role: str, list_name: str | None
) -> tuple[Principal | None, Response | None]:
    principal = _principal(person, role, list_name)
    if principal is None:
        return None, _refused(
            request,
            person,
            403,
            "Not allowed",
            f"this page needs the {role} role on list {list_name or '(none)'}",
        )
    return principal, None


def _entry_view(row: EntryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "expression": row.expression,
        "url": row.url,
        "hash": b64encode(row.hash),
        "scope": row.scope,
        "reason": row.reason,
        "reference": row.reference,
        "category": row.category,
        "status": row.status,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "added_version": row.added_version,
        "removed_version": row.removed_version,
    }


@router.get("/queue", response_class=HTMLResponse)
async def queue(request: Request) -> Response:
    """What needs me: colleagues' entries awaiting approval, then my own pending ones."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    principal = _principal(person, ANALYST, list_name)
    admin = _principal(person, ADMIN, list_name)
    waiting: list[dict[str, Any]] = []
    mine: list[dict[str, Any]] = []
    guarded: list[EntryOut] = []
    proposals: list[Any] = []
    reader = principal or admin
    if reader is not None and list_name is not None:
        ctx = _ctx(request)
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
                view = _entry_view(row)
                # Four-eyes counts persons: an entry this person submitted
                # through any of their tokens is theirs too.
                own = principal.name in (row.created_by, row.submitted_by) or (
                    row.submitted_person is not None
                    and row.submitted_person == principal.account_id
                )
                (mine if own else waiting).append(view)
    return _render(
        request,
        "queue.html",
        person=person,
        active="queue",
        list_name=list_name,
        analyst=principal is not None,
        admin=admin is not None,
        waiting=waiting,
        mine=mine,
        guarded=guarded,
        proposals=proposals,
        message=request.query_params.get("done"),
    )


_SCOPES: Final = ("page", "prefix", "host")


@router.get("/add", response_class=HTMLResponse)
async def add_form(request: Request) -> Response:
    """The add-entry form; the reach preview comes before the entry is stored."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    _, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None:
        return refusal
    return _render(
        request,
        "add.html",
        person=person,
        active="add",
        list_name=list_name,
        scopes=_SCOPES,
        values={"scope": "page"},
    )


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
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    values = {
        k: _text(form, k)
        for k in ("url", "scope", "reason", "reference", "category", "hosting_country", "expires")
    }
    ctx = _ctx(request)
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
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "form"
        error = f"{where}: {first['msg']}"
        status = 422
    except ValueError as e:
        error = f"expiry: {e}"
        status = 422
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return _render(
        request,
        "add.html",
        person=person,
        active="add",
        list_name=list_name,
        scopes=_SCOPES,
        values=values,
        preview=preview,
        error=error,
        status=status,
    )


def _json_id(response: Response) -> int:
    document = json.loads(bytes(response.body))
    value: int = document["id"]
    return value


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
async def entry_page(request: Request, entry_id: int) -> Response:
    """An entry: expression, hash, reach, status, every event with who and when."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    return await _show_entry(request, person, principal, list_name, entry_id)


async def _show_entry(
    request: Request,
    person: Any,
    principal: Principal,
    list_name: str,
    entry_id: int,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    ctx = _ctx(request)
    try:
        entry = await analyst_routes.get_entry(ctx, principal, list_name, entry_id)
    except _DOMAIN_ERRORS as e:
        code_status, code, detail = _problem_text(e)
        return _refused(request, person, code_status, "No such entry", f"{detail} ({code})")
    reach_view = None
    if entry.expression is not None:
        try:
            reach_view = await analyst_routes.preview_entry(
                ctx,
                principal,
                list_name,
                PreviewIn(url=entry.url or "http://" + entry.expression, scope=entry.scope),
            )
        except _DOMAIN_ERRORS:
            reach_view = None
    own = principal.name in (entry.created_by, entry.submitted_by)
    if message is None and request.query_params.get("added") == "1":
        message = "Entry added as pending: a colleague must approve it."
    elif message is None and request.query_params.get("added") == "0":
        message = "This expression is already on the list: here is its entry."
    return _render(
        request,
        "entry.html",
        person=person,
        active="search",
        list_name=list_name,
        entry=entry,
        reach=reach_view.reach if reach_view is not None else None,
        own=own,
        message=message,
        error=error,
        status=status,
    )


@router.post("/entries/{entry_id}/{action}", response_class=HTMLResponse)
async def entry_action(request: Request, entry_id: int, action: str) -> Response:
    """Approve, expire or reinstate one entry (the API's rules, the person as actor)."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    ctx = _ctx(request)
    messages = {
        "approve": "Approved.",
        "expire": "Expired: it comes off the list at the next version.",
        "reinstate": "Reinstated as pending: it needs fresh approvals.",
    }
    if action not in messages:
        return _refused(request, person, 404, "No such action", action)
    try:
        if action == "approve":
            await analyst_routes.approve_entry(ctx, principal, list_name, entry_id)
        elif action == "expire":
            await analyst_routes.expire_entry(
                ctx, principal, list_name, entry_id, ExpireIn.model_validate(_given(form, "reason"))
            )
        else:
            await analyst_routes.reinstate_entry(
                ctx,
                principal,
                list_name,
                entry_id,
                ReinstateIn.model_validate(_given(form, "reason")),
            )
    except ValidationError as e:
        return await _show_entry(
            request,
            person,
            principal,
            list_name,
            entry_id,
            error=str(e.errors()[0]["msg"]),
            status=422,
        )
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        return await _show_entry(
            request,
            person,
            principal,
            list_name,
            entry_id,
            error=f"Refused: {detail} ({code})",
            status=status,
        )
    if _text(form, "back") == "queue":
        return RedirectResponse(
            f"{CONSOLE_PREFIX}/queue?list={quote(list_name)}&done={quote(messages[action])}",
            status_code=303,
        )
    return await _show_entry(
        request, person, principal, list_name, entry_id, message=messages[action]
    )


# --- bulk import --------------------------------------------------------------------


@router.get("/import", response_class=HTMLResponse)
async def import_form(request: Request) -> Response:
    """The CSV upload form."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    _, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None:
        return refusal
    return _render(request, "import.html", person=person, active="import", list_name=list_name)


_RESULT_COLUMNS: Final = ("row", "url", "status", "entry", "code", "message")


async def _has_session(ctx: AppContext, scope: Scope) -> bool:
    """Whether a request carries a live console session (the body gate's check)."""
    cookie = Request(scope).cookies.get(accounts.SESSION_COOKIE)
    if not cookie:
        return False
    return await _call(accounts.load_session, ctx, cookie) is not None


@router.post("/import", response_class=HTMLResponse)
@body_cap(MAX_IMPORT_BYTES)
async def import_submit(request: Request) -> Response:
    """Add the uploaded CSV's rows; a result per row, kept for download."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    upload = form.get("file")
    ctx = _ctx(request)
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
    except _DOMAIN_ERRORS as e:
        _, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return _render(
        request,
        "import.html",
        person=person,
        active="import",
        list_name=list_name,
        rows=rows,
        counts=counts,
        import_id=import_id,
        download=download,
        error=error,
        status=422 if error else 200,
    )


def _keep_results(request: Request, rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 section 2
    writer.writerow(_RESULT_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else str(row[c]) for c in _RESULT_COLUMNS])
    key = secrets.token_urlsafe(16)
    results = _state(request).results
    person = getattr(request.state, "console_person_id", None)
    results[key] = (str(person), out.getvalue().encode("utf-8"))
    while len(results) > IMPORT_RESULTS_KEPT:
        results.popitem(last=False)
    return key


@router.get("/import/results/{key}.csv")
async def import_results(request: Request, key: str) -> Response:
    """The per-row result table of an upload, as CSV."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    found = _state(request).results.get(key)
    if found is None:
        return _refused(request, person, 404, "Results no longer kept", "upload the file again")
    return Response(
        found[1],
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="import-results.csv"'},
    )


@router.post("/import/{import_id}/approve", response_class=HTMLResponse)
async def import_approve(request: Request, import_id: int) -> Response:
    """Approve every entry of an import; a result per entry."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    ctx = _ctx(request)
    results: list[Any] = []
    error: str | None = None
    summary: dict[str, int] = {}
    try:
        cursor: int | None = None
        while True:
            body = ApproveManyIn.model_validate({"import": import_id, "cursor": cursor})
            out = await analyst_routes.approve_entries(ctx, principal, list_name, body)
            results.extend(out.results)
            for key in ("approved", "activated", "refused"):
                summary[key] = summary.get(key, 0) + int(getattr(out, key))
            if out.next is None:
                break
            cursor = out.next
    except ValidationError as e:
        error = str(e.errors()[0]["msg"])
    except _DOMAIN_ERRORS as e:
        _, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return _render(
        request,
        "approved.html",
        person=person,
        active="import",
        list_name=list_name,
        import_id=import_id,
        results=results,
        summary=summary,
        error=error,
    )


# Issue 12, item 8: only a logged-in person may send the import's large
# body; anyone else gets no more than the small pre-authentication cap.
setattr(import_submit, SESSION_AUTH_ATTR, _has_session)


# --- search -------------------------------------------------------------------------


def _day(text: str | None, *, end: bool) -> datetime | None:
    if text is None:
        return None
    day = date.fromisoformat(text)
    moment = datetime.combine(day, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment


@router.get("/search", response_class=HTMLResponse)
async def search_form(request: Request) -> Response:
    """The search form (filters go in a POST body, so URLs stay out of access logs)."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    _, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None:
        return refusal
    return _render(
        request,
        "search.html",
        person=person,
        active="search",
        list_name=list_name,
        statuses=ENTRY_STATUSES,
        values={},
    )


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


@router.post("/search", response_class=HTMLResponse)
async def search_submit(request: Request) -> Response:
    """One page of entries matching every filter given."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    values = {k: _text(form, k) for k in _SEARCH_FIELDS}
    ctx = _ctx(request)
    error: str | None = None
    items: list[dict[str, Any]] = []
    next_cursor: int | None = None
    canonical_url: str | None = None
    try:
        info = await authorised_list(ctx, principal, list_name)
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
        items = [_entry_view(row) for row in page.items]
        next_cursor = page.next_cursor
    except ValueError as e:
        error = f"{e}"
    except _DOMAIN_ERRORS as e:
        _, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return _render(
        request,
        "search.html",
        person=person,
        active="search",
        list_name=list_name,
        statuses=ENTRY_STATUSES,
        values=values,
        items=items,
        searched=error is None,
        next_cursor=next_cursor,
        canonical_url=canonical_url,
        error=error,
        status=422 if error else 200,
    )


# --- versions and publishing -----------------------------------------------------


def _versions(ctx: AppContext, list_id: int) -> tuple[list[dict[str, Any]], str | None]:
    with ctx.db.read() as session:
        rows = list(
            session.scalars(
                select(VersionRow)
                .where(VersionRow.list_id == list_id)
                .order_by(VersionRow.version.desc())
                .limit(VERSIONS_SHOWN)
            ).all()
        )
        shown = [r.version for r in rows]
        changed = (
            list(
                session.scalars(
                    select(EntryRow).where(
                        EntryRow.list_id == list_id,
                        (EntryRow.added_version.in_(shown)) | (EntryRow.removed_version.in_(shown)),
                    )
                ).all()
            )
            if shown
            else []
        )
        checkpoint = store_versions.get_checkpoint(session, list_id)
        out = []
        for row in rows:
            adds = [_entry_view(e) for e in changed if e.added_version == row.version]
            removes = [_entry_view(e) for e in changed if e.removed_version == row.version]
            out.append(
                {
                    "version": row.version,
                    "time": row.time,
                    "count": row.count,
                    "adds": adds,
                    "removes": removes,
                }
            )
        return out, (checkpoint.note if checkpoint is not None else None)


async def _versions_page(
    request: Request, person: Any, list_name: str | None, **extra: Any
) -> Response:
    ctx = _ctx(request)
    versions: list[dict[str, Any]] = []
    note: str | None = None
    info = ctx.resolve_list(list_name) if list_name is not None else None
    if info is not None:
        versions, note = await run_in_threadpool(_versions, ctx, info.id)
    ready, checks = await run_in_threadpool(readiness, ctx)
    may_publish = list_name is not None and (
        _principal(person, ANALYST, list_name) is not None
        or _principal(person, ADMIN, list_name) is not None
    )
    return _render(
        request,
        "versions.html",
        person=person,
        active="versions",
        list_name=list_name,
        versions=versions,
        checkpoint=note,
        ready=ready,
        checks=sorted(checks.items()),
        may_publish=may_publish,
        **extra,
    )


@router.get("/versions", response_class=HTMLResponse)
async def versions(request: Request) -> Response:
    """Published versions with adds and removes, the checkpoint, signer health."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    return await _versions_page(request, person, _chosen_list(request, person))


@router.post("/publish", response_class=HTMLResponse)
async def publish_now(request: Request) -> Response:
    """Cut a version from everything approved now."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal = _principal(person, ANALYST, list_name) or _principal(person, ADMIN, list_name)
    if principal is None or list_name is None:
        return _refused(request, person, 403, "Not allowed", "publishing needs analyst or admin")
    ctx = _ctx(request)
    message: str | None = None
    error: str | None = None
    try:
        answer = await analyst_routes.publish(ctx, principal, list_name)
        document = json.loads(bytes(answer.body))
        if answer.status_code == 202:
            message = "Publish requested: the signer will cut the version shortly."
        elif document.get("published"):
            message = f"Published version {document['version']}."
        else:
            message = f"Nothing to publish: version {document['version']} is current."
    except _DOMAIN_ERRORS as e:
        _, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return await _versions_page(request, person, list_name, message=message, error=error)


# --- ISPs -------------------------------------------------------------------------


@router.get("/isps", response_class=HTMLResponse)
async def isps(request: Request) -> Response:
    """Every ISP token: last fetched version, how far behind, last poll; stale ones stand out."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    principal = _principal(person, ANALYST, list_name) or _principal(person, ADMIN, list_name)
    if principal is None or list_name is None:
        return _refused(request, person, 403, "Not allowed", "this page needs analyst or admin")
    ctx = _ctx(request)
    out = await admin_routes.list_isps(ctx, principal, list_name)
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
    return _render(
        request,
        "isps.html",
        person=person,
        active="isps",
        list_name=list_name,
        current=out.version,
        rows=rows,
        stale_after_minutes=int(ISP_STALE_AFTER.total_seconds() // 60),
    )


# --- my API tokens ----------------------------------------------------------------


@router.get("/tokens", response_class=HTMLResponse)
async def my_tokens(request: Request) -> Response:
    """Mint an API token that belongs to me (for scripts)."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    return _render(
        request,
        "tokens.html",
        person=person,
        active="tokens",
        list_name=_chosen_list(request, person),
        roles=(ANALYST,),
    )


@router.post("/tokens", response_class=HTMLResponse)
async def mint_token(request: Request) -> Response:
    """Mint the token in this TOTP-authenticated session; shown once."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    role = _text(form, "role") or ANALYST
    name = _text(form, "name") or ""
    token: str | None = None
    error: str | None = None
    if list_name is None or _principal(person, role, list_name) is None:
        error = f"you do not hold the {role} role on that list"
    else:
        try:
            token, _ = await _call(
                accounts.mint_person_token, _ctx(request), person, role, list_name, name
            )
        except _DOMAIN_ERRORS as e:
            _, code, detail = _problem_text(e)
            error = f"{detail} ({code})"
    return _render(
        request,
        "tokens.html",
        person=person,
        active="tokens",
        list_name=list_name,
        roles=(ANALYST,),
        token=token,
        error=error,
        status=422 if error else 200,
    )


# --- admin --------------------------------------------------------------------------


def _admin_principal(person: Any) -> Principal | None:
    if not person.holds(ADMIN, None):
        return None
    principal: Principal = person.principal(ADMIN, None)
    return principal


async def _admin_page(request: Request, person: Any, **extra: Any) -> Response:
    ctx = _ctx(request)
    list_name = _chosen_list(request, person, extra.pop("chosen", None))
    principal = _admin_principal(person)
    if principal is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the admin role")
    tokens = await admin_routes.list_tokens(ctx, principal)
    lists = await admin_routes.list_lists(ctx, principal)
    witnesses = (
        (await admin_routes.list_witnesses(ctx, principal, list_name)).witnesses
        if list_name is not None
        else []
    )
    people = (await accounts_admin.list_accounts(ctx, principal)).accounts
    return _render(
        request,
        "admin.html",
        person=person,
        active="admin",
        list_name=list_name,
        tokens=tokens,
        all_lists=lists,
        witnesses=witnesses,
        people=people,
        **extra,
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> Response:
    """Accounts, enrolment links, tokens, witnesses, lists."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    return await _admin_page(request, person)


@router.post("/admin/{action}", response_class=HTMLResponse)
async def admin_action(request: Request, action: str) -> Response:
    """Create an account, a token or a list; revoke a token; add or remove a witness."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    ctx = _ctx(request)
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal = _admin_principal(person)
    if principal is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the admin role")
    message: str | None = None
    error: str | None = None
    secret: str | None = None
    try:
        if action == "token":
            role = _text(form, "role") or "isp"
            lists = [list_name] if list_name is not None and role != ADMIN else []
            created = await admin_routes.create_token(
                ctx,
                principal,
                TokenCreateIn.model_validate(
                    {"name": _text(form, "name") or "", "role": role, "lists": lists}
                ),
            )
            message = f"Token {created.name} created; copy it now, it is shown once."
            secret = created.token
        elif action == "revoke":
            token_id = int(_text(form, "token_id") or "0")
            await admin_routes.revoke_token(ctx, principal, token_id)
            message = f"Token {token_id} revoked."
        elif action == "witness" and list_name is not None:
            row = await admin_routes.add_witness(
                ctx, principal, list_name, WitnessIn(vkey=_text(form, "vkey") or "")
            )
            message = f"Witness {row.name} registered."
        elif action == "unwitness" and list_name is not None:
            witness_id = int(_text(form, "witness_id") or "0")
            await admin_routes.remove_witness(ctx, principal, list_name, witness_id)
            message = f"Witness {witness_id} removed."
        elif action == "list":
            created_list = await admin_routes.create_list(
                ctx,
                principal,
                ListCreateIn.model_validate(
                    {"name": _text(form, "name") or "", "origin": _text(form, "origin") or ""}
                ),
            )
            message = f"List {created_list.name} created."
        elif action == "account":
            role = _text(form, "role") or ANALYST
            created_account = await accounts_admin.create_account(
                ctx,
                principal,
                accounts_admin.AccountCreateIn.model_validate(
                    {
                        "name": _text(form, "name") or "",
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
            reset = await accounts_admin.reset_account(ctx, principal, _text(form, "name") or "")
            message = f"New enrolment link for {reset.name} (the old factors stop working):"
            secret = reset.enrol_url
        elif action == "disable":
            disabled = await accounts_admin.disable_account(
                ctx, principal, _text(form, "name") or ""
            )
            message = f"Account {disabled.name} disabled; its tokens are revoked."
        elif action == "confirm":
            grant_id = int(_text(form, "grant") or "0")
            confirmed = await accounts_admin.confirm_grant(ctx, principal, grant_id)
            message = f"Grant {confirmed.grant} confirmed: {confirmed.role} on {confirmed.list}."
        else:
            return _refused(request, person, 404, "No such action", action)
    except ValidationError as e:
        first = e.errors()[0]
        error = f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
    except ValueError as e:
        error = str(e)
    except _DOMAIN_ERRORS as e:
        _, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return await _admin_page(
        request, person, chosen=list_name, message=message, error=error, secret=secret
    )


# --- the guard list (issue 16 item 6) ------------------------------------------------


async def _guards_page(request: Request, person: Any, **extra: Any) -> Response:
    principal = _admin_principal(person)
    if principal is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the admin role")
    listed = await safeguard_routes.list_guards(_ctx(request), principal)
    return _render(
        request,
        "guards.html",
        person=person,
        active="guards",
        list_name=_chosen_list(request, person, extra.pop("chosen", None)),
        guards=listed.guards,
        **extra,
    )


@router.get("/guards", response_class=HTMLResponse)
async def guards_page(request: Request) -> Response:
    """The guard list: high-collateral hosts whose entries need an admin's approval."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    return await _guards_page(request, person)


@router.post("/guards/{action}", response_class=HTMLResponse)
async def guards_action(request: Request, action: str) -> Response:
    """Guard a host (``add``) or lift a guard with a reason (``remove``): the API's routes."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    principal = _admin_principal(person)
    if principal is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the admin role")
    ctx = _ctx(request)
    message: str | None = None
    error: str | None = None
    status = 200
    try:
        if action == "add":
            body = GuardIn.model_validate(_given(form, "host", "note"))
            added = await safeguard_routes.add_guard(ctx, principal, body)
            message = f"Host {added.host} is guarded."
        elif action == "remove":
            removal = GuardRemoveIn.model_validate(_given(form, "host", "reason"))
            await safeguard_routes.remove_guard(ctx, principal, removal)
            message = f"The guard on {removal.host} is lifted."
        else:
            return _refused(request, person, 404, "No such action", action)
    except ValidationError as e:
        first = e.errors()[0]
        error = f"{'.'.join(str(x) for x in first['loc']) or 'form'}: {first['msg']}"
        status = 422
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return await _guards_page(
        request, person, chosen=_text(form, "list"), message=message, error=error, status=status
    )


# --- transparency reports (issue 17 item 6) ---------------------------------------


def _report_principal(person: Any, list_name: str | None) -> Principal | None:
    # The API serves a list's reports to its admins and auditors (anyone for
    # a public list): the console asks with the strongest role held.
    for role in (ADMIN, AUDITOR, ANALYST):
        principal = _principal(person, role, list_name)
        if principal is not None:
            return principal
    return None


def _ended_periods(created: datetime, now: datetime) -> list[str]:
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
            _ctx(request), request, principal, list_name, period
        )
    except InvalidState:
        # Nothing was published before the month ended: no version names
        # the list's state then, so there is no report to sign.
        return None
    return bytes(answer.body).decode("utf-8")


@router.get("/transparency", response_class=HTMLResponse)
async def transparency_page(request: Request) -> Response:
    """The list's monthly reports: entries added and removed as a bar per month."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    principal = _report_principal(person, list_name)
    if principal is None or list_name is None:
        return _refused(request, person, 403, "Not allowed", "this page needs a role on a list")
    ctx = _ctx(request)

    def created_at() -> datetime:
        with ctx.db.read() as session:
            return store_lists.get_list(session, list_name).created_at

    months: list[dict[str, Any]] = []
    try:
        for period in _ended_periods(await run_in_threadpool(created_at), datetime.now(UTC)):
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
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        return _refused(request, person, status, "No reports", f"{detail} ({code})")
    largest = max([1, *(m["added"] for m in months), *(m["removed"] for m in months)])
    for m in months:
        # Bars are SVG rectangles drawn here: no script, no inline style
        # (the CSP forbids it), nothing from another host.
        m["added_width"] = m["added"] * REPORT_BAR_WIDTH // largest
        m["removed_width"] = m["removed"] * REPORT_BAR_WIDTH // largest
    return _render(
        request,
        "transparency.html",
        person=person,
        active="transparency",
        list_name=list_name,
        months=months,
        bar_width=REPORT_BAR_WIDTH,
        shown=REPORT_MONTHS_SHOWN,
    )


@router.get("/transparency/{period}.txt")
async def transparency_note(request: Request, period: str) -> Response:
    """The signed note text of one month, as the API serves it (for the person's session)."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    principal = _report_principal(person, list_name)
    if principal is None or list_name is None:
        return _refused(request, person, 403, "Not allowed", "this page needs a role on a list")
    try:
        reports.parse_period(period)
        note = await _report_note(request, principal, list_name, period)
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        return _refused(request, person, status, "No report", f"{detail} ({code})")
    if note is None:
        return _refused(request, person, 404, "No report", f"no report for {period}")
    return Response(note, media_type="text/plain; charset=utf-8")


# --- appeals (issue 17 item 6) ------------------------------------------------------

#: The outcomes a reviewer may record (the API's DecideIn).
_OUTCOMES: Final = ("upheld", "removed", "suspended")


@router.get("/appeals", response_class=HTMLResponse)
async def appeals_page(request: Request) -> Response:
    """Analysts: the list's open appeals with their entries; admins: unmatched appeals."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    ctx = _ctx(request)
    list_name = _chosen_list(request, person)
    analyst = _principal(person, ANALYST, list_name)
    admin = _admin_principal(person)
    if analyst is None and admin is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the analyst role")
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
    return _render(
        request,
        "appeals.html",
        person=person,
        active="appeals",
        list_name=list_name,
        matched=matched,
        unmatched=unmatched,
        message=request.query_params.get("done"),
    )


async def _appeal_page(
    request: Request,
    person: Any,
    principal: Principal,
    list_name: str,
    appeal_id: int,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    listed = await appeal_routes.list_appeals(_ctx(request), principal, list_name, "all")
    links = [a for a in listed.appeals if a.id == appeal_id]
    if not links:
        return _refused(
            request, person, 404, "No such appeal", f"appeal {appeal_id} names no entry here"
        )
    return _render(
        request,
        "appeal.html",
        person=person,
        active="appeals",
        list_name=list_name,
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
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person)
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    return await _appeal_page(request, person, principal, list_name, appeal_id)


@router.post("/appeals/{appeal_id}/decide", response_class=HTMLResponse)
async def appeal_decide(request: Request, appeal_id: int) -> Response:
    """Record a decision through the API's route (its reviewer rule and audit record)."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    principal, refusal = _need_role(request, person, ANALYST, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    error: str | None = None
    status = 200
    try:
        entry_text = _text(form, "entry")
        body = appeal_routes.DecideIn.model_validate(
            {
                "outcome": _text(form, "outcome") or "",
                "reason": _text(form, "reason") or "",
                "entry": int(entry_text) if entry_text is not None else None,
            }
        )
        done = await appeal_routes.decide_appeal(
            _ctx(request), principal, list_name, appeal_id, body
        )
        return await _appeal_page(
            request,
            person,
            principal,
            list_name,
            appeal_id,
            message=f"Appeal {done.id} decided: {done.status}.",
        )
    except ValidationError as e:
        first = e.errors()[0]
        error = f"{'.'.join(str(x) for x in first['loc']) or 'form'}: {first['msg']}"
        status = 422
    except ValueError:
        error = "entry: not a number"
        status = 422
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return await _appeal_page(
        request, person, principal, list_name, appeal_id, error=error, status=status
    )


@router.post("/appeals/{appeal_id}/close", response_class=HTMLResponse)
async def appeal_close(request: Request, appeal_id: int) -> Response:
    """An admin closes an appeal that matched no list (with a reason)."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    admin = _admin_principal(person)
    if admin is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the admin role")
    list_name = _chosen_list(request, person, _text(form, "list"))
    try:
        body = appeal_routes.CloseIn.model_validate({"reason": _text(form, "reason") or ""})
        await appeal_routes.close_appeal(_ctx(request), admin, appeal_id, body)
    except ValidationError as e:
        first = e.errors()[0]
        detail = f"{'.'.join(str(x) for x in first['loc']) or 'form'}: {first['msg']}"
        return _refused(request, person, 422, "Not closed", detail)
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        return _refused(request, person, status, "Not closed", f"{detail} ({code})")
    target = f"{CONSOLE_PREFIX}/appeals?done=" + quote(f"Appeal {appeal_id} closed.")
    if list_name is not None:
        target += "&list=" + quote(list_name)
    return RedirectResponse(target, status_code=303)


# --- guard approvals and referrals (issue 16 item 6) --------------------------------


@router.post("/guard-approve/{entry_id}", response_class=HTMLResponse)
async def guard_approve(request: Request, entry_id: int) -> Response:
    """An administrator approves a guarded entry with a justification (the API's route)."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    admin, refusal = _need_role(request, person, ADMIN, list_name)
    if refusal is not None or admin is None or list_name is None:
        return refusal or _login_redirect(request)
    try:
        body = GuardApproveIn.model_validate(_given(form, "justification"))
        row = await safeguard_routes.guard_approve(_ctx(request), admin, list_name, entry_id, body)
    except ValidationError as e:
        first = e.errors()[0]
        detail = f"{'.'.join(str(x) for x in first['loc']) or 'form'}: {first['msg']}"
        return _refused(request, person, 422, "Not approved", detail)
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        return _refused(request, person, status, "Not approved", f"{detail} ({code})")
    done = f"Guard approval recorded for entry {row.id} (now {row.status})."
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/queue?list={quote(list_name)}&done={quote(done)}", status_code=303
    )


async def _referrals_page(request: Request, person: Any, **extra: Any) -> Response:
    list_name = _chosen_list(request, person, extra.pop("chosen", None))
    analyst = _principal(person, ANALYST, list_name)
    admin = _principal(person, ADMIN, list_name)
    reader = analyst or admin
    if reader is None or list_name is None:
        return _refused(request, person, 403, "Not allowed", "this page needs the analyst role")
    listed = await safeguard_routes.list_referrals(_ctx(request), reader, list_name)
    return _render(
        request,
        "referrals.html",
        person=person,
        active="referrals",
        list_name=list_name,
        entries=listed.entries,
        analyst=analyst is not None,
        admin=admin is not None,
        **extra,
    )


@router.get("/referrals", response_class=HTMLResponse)
async def referrals_page(request: Request) -> Response:
    """Entries proposed for referral, with the hosting evidence behind each proposal."""
    person, refusal = await _need(request)
    if refusal is not None:
        return refusal
    return await _referrals_page(request, person)


@router.post("/referrals/{entry_id}/{action}", response_class=HTMLResponse)
async def referral_action(request: Request, entry_id: int, action: str) -> Response:
    """``refer`` (an analyst agrees) or ``override`` (an administrator), each with a reason."""
    person, form, refusal = await _posted(request)
    if refusal is not None:
        return refusal
    list_name = _chosen_list(request, person, _text(form, "list"))
    role = {"refer": ANALYST, "override": ADMIN}.get(action)
    if role is None:
        return _refused(request, person, 404, "No such action", action)
    principal, refusal = _need_role(request, person, role, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or _login_redirect(request)
    ctx = _ctx(request)
    message: str | None = None
    error: str | None = None
    status = 200
    try:
        body = ReferIn.model_validate(_given(form, "reason"))
        if action == "refer":
            row = await safeguard_routes.refer_entry(ctx, principal, list_name, entry_id, body)
            message = f"Entry {row.id} referred: it stays off the list ({row.status})."
        else:
            row = await safeguard_routes.override_referral(
                ctx, principal, list_name, entry_id, body
            )
            message = f"Referral of entry {row.id} overridden: four-eyes goes on as usual."
    except ValidationError as e:
        first = e.errors()[0]
        error = f"{'.'.join(str(x) for x in first['loc']) or 'form'}: {first['msg']}"
        status = 422
    except _DOMAIN_ERRORS as e:
        status, code, detail = _problem_text(e)
        error = f"{detail} ({code})"
    return await _referrals_page(
        request, person, chosen=list_name, message=message, error=error, status=status
    )


# --- installation -------------------------------------------------------------------


def install_console(app: FastAPI) -> None:
    """Mount the console's pages and static files on ``app``."""
    app.state.console = _ConsoleState(results=OrderedDict())
    app.include_router(router)
    static_dir = Path(__file__).resolve().parent / "static"
    app.mount(STATIC_PATH, StaticFiles(directory=static_dir), name="console-static")
