"""The API's one ASGI middleware: request guards, hints, metrics and logs.

Pure ASGI (not ``BaseHTTPMiddleware``), because it wraps every checkpoint
poll and must stay cheap. In order, it:

1. refuses credentials in the query string (DESIGN.md, "API shape": tokens
   are never accepted there; query strings end up in proxy and access logs);
2. caps request bodies (413): at most :data:`api.bodygate.PREAUTH_BODY_BYTES`
   are read before the caller is authorised for the route (issue 12, item
   8; :mod:`api.bodygate`), then the route's own cap (larger ones, such as
   the JSON bulk add's, are in :mod:`api.route_caps`); bodies slower than
   the ``body_min_rate`` setting are cut off (408, :class:`BodyTimer`); for
   JSON bodies, it refuses nesting deeper than :data:`MAX_JSON_DEPTH`,
   integers longer than
   :data:`MAX_JSON_INT_DIGITS` digits, NaN and non-UTF-8 bytes (422) before
   the request models see them;
3. answers a checkpoint poll that hits every cache without routing
   (``fast_path``, :func:`api.routes.isp.fast_isp`);
4. adds ``Cleanfeed-Min-Wait`` to every ``/v1`` response;
5. records request metrics and writes one structured log line per request
   (route template and token name, never the concrete URL or a body).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.bodygate import DEFAULT_BODY_GRACE_SECONDS, DEFAULT_BODY_MIN_RATE, BodyGate
from api.errors import API_PROBLEMS, problem_response
from api.logging import API_LOGGER, ISP_LOGGER
from api.metrics import Metrics
from api.ratelimit import MIN_WAIT_HEADER
from api.route_caps import route_body_cap

__all__ = [
    "CREDENTIAL_QUERY_PARAMS",
    "CSV_UPLOAD_SUFFIX",
    "MAX_CSV_BODY_BYTES",
    "MAX_JSON_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INT_DIGITS",
    "BodyTimer",
    "BodyTooSlow",
    "CleanfeedMiddleware",
    "JsonTooComplex",
    "check_json_shape",
]

#: Largest JSON request body: a bulk page of 1,000 rows of URL, reason and
#: reference fits in well under 1 MiB; anything larger is refused before it
#: is parsed (endless-data protection).
MAX_JSON_BODY_BYTES: Final = 1024 * 1024

#: Largest CSV upload (``…/entries/bulk.csv``): 16 MiB holds the largest
#: imports hotlines describe (tens of thousands of rows).
MAX_CSV_BODY_BYTES: Final = 16 * 1024 * 1024

#: Deepest JSON nesting accepted. Request models are at most three levels
#: deep; refusing deeper input keeps recursive parsers and validators safe.
MAX_JSON_DEPTH: Final = 32

#: Longest integer literal accepted in JSON (19 digits hold any signed
#: 64-bit value, the widest database column). Longer ones are refused before
#: Python builds a bignum from them (huge-integer DoS).
MAX_JSON_INT_DIGITS: Final = 20

#: Query parameter names that would carry a credential.
CREDENTIAL_QUERY_PARAMS: Final = frozenset({"token", "access_token", "api_key", "apikey"})

#: Path suffix of the CSV bulk upload, which gets the larger cap.
CSV_UPLOAD_SUFFIX: Final = "/entries/bulk.csv"

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class JsonTooComplex(ValueError):
    """A JSON document that is refused before parsing: too deep, an oversized
    integer, NaN/Infinity, or bytes that are not UTF-8."""


def _parse_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_JSON_INT_DIGITS:
        raise JsonTooComplex(f"integer with more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _parse_constant(text: str) -> Any:
    raise JsonTooComplex(f"{text} is not valid JSON")


def check_json_shape(body: bytes) -> None:
    """Refuse JSON that nests too deeply or carries huge integers.

    Malformed JSON is left for the request parser to report; only what is
    well-formed but hostile is refused here.

    Raises:
        JsonTooComplex: nesting beyond :data:`MAX_JSON_DEPTH`, an integer
            beyond :data:`MAX_JSON_INT_DIGITS` digits, or NaN/Infinity.
    """
    try:
        document = json.loads(body, parse_int=_parse_int, parse_constant=_parse_constant)
    except JsonTooComplex:
        raise
    except RecursionError as e:
        # The C parser guards its recursion; hitting the guard means depth.
        raise JsonTooComplex(f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from e
    except UnicodeDecodeError as e:
        raise JsonTooComplex("the request body is not UTF-8 JSON") from e
    except ValueError:
        return  # malformed: the route's parser answers 422 json_invalid
    # Iterative walk: the parsed document is bounded by the body cap.
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise JsonTooComplex(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


class BodyTooSlow(Exception):
    """A request body fell below the minimum rate (slowloris on the body)."""


class BodyTimer:
    """The deadline of the next chunk of a request body.

    A body must average ``min_rate`` bytes per second once ``grace`` seconds
    have passed: after ``received`` bytes, the next chunk is due by
    ``start + grace + received / min_rate``: a minimum data rate after a
    grace period, as ASP.NET Kestrel's ``MinRequestBodyDataRate``. It bounds
    the average, unlike a timeout between reads (nginx's
    ``client_body_timeout``), which a client defeats by trickling one byte
    per timeout.
    """

    def __init__(self, min_rate: int, grace: float, clock: Callable[[], float]) -> None:
        """Start timing a body now; ``min_rate`` 0 disables the limit."""
        self._min_rate = min_rate
        self._grace = grace
        self._clock = clock
        self._start = clock()

    async def receive(self, receive: Receive, received: int) -> Message:
        """The next message of ``receive``, within the body's deadline.

        Raises:
            BodyTooSlow: the deadline passed first.
        """
        if self._min_rate <= 0:
            return await receive()
        due = self._start + self._grace + received / self._min_rate
        try:
            return await asyncio.wait_for(receive(), max(0.0, due - self._clock()))
        except TimeoutError as e:
            raise BodyTooSlow from e


def _replay(message: Message) -> Receive:
    async def receive() -> Message:
        return message

    return receive


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class CleanfeedMiddleware:
    """See the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        min_wait_seconds: int,
        fast_path: Callable[[Scope], Response | None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        body_gate: BodyGate | None = None,
        body_min_rate: int = DEFAULT_BODY_MIN_RATE,
        body_grace_seconds: float = DEFAULT_BODY_GRACE_SECONDS,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the application.
            metrics: where request metrics go.
            min_wait_seconds: the ``Cleanfeed-Min-Wait`` value.
            fast_path: answers a request from memory, or returns None to
                route it normally (cached checkpoint polls and full pages).
            clock: timer for latencies.
            body_gate: authorises a caller before its body may exceed the
                pre-authentication cap; None (unit tests only) applies each
                route's full cap to everyone.
            body_min_rate: minimum average bytes/second of a request body
                after ``body_grace_seconds``; 0 disables the limit.
            body_grace_seconds: seconds before the minimum rate applies.
        """
        self.app = app
        self.fast_path = fast_path
        self.metrics = metrics
        self.min_wait = str(min_wait_seconds).encode("ascii")
        self._clock = clock
        self._body_gate = body_gate
        self._body_min_rate = body_min_rate
        self._body_grace = body_grace_seconds
        self._log = logging.getLogger(API_LOGGER)
        self._isp_log = logging.getLogger(ISP_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self._clock()
        path: str = scope["path"]
        method: str = scope["method"]
        is_v1 = path.startswith("/v1/")
        status_holder = [500]
        min_wait_header = (MIN_WAIT_HEADER.lower().encode("ascii"), self.min_wait)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                if is_v1:
                    headers = list(message.get("headers", ()))
                    headers.append(min_wait_header)
                    message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = self._refuse_query_token(scope)
            if refusal is None and method in _BODY_METHODS:
                refusal, receive = await self._guard_body(scope, receive)
            if refusal is None and self.fast_path is not None and method == "GET":
                refusal = self.fast_path(scope)
            if refusal is not None:
                await refusal(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, method, status_holder[0], self._clock() - started)

    @staticmethod
    def _refuse_query_token(scope: Scope) -> Response | None:
        query: bytes = scope.get("query_string", b"")
        if not query:
            return None
        names = {name.lower() for name, _ in parse_qsl(query.decode("latin-1"), True)}
        if names & CREDENTIAL_QUERY_PARAMS:
            return problem_response(
                status=400,
                code="token_in_query",
                title=API_PROBLEMS["token_in_query"][1],
                detail="send the token in an 'Authorization: Bearer' header; query strings "
                "end up in access logs, so a token sent there must be considered leaked",
                instance=scope["path"],
            )
        return None

    async def _guard_body(self, scope: Scope, receive: Receive) -> tuple[Response | None, Receive]:
        path: str = scope["path"]
        full_cap = route_body_cap(path) or (
            MAX_CSV_BODY_BYTES if path.endswith(CSV_UPLOAD_SUFFIX) else MAX_JSON_BODY_BYTES
        )
        gate = self._body_gate
        cap = full_cap
        if gate is not None:
            rule = gate.route(scope)
            if rule.own_cap is not None:
                full_cap = rule.own_cap  # the route's @body_cap
            # Issue 12, item 8: until the caller is authorised for this
            # route, read no more than the gate's small cap (public routes:
            # never more).
            cap = min(full_cap, rule.preauth_cap)
        authorised = gate is None

        async def widen(needed: int) -> Response | None:
            """Authorise once, then allow the route's full cap; refuse beyond it."""
            nonlocal cap, authorised
            if not authorised and gate is not None:
                authorised = True
                refusal = await gate.authorise(scope)
                if refusal is not None:
                    return refusal
                # Public routes: full_cap is already their small cap.
                cap = full_cap
            return self._too_large(path, cap) if needed > cap else None

        declared = -1
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        if declared > cap:
            # Refused before a byte is read (no "100 Continue" is sent either).
            refusal = await widen(declared)
            if refusal is not None:
                return refusal, receive
        timer = BodyTimer(self._body_min_rate, self._body_grace, time.monotonic)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            try:
                message = await timer.receive(receive, size)
            except BodyTooSlow:
                return self._too_slow(path), receive
            if message["type"] == "http.disconnect":
                # The client went away; let the app see the disconnect.
                return None, _replay(message)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                refusal = await widen(size)
                if refusal is not None:
                    return refusal, receive
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(content_type):
            try:
                check_json_shape(body)
            except JsonTooComplex as e:
                return (
                    problem_response(
                        status=422,
                        code="validation_error",
                        title=API_PROBLEMS["validation_error"][1],
                        detail=str(e),
                        instance=path,
                    ),
                    receive,
                )
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, replay

    @staticmethod
    def _too_large(path: str, cap: int) -> Response:
        return problem_response(
            status=413,
            code="body_too_large",
            title=API_PROBLEMS["body_too_large"][1],
            detail=f"request bodies to this endpoint are limited to {cap} bytes; "
            "split the request (bulk imports accept several batches)",
            instance=path,
            # The rest of the body is never read: the connection cannot be reused.
            headers={"Connection": "close"},
        )

    def _too_slow(self, path: str) -> Response:
        return problem_response(
            status=408,
            code="body_too_slow",
            title=API_PROBLEMS["body_too_slow"][1],
            detail=f"the request body arrived slower than {self._body_min_rate} bytes per "
            f"second after {self._body_grace:g} s; send it at network speed",
            instance=path,
            # RFC 9110 15.5.9: a server sending 408 closes the connection.
            headers={"Connection": "close"},
        )

    def _record(self, scope: Scope, method: str, status: int, seconds: float) -> None:
        state = scope.get("state") or {}
        route = scope.get("route")
        template = getattr(route, "path", None) or state.get("route_template") or "unmatched"
        self.metrics.observe(method, template, status, seconds)
        fetch = state.get("isp_fetch")
        principal = state.get("principal")
        token = getattr(principal, "name", None)
        if fetch is not None:
            # DESIGN.md, "Operations": ISP fetches are logged per token.
            self._isp_log.info(
                "isp fetch",
                extra={
                    "event": "isp_fetch",
                    "token": token,
                    "list": fetch.get("list"),
                    "version": fetch.get("version"),
                    "resource": fetch.get("resource"),
                    "status": status,
                    "ms": round(seconds * 1000, 3),
                },
            )
        elif self._log.isEnabledFor(logging.INFO):
            self._log.info(
                "request",
                extra={
                    "event": "request",
                    "method": method,
                    "route": template,
                    "status": status,
                    "token": token,
                    "ms": round(seconds * 1000, 3),
                },
            )
