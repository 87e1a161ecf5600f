"""ISP endpoints: keyring, checkpoint, statements, snapshot, plaintext, proofs.

DESIGN.md, "Interfaces other programs rely on" fixes paths, media types and
JSON keys. Access: an ``isp`` token for the list; a list configured as
public also serves its hash-only documents (everything here but plaintext)
without a token, and only those answers are cacheable by shared caches.

The checkpoint is what thousands of ISPs poll; it is served from
:class:`api.context.CheckpointCache` with a strong ETag over the whole note,
and ``If-None-Match`` answers 304 without touching the database.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as Path_
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope

from api.auth import (
    ISP,
    ContextDep,
    OptionalPrincipalDep,
    authorised_list,
    may_read,
    rate_limit_anonymous,
    rate_limited_problem,
    resolve_list,
)
from api.context import AppContext, CachedCheckpoint, CachedPage, ListInfo
from api.errors import ApiProblem, api_problem_response
from api.longpoll import MAX_WAIT_SECONDS, WAIT_HEADER, clamp_wait
from api.models.common import MAX_INT
from api.models.isp import ExpressionOut, PlaintextOut, ProofOut, StatementsOut
from api.routes.common import GZIP_MINIMUM_SIZE, TEXT_MEDIA_TYPE, ListPath, cache_control, problems
from blocklist import merkle
from blocklist.encoding import b64encode
from blocklist.store import versions as store_versions
from blocklist.store.db import Database
from blocklist.store.models import KeyringRow
from blocklist.store.tokens import Principal

__all__ = [
    "CHECKPOINT_TEMPLATE",
    "FAST_PATH",
    "MAX_STATEMENTS_PAGE",
    "MAX_STATEMENTS_PAGE_BYTES",
    "STATEMENTS_TEMPLATE",
    "VERSION_HEADER",
    "IspAccess",
    "IspAccessDep",
    "Version",
    "checkpoint_headers",
    "etag_matches",
    "etag_presented",
    "fast_isp",
    "get_checkpoint",
    "get_consistency_proof",
    "get_inclusion_proof",
    "get_keyring",
    "get_plaintext",
    "get_range",
    "get_snapshot",
    "get_statement",
    "get_statements",
    "isp_access",
    "router",
]

router = APIRouter(prefix="/v1", tags=["isp"])

#: Most statements per page (docs/architecture.md, "Wire details").
MAX_STATEMENTS_PAGE: Final = store_versions.MAX_PAGE

#: Most note bytes per statements page (docs/architecture.md): bounds a
#: response even when versions carry 10,000 changes each.
MAX_STATEMENTS_PAGE_BYTES: Final = 4 * 1024 * 1024

#: Header naming the version of a snapshot (DESIGN.md interface table).
VERSION_HEADER: Final = "Cleanfeed-Version"

Version = Annotated[int, Query(ge=0, le=MAX_INT)]


@dataclass(frozen=True)
class IspAccess:
    """Who reads which list, and whether the answer may be shared-cached."""

    list: ListInfo
    principal: Principal | None

    @property
    def shared(self) -> bool:
        """An anonymous read of a public list: shared caches may keep it."""
        return self.principal is None

    @property
    def isp(self) -> Principal | None:
        """The ISP token reading, if any (its fetches are recorded)."""
        if self.principal is not None and self.principal.role == ISP:
            return self.principal
        return None


async def isp_access(
    request: Request, ctx: ContextDep, p: OptionalPrincipalDep, list_name: ListPath
) -> IspAccess:
    """Authorise a read of a hash-only document.

    Raises:
        ApiProblem: 401 without a token for a list that is not public; 403
            for a token of another role on a list that is not public; 404
            for a list the ISP token may not read or that does not exist.
    """
    if p is None:
        info = await resolve_list(ctx, list_name)
        if info is None or not info.public:
            raise ApiProblem("unauthenticated", "this list needs an ISP token")
        rate_limit_anonymous(request, ctx)
        return IspAccess(info, None)
    if p.role != ISP:
        info = await resolve_list(ctx, list_name)
        if info is not None and info.public:
            return IspAccess(info, p)  # anyone may read a public list
        raise ApiProblem("forbidden", "this endpoint needs a token with role isp")
    return IspAccess(await authorised_list(ctx, p, list_name), p)


IspAccessDep = Annotated[IspAccess, Depends(isp_access)]


def _note_fetch(
    request: Request, ctx: AppContext, access: IspAccess, version: int | None, resource: str
) -> None:
    """Log the fetch (per token) and remember the ISP's version, off the request path."""
    request.state.isp_fetch = {"list": access.list.name, "version": version, "resource": resource}
    isp = access.isp
    if isp is not None and version is not None:
        ctx.usage.isp_fetched(isp.token_id, access.list.id, version)


def _note_responses(
    what: str, *statuses: int, extra: Mapping[int, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route that answers one signed note as text."""
    note = {200: {"content": {TEXT_MEDIA_TYPE: {}}, "description": what}}
    return problems(401, 403, 404, *statuses, extra={**note, **(extra or {})})


def _text(body: str | bytes, cache: str, **headers: str) -> Response:
    return Response(
        content=body,
        media_type=TEXT_MEDIA_TYPE,
        headers={"Cache-Control": cache, **headers},
    )


@router.get(
    "/lists/{list}/keyring",
    response_class=Response,
    responses=_note_responses("keyring note"),
    summary="The latest keyring note, or the one with ?serial=N",
)
async def get_keyring(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    serial: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> Response:
    """Return a keyring note (signed by the root keys)."""

    # One thread-pool hop for the whole read; a sync route with a session
    # dependency took three (enter, route, exit) and ran about 20 % slower.
    def read() -> KeyringRow | None:
        with ctx.db.read() as session:
            return store_versions.get_keyring(session, access.list.id, serial)

    row = await run_in_threadpool(read)
    if row is None:
        if serial is None:
            raise ApiProblem("not_ready", "this list has no keyring yet; run `cleanfeed init`")
        raise ApiProblem("not_found", f"no keyring with serial {serial}")
    _note_fetch(request, ctx, access, None, "keyring")
    return _text(row.note, cache_control(shared=access.shared, immutable=serial is not None))


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: whether ``If-None-Match`` is false for ``etag`` (answer 304).

    ``*`` matches any current representation (RFC 9110 13.1.2); whether the
    client actually holds this one is :func:`etag_presented`.
    """
    return if_none_match.strip() == "*" or etag_presented(if_none_match, etag)


def etag_presented(if_none_match: str, etag: str) -> bool:
    """Whether ``If-None-Match`` lists ``etag`` itself (weak comparison, RFC 9110 8.8.3.2).

    Only this proves the ISP holds the checkpoint: ``*`` earns a 304 but
    proves nothing, so it never counts as the ISP being current in the
    uptake view (issue 12, item 14).
    """
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def checkpoint_headers(cached: CachedCheckpoint, shared: bool) -> dict[str, str]:
    """Headers of a checkpoint answer (200 or 304), shared by both paths."""
    return {"ETag": cached.etag, "Cache-Control": cache_control(shared=shared, immutable=False)}


@router.get(
    "/lists/{list}/checkpoint",
    response_class=Response,
    responses=_note_responses(
        "checkpoint note",
        503,
        extra={304: {"description": "Not modified (If-None-Match matched the ETag)"}},
    ),
    summary="The latest checkpoint note (ETag over the whole note)",
)
async def get_checkpoint(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    wait: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_INT,
            description="Long-poll: with If-None-Match naming the current checkpoint, "
            f"hold the request up to this many seconds (capped at {MAX_WAIT_SECONDS}) "
            "until another checkpoint exists; echoed in Cleanfeed-Wait.",
        ),
    ] = None,
) -> Response:
    """Return the current checkpoint, or 304 when the client holds it.

    Polls that hit every cache are answered by :func:`fast_isp`
    before routing; this route is the authoritative path for the rest.
    With ``wait=S`` (:mod:`api.longpoll`) and an ``If-None-Match`` naming
    the current checkpoint, the answer waits until another checkpoint
    exists or S seconds pass; ``Cleanfeed-Wait`` says how long the server
    was prepared to hold it (0: it declined, the worker holds its maximum).
    """
    cached = await ctx.checkpoint(access.list.id)
    if cached is None:
        raise ApiProblem(
            "not_ready", "this list has no signed checkpoint yet; is the signer running?"
        )
    inm = request.headers.get("if-none-match")
    seconds = clamp_wait(wait)
    echo: dict[str, str] = {}
    if seconds:
        hold = seconds
        # Only a named ETag can be waited on: "*" matches every checkpoint
        # there will ever be, and a client without one needs the note now.
        if inm is not None and etag_presented(inm, cached.etag):
            cached, hold = await _hold(ctx, access.list.id, inm, cached, seconds, request.receive)
        echo[WAIT_HEADER] = str(hold)
    headers = {**checkpoint_headers(cached, access.shared), **echo}
    if inm is not None and etag_matches(inm, cached.etag):
        # Only the exact ETag shows the ISP holds this checkpoint (and so is
        # on this version); "*" is a 304 that proves nothing.
        held = cached.size if etag_presented(inm, cached.etag) else None
        _note_fetch(request, ctx, access, held, "checkpoint")
        return Response(status_code=304, headers=headers)
    _note_fetch(request, ctx, access, None, "checkpoint")
    return Response(content=cached.body, media_type=TEXT_MEDIA_TYPE, headers=headers)


async def _hold(
    ctx: AppContext,
    list_id: int,
    inm: str,
    cached: CachedCheckpoint,
    seconds: int,
    receive: Receive,
) -> tuple[CachedCheckpoint, int]:
    """Wait until ``list_id``'s checkpoint is not one ``inm`` names, or ``seconds`` pass.

    A client that disconnects ends the hold at once (its answer goes
    nowhere), so a dropped connection does not keep a waiter's place.

    Returns:
        The checkpoint to answer with, and the hold to echo: ``seconds``,
        or 0 when the worker already holds its most waiters (answered at
        once; the client falls back to its poll schedule).
    """
    waiters = ctx.waiters
    with waiters.slot(list_id) as admitted:
        if not admitted:
            return cached, 0
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            while True:
                # The event first, then the read: a change landing in
                # between still sets this event (CheckpointWaiters.event).
                event = waiters.event(list_id)
                current = await ctx.checkpoint(list_id)
                if current is not None:
                    cached = current
                if not etag_presented(inm, cached.etag):
                    return cached, seconds
                left = end - loop.time()
                if left <= 0 or waiters.closing or gone.done():
                    return cached, seconds
                woken = asyncio.ensure_future(event.wait())
                try:
                    await asyncio.wait({woken, gone}, timeout=left, return_when=FIRST_COMPLETED)
                finally:
                    woken.cancel()
        finally:
            gone.cancel()


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (ASGI ``http.disconnect``).

    A GET's only ``http.request`` message (no body) is read and dropped;
    nothing else reads this request's body.
    """
    while (await receive())["type"] != "http.disconnect":
        pass


#: ISP paths answered by the fast path (list names: store.lists.LIST_NAME_RE).
FAST_PATH: Final = re.compile(r"\A/v1/lists/([a-z0-9-]{1,64})/(checkpoint|statements)\Z")

#: Route templates reported in metrics and logs for fast-path answers.
CHECKPOINT_TEMPLATE: Final = "/v1/lists/{list}/checkpoint"
STATEMENTS_TEMPLATE: Final = "/v1/lists/{list}/statements"

_DECIMAL: Final = re.compile(r"\A(0|[1-9][0-9]{0,18})\Z")


def _fast_principal(
    ctx: AppContext, scope: Scope, info: ListInfo, authorization: str | None
) -> tuple[Principal | None, str] | None:
    """The checks of :func:`isp_access` that need no I/O: ``(principal, bucket)``.

    None declines (the route then decides, with the same rules).
    """
    if authorization is None:
        if not info.public:
            return None
        client = scope.get("client")
        return None, f"a:{client[0] if client else 'unknown'}"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    principal = ctx.cached_token(token.strip())[1]
    if principal is None or principal.role != ISP or not may_read(principal, info.name):
        return None
    return principal, f"t:{principal.token_id}"


def _statements_query(query: bytes) -> tuple[int, int] | None:
    """``since`` and ``limit`` when canonical and in range; else None (the route validates)."""
    since, limit = 0, MAX_STATEMENTS_PAGE
    seen: set[str] = set()
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen or name not in ("since", "limit") or not _DECIMAL.match(value):
            return None
        seen.add(name)
        if name == "since":
            since = int(value)
        else:
            limit = int(value)
    if since > MAX_INT or not 1 <= limit <= MAX_STATEMENTS_PAGE:
        return None
    return since, limit


def fast_isp(ctx: AppContext, scope: Scope) -> Response | None:
    """Answer the hottest ISP reads from memory, or return None to route normally.

    ISPs poll the checkpoint far more than anything else and fetch the same
    full statement pages when they catch up (DESIGN.md, "ISP sync"), so a
    request that hits every cache (token, list, checkpoint or page) skips
    routing and dependency resolution. It makes exactly the checks of
    :func:`isp_access`, :func:`get_checkpoint` and :func:`get_statements` in
    the same order and answers only the outcomes that need no I/O; anything
    else (an unknown token, a list this token may not read, a cold cache, an
    odd query string) returns None and takes the route, which stays the
    reference.
    """
    if scope["method"] != "GET":
        return None
    match = FAST_PATH.match(scope["path"])
    if match is None:
        return None
    info = ctx.cached_list(match.group(1))
    if info is None:
        return None
    query: bytes = scope.get("query_string", b"")
    checkpoint: CachedCheckpoint | None = None
    page: CachedPage | None = None
    if match.group(2) == "checkpoint":
        if query:
            return None
        checkpoint = ctx.checkpoints.get(info.id)
        if checkpoint is None:
            return None
    else:
        window = _statements_query(query)
        if window is None:
            return None
        page = ctx.pages.get((info.id, *window))
        if page is None:
            return None
    authorization = if_none_match = accept_encoding = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"if-none-match":
            if_none_match = value.decode("latin-1")
        elif name == b"accept-encoding":
            accept_encoding = value.decode("latin-1")
    access = _fast_principal(ctx, scope, info, authorization)
    if access is None:
        return None
    principal, bucket = access
    state = scope.setdefault("state", {})
    state["route_template"] = CHECKPOINT_TEMPLATE if page is None else STATEMENTS_TEMPLATE
    if principal is not None:
        state["principal"] = principal
    role = principal.role if principal is not None else None
    wait = ctx.rate_limit(bucket, role)
    if wait > 0:
        ctx.metrics.rate_limited.inc()
        return api_problem_response(rate_limited_problem(ctx, role, wait), scope["path"])
    if principal is not None:
        ctx.usage.token_used(principal.token_id)
    if page is not None:
        state["isp_fetch"] = {"list": info.name, "version": page.last, "resource": "statements"}
        if principal is not None:
            ctx.usage.isp_fetched(principal.token_id, info.id, page.last)
        headers = {"Cache-Control": cache_control(shared=principal is None, immutable=True)}
        body = page.body
        if page.gzipped is not None and accept_encoding and "gzip" in accept_encoding.lower():
            body = page.gzipped
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        return Response(content=body, media_type="application/json", headers=headers)
    assert checkpoint is not None
    headers = checkpoint_headers(checkpoint, principal is None)
    not_modified = if_none_match is not None and etag_matches(if_none_match, checkpoint.etag)
    # As in get_checkpoint: only the exact ETag counts as holding this version.
    presented = if_none_match is not None and etag_presented(if_none_match, checkpoint.etag)
    version = checkpoint.size if presented else None
    state["isp_fetch"] = {"list": info.name, "version": version, "resource": "checkpoint"}
    if principal is not None and version is not None:
        ctx.usage.isp_fetched(principal.token_id, info.id, version)
    if not_modified:
        return Response(status_code=304, headers=headers)
    return Response(content=checkpoint.body, media_type=TEXT_MEDIA_TYPE, headers=headers)


@router.get(
    "/lists/{list}/statements",
    response_model=StatementsOut,
    responses=problems(401, 403, 404),
    summary="Statements since+1 ... (paged)",
)
def get_statements(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    since: Version = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_STATEMENTS_PAGE)] = MAX_STATEMENTS_PAGE,
) -> Response:
    """Return statements ``since + 1 ...``: at most ``limit`` and 4 MiB of notes.

    A *full* page (``limit`` statements, or cut at 4 MiB) never changes:
    its ``next`` is always the version after it (the following page may be
    empty), and it is served as immutable and kept in memory. Only the
    partial last page has ``"next": null`` and must be revalidated.
    """
    with ctx.db.read() as session:
        current = store_versions.current_version(session, access.list.id)
        notes = (
            store_versions.statements(session, access.list.id, since=since, limit=limit)
            if since < current
            else []
        )
    page: list[str] = []
    size = 0
    for note in notes:
        size += len(note)
        if page and size > MAX_STATEMENTS_PAGE_BYTES:
            break
        page.append(note)
    last = since + len(page)
    full = len(page) == limit or len(page) < len(notes)
    body = json.dumps(
        {"statements": page, "next": last if full else None},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    if full:
        gzipped = gzip.compress(body, 6) if len(body) >= GZIP_MINIMUM_SIZE else None
        ctx.pages.put((access.list.id, since, limit), CachedPage(body, gzipped, last))
    _note_fetch(request, ctx, access, min(last, current), "statements")
    # DESIGN.md: full pages are immutable; the last (partial) page is not.
    return Response(
        content=body,
        media_type="application/json",
        headers={"Cache-Control": cache_control(shared=access.shared, immutable=full)},
    )


@router.get(
    "/lists/{list}/statements/{n}",
    response_class=Response,
    responses=_note_responses("statement note"),
    summary="Statement n's note",
)
async def get_statement(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    n: Annotated[int, Path_(ge=1, le=MAX_INT)],
) -> Response:
    """Return one statement note."""

    def read() -> str:
        with ctx.db.read() as session:
            return store_versions.statement(session, access.list.id, n)

    note = await run_in_threadpool(read)
    _note_fetch(request, ctx, access, None, "statement")
    return _text(note, cache_control(shared=access.shared, immutable=True))


@router.get(
    "/lists/{list}/snapshot",
    response_class=Response,
    responses=problems(
        401,
        403,
        404,
        410,
        extra={
            200: {
                "content": {"application/octet-stream": {}},
                "description": "sorted raw 32-byte hashes; header Cleanfeed-Version",
            }
        },
    ),
    summary="The sorted raw hashes at a version (latest if omitted)",
)
def get_snapshot(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    version: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> Response:
    """Return the snapshot (no signature: clients check it against the state digest)."""
    with ctx.db.read() as session:
        at = version
        if at is None:
            at = store_versions.current_version(session, access.list.id)
        hashes = store_versions.snapshot(session, access.list.id, at)
    _note_fetch(request, ctx, access, at, "snapshot")
    return Response(
        content=b"".join(hashes),
        media_type="application/octet-stream",
        headers={
            VERSION_HEADER: str(at),
            "Cache-Control": cache_control(shared=access.shared, immutable=version is not None),
        },
    )


def _plaintext_page(db: Database, list_id: int, since: int) -> store_versions.PlaintextPage:
    with db.read() as session:
        return store_versions.plaintext(session, list_id, since=since)


@router.get(
    "/lists/{list}/plaintext",
    response_model=PlaintextOut,
    responses=problems(401, 403, 404),
    summary="Expressions of entries added after version since and still listed",
)
async def get_plaintext(
    request: Request,
    ctx: ContextDep,
    p: OptionalPrincipalDep,
    list_name: ListPath,
    response: Response,
    since: Version = 0,
) -> PlaintextOut:
    """Return expressions for entitled ISP tokens only (``Cache-Control: no-store``).

    Pages end on version boundaries: ``next`` is the ``since`` of the next
    page, like the statements' ``next``.
    """
    if p is None:
        raise ApiProblem("unauthenticated", "plaintext needs an ISP token with the entitlement")
    if p.role != ISP:
        raise ApiProblem("forbidden", "this endpoint needs a token with role isp")
    info = await authorised_list(ctx, p, list_name)
    if not p.plaintext:
        raise ApiProblem("not_entitled", "this token is not entitled to plaintext expressions")
    page = await run_in_threadpool(_plaintext_page, ctx.db, info.id, since)
    response.headers["Cache-Control"] = "no-store"
    _note_fetch(request, ctx, IspAccess(info, p), None, "plaintext")
    return PlaintextOut(
        expressions=[ExpressionOut(hash=b64encode(h), expression=e) for h, e in page.items],
        next=page.next_cursor,
    )


def _proof(
    request: Request,
    ctx: AppContext,
    access: IspAccess,
    response: Response,
    size: int,
    what: str,
    compute: Callable[[store_versions.TreeHashReader], list[bytes]],
) -> ProofOut:
    """Hashes ``compute`` reads from the stored tree, once ``size`` is published.

    Proofs of published sizes never change: shared caches may keep them.
    """
    with ctx.db.read() as session:
        current = store_versions.current_version(session, access.list.id)
        if size > current:
            raise ApiProblem(
                "bad_request", f"{what} {size} exceeds the published tree size {current}"
            )
        hashes = compute(store_versions.TreeHashReader(session, access.list.id))
    response.headers["Cache-Control"] = cache_control(shared=access.shared, immutable=True)
    _note_fetch(request, ctx, access, None, "proof")
    return ProofOut(hashes=[b64encode(h) for h in hashes])


@router.get(
    "/lists/{list}/proofs/inclusion",
    response_model=ProofOut,
    responses=problems(400, 401, 403, 404),
    summary="RFC 9162 inclusion proof of leaf version-1 in the tree of size",
)
def get_inclusion_proof(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    response: Response,
    version: Annotated[int, Query(ge=1, le=MAX_INT)],
    size: Annotated[int, Query(ge=1, le=MAX_INT)],
) -> ProofOut:
    """Return the inclusion proof of statement ``version`` in tree ``size``."""
    if version > size:
        raise ApiProblem("bad_request", f"version {version} is not in a tree of size {size}")
    return _proof(
        request,
        ctx,
        access,
        response,
        size,
        "size",
        lambda reader: merkle.inclusion_proof(version - 1, size, reader),
    )


@router.get(
    "/lists/{list}/proofs/consistency",
    response_model=ProofOut,
    responses=problems(400, 401, 403, 404),
    summary="RFC 9162 consistency proof from tree size from to tree size to",
)
def get_consistency_proof(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    response: Response,
    from_size: Annotated[int, Query(alias="from", ge=0, le=MAX_INT)],
    to_size: Annotated[int, Query(alias="to", ge=0, le=MAX_INT)],
) -> ProofOut:
    """Return the consistency proof between two published tree sizes."""
    if from_size > to_size:
        raise ApiProblem("bad_request", f"from {from_size} exceeds to {to_size}")
    return _proof(
        request,
        ctx,
        access,
        response,
        to_size,
        "to",
        lambda reader: merkle.consistency_proof(from_size, to_size, reader),
    )


@router.get(
    "/lists/{list}/proofs/range",
    response_model=ProofOut,
    responses=problems(400, 401, 403, 404),
    summary="Roots of the maximal perfect subtrees of leaves 0..size-1",
)
def get_range(
    request: Request,
    ctx: ContextDep,
    access: IspAccessDep,
    response: Response,
    size: Annotated[int, Query(ge=0, le=MAX_INT)],
) -> ProofOut:
    """Return the compact range of the tree of ``size`` (left to right)."""
    return _proof(
        request,
        ctx,
        access,
        response,
        size,
        "size",
        lambda reader: merkle.range_hashes(size, reader),
    )
