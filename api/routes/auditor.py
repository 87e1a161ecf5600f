"""Auditor endpoints: bundle export, the audit log, witness cosignatures.

The bundle is the one JSON document of docs/architecture.md ("Bundle"),
streamed from one read transaction so it is internally consistent: the
statements are exactly those of the latest checkpoint's tree. A hash-only
bundle holds no expression; ``?full=true`` adds the audit log, the global
(token) audit chain and the entries (with their expressions) and is served
only to auditor tokens created with ``--full-audit``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import AUDITOR, AuditorDep, AuditReaderDep, ContextDep, authorised_list
from api.context import AppContext, ListInfo
from api.errors import ApiProblem
from api.models.auditor import AuditPageOut, audit_record_out
from api.models.common import MAX_INT
from api.models.witnesses import CosignatureIn, CosignatureOut
from api.routes.common import ListPath, problems
from blocklist.encoding import b64encode
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import versions as store_versions
from blocklist.store.db import is_postgresql

__all__ = [
    "BUNDLE_CHUNK_BYTES",
    "BUNDLE_FORMAT",
    "MAX_AUDIT_PAGE",
    "get_audit_log",
    "get_bundle",
    "post_cosignature",
    "router",
]

router = APIRouter(prefix="/v1", tags=["auditor"])

#: Bundle format identifier (docs/architecture.md).
BUNDLE_FORMAT: Final = "cleanfeed-bundle/v1"

#: Audit records per page of ``GET …/audit/log``.
MAX_AUDIT_PAGE: Final = store_audit.MAX_AUDIT_PAGE

#: Bytes buffered before a bundle chunk is sent.
BUNDLE_CHUNK_BYTES: Final = 64 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_array(items: Iterator[Any]) -> Iterator[str]:
    yield "["
    first = True
    for item in items:
        yield ("" if first else ",") + _dumps(item)
        first = False
    yield "]"


def _bundle_parts(ctx: AppContext, info: ListInfo, full: bool) -> Iterator[str]:
    with ctx.db.read() as session:
        if is_postgresql(session):
            # One snapshot for the whole bundle (SQLite's read transaction
            # already is one).
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        checkpoint = store_versions.get_checkpoint(session, info.id)
        upto = checkpoint.size if checkpoint is not None else 0
        head = {
            "format": BUNDLE_FORMAT,
            "kind": "full" if full else "hash-only",
            "list": info.name,
            "origin": info.origin,
            "approvals_required": info.approvals_required,
        }
        yield _dumps(head)[:-1]

        def keyrings() -> Iterator[str]:
            serial = 1
            while True:
                row = store_versions.get_keyring(session, info.id, serial)
                if row is None:
                    return
                yield row.note
                serial += 1

        def checkpoints() -> Iterator[str]:
            last = None
            for row in store_versions.checkpoint_history(session, info.id):
                if row.size <= upto:
                    last = row.note
                    yield row.note
            if checkpoint is not None and checkpoint.note != last:
                yield checkpoint.note

        yield ',"keyrings":'
        yield from _json_array(keyrings())
        yield ',"statements":'
        yield from _json_array(store_versions.iter_statements(session, info.id, upto))
        yield ',"checkpoints":'
        yield from _json_array(checkpoints())
        if full:

            def records() -> Iterator[dict[str, Any]]:
                since = 0
                while True:
                    page = store_audit.records(session, info.id, since=since)
                    if not page:
                        return
                    for record in page:
                        yield audit_record_out(record).model_dump(mode="json")
                    since = page[-1].seq

            def entries() -> Iterator[dict[str, Any]]:
                for e in store_entries.iter_entries(session, info.id):
                    pruned = e.plaintext_pruned_at is not None
                    yield {
                        "id": e.id,
                        "hash": b64encode(e.hash),
                        # null once retention pruned it (its entry.prune_plaintext
                        # record is in the audit log above)
                        "expression": None if pruned else e.expression,
                        "url": None if pruned else e.url,
                        "scope": e.scope,
                        "reason": e.reason,
                        "reference": e.reference,
                        "category": e.category,
                        "created_by": e.created_by,
                        "created_at": e.created_at.isoformat().replace("+00:00", "Z"),
                        "status": e.status,
                    }

            def global_records() -> Iterator[dict[str, Any]]:
                # The global chain (token management, later accounts): the
                # list's global.head records commit to it (issue 12 item 13),
                # so an offline auditor sees who minted which identity.
                since = 0
                while True:
                    page = store_audit.records(session, None, since=since)
                    if not page:
                        return
                    for record in page:
                        yield audit_record_out(record).model_dump(mode="json")
                    since = page[-1].seq

            yield ',"audit_log":'
            yield from _json_array(records())
            yield ',"global_log":'
            yield from _json_array(global_records())
            yield ',"entries":'
            yield from _json_array(entries())
        yield "}"


def _chunks(parts: Iterator[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for part in parts:
        buffer.append(part)
        size += len(part)
        if size >= BUNDLE_CHUNK_BYTES:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


@router.get(
    "/lists/{list}/audit/bundle",
    response_class=StreamingResponse,
    responses=problems(
        403, 404, extra={200: {"content": {"application/json": {}}, "description": "the bundle"}}
    ),
    summary="Export the audit bundle (hash-only, or full for --full-audit tokens)",
)
async def get_bundle(
    ctx: ContextDep,
    p: AuditorDep,
    list_name: ListPath,
    full: Annotated[bool, Query(description="include audit log and entries")] = False,
) -> StreamingResponse:
    """Stream the bundle of docs/architecture.md for offline verification."""
    info = await authorised_list(ctx, p, list_name)
    if full and not p.full_audit:
        raise ApiProblem("not_entitled", "this token may fetch hash-only bundles only")
    return StreamingResponse(
        _chunks(_bundle_parts(ctx, info, full)),
        media_type="application/json",
        headers={"Cache-Control": "no-store" if full else "private, no-cache"},
    )


@router.get(
    "/lists/{list}/audit/log",
    response_model=AuditPageOut,
    responses=problems(403, 404),
    summary="Audit records after seq since (paged; auditors need --full-audit)",
)
async def get_audit_log(
    ctx: ContextDep,
    p: AuditReaderDep,
    list_name: ListPath,
    since: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
) -> AuditPageOut:
    """Return records ``since + 1 ...`` of the list's hash-chained audit log.

    The records carry free text (reasons, references, categories, analyst
    names, hosting countries): the same entitlement as a full bundle, which
    holds the same log (issue 12, item 10). A hash-only auditor verifies the
    log from statements and checkpoints instead.
    """
    info = await authorised_list(ctx, p, list_name)
    if p.role == AUDITOR and not p.full_audit:
        raise ApiProblem(
            "not_entitled",
            "the audit log holds free text: it needs an auditor token created with "
            "--full-audit (as full bundles do)",
        )

    def work() -> AuditPageOut:
        with ctx.db.read() as session:
            page = store_audit.records(session, info.id, since=since, limit=limit)
            more = bool(page) and bool(
                store_audit.records(session, info.id, since=page[-1].seq, limit=1)
            )
            return AuditPageOut(
                records=[audit_record_out(r) for r in page],
                next=page[-1].seq if more else None,
            )

    return await run_in_threadpool(work)


@router.post(
    "/lists/{list}/checkpoint/cosignatures",
    response_model=CosignatureOut,
    status_code=201,
    responses=problems(400, 403, 404, 503),
    summary="Submit a witness cosignature of the current checkpoint",
)
async def post_cosignature(
    ctx: ContextDep, p: AuditorDep, list_name: ListPath, body: CosignatureIn
) -> CosignatureOut:
    """Verify a witness's c2sp tlog-cosignature line over the current checkpoint; store it.

    ``GET …/checkpoint`` then carries the line while the checkpoint text is
    unchanged (a re-signature with a new timestamp keeps the text).
    """
    info = await authorised_list(ctx, p, list_name)

    def work() -> CosignatureOut:
        with ctx.db.read() as session:
            row = store_versions.get_checkpoint(session, info.id)
            if row is None:
                raise ApiProblem("not_ready", "this list has no signed checkpoint yet")
            note, size = row.note, row.size
        accepted = ctx.witnesses.submit(info.id, note, body.vkey, body.signature, size)
        return CosignatureOut(size=accepted.size, timestamp=accepted.timestamp, line=accepted.line)

    out = await run_in_threadpool(work)
    ctx.checkpoints.invalidate(info.id)
    return out
