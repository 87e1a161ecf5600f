"""What every console response carries, and the cross-site checks of its forms.

The console is a cookie-authenticated web application, so it meets the
threats the bearer-token API does not: clickjacking, cross-site request
forgery, script injection through listed URLs and reasons, and leaks through
the ``Referer`` header or a shared cache. Defences, each named after its
threat:

- :class:`ConsoleHeaders` (pure ASGI, so static files get them too) adds
  :data:`SECURITY_HEADERS` to every response under :data:`CONSOLE_PREFIX`:
  a Content-Security-Policy without inline script (CSP Level 3; an injected
  ``<script>`` or ``onerror=`` attribute does not run even if escaping ever
  failed), ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``
  (clickjacking; RFC 7034 for the older browsers), ``Referrer-Policy:
  no-referrer`` (a listed URL in a page address never leaves in a
  ``Referer``), ``Cache-Control: no-store`` (RFC 9111 section 5.2.2.5: pages
  with entries never sit in a shared or disk cache) and
  ``X-Content-Type-Options: nosniff``.
- :func:`cross_site` refuses a state-changing request another site started:
  the browser's ``Sec-Fetch-Site`` (Fetch Metadata) or ``Origin`` (RFC 6454
  section 7) header must name this origin. The CSRF token of each form
  (checked by the pages with ``api.accounts.check_csrf``) is the second,
  independent defence; ``SameSite=Strict`` on the session cookie the third.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONSOLE_PREFIX",
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "ConsoleHeaders",
    "cross_site",
]

#: Where the console lives; every path under it gets the headers.
CONSOLE_PREFIX: Final = "/console"

#: No inline script or style, nothing from another host; ``data:`` images
#: only (none are used today: the QR code is inline SVG markup).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    # Nothing of the console needs these powerful features.
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

#: ``Sec-Fetch-Site`` values of a request this origin itself started
#: ("none": the user typed the address or used a bookmark).
_SAME_SITE_FETCH: Final = frozenset({"same-origin", "none"})


class ConsoleHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every console response."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app
        self._headers = [
            (k.encode("ascii"), v.encode("ascii")) for k, v in SECURITY_HEADERS.items()
        ]
        self._names = {k.encode("ascii") for k in SECURITY_HEADERS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in self._names
                ]
                message = {**message, "headers": kept + self._headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _own_host(request: Request) -> str:
    # The Host header as the browser sent it. Only host and port are
    # compared: behind a TLS-terminating proxy the scheme this process sees
    # is not the browser's.
    return request.headers.get("host", "").lower()


def cross_site(request: Request) -> str | None:
    """Why a state-changing request is refused as cross-site, or None if it is not.

    Browsers send ``Sec-Fetch-Site`` with every request (Fetch Metadata,
    W3C); it decides when present. Only without it is ``Origin`` compared
    with ``Host`` (RFC 6454 section 7). ``Origin: null`` is not refused on
    its own: under ``Referrer-Policy: no-referrer`` Chromium sends it even
    on a same-origin form post, and such a request still needs the form's
    CSRF token.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.lower() not in _SAME_SITE_FETCH:
            return f"the request came from another site (Sec-Fetch-Site: {fetch_site})"
        return None
    origin = request.headers.get("origin")
    if (
        origin is not None
        and origin != "null"
        and urlsplit(origin).netloc.lower() != _own_host(request)
    ):
        return "the request came from another origin"
    return None
