"""The analysts' console at ``/console/``: server-rendered pages over the API.

Persons log in with password and TOTP (:mod:`api.accounts`); each page acts
through the same route functions and store calls as the JSON API, with a
:class:`~blocklist.store.tokens.Principal` the person's session grants for
one role on one list, so four-eyes, limits and audit records are the API's.
Templates and static files ship in this package; nothing is loaded from
another host (DESIGN.md, "Accounts and the console").
"""

from __future__ import annotations

from api.console.pages import install_console, router
from api.console.pages.common import STATIC_PATH
from api.console.security import CONSOLE_PREFIX, SECURITY_HEADERS, ConsoleHeaders

__all__ = [
    "CONSOLE_PREFIX",
    "SECURITY_HEADERS",
    "STATIC_PATH",
    "ConsoleHeaders",
    "install_console",
    "router",
]
