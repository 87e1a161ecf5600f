"""Analyst endpoints: add (with a reach preview), bulk add, approve, expire,
reinstate, search, get with history, and publish now.

Every write is one store transaction: the change and its audit record commit
together or not at all (DESIGN.md, "Accountability"), so a refused request
leaves the database as it was. The audit actor is the token's name.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as Path_
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import AnalystDep, AnalystOrAdminDep, ContextDep, authorised_list
from api.context import AppContext, ListInfo
from api.errors import ApiProblem
from api.models.auditor import audit_record_out
from api.models.common import MAX_INT
from api.models.entries import (
    ApproveIn,
    ApproveManyIn,
    ApproveManyOut,
    BulkIn,
    BulkOut,
    EntryHistoryOut,
    EntryIn,
    EntryOut,
    EntryPageOut,
    ExpireIn,
    PreviewIn,
    PreviewOut,
    PublishIn,
    PublishOut,
    RefusalOut,
    ReinstateIn,
    SearchIn,
    approval_out,
    approve_many_out,
    bulk_out,
    entry_out,
    reach_out,
    verification_out,
)
from api.routes.common import EntryIdPath, ListPath, change_entry, entry_action, problems
from api.routes.safeguards import bulk_hosting, observe_hosting, preview_safeguards
from blocklist import canonical
from blocklist.encoding import b64decode, hash_from_hex
from blocklist.entries import plan_entry, reach
from blocklist.errors import BlocklistError, FormatError, InvalidHost, InvalidURL
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import search as store_search
from blocklist.store import verification as store_verification
from blocklist.store import versions as store_versions
from blocklist.store.errors import BulkRejected, LimitExceeded
from blocklist.store.imports import BULK_ADDED, BULK_FAILED, BULK_SKIPPED, BulkResult, BulkRow
from blocklist.store.tokens import Principal

__all__ = [
    "CSV_COLUMNS",
    "CSV_REQUIRED",
    "PUBLISH_POLL_SECONDS",
    "AllOrNothing",
    "ImportQuery",
    "add_entry",
    "approve_entries",
    "approve_entry",
    "bulk_add",
    "bulk_add_csv",
    "expire_entry",
    "get_entry",
    "list_entries_hint",
    "parse_csv",
    "preview_entry",
    "publish",
    "publish_request",
    "reinstate_entry",
    "router",
    "search_entries",
]

router = APIRouter(prefix="/v1", tags=["analyst"])

#: CSV columns of a bulk upload; ``url``, ``scope`` and ``reason`` are required.
CSV_COLUMNS: Final = (
    "url",
    "scope",
    "reason",
    "reference",
    "category",
    "hosting_country",
    "expires_at",
)
CSV_REQUIRED: Final = frozenset({"url", "scope", "reason"})

#: Seconds between checks while waiting for an external signer's version.
PUBLISH_POLL_SECONDS: Final = 0.2


async def _list_for(ctx: AppContext, p: Principal, name: str) -> ListInfo:
    return await authorised_list(ctx, p, name)


def _entry_kwargs(item: EntryIn) -> dict[str, Any]:
    return {
        "url": item.url,
        "scope": item.scope,
        "reason": item.reason,
        "reference": item.reference,
        "category": item.category,
        "hosting_country": item.hosting_country,
        "expires_at": item.expires_at,
    }


@router.post(
    "/lists/{list}/entries",
    response_model=EntryOut,
    status_code=201,
    responses=problems(
        403,
        404,
        413,
        extra={200: {"model": EntryOut, "description": "The expression is already listed"}},
    ),
    summary="Add a URL (201), or get the existing entry of its expression (200)",
)
async def add_entry(ctx: ContextDep, p: AnalystDep, list_name: ListPath, body: EntryIn) -> Response:
    """Add one entry as pending; it needs the list's approvals before it is published."""
    info = await _list_for(ctx, p, list_name)
    # Hosting evidence (issue 16 item 3), resolved before the transaction.
    hosting = await observe_hosting(ctx, body.url, body.scope)

    def work() -> tuple[EntryOut, bool]:
        with ctx.db.transaction() as session:
            row, created = store_entries.add_entry(
                session,
                info.id,
                actor=p.name,
                person=p.account_id,
                hosting=hosting,
                **_entry_kwargs(body),
            )
            return entry_out(row, info.name), created

    out, created = await run_in_threadpool(work)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@router.post(
    "/lists/{list}/entries/preview",
    response_model=PreviewOut,
    responses=problems(403, 404),
    summary="Show what a URL would block before adding it",
)
async def preview_entry(
    ctx: ContextDep, p: AnalystDep, list_name: ListPath, body: PreviewIn
) -> PreviewOut:
    """Return the reach of the URL's expression at the requested scope and the verdict.

    Nothing is stored. A refused entry still shows the reach of the
    expression its URL really has, with the reason it would be refused
    (for a page URL with scope ``host``, the host entry it would become);
    a URL that is not absolute, whose host is ambiguous or no valid host
    shows no reach (``reach: null``).
    """
    info = await _list_for(ctx, p, list_name)
    try:
        planned = plan_entry(
            body.url,
            body.scope,
            hosting_country=body.hosting_country,
            home_country=info.home_country,
        )
        return PreviewOut(
            accepted=True,
            requested_scope=body.scope,
            reach=reach_out(planned.reach, planned.hash),
            refusal=None,
            safeguards=await run_in_threadpool(
                preview_safeguards, ctx, info.id, planned.expression, planned.scope
            ),
        )
    except BlocklistError as refusal:
        shown = None
        rules = None
        # A URL refused as such (not absolute, an ambiguous host) or a host
        # that is no host name has no reach worth showing: its expression
        # would name a host the browser does not visit (issue 12, items 15
        # and 16). Scope refusals show the reach the expression really has
        # (for a page URL with scope host, the host entry it would become).
        if not isinstance(refusal, InvalidURL | InvalidHost):
            try:
                expr = canonical.expression(body.url, body.scope)
                shown = reach_out(reach(expr), canonical.expression_hash(expr))
                rules = await run_in_threadpool(preview_safeguards, ctx, info.id, expr, shown.scope)
            except BlocklistError:
                shown = None
        return PreviewOut(
            accepted=False,
            requested_scope=body.scope,
            reach=shown,
            refusal=RefusalOut(code=refusal.code, detail=str(refusal)),
            safeguards=rules,
        )


def _bulk(
    ctx: AppContext,
    info: ListInfo,
    actor: str,
    rows: list[BulkRow | BulkResult],
    all_or_nothing: bool,
    import_id: int | None = None,
    person: int | None = None,
) -> BulkOut:
    """Run a bulk add where some rows already failed to parse (BulkResult).

    The batch joins import ``import_id`` or, without one, opens a new import
    when it adds anything; the answer names the import either way.
    """
    parsed: list[tuple[int, BulkRow]] = [
        (i, r) for i, r in enumerate(rows) if isinstance(r, BulkRow)
    ]
    failed = {i: r for i, r in enumerate(rows) if isinstance(r, BulkResult)}
    if all_or_nothing and failed:
        results = [
            failed.get(i) or BulkResult(index=i, status=BULK_SKIPPED) for i in range(len(rows))
        ]
        raise BulkRejected("bulk add rejected: some rows failed, nothing was added", results)
    hosting = bulk_hosting(ctx, [r for _, r in parsed])
    try:
        with ctx.db.transaction() as session:
            new_import = None
            if import_id is None:
                new_import = store_imports.create_import(session, info.id, actor=actor)
                import_id = new_import.id
            store_results = store_imports.bulk_add(
                session,
                info.id,
                [r for _, r in parsed],
                actor=actor,
                all_or_nothing=all_or_nothing,
                import_id=import_id,
                person=person,
                hosting=hosting,
            )
            if new_import is not None and not any(r.status == BULK_ADDED for r in store_results):
                # Nothing added: no empty import is left behind.
                session.delete(new_import)
                import_id = None
    except BulkRejected as e:
        raise BulkRejected(str(e), _merge(len(rows), parsed, e.results, failed)) from e
    return bulk_out(_merge(len(rows), parsed, store_results, failed), import_id)


def _merge(
    total: int,
    parsed: list[tuple[int, BulkRow]],
    store_results: list[BulkResult],
    failed: dict[int, BulkResult],
) -> list[BulkResult]:
    """Re-number the store's results (over parsed rows) to the request's rows."""
    out: list[BulkResult] = [BulkResult(index=i, status=BULK_FAILED) for i in range(total)]
    for i, r in failed.items():
        out[i] = r
    for result in store_results:
        original = parsed[result.index][0]
        out[original] = BulkResult(
            index=original,
            status=result.status,
            entry_id=result.entry_id,
            hash=result.hash,
            code=result.code,
            message=result.message,
        )
    return out


def _bulk_row(item: EntryIn) -> BulkRow:
    return BulkRow(**_entry_kwargs(item))


AllOrNothing = Annotated[
    bool, Query(description="refuse the whole batch (nothing stored) if any row fails")
]
ImportQuery = Annotated[
    int | None,
    Query(
        alias="import",
        ge=1,
        le=MAX_INT,
        description="add this batch to an import you started (the import of an earlier "
        "batch's answer); without it, a batch that adds entries starts a new import",
    ),
]


@router.post(
    "/lists/{list}/entries/bulk",
    response_model=BulkOut,
    responses=problems(403, 404, 413),
    summary="Add many URLs (JSON array) with a result per row",
)
async def bulk_add(
    ctx: ContextDep,
    p: AnalystDep,
    list_name: ListPath,
    body: Annotated[BulkIn, Body()],
    all_or_nothing: AllOrNothing = False,
    import_id: ImportQuery = None,
) -> BulkOut:
    """Add each row as :func:`add_entry` would: ``added``, ``existing`` or ``failed``.

    With ``all_or_nothing=true`` a failing row rejects the batch with 422
    ``bulk_rejected`` (per-row results in ``results``) and nothing is stored.
    The answer's ``import`` groups the added entries for bulk approval.
    """
    info = await _list_for(ctx, p, list_name)
    rows: list[BulkRow | BulkResult] = [_bulk_row(item) for item in body]
    return await run_in_threadpool(
        _bulk, ctx, info, p.name, rows, all_or_nothing, import_id, p.account_id
    )


def parse_csv(data: bytes) -> list[BulkRow | BulkResult]:
    """Parse a CSV upload (header row required) into rows or per-row failures.

    Raises:
        ApiProblem: 422 for undecodable text, a missing or unknown column, or
            more rows than a bulk add takes.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ApiProblem("validation_error", "the CSV upload must be UTF-8") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ApiProblem("validation_error", "the CSV upload is empty") from None
    except csv.Error as e:
        raise ApiProblem("validation_error", f"CSV: {e}") from e
    columns = [c.strip().lower() for c in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown or len(set(columns)) != len(columns):
        # Mass assignment: an unknown column is refused, not ignored.
        raise ApiProblem(
            "validation_error",
            f"CSV columns must be among {', '.join(CSV_COLUMNS)} without repeats",
        )
    missing = CSV_REQUIRED - set(columns)
    if missing:
        raise ApiProblem("validation_error", f"CSV lacks column(s) {', '.join(sorted(missing))}")
    rows: list[BulkRow | BulkResult] = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank line
            if len(rows) >= store_imports.MAX_BULK_ROWS:
                raise LimitExceeded(f"at most {store_imports.MAX_BULK_ROWS} rows per bulk add")
            index = len(rows)
            if len(record) != len(columns):
                rows.append(
                    BulkResult(
                        index=index,
                        status=BULK_FAILED,
                        code="validation_error",
                        message=f"expected {len(columns)} fields, got {len(record)}",
                    )
                )
                continue
            fields = {c: (v if v != "" else None) for c, v in zip(columns, record, strict=True)}
            try:
                rows.append(_bulk_row(EntryIn.model_validate(fields)))
            except ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                rows.append(
                    BulkResult(
                        index=index,
                        status=BULK_FAILED,
                        code="validation_error",
                        message=f"{where}: {first['msg']}",
                    )
                )
    except csv.Error as e:
        raise ApiProblem("validation_error", f"CSV: {e}") from e
    if not rows:
        raise ApiProblem("validation_error", "the CSV upload has no rows")
    return rows


@router.post(
    "/lists/{list}/entries/bulk.csv",
    response_model=BulkOut,
    responses=problems(403, 404, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "url,scope,reason,reference\n"
                    "http://203.0.113.7/a/b.html,page,CSAM report,case-17\n",
                }
            },
        }
    },
    summary="Add many URLs from a CSV upload (header row: url,scope,reason,...)",
)
async def bulk_add_csv(
    request: Request,
    ctx: ContextDep,
    p: AnalystDep,
    list_name: ListPath,
    all_or_nothing: AllOrNothing = False,
    import_id: ImportQuery = None,
) -> BulkOut:
    """Add the CSV's rows; same results, all-or-nothing rule and import as the JSON bulk add."""
    info = await _list_for(ctx, p, list_name)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "text/csv":
        raise ApiProblem("unsupported_media_type", "send the CSV with Content-Type: text/csv")
    rows = parse_csv(await request.body())
    return await run_in_threadpool(
        _bulk, ctx, info, p.name, rows, all_or_nothing, import_id, p.account_id
    )


@router.post(
    "/lists/{list}/entries/approve",
    response_model=ApproveManyOut,
    responses=problems(403, 404),
    summary='Approve many entries: {"ids": [...]} or {"import": id}, a result per entry',
)
async def approve_entries(
    ctx: ContextDep, p: AnalystOrAdminDep, list_name: ListPath, body: ApproveManyIn
) -> ApproveManyOut:
    """Approve up to 10,000 entries in one transaction, each judged on its own.

    Four-eyes applies per entry: an entry the caller added or reinstated is
    refused (``self_approval``) and the others are approved; each refused
    entry carries the problem code the single approval would have answered.
    ``{"import": id}`` approves the entries that import added, 10,000 per
    call: repeat with ``cursor`` set to the answer's ``next`` until it is
    null. Administrators are told (403 ``admin_cannot_approve``) that
    four-eyes counts analysts.
    """
    info = await _list_for(ctx, p, list_name)

    def work() -> ApproveManyOut:
        with ctx.db.transaction() as session:
            next_cursor = None
            if body.import_id is not None:
                page = store_imports.import_entries(
                    session,
                    info.id,
                    body.import_id,
                    cursor=body.cursor,
                    limit=store_imports.MAX_APPROVE_ROWS,
                )
                ids = page.entry_ids
                next_cursor = page.next_cursor
            else:
                assert body.ids is not None  # the model requires one of the two
                ids = body.ids
            results = store_imports.approve_many(
                session, info.id, ids, actor=p.name, actor_role=p.role, person=p.account_id
            )
            return approve_many_out(results, import_id=body.import_id, next_cursor=next_cursor)

    return await run_in_threadpool(work)


@router.get("/lists/{list}/entries", include_in_schema=False)
async def list_entries_hint(list_name: ListPath) -> Response:
    """Point a ``GET …/entries`` at search instead of answering a bare 405.

    Listing is a search with filters in a POST body, so URLs never land in
    access logs (DESIGN.md, "API shape").

    Raises:
        ApiProblem: always, 405 ``method_not_allowed`` naming the search route.
    """
    search = f"/v1/lists/{list_name}/entries/search"
    raise ApiProblem(
        "method_not_allowed",
        f"entries are listed by searching: POST {search} with filters in a JSON body "
        '(e.g. {"status": "pending"}; {} lists every entry, 50 per page, "next" is the '
        "cursor of the next page); GET /v1/lists/" + list_name + "/entries/{id} shows one "
        "entry; `cleanfeed entries search` does the same from a shell",
        headers={"Allow": "POST"},
        extensions={"search": search},
    )


def _parse_hash(text: str) -> bytes:
    try:
        if len(text) == 64:
            return hash_from_hex(text)
        return b64decode(text, length=32, what="hash")
    except FormatError as e:
        raise ApiProblem("validation_error", f"hash: {e}") from e


@router.post(
    "/lists/{list}/entries/search",
    response_model=EntryPageOut,
    responses=problems(403, 404),
    summary="Search entries (filters in the body, so URLs stay out of logs)",
)
async def search_entries(
    ctx: ContextDep, p: AnalystDep, list_name: ListPath, body: SearchIn
) -> EntryPageOut:
    """Return a page of entries matching every given filter, ordered by id."""
    info = await _list_for(ctx, p, list_name)
    digest = _parse_hash(body.hash) if body.hash is not None else None

    def work() -> EntryPageOut:
        with ctx.db.read() as session:
            page = store_search.search(
                session,
                info.id,
                url=body.url,
                host=body.host,
                hash=digest,
                status=body.status,
                reference=body.reference,
                cursor=body.cursor,
                limit=body.limit,
            )
            return EntryPageOut(
                entries=[entry_out(e, info.name) for e in page.items], next=page.next_cursor
            )

    return await run_in_threadpool(work)


@router.get(
    "/lists/{list}/entries/{entry_id}",
    response_model=EntryHistoryOut,
    responses=problems(403, 404),
    summary="An entry with its approvals and full history",
)
async def get_entry(
    ctx: ContextDep, p: AnalystDep, list_name: ListPath, entry_id: EntryIdPath
) -> EntryHistoryOut:
    """Return the entry, every approval and every audit record naming it."""
    info = await _list_for(ctx, p, list_name)

    def work() -> EntryHistoryOut:
        with ctx.db.read() as session:
            history = store_search.get_entry_with_history(session, info.id, entry_id)
            base = entry_out(history.entry, info.name)
            # Re-verification state (issue 16 item 4); the canary is never checked.
            state = store_verification.entry_state(session, info.id, entry_id)
            verification = verification_out(state) if state is not None else None
            return EntryHistoryOut(
                **base.model_dump(),
                approvals=[approval_out(a) for a in history.approvals],
                history=[audit_record_out(r) for r in history.records],
                verification=verification,
            )

    return await run_in_threadpool(work)


@entry_action(router, "approve", "Approve a colleague's entry (four-eyes)")
async def approve_entry(
    ctx: ContextDep,
    p: AnalystOrAdminDep,
    list_name: ListPath,
    entry_id: EntryIdPath,
    body: ApproveIn | None = None,
) -> EntryOut:
    """Record an approval; the entry becomes active with enough distinct analysts.

    Administrators reach this endpoint only to be told (403
    ``admin_cannot_approve``) that four-eyes counts analysts.
    """
    return await change_entry(
        ctx,
        p,
        list_name,
        lambda session, list_id: store_entries.approve(
            session, list_id, entry_id, actor=p.name, actor_role=p.role, person=p.account_id
        ),
    )


@entry_action(router, "expire", 'Take an entry off now ({}) or at a time ({"at": ...})')
async def expire_entry(
    ctx: ContextDep,
    p: AnalystDep,
    list_name: ListPath,
    entry_id: EntryIdPath,
    body: ExpireIn | None = None,
) -> EntryOut:
    """Expire an entry; one analyst suffices (a wrong block must come off fast)."""
    request = body or ExpireIn()
    return await change_entry(
        ctx,
        p,
        list_name,
        lambda session, list_id: store_entries.expire(
            session,
            list_id,
            entry_id,
            actor=p.name,
            reason=request.reason,
            at=request.at,
            person=p.account_id,
        ),
    )


@entry_action(router, "reinstate", "Bring an expired entry back (needs fresh approvals)")
async def reinstate_entry(
    ctx: ContextDep,
    p: AnalystDep,
    list_name: ListPath,
    entry_id: EntryIdPath,
    body: ReinstateIn | None = None,
) -> EntryOut:
    """Reinstate an entry as pending; the reinstating analyst cannot approve it."""
    request = body or ReinstateIn()
    return await change_entry(
        ctx,
        p,
        list_name,
        lambda session, list_id: store_entries.reinstate(
            session, list_id, entry_id, actor=p.name, reason=request.reason, person=p.account_id
        ),
    )


# --- publish ---------------------------------------------------------------


def _current_version(ctx: AppContext, list_id: int) -> tuple[int, int | None]:
    with ctx.db.read() as session:
        row = store_versions.latest_version(session, list_id)
        return (row.version, row.count) if row is not None else (0, 0)


def _request_state(ctx: AppContext, list_id: int, request_id: int) -> int | None:
    """The version that served a publish request, None while it is open."""
    with ctx.db.read() as session:
        return store_versions.publish_request_version(session, list_id, request_id)


@router.post(
    "/lists/{list}/publish",
    response_model=PublishOut,
    responses=problems(
        403,
        404,
        503,
        extra={202: {"model": PublishOut, "description": "Queued; poll the Location"}},
    ),
    summary="Cut a version from everything approved now",
)
async def publish(
    ctx: ContextDep,
    p: AnalystOrAdminDep,
    list_name: ListPath,
    body: PublishIn | None = None,
) -> Response:
    """Publish now: ``{"version": N, ...}``, N unchanged when nothing was pending.

    With the embedded signer the version is cut in this call. With
    ``--no-signer`` a publish request is recorded for the signer process; the
    call waits for it up to ``publish_wait_timeout`` seconds and otherwise
    answers 202 with a ``Location`` to poll.
    """
    info = await _list_for(ctx, p, list_name)
    if ctx.signer is not None:
        signer = ctx.signer
        result = await run_in_threadpool(signer.publish_now, info.name)
        ctx.checkpoints.invalidate(info.id)
        _, count = await run_in_threadpool(_current_version, ctx, info.id)
        ctx.metrics.publishes.labels("published" if result.versions else "nothing").inc()
        out = PublishOut(
            version=result.version_after,
            published=bool(result.versions),
            versions=list(result.versions),
            count=count,
        )
        return JSONResponse(out.model_dump(mode="json"))

    def record() -> int:
        with ctx.db.transaction() as session:
            return store_versions.request_publish(session, info.id, actor=p.name).id

    request_id = await run_in_threadpool(record)
    before, _ = await run_in_threadpool(_current_version, ctx, info.id)
    deadline = time.monotonic() + ctx.settings.publish_wait_timeout
    while True:
        done = await run_in_threadpool(_request_state, ctx, info.id, request_id)
        if done is not None:
            ctx.checkpoints.invalidate(info.id)
            _, count = await run_in_threadpool(_current_version, ctx, info.id)
            ctx.metrics.publishes.labels("published" if done > before else "nothing").inc()
            out = PublishOut(
                version=done,
                published=done > before,
                versions=list(range(before + 1, done + 1)),
                count=count,
                request=request_id,
            )
            return JSONResponse(out.model_dump(mode="json"))
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(PUBLISH_POLL_SECONDS)
    ctx.metrics.publishes.labels("queued").inc()
    out = PublishOut(version=before, published=False, versions=[], pending=True, request=request_id)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/lists/{info.name}/publish/requests/{request_id}"},
    )


@router.get(
    "/lists/{list}/publish/requests/{request_id}",
    response_model=PublishOut,
    responses=problems(403, 404),
    summary="State of a queued publish request (--no-signer)",
)
async def publish_request(
    ctx: ContextDep,
    p: AnalystOrAdminDep,
    list_name: ListPath,
    request_id: Annotated[int, Path_(ge=1, le=MAX_INT)],
) -> PublishOut:
    """Return the version that served the request, or ``pending: true``."""
    info = await _list_for(ctx, p, list_name)
    done = await run_in_threadpool(_request_state, ctx, info.id, request_id)
    version, count = await run_in_threadpool(_current_version, ctx, info.id)
    if done is None:
        return PublishOut(
            version=version, published=False, versions=[], pending=True, request=request_id
        )
    # "published" describes a publish call; a poll reports only the version.
    return PublishOut(version=done, published=False, versions=[], count=count, request=request_id)
