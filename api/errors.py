"""Problem details (RFC 9457) for every error the API answers with.

Every error response is ``application/problem+json``::

    {"type": "urn:cleanfeed:problem:<code>", "title": ..., "status": ...,
     "detail": ..., "code": "<code>", "instance": "<path>"}

``code`` is stable: clients branch on it, never on ``title`` or ``detail``.
Domain errors (``blocklist.errors``, ``blocklist.store.errors``,
``signer.errors``) carry their own ``code``; :data:`STATUS_BY_ERROR` gives
each class its HTTP status, and a subclass inherits its parent's status
unless it has its own row (walk of the MRO). Errors raised by the API layer
itself are :class:`ApiProblem` instances with the codes in
:data:`API_PROBLEMS`. The table in ``docs/api-errors.md`` lists them all; a
test keeps it in step with this module (Kinto's errno table).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.models.entries import bulk_result_out
from blocklist import blockref as domain_blockref
from blocklist import errors as domain
from blocklist.auditlog import AuditChainError
from blocklist.store import appeals as store_appeals
from blocklist.store import errors as store
from signer import errors as signer

__all__ = [
    "API_PROBLEMS",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_PREFIX",
    "STATUS_BY_ERROR",
    "UNAVAILABLE_RETRY_AFTER_SECONDS",
    "ApiProblem",
    "api_problem_response",
    "documented_codes",
    "domain_problem",
    "install_error_handlers",
    "problem_body",
    "problem_response",
    "status_for",
]

log = logging.getLogger("cleanfeed.api")

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

#: Prefix of every problem ``type`` URI; the suffix is the stable code.
PROBLEM_TYPE_PREFIX: Final = "urn:cleanfeed:problem:"

#: Seconds a client should wait before retrying when the database is down.
UNAVAILABLE_RETRY_AFTER_SECONDS: Final = 5

#: HTTP status for each domain error class; subclasses inherit via the MRO.
STATUS_BY_ERROR: Final[Mapping[type[BaseException], int]] = {
    # blocklist.errors: bad input is 4xx, anything unforeseen is a server bug.
    domain.BlocklistError: 500,
    domain.InvalidURL: 422,
    domain.InvalidEntry: 422,
    domain.DomesticHosting: 422,
    domain.PublicSuffix: 422,
    domain.FormatError: 400,
    domain.ProofError: 400,
    domain.DeltaError: 409,
    # A block reference someone typed or posted (hit counts): bad input.
    domain_blockref.InvalidBlockRef: 400,
    AuditChainError: 500,
    # blocklist.store.errors
    store.StoreError: 500,
    store.NotFound: 404,
    store.Pruned: 410,
    store.Conflict: 409,
    store.DuplicateApproval: 409,
    store.TokenNameTaken: 409,
    store.AnalystTokenNeedsPerson: 409,
    store.PermissionDenied: 403,
    store.SelfApproval: 403,
    store.AdminCannotApprove: 403,
    store.GuardIneligible: 403,
    store.WitnessNotRegistered: 403,
    store.InvalidState: 409,
    store.AwaitingSafeguard: 409,
    store.InvalidField: 422,
    store.LimitExceeded: 422,
    store.BulkRejected: 422,
    store.StoreUnavailable: 503,
    # persons' accounts (issue 15); the others inherit their parent's status
    store.AccountSecretsUnavailable: 503,
    # Appeals (issue 17): the global intake cap is a flood limit, not bad input.
    store_appeals.AppealCapReached: 429,
    # signer.errors: a note someone submitted (witness cosignature) is bad
    # input; key or signing trouble is the operator's to fix.
    signer.SignerError: 500,
    signer.NoteError: 422,
    signer.MalformedNote: 422,
    signer.UnknownKey: 422,
    signer.BadSignature: 422,
    signer.KeyFileError: 503,
    signer.InsecureKeyFile: 503,
    signer.KeyringError: 500,
    # The signer cannot sign until an operator acts (keys, keyring, a
    # database behind the high-water mark): the service is unavailable.
    signer.ForkRefused: 503,
    signer.HighWaterError: 503,
    signer.NoKeyring: 503,
    signer.OnlineKeyMissing: 503,
    signer.NotInitialised: 503,
    signer.AlreadyInitialised: 409,
    signer.RootKeyOffline: 409,
}

#: Problems raised by the API layer itself: code -> (status, title).
API_PROBLEMS: Final[Mapping[str, tuple[int, str]]] = {
    "token_in_query": (400, "Tokens are not accepted in query strings"),
    "bad_request": (400, "Bad request"),
    "unauthenticated": (401, "Missing or invalid bearer token"),
    "forbidden": (403, "This token's role may not use this endpoint"),
    "not_entitled": (403, "This token is not entitled to this document"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "body_too_slow": (408, "Request body arrived too slowly"),
    "body_too_large": (413, "Request body too large"),
    "unsupported_media_type": (415, "Unsupported media type"),
    "validation_error": (422, "Request validation failed"),
    "witness_refused": (422, "Not a witness cosignature"),
    "rate_limited": (429, "Too many requests"),
    "internal_error": (500, "Internal server error"),
    "not_ready": (503, "Service not ready"),
}


class ApiProblem(Exception):
    """An error the API layer answers with directly (auth, limits, routing).

    Raised only inside ``api/``; domain code raises domain errors instead.
    """

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        """Create a problem for one of the codes of :data:`API_PROBLEMS`.

        Raises:
            KeyError: ``code`` is not a documented API problem code.
        """
        status, title = API_PROBLEMS[code]
        super().__init__(detail or title)
        self.code = code
        self.status = status
        self.title = title
        self.detail = detail or title
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


def status_for(error: BaseException) -> int:
    """Return the HTTP status of a domain error (nearest class in the MRO)."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def problem_body(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    title: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object of a problem response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title or _title(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    if extensions:
        for key, value in extensions.items():
            body.setdefault(key, value)
    return body


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """Serialise a problem as an ``application/problem+json`` response."""
    body = problem_body(
        status=status,
        code=code,
        detail=detail,
        instance=instance,
        title=title,
        extensions=extensions,
    )
    out_headers = dict(headers or {})
    if status == 401:
        # RFC 6750 3: a 401 names the scheme the client must use.
        out_headers.setdefault("WWW-Authenticate", 'Bearer realm="cleanfeed"')
    if status == 503:
        out_headers.setdefault("Retry-After", str(UNAVAILABLE_RETRY_AFTER_SECONDS))
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=out_headers,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _domain_detail(error: BaseException, status: int) -> str:
    # 5xx details never echo internals (paths, SQL) to the caller.
    if status >= 500:
        return _title(status)
    return str(error) or _title(status)


def domain_problem(error: BaseException, path: str | None = None) -> Response:
    """Map a domain error to its problem response."""
    status = status_for(error)
    code = str(getattr(error, "code", "internal_error"))
    extensions: dict[str, Any] = {}
    if isinstance(error, store.BulkRejected):
        extensions["results"] = [bulk_result_out(r).model_dump() for r in error.results]
    if isinstance(error, signer.KeyringError):
        extensions["reason"] = error.reason
    headers: dict[str, str] = {}
    if isinstance(error, store_appeals.AppealCapReached):
        headers["Retry-After"] = str(error.retry_after)
    if status >= 500 and status != 503:
        log.error("domain error answered with %s: %s", status, code, exc_info=error)
    return problem_response(
        status=status,
        code=code,
        detail=_domain_detail(error, status),
        instance=path,
        extensions=extensions,
        headers=headers,
    )


def api_problem_response(problem: ApiProblem, path: str | None = None) -> Response:
    """Serialise an :class:`ApiProblem`."""
    return problem_response(
        status=problem.status,
        code=problem.code,
        detail=problem.detail,
        instance=path,
        title=problem.title,
        headers=problem.headers,
        extensions=problem.extensions,
    )


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    for item in exc.errors()[:50]:
        loc = [str(part) for part in item.get("loc", ())]
        # Never echo the rejected input: it may be a URL on the list.
        errors.append({"loc": loc, "msg": str(item.get("msg", "")), "type": item.get("type")})
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return detail, errors


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return api_problem_response(exc, request.url.path)

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        return domain_problem(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        from api.auth import check_access_after_bad_body

        try:
            await check_access_after_bad_body(request)
        except ApiProblem as denied:
            return api_problem_response(denied, request.url.path)
        detail, errors = _validation_detail(exc)
        return problem_response(
            status=422,
            code="validation_error",
            detail=detail,
            instance=request.url.path,
            title=API_PROBLEMS["validation_error"][1],
            extensions={"errors": errors},
        )

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
            415: "unsupported_media_type",
            422: "validation_error",
        }.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
        headers = dict(exc.headers or {})
        return problem_response(
            status=exc.status_code,
            code=code,
            detail=str(exc.detail) if exc.detail else _title(exc.status_code),
            instance=request.url.path,
            headers=headers,
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, _route_of(request), exc_info=exc)
        return problem_response(
            status=500,
            code="internal_error",
            detail="Internal server error",
            instance=request.url.path,
        )

    app.add_exception_handler(ApiProblem, on_api_problem)
    app.add_exception_handler(domain.BlocklistError, on_domain_error)
    app.add_exception_handler(signer.SignerError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))


def documented_codes() -> dict[str, int]:
    """Every problem code the API can answer with, and its status.

    The domain codes are collected from the error classes of
    :data:`STATUS_BY_ERROR` and all their subclasses, so a new domain error
    shows up here (and in the docs test) without editing this module.
    """
    codes: dict[str, int] = {code: status for code, (status, _) in API_PROBLEMS.items()}
    seen: set[type[BaseException]] = set()
    stack: list[type[BaseException]] = list(STATUS_BY_ERROR)
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        code = getattr(cls, "code", None)
        # Only the project's own error classes (not subclasses a test defines).
        if isinstance(code, str) and cls.__module__.split(".")[0] in _OWN_PACKAGES:
            codes.setdefault(code, _status_of_class(cls))
    return codes


_OWN_PACKAGES: Final = frozenset({"api", "blocklist", "signer"})


def _status_of_class(cls: type[BaseException]) -> int:
    for base in cls.__mro__:
        status = STATUS_BY_ERROR.get(base)
        if status is not None:
            return status
    return 500
