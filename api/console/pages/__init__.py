"""The console's pages, one module per page area over shared request helpers.

Every page needs a session (:func:`api.accounts.load_session`) except
login and enrolment. Every state-changing form is a POST carrying the
session's CSRF token and is refused (403 page) when the token is wrong or
the request came from another site (:func:`api.console.security.cross_site`).

Pages act through the JSON API's own route functions and store calls, with
the :class:`~blocklist.store.tokens.Principal` the person holds for one role
on one list: the console adds no rule of its own to four-eyes, limits or
the audit log. Listed URLs and expressions are rendered as escaped text
(Jinja2 autoescaping), never as links.

The areas: :mod:`.auth` (login, enrolment, logout), :mod:`.entries` (the
queue, the add form, an entry's page), :mod:`.imports` (bulk import),
:mod:`.search`, :mod:`.versions` (versions, publishing, ISPs),
:mod:`.tokens` (a person's own API tokens), :mod:`.admin`, and the part-2
pages :mod:`.safeguards` (guards, guard approvals, referrals),
:mod:`.transparency` and :mod:`.appeals`; :mod:`.common` holds what every
page does (session, form and CSRF, role, error text, rendering). This
package offers :data:`router`, every area's pages, and
:func:`install_console`.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from api.console.pages import (
    admin,
    appeals,
    auth,
    entries,
    imports,
    safeguards,
    search,
    tokens,
    transparency,
    versions,
)
from api.console.pages.common import STATIC_PATH, ConsoleState

__all__ = ["install_console", "router"]

#: The console's page areas, in the order their routes are matched.
_AREAS: Final = (
    auth,
    entries,
    imports,
    search,
    versions,
    tokens,
    admin,
    safeguards,
    transparency,
    appeals,
)

#: Every console page: the areas' own routes (each carries the console's
#: prefix and stays out of the OpenAPI schema,
#: :func:`~api.console.pages.common.area_router`), listed flat because the
#: body gate (:class:`api.bodygate.BodyGate`) matches a request against
#: routes and reads the matched endpoint's body cap and session check.
router = APIRouter(routes=[route for area in _AREAS for route in area.router.routes])


def install_console(app: FastAPI) -> None:
    """Mount the console's pages and static files on ``app``."""
    app.state.console = ConsoleState(results=OrderedDict())
    app.include_router(router)
    static_dir = Path(__file__).resolve().parent.parent / "static"
    app.mount(STATIC_PATH, StaticFiles(directory=static_dir), name="console-static")
