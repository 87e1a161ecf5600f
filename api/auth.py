"""Bearer-token authentication, role checks, list access and rate limiting.

DESIGN.md, "API shape", and issue 4, item 2:

- ``Authorization: Bearer cf_<role>_<secret>``; tokens are looked up by the
  SHA-256 of the presented value (``blocklist.store.tokens``), never
  compared as strings;
- missing, malformed, unknown, expired or revoked token: 401 (one answer
  for all, so a caller learns nothing about which);
- a valid token of the wrong role: 403;
- a list the token may not read: 404, byte-for-byte the answer for a list
  that does not exist (an ISP cannot probe which lists exist);
- tokens in query strings are refused by :mod:`api.middleware` (400).

Checks run in that order (401, 403, 404), so a wrong-role token never learns
whether a list exists. Which lists a token reaches: admin tokens reach every
list; analyst tokens reach every list unless created with ``--list``, then
only those; ISP and auditor tokens only the lists they were created for.

Each authenticated request takes a token from the token's rate-limit bucket
in its role's limiter (429 with ``Retry-After`` and a message worded for the
role when empty) and marks the token as used; the use
is written later, in a batch (:class:`api.context.UsageRecorder`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, ListInfo
from api.errors import ApiProblem
from api.ratelimit import limited_detail, retry_after_header
from blocklist.store.tokens import MAX_TOKEN_CHARS, Principal

__all__ = [
    "ADMIN",
    "ANALYST",
    "AUDITOR",
    "ISP",
    "AdminDep",
    "AnalystDep",
    "AnalystOrAdminDep",
    "AuditReaderDep",
    "AuditorDep",
    "ContextDep",
    "IspDep",
    "OptionalPrincipalDep",
    "PrincipalDep",
    "authorised_list",
    "check_access_after_bad_body",
    "get_context",
    "list_not_found",
    "may_read",
    "optional_principal",
    "principal",
    "rate_limit_anonymous",
    "rate_limited_problem",
    "require_role",
    "required_roles",
    "resolve_list",
]

#: Role names (DESIGN.md, "API shape").
ADMIN: Final = "admin"
ANALYST: Final = "analyst"
ISP: Final = "isp"
AUDITOR: Final = "auditor"


async def get_context(request: Request) -> AppContext:
    """The :class:`AppContext` of the app serving ``request``."""
    ctx: AppContext = request.app.state.cf
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def _bearer(request: Request) -> str | None:
    """The presented bearer token, ``None`` without an Authorization header.

    Raises:
        ApiProblem: 401 for a header that is not ``Bearer <token>``.
    """
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_TOKEN_CHARS:
        raise ApiProblem("unauthenticated", "use 'Authorization: Bearer <token>'")
    return value


async def optional_principal(request: Request, ctx: ContextDep) -> Principal | None:
    """The principal of the request's token, ``None`` when no token was sent.

    Raises:
        ApiProblem: 401 for a malformed, unknown, expired or revoked token;
            429 when the token exceeds its rate limit.
    """
    token = _bearer(request)
    if token is None:
        return None
    _, principal = ctx.cached_token(token)
    if principal is None:
        principal = await run_in_threadpool(ctx.lookup_token, token)
    if principal is None:
        raise ApiProblem("unauthenticated", "missing, invalid, expired or revoked token")
    request.state.principal = principal
    _rate_limit(ctx, f"t:{principal.token_id}", principal.role)
    ctx.usage.token_used(principal.token_id)
    return principal


def rate_limited_problem(ctx: AppContext, role: str | None, wait: float) -> ApiProblem:
    """The 429 for a caller of ``role`` (None: anonymous), worded for that caller."""
    limiter = ctx.limiter_for(role)
    detail = limited_detail(
        role,
        wait,
        rate=limiter.rate,
        burst=limiter.burst,
        min_wait=ctx.settings.min_wait_seconds,
    )
    return ApiProblem(
        "rate_limited",
        detail,
        headers={"Retry-After": retry_after_header(wait)},
        extensions={"role": role or "anonymous"},
    )


def _rate_limit(ctx: AppContext, key: str, role: str | None) -> None:
    wait = ctx.rate_limit(key, role)
    if wait > 0:
        ctx.metrics.rate_limited.inc()
        raise rate_limited_problem(ctx, role, wait)


def rate_limit_anonymous(request: Request, ctx: AppContext) -> None:
    """Rate-limit an unauthenticated read of a public list by client address.

    Raises:
        ApiProblem: 429 with ``Retry-After``.
    """
    client = request.client.host if request.client else "unknown"
    _rate_limit(ctx, f"a:{client}", None)


OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]


async def principal(p: OptionalPrincipalDep) -> Principal:
    """The request's principal; a token is required.

    Raises:
        ApiProblem: 401 without a token.
    """
    if p is None:
        raise ApiProblem("unauthenticated", "this endpoint needs 'Authorization: Bearer <token>'")
    return p


PrincipalDep = Annotated[Principal, Depends(principal)]


def require_role(*roles: str) -> Callable[..., object]:
    """A dependency returning the principal if its role is one of ``roles``.

    Raises:
        ApiProblem: 401 without a valid token, 403 for another role.
    """
    allowed = frozenset(roles)
    names = " or ".join(sorted(allowed))

    async def dependency(p: PrincipalDep) -> Principal:
        if p.role not in allowed:
            raise ApiProblem("forbidden", f"this endpoint needs a token with role {names}")
        return p

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    # read by api.errors when a body fails to parse before the dependencies ran
    dependency.cleanfeed_roles = allowed  # type: ignore[attr-defined]
    return dependency


def required_roles(route: object) -> frozenset[str] | None:
    """The roles a route's ``require_role`` dependency admits, if it has one."""
    dependant = getattr(route, "dependant", None)
    stack = list(getattr(dependant, "dependencies", ()))
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "cleanfeed_roles", None)
        if roles is not None:
            return frozenset(roles)
        stack.extend(dep.dependencies)
    return None


async def check_access_after_bad_body(request: Request) -> None:
    """Apply the route's 401/403 checks when its body failed to parse.

    FastAPI parses a JSON body before it runs dependencies, so without this a
    malformed body would earn a 422 before the role check: the documented
    order is 401, 403, 404, then validation.

    Raises:
        ApiProblem: 401 without a valid token, 403 for another role.
    """
    roles = required_roles(request.scope.get("route"))
    if roles is None:
        return
    ctx = await get_context(request)
    p = await optional_principal(request, ctx)
    if p is None:
        raise ApiProblem("unauthenticated", "this endpoint needs 'Authorization: Bearer <token>'")
    if p.role not in roles:
        names = " or ".join(sorted(roles))
        raise ApiProblem("forbidden", f"this endpoint needs a token with role {names}")


AdminDep = Annotated[Principal, Depends(require_role(ADMIN))]
AnalystDep = Annotated[Principal, Depends(require_role(ANALYST))]
AnalystOrAdminDep = Annotated[Principal, Depends(require_role(ANALYST, ADMIN))]
IspDep = Annotated[Principal, Depends(require_role(ISP))]
AuditorDep = Annotated[Principal, Depends(require_role(AUDITOR))]
AuditReaderDep = Annotated[Principal, Depends(require_role(ADMIN, AUDITOR))]


def may_read(p: Principal, list_name: str) -> bool:
    """Whether ``p`` may reach list ``list_name`` (module docstring)."""
    if p.role == ADMIN:
        return True
    if p.role == ANALYST and not p.lists:
        return True
    return list_name in p.lists


def list_not_found(name: str) -> ApiProblem:
    """The one 404 for a missing list and for a list the token may not read."""
    return ApiProblem("not_found", f"no list named {name[:64]!r}")


async def resolve_list(ctx: AppContext, name: str) -> ListInfo | None:
    """The list called ``name`` (cached; database on a miss)."""
    info = ctx.cached_list(name)
    if info is None:
        info = await run_in_threadpool(ctx.resolve_list, name)
    return info


async def authorised_list(ctx: AppContext, p: Principal, name: str) -> ListInfo:
    """The list ``name`` if ``p`` may read it.

    Raises:
        ApiProblem: 404, identical for a missing list and a forbidden one.
    """
    if not may_read(p, name):
        raise list_not_found(name)
    info = await resolve_list(ctx, name)
    if info is None:
        raise list_not_found(name)
    return info
