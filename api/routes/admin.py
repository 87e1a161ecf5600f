"""Administrator endpoints: tokens, lists, which ISP is on which version.

Token management goes to the deployment audit chain, list creation to the
new list's chain (``blocklist.store``); both in the transaction of the
change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as Path_
from starlette.concurrency import run_in_threadpool

from api.auth import AdminDep, ContextDep, authorised_list
from api.context import AppContext
from api.errors import ApiProblem
from api.lists_admin import create_list_with_keys
from api.models.admin import (
    IspListOut,
    IspStatusOut,
    ListCreatedOut,
    ListCreateIn,
    ListOut,
    RevokeIn,
    TokenCreatedOut,
    TokenCreateIn,
    TokenOut,
    list_out,
    token_out,
)
from api.models.common import MAX_INT
from api.models.witnesses import WitnessIn, WitnessListOut, WitnessOut, witness_out
from api.routes.common import ListPath, problems
from api.witness import register_witness
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store import witnesses as store_witnesses

__all__ = [
    "TokenIdPath",
    "WitnessIdPath",
    "add_witness",
    "create_list",
    "create_token",
    "get_list",
    "list_isps",
    "list_lists",
    "list_tokens",
    "list_witnesses",
    "remove_witness",
    "revoke_token",
    "router",
]

router = APIRouter(prefix="/v1", tags=["admin"])

TokenIdPath = Annotated[int, Path_(ge=1, le=MAX_INT, description="token id")]
WitnessIdPath = Annotated[int, Path_(ge=1, le=MAX_INT, description="witness id")]


@router.post(
    "/tokens",
    response_model=TokenCreatedOut,
    status_code=201,
    responses=problems(403, 404, 409),
    summary="Issue a token (shown once)",
)
async def create_token(ctx: ContextDep, p: AdminDep, body: TokenCreateIn) -> TokenCreatedOut:
    """Create a token; the secret is in this response only, never stored."""

    def work() -> TokenCreatedOut:
        with ctx.db.transaction() as session:
            token, row = store_tokens.create_token(
                session,
                name=body.name,
                role=body.role,
                lists=body.lists,
                plaintext=body.plaintext,
                full_audit=body.full_audit,
                expires_at=body.expires_at,
                actor=p.name,
            )
            return TokenCreatedOut(**token_out(row).model_dump(), token=token)

    return await run_in_threadpool(work)


@router.get(
    "/tokens", response_model=list[TokenOut], responses=problems(403), summary="Every token"
)
async def list_tokens(ctx: ContextDep, p: AdminDep) -> list[TokenOut]:
    """List tokens (revoked and expired included; never their secrets)."""

    def work() -> list[TokenOut]:
        with ctx.db.read() as session:
            return [token_out(row) for row in store_tokens.list_tokens(session)]

    return await run_in_threadpool(work)


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=TokenOut,
    responses=problems(403, 404, 409),
    summary="Revoke a token (effective at once in this process)",
)
async def revoke_token(
    ctx: ContextDep, p: AdminDep, token_id: TokenIdPath, body: RevokeIn | None = None
) -> TokenOut:
    """Revoke a token; other API processes stop accepting it within the cache bound."""

    def work() -> TokenOut:
        with ctx.db.transaction() as session:
            return token_out(store_tokens.revoke_token(session, token_id, actor=p.name))

    out = await run_in_threadpool(work)
    ctx.tokens.evict_token(token_id)
    return out


def _list_out(ctx: AppContext, name: str) -> ListOut:
    with ctx.db.read() as session:
        row = store_lists.get_list(session, name)
        return list_out(row, store_versions.current_version(session, row.id))


@router.post(
    "/lists",
    response_model=ListCreatedOut,
    status_code=201,
    responses=problems(403, 409, 503),
    summary="Create a list with its keys (embedded signer only)",
)
async def create_list(ctx: ContextDep, p: AdminDep, body: ListCreateIn) -> ListCreatedOut:
    """Create a list: keys, keyring serial 1, size-0 checkpoint, canary entry.

    The response carries the new list's root vkey, which its ISPs pin.
    """
    if ctx.signer is None:
        raise ApiProblem(
            "not_ready",
            "this API runs without the signer (--no-signer) and never touches keys: "
            "create lists on the signer host",
        )

    def work() -> ListCreatedOut:
        created = create_list_with_keys(
            ctx.db,
            ctx.settings.keys_dir,
            name=body.name,
            origin=body.origin,
            approvals_required=body.approvals_required,
            home_country=body.home_country,
            canary_url=body.canary,
            public=body.public,
            actor=p.name,
        )
        return ListCreatedOut(**list_out(created.row, 0).model_dump(), root_vkey=created.root_vkey)

    out = await run_in_threadpool(work)
    ctx.lists.clear()
    return out


@router.get("/lists", response_model=list[ListOut], responses=problems(403), summary="Every list")
async def list_lists(ctx: ContextDep, p: AdminDep) -> list[ListOut]:
    """List every list with its latest version."""

    def work() -> list[ListOut]:
        with ctx.db.read() as session:
            return [
                list_out(row, store_versions.current_version(session, row.id))
                for row in store_lists.list_lists(session)
            ]

    return await run_in_threadpool(work)


@router.get(
    "/lists/{list}", response_model=ListOut, responses=problems(403, 404), summary="One list"
)
async def get_list(ctx: ContextDep, p: AdminDep, list_name: ListPath) -> ListOut:
    """Return a list's configuration and latest version."""
    info = await authorised_list(ctx, p, list_name)
    return await run_in_threadpool(_list_out, ctx, info.name)


@router.get(
    "/lists/{list}/isps",
    response_model=IspListOut,
    responses=problems(403, 404),
    summary="Which ISP is on which version",
)
async def list_isps(ctx: ContextDep, p: AdminDep, list_name: ListPath) -> IspListOut:
    """Every ISP token's last fetched version of the list (including unflushed fetches)."""
    info = await authorised_list(ctx, p, list_name)
    pending = ctx.usage.pending_isp_seen()

    def work() -> IspListOut:
        with ctx.db.read() as session:
            current = store_versions.current_version(session, info.id)
            seen = {
                row.token_id: IspStatusOut(
                    token_id=row.token_id, name=row.token_name, version=row.version, at=row.at
                )
                for row in store_versions.isp_versions(session, info.id)
            }
            names = {t.id: t.name for t in store_tokens.list_tokens(session) if t.role == "isp"}
        for (token_id, list_id), (version, at) in pending.items():
            if list_id != info.id or token_id not in names:
                continue
            known = seen.get(token_id)
            if known is None or version >= known.version:
                seen[token_id] = IspStatusOut(
                    token_id=token_id, name=names[token_id], version=version, at=at
                )
        isps = sorted(seen.values(), key=lambda s: (s.name, s.token_id))
        return IspListOut(list=info.name, version=current, isps=isps)

    return await run_in_threadpool(work)


# --- witnesses (issue 12, item 1) ---------------------------------------------


@router.get(
    "/lists/{list}/witnesses",
    response_model=WitnessListOut,
    responses=problems(403, 404),
    summary="The witness keys registered for a list",
)
async def list_witnesses(ctx: ContextDep, p: AdminDep, list_name: ListPath) -> WitnessListOut:
    """Only these keys may post cosignatures of the list's checkpoint."""
    info = await authorised_list(ctx, p, list_name)

    def work() -> WitnessListOut:
        with ctx.db.read() as session:
            rows = store_witnesses.list_witnesses(session, info.id)
            return WitnessListOut(list=info.name, witnesses=[witness_out(r) for r in rows])

    return await run_in_threadpool(work)


@router.post(
    "/lists/{list}/witnesses",
    response_model=WitnessOut,
    status_code=201,
    responses=problems(400, 403, 404, 409, 422),
    summary="Register a witness key for a list (audited)",
)
async def add_witness(
    ctx: ContextDep, p: AdminDep, list_name: ListPath, body: WitnessIn
) -> WitnessOut:
    """Register a witness; its cosignatures are accepted from now on.

    Appends a ``witness.add`` record to the list's audit chain.
    """
    info = await authorised_list(ctx, p, list_name)

    def work() -> WitnessOut:
        with ctx.db.transaction() as session:
            row = register_witness(session, info.id, info.origin, body.vkey, actor=p.name)
            return witness_out(row)

    return await run_in_threadpool(work)


@router.delete(
    "/lists/{list}/witnesses/{witness_id}",
    response_model=WitnessOut,
    responses=problems(403, 404),
    summary="Unregister a witness (audited); its cosignature is no longer served",
)
async def remove_witness(
    ctx: ContextDep, p: AdminDep, list_name: ListPath, witness_id: WitnessIdPath
) -> WitnessOut:
    """Unregister a witness and drop its stored line (``witness.remove`` record)."""
    info = await authorised_list(ctx, p, list_name)

    def work() -> WitnessOut:
        with ctx.db.transaction() as session:
            row = store_witnesses.remove_witness(session, info.id, witness_id, actor=p.name)
            return witness_out(row)

    out = await run_in_threadpool(work)
    ctx.checkpoints.invalidate(info.id)
    return out
