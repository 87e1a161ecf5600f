"""Who may send how large a request body: the check behind the body caps.

Issue 12, item 8: a server that reads (and buffers) a route's full body cap
before it knows who is calling lets anyone without a token hold memory: 50
unauthenticated 16 MiB CSV uploads were 800 MB of RSS. So
:class:`api.middleware.CleanfeedMiddleware` reads at most
:data:`PREAUTH_BODY_BYTES` of a body before the caller has been
authenticated and authorised for the route (the same 401, 403 and 404
checks, in the same order, as the route's own dependencies); only then may
the body grow to the route's own cap (``MAX_JSON_BODY_BYTES``,
``MAX_CSV_BODY_BYTES`` in :mod:`api.middleware`). Routes public by design
(no role: health, later a login form and appeal intake) never get more than
:data:`PUBLIC_BODY_BYTES`.

A route may declare its own cap with :func:`body_cap` (a public form that
needs only a few KiB, or a bulk route that needs more than the JSON
default); a public route's cap never exceeds :data:`PUBLIC_BODY_BYTES`.

Most bodies are far below the pre-authentication cap and take no extra
step: the gate runs only when a body (declared or received) would exceed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from api.auth import list_not_found, may_read, required_roles
from api.context import AppContext
from api.errors import ApiProblem, api_problem_response
from blocklist.store.tokens import MAX_TOKEN_CHARS

__all__ = [
    "BODY_CAP_ATTR",
    "DEFAULT_BODY_GRACE_SECONDS",
    "DEFAULT_BODY_MIN_RATE",
    "PREAUTH_BODY_BYTES",
    "PUBLIC_BODY_BYTES",
    "SESSION_AUTH_ATTR",
    "BodyGate",
    "BodyRoute",
    "body_cap",
]

#: Bytes of a request body read before the caller is authorised for the
#: route. Every single-entry JSON request (an entry with reason and
#: reference, a token, a cosignature) is far below it; only bulk bodies are
#: larger, and those come from authenticated analysts.
PREAUTH_BODY_BYTES: Final = 64 * 1024

#: Largest body of a route public by design (no token: health, a login form,
#: appeal intake). Such forms are a few hundred bytes; anyone may send them,
#: so they never reach the pre-authentication cap.
PUBLIC_BODY_BYTES: Final = 16 * 1024

#: Default minimum average rate of a request body (bytes/second) once
#: :data:`DEFAULT_BODY_GRACE_SECONDS` have passed (setting
#: ``body_min_rate``). A 16 MiB CSV at this rate takes 34 minutes, so no real
#: client is cut off; a client that trickles a byte now and then to hold a
#: connection and a buffer open (slowloris on the body) is.
DEFAULT_BODY_MIN_RATE: Final = 8 * 1024

#: Default seconds a body may take before the minimum rate applies (setting
#: ``body_grace_seconds``): covers a slow start and a client's think time.
DEFAULT_BODY_GRACE_SECONDS: Final = 10.0


#: Attribute :func:`body_cap` sets on a route's endpoint function.
BODY_CAP_ATTR: Final = "cleanfeed_body_cap"

#: Attribute of a route authenticated by a console session cookie, not a
#: token (the console's CSV import): an async ``check(ctx, scope) -> bool``
#: that the gate runs before the body may grow past the small cap.
SESSION_AUTH_ATTR: Final = "cleanfeed_session_auth"

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., object])


def body_cap(limit: int) -> Callable[[_Endpoint], _Endpoint]:
    """Give a route its own body cap (bytes), instead of the middleware's default.

    Apply it below the ``@router.post(...)`` decorator. The cap applies once
    the caller is authorised; before that :data:`PREAUTH_BODY_BYTES` still
    holds, and a route that needs no token never gets more than
    :data:`PUBLIC_BODY_BYTES`.

    Raises:
        ValueError: ``limit`` is not positive.
    """
    if limit <= 0:
        raise ValueError("a body cap must be a positive number of bytes")

    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, BODY_CAP_ATTR, limit)
        return endpoint

    return mark


@dataclass(frozen=True)
class BodyRoute:
    """What the gate found out about the route a request with a body goes to."""

    public: bool
    """No role is required (or no route matched): :data:`PUBLIC_BODY_BYTES` applies."""

    preauth_cap: int
    """Bytes readable before :meth:`BodyGate.authorise` has passed."""

    own_cap: int | None = None
    """The route's own cap from :func:`body_cap` (None: the middleware's default)."""


class BodyGate:
    """Authorise a caller for a route before its body may exceed the small cap."""

    def __init__(self, ctx: AppContext, routes: Sequence[BaseRoute]) -> None:
        """Create the gate.

        Args:
            ctx: the application context (token cache and database).
            routes: the API's routes; a request matching none of them is
                treated as public (it gets a 404 anyway).
        """
        self._ctx = ctx
        self._routes = routes

    def _match(self, scope: Scope) -> tuple[BaseRoute | None, dict[str, object]]:
        for route in self._routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                return route, dict(child.get("path_params", {}))
        return None, {}

    def route(self, scope: Scope) -> BodyRoute:
        """Classify the request's route: public by design, or behind a role."""
        route, _ = self._match(scope)
        own = getattr(getattr(route, "endpoint", None), BODY_CAP_ATTR, None)
        if getattr(getattr(route, "endpoint", None), SESSION_AUTH_ATTR, None) is not None:
            return BodyRoute(public=False, preauth_cap=PREAUTH_BODY_BYTES, own_cap=own)
        if route is None or required_roles(route) is None:
            cap = PUBLIC_BODY_BYTES if own is None else min(own, PUBLIC_BODY_BYTES)
            return BodyRoute(public=True, preauth_cap=cap, own_cap=cap)
        return BodyRoute(public=False, preauth_cap=PREAUTH_BODY_BYTES, own_cap=own)

    async def authorise(self, scope: Scope) -> Response | None:
        """Run the route's 401, 403 and 404 checks without reading the body.

        Returns:
            None when the caller may send this route its full body cap,
            else the problem response the route itself would give.
        """
        route, params = self._match(scope)
        session_check = getattr(getattr(route, "endpoint", None), SESSION_AUTH_ATTR, None)
        if session_check is not None:
            if await session_check(self._ctx, scope):
                return None
            response = api_problem_response(
                ApiProblem("unauthenticated", "log in to the console first"), scope["path"]
            )
            response.headers["Connection"] = "close"
            return response
        roles = required_roles(route) if route is not None else None
        if roles is None:
            # Nothing to authorise: public routes keep their small cap.
            return None
        try:
            token = _bearer(scope)
            principal = None
            if token is not None:
                principal = self._ctx.cached_token(token)[1]
                if principal is None:
                    principal = await run_in_threadpool(self._ctx.lookup_token, token)
            if principal is None:
                raise ApiProblem("unauthenticated", "missing, invalid, expired or revoked token")
            if principal.role not in roles:
                names = " or ".join(sorted(roles))
                raise ApiProblem("forbidden", f"this endpoint needs a token with role {names}")
            list_name = params.get("list")
            if isinstance(list_name, str) and not may_read(principal, list_name):
                raise list_not_found(list_name)
        except ApiProblem as problem:
            response = api_problem_response(problem, scope["path"])
            # The unread rest of the body stays unread: the connection ends.
            response.headers["Connection"] = "close"
            return response
        return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
                return None
            return token
    return None
