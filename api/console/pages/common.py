"""What every console page does: session, form, role, error text and rendering.

The area modules of :mod:`api.console.pages` build on these helpers so that
each page states only its own work. A page that needs a session starts with
:func:`need_person` (GET) or :func:`posted` (POST: session, then the
cross-site and CSRF checks of :func:`api.console.security.cross_site` and
:func:`api.accounts.check_csrf`); a page that acts in one role on one list
starts with :func:`viewing` or :func:`posting`, which add the role check.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api import accounts
from api.auth import ADMIN, ANALYST
from api.console.security import CONSOLE_PREFIX, cross_site
from api.context import AppContext
from api.errors import ApiProblem, status_for
from api.middleware import MAX_CSV_BODY_BYTES
from blocklist.encoding import b64encode
from blocklist.errors import BlocklistError
from blocklist.store import lists as store_lists
from blocklist.store.models import EntryRow
from blocklist.store.tokens import Principal

__all__ = [
    "DOMAIN_ERRORS",
    "FORM_ERRORS",
    "MAX_IMPORT_BYTES",
    "STATIC_PATH",
    "Acting",
    "ConsoleState",
    "acting_as",
    "acting_in_any",
    "admin_principal",
    "app_context",
    "area_router",
    "call",
    "chosen_list",
    "console_state",
    "entry_view",
    "failure",
    "first_principal",
    "form_given",
    "form_text",
    "login_redirect",
    "need_admin",
    "need_person",
    "person_page",
    "posted",
    "posted_by_admin",
    "posting",
    "principal_for",
    "problem_text",
    "refused",
    "render",
    "render_page",
    "session_person",
    "to_queue",
    "viewing",
    "viewing_any",
]

#: Where the console's CSS and script are served from (this package's files).
STATIC_PATH: Final = CONSOLE_PREFIX + "/static"

#: Largest import form the console accepts: the API's CSV cap, plus room
#: for the multipart framing and the form's other fields.
MAX_IMPORT_BYTES: Final = MAX_CSV_BODY_BYTES + 64 * 1024

#: The errors a page turns into its error text: an API problem or a domain error.
DOMAIN_ERRORS: Final = (ApiProblem, BlocklistError)

#: The errors :func:`failure` words: a form that fails its model, or :data:`DOMAIN_ERRORS`.
FORM_ERRORS: Final = (ValidationError, ApiProblem, BlocklistError)

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


def area_router() -> APIRouter:
    """The router of one page area: under the console's prefix, outside the OpenAPI schema."""
    return APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)


@dataclass
class ConsoleState:
    """Per-app console state (on ``app.state.console``)."""

    results: OrderedDict[str, tuple[str, bytes]]


@dataclass(frozen=True)
class Acting:
    """A person acting in one role on one list, with the form they posted (empty on GET)."""

    person: Any
    principal: Principal
    list_name: str
    form: FormData


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an accounts function whether it is a coroutine function or blocking."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await run_in_threadpool(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


def app_context(request: Request) -> AppContext:
    """The application's context (database, settings, signer)."""
    ctx: AppContext = request.app.state.cf
    return ctx


def console_state(request: Request) -> ConsoleState:
    """The console's per-app state."""
    state: ConsoleState = request.app.state.console
    return state


def render(
    request: Request, template: str, *, person: Any = None, status: int = 200, **values: Any
) -> HTMLResponse:
    """The page ``template`` with the navigation ``person`` may use and ``values``."""
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


def render_page(
    request: Request, template: str, active: str, person: Any, list_name: str | None, **values: Any
) -> HTMLResponse:
    """A page of a logged-in person: ``active`` is its navigation item, ``list_name`` the list."""
    return render(request, template, person=person, active=active, list_name=list_name, **values)


def refused(request: Request, person: Any, status: int, title: str, detail: str) -> HTMLResponse:
    """The error page: ``title`` and ``detail`` with ``status``."""
    return render(request, "error.html", person=person, status=status, title=title, detail=detail)


def _holds_anywhere(person: Any, role: str) -> bool:
    return bool(person.holds(role, None))


def _person_lists(request: Request, person: Any) -> list[str]:
    cached: list[str] | None = getattr(request.state, "console_lists", None)
    if cached is not None:
        return cached
    ctx = app_context(request)
    with ctx.db.read() as session:
        every = [row.name for row in store_lists.list_lists(session)]
    names = every if "*" in person.roles else [n for n in every if n in person.roles]
    request.state.console_lists = names
    return names


def chosen_list(request: Request, person: Any, value: str | None = None) -> str | None:
    """The list a page is about: ``value``, else ``?list=``, else the person's first list."""
    wanted = value or request.query_params.get("list")
    names = _person_lists(request, person)
    if wanted in names:
        return wanted
    return names[0] if names else None


def principal_for(person: Any, role: str, list_name: str | None) -> Principal | None:
    """The principal ``person`` holds for ``role`` on ``list_name``, if any."""
    if list_name is None or not person.holds(role, list_name):
        return None
    principal: Principal = person.principal(role, list_name)
    return principal


def first_principal(person: Any, roles: Sequence[str], list_name: str | None) -> Principal | None:
    """The principal of the first of ``roles`` that ``person`` holds on ``list_name``, if any."""
    for role in roles:
        principal = principal_for(person, role, list_name)
        if principal is not None:
            return principal
    return None


def problem_text(error: BaseException) -> tuple[int, str, str]:
    """Status, code and message of an API problem or a domain error."""
    if isinstance(error, ApiProblem):
        return error.status, error.code, error.detail
    status = status_for(error)
    code = str(getattr(error, "code", "internal_error"))
    detail = str(error) if status < 500 else "the server could not do this; see its log"
    return status, code, detail


def failure(error: BaseException) -> tuple[int, str]:
    """Status and page text of a refused form (one of :data:`FORM_ERRORS`).

    A form that fails its model is a 422 naming the first field at fault;
    an API problem or a domain error keeps its status and shows its code.
    """
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "form"
        return 422, f"{where}: {first['msg']}"
    status, code, detail = problem_text(error)
    return status, f"{detail} ({code})"


def login_redirect(request: Request) -> RedirectResponse:
    """To the login page, coming back here afterwards (GET pages of the console only)."""
    path = request.url.path
    target = f"{CONSOLE_PREFIX}/login"
    if path.startswith(CONSOLE_PREFIX + "/") and request.method == "GET":
        target += "?next=" + quote(path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(target, status_code=303)


def to_queue(list_name: str, done: str) -> RedirectResponse:
    """Back to the queue of ``list_name``, saying what was ``done``."""
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/queue?list={quote(list_name)}&done={quote(done)}", status_code=303
    )


async def session_person(request: Request) -> Any:
    """The person of the request's session cookie, or ``None``."""
    cookie = request.cookies.get(accounts.SESSION_COOKIE)
    if not cookie:
        return None
    return await call(accounts.load_session, app_context(request), cookie)


async def _form(request: Request, person: Any) -> tuple[FormData | None, Response | None]:
    """The POSTed form, or the 403 page for a cross-site request or a bad CSRF token."""
    why = cross_site(request)
    if why is not None:
        return None, refused(request, person, 403, "Refused: cross-site request", why)
    form = await request.form(max_part_size=MAX_IMPORT_BYTES)
    submitted = form.get(accounts.CSRF_FIELD)
    if not isinstance(submitted, str) or not accounts.check_csrf(person, submitted):
        return None, refused(
            request,
            person,
            403,
            "Refused: the form's security token is missing or stale",
            "reload the page and submit the form again",
        )
    return form, None


def form_given(form: FormData, *names: str) -> dict[str, str]:
    """The named fields that were filled in (empty ones keep the model's default)."""
    return {n: v for n in names if (v := form_text(form, n)) is not None}


def form_text(form: FormData, name: str) -> str | None:
    """The field ``name`` stripped, or ``None`` when absent, empty or a file."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


async def need_person(request: Request) -> tuple[Any, Response | None]:
    """The session's person, or the redirect to the login page."""
    person = await session_person(request)
    if person is None:
        return None, login_redirect(request)
    return person, None


async def posted(request: Request) -> tuple[Any, FormData, Response | None]:
    """The session's person and the POSTed form, or the page that refuses them.

    Every state-changing console route starts here: no session redirects to
    the login page; a cross-site request or a bad CSRF token gets the 403
    page (:func:`_form`).
    """
    person, refusal = await need_person(request)
    if refusal is not None:
        return None, FormData(), refusal
    form, refusal = await _form(request, person)
    if refusal is not None or form is None:
        return person, FormData(), refusal or login_redirect(request)
    return person, form, None


def _need_role(
    request: Request, person: Any, role: str, list_name: str | None
) -> tuple[Principal | None, Response | None]:
    principal = principal_for(person, role, list_name)
    if principal is None:
        return None, refused(
            request,
            person,
            403,
            "Not allowed",
            f"this page needs the {role} role on list {list_name or '(none)'}",
        )
    return principal, None


def acting_as(request: Request, person: Any, role: str, form: FormData) -> Acting | Response:
    """``person`` in ``role`` on the chosen list (the form's ``list`` first), or a 403 page."""
    list_name = chosen_list(request, person, form_text(form, "list"))
    principal, refusal = _need_role(request, person, role, list_name)
    if refusal is not None or principal is None or list_name is None:
        return refusal or login_redirect(request)
    return Acting(person, principal, list_name, form)


def acting_in_any(
    request: Request, person: Any, roles: Sequence[str], form: FormData, detail: str
) -> Acting | Response:
    """``person`` in the first of ``roles`` held on the chosen list, else a 403 page."""
    list_name = chosen_list(request, person, form_text(form, "list"))
    principal = first_principal(person, roles, list_name)
    if principal is None or list_name is None:
        return refused(request, person, 403, "Not allowed", detail)
    return Acting(person, principal, list_name, form)


async def viewing_any(request: Request, roles: Sequence[str], detail: str) -> Acting | Response:
    """A GET page's person in the first of ``roles`` they hold on the chosen list, or a refusal."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    return acting_in_any(request, person, roles, FormData(), detail)


async def viewing(request: Request, role: str) -> Acting | Response:
    """A GET page's person in ``role`` on the chosen list, or the page that refuses them."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    return acting_as(request, person, role, FormData())


async def posting(request: Request, role: str) -> Acting | Response:
    """A POST's person in ``role`` on the chosen list with the checked form, or a refusal."""
    person, form, refusal = await posted(request)
    if refusal is not None:
        return refusal
    return acting_as(request, person, role, form)


def admin_principal(person: Any) -> Principal | None:
    """The admin principal ``person`` holds on every list, if any."""
    if not person.holds(ADMIN, None):
        return None
    principal: Principal = person.principal(ADMIN, None)
    return principal


def need_admin(request: Request, person: Any) -> Principal | Response:
    """The admin principal ``person`` holds on every list, or the 403 page."""
    principal = admin_principal(person)
    if principal is None:
        return refused(request, person, 403, "Not allowed", "this page needs the admin role")
    return principal


async def posted_by_admin(request: Request) -> tuple[Any, FormData, Principal] | Response:
    """A POST's person, checked form and admin principal, or the page that refuses them."""
    person, form, refusal = await posted(request)
    if refusal is not None:
        return refusal
    principal = need_admin(request, person)
    if isinstance(principal, Response):
        return principal
    return person, form, principal


async def person_page(
    request: Request, page: Callable[[Request, Any], Awaitable[Response]]
) -> Response:
    """``page`` for the session's person, or the redirect to the login page."""
    person, refusal = await need_person(request)
    if refusal is not None:
        return refusal
    return await page(request, person)


def entry_view(row: EntryRow) -> dict[str, Any]:
    """What the templates show of an entry row."""
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
