"""Safeguard endpoints (issue 16): the guard list, guard approvals, referrals.

- ``GET/POST /v1/guards``, ``POST /v1/guards/remove`` (administrators): the
  deployment's guard list, audited in the global chain.
- ``POST /v1/lists/{list}/entries/{id}/guard-approve`` (administrators): the
  approval a guarded entry needs besides four-eyes, with a justification.
- ``GET /v1/lists/{list}/referrals`` (analysts, administrators): the open
  referral proposals; ``POST …/entries/{id}/refer`` (analysts) and
  ``POST …/entries/{id}/refer-override`` (administrators) decide them.

Also the helpers the analyst routes call: :func:`observe_hosting` (DNS
before the write transaction, never inside it) and
:func:`preview_safeguards` (which rules apply, and the blast radius).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.auth import AdminDep, AnalystDep, AnalystOrAdminDep, ContextDep, authorised_list
from api.context import AppContext
from api.models.entries import EntryOut, ReferralsOut, entry_out
from api.models.safeguards import (
    GuardApproveIn,
    GuardHostOut,
    GuardIn,
    GuardListOut,
    GuardRemoveIn,
    ReferIn,
    SafeguardsOut,
)
from api.routes.common import EntryIdPath, ListPath, change_entry, entry_action, problems
from blocklist import canonical, safeguards
from blocklist.errors import BlocklistError
from blocklist.safeguards import HostingEvidence
from blocklist.store import guards as store_guards
from blocklist.store.models import GuardedHostRow
from blocklist.store.submissions import BulkRow

__all__ = [
    "BULK_RESOLVE_WORKERS",
    "MAX_BULK_RESOLVE_HOSTS",
    "add_guard",
    "bulk_hosting",
    "guard_approve",
    "list_guards",
    "list_referrals",
    "observe_hosting",
    "override_referral",
    "preview_safeguards",
    "refer_entry",
    "remove_guard",
    "router",
]

router = APIRouter(prefix="/v1", tags=["safeguards"])

#: Most distinct hosts one bulk add resolves: with the resolver's timeout
#: this bounds how long a batch can wait on DNS (256 hosts, 8 at a time,
#: 3 s each at worst: about 100 s); the rest are re-verified later.
MAX_BULK_RESOLVE_HOSTS: Final = 256

#: Concurrent lookups of one bulk add (a modest load on the resolver).
BULK_RESOLVE_WORKERS: Final = 8


def _guard_out(row: GuardedHostRow) -> GuardHostOut:
    return GuardHostOut(
        host=row.host, note=row.note, created_by=row.created_by, created_at=row.created_at
    )


async def observe_hosting(ctx: AppContext, url: str, scope: str) -> HostingEvidence | None:
    """Resolve and locate the host of an entry URL, or None when resolution is off.

    Runs in a worker thread, outside any transaction (a slow resolver holds
    no lock). A URL that does not canonicalise yields None: the store
    refuses it with the specific error.
    """
    locator = ctx.hosting
    if locator is None:
        return None
    try:
        host, _ = canonical.split_expression(canonical.expression(url, scope))
    except BlocklistError:
        return None
    return await run_in_threadpool(locator.observe, host)


def bulk_hosting(ctx: AppContext, rows: Sequence[BulkRow]) -> dict[str, HostingEvidence] | None:
    """Resolve the distinct hosts of a bulk add, :data:`BULK_RESOLVE_WORKERS` at a time.

    Called in a worker thread before the transaction. At most
    :data:`MAX_BULK_RESOLVE_HOSTS` hosts are resolved per call; the others
    get "unverified" evidence (``bulk_cap``), so a batch never waits on
    thousands of lookups and re-verification checks them later. None when
    resolution is off.
    """
    locator = ctx.hosting
    if locator is None:
        return None
    hosts: list[str] = []
    for row in rows:
        try:
            host, _ = canonical.split_expression(canonical.expression(row.url, row.scope))
        except BlocklistError:
            continue
        if host not in hosts:
            hosts.append(host)
    resolved = hosts[:MAX_BULK_RESOLVE_HOSTS]
    out: dict[str, HostingEvidence] = {}
    with ThreadPoolExecutor(max_workers=BULK_RESOLVE_WORKERS) as pool:
        for host, evidence in zip(resolved, pool.map(locator.observe, resolved), strict=True):
            out[host] = evidence
    for host in hosts[MAX_BULK_RESOLVE_HOSTS:]:
        out[host] = HostingEvidence(
            verified=False,
            database=locator.countries.name,
            resolver=locator.resolver.label,
            error="bulk_cap",
        )
    return out


def preview_safeguards(ctx: AppContext, list_id: int, expression: str, scope: str) -> SafeguardsOut:
    """Which safeguard rules apply to an expression, and how many listed entries it covers."""
    host, _ = canonical.split_expression(expression)
    rules = []
    suffix = safeguards.is_public_suffix(host)
    if suffix:
        rules.append(f"public suffix: refused, since {safeguards.PUBLIC_SUFFIX_RULE}")
    with ctx.db.read() as session:
        guard = store_guards.guard_for(session, host, scope)
        count, capped = store_guards.count_subsumed(session, list_id, expression)
    if guard is not None:
        rules.append(f"guarded: {safeguards.guard_explanation(guard)}")
    return SafeguardsOut(
        public_suffix=suffix, rules=rules, guard=guard, subsumes=count, subsumes_capped=capped
    )


# --- the guard list (administrators) -------------------------------------------


@router.get(
    "/guards",
    response_model=GuardListOut,
    responses=problems(403),
    summary="The guard list (high-collateral hosts)",
)
async def list_guards(ctx: ContextDep, p: AdminDep) -> GuardListOut:
    """Every guarded host, by name."""

    def work() -> GuardListOut:
        with ctx.db.read() as session:
            return GuardListOut(guards=[_guard_out(r) for r in store_guards.list_guards(session)])

    return await run_in_threadpool(work)


@router.post(
    "/guards",
    response_model=GuardHostOut,
    status_code=201,
    responses=problems(403, 409),
    summary="Guard a host (audited as guard.add)",
)
async def add_guard(ctx: ContextDep, p: AdminDep, body: GuardIn) -> GuardHostOut:
    """Guard a host: host and prefix entries on it or its subdomains need a guard approval."""

    def work() -> GuardHostOut:
        with ctx.db.transaction() as session:
            row = store_guards.add_guard(session, body.host, actor=p.name, note=body.note)
            return _guard_out(row)

    return await run_in_threadpool(work)


@router.post(
    "/guards/remove",
    status_code=204,
    responses=problems(403, 404),
    summary="Lift the guard on a host (audited as guard.remove, with the reason)",
)
async def remove_guard(ctx: ContextDep, p: AdminDep, body: GuardRemoveIn) -> None:
    """Lift a guard; entries added under it keep their guard rule."""

    def work() -> None:
        with ctx.db.transaction() as session:
            store_guards.remove_guard(session, body.host, actor=p.name, reason=body.reason)

    await run_in_threadpool(work)


# --- entries -------------------------------------------------------------------


@entry_action(
    router,
    "guard-approve",
    "Approve a guarded entry (an administrator who neither added nor approved it)",
)
async def guard_approve(
    ctx: ContextDep, p: AdminDep, list_name: ListPath, entry_id: EntryIdPath, body: GuardApproveIn
) -> EntryOut:
    """Record the guard approval with its written justification (``entry.guard_approve``)."""
    return await change_entry(
        ctx,
        p,
        list_name,
        lambda session, list_id: store_guards.guard_approve(
            session,
            list_id,
            entry_id,
            actor=p.name,
            actor_role=p.role,
            justification=body.justification,
            person=p.account_id,
        ),
    )


@router.get(
    "/lists/{list}/referrals",
    response_model=ReferralsOut,
    responses=problems(403, 404),
    summary="Entries proposed for referral (observed home-country hosting)",
)
async def list_referrals(
    ctx: ContextDep, p: AnalystOrAdminDep, list_name: ListPath
) -> ReferralsOut:
    """The open referral proposals: refer them, or an administrator overrides."""
    info = await authorised_list(ctx, p, list_name)

    def work() -> ReferralsOut:
        with ctx.db.read() as session:
            rows = store_guards.referrals(session, info.id)
            return ReferralsOut(entries=[entry_out(r, info.name) for r in rows])

    return await run_in_threadpool(work)


@entry_action(
    router, "refer", "Refer an entry to takedown and the police (state referred, never listed)"
)
async def refer_entry(
    ctx: ContextDep, p: AnalystDep, list_name: ListPath, entry_id: EntryIdPath, body: ReferIn
) -> EntryOut:
    """One analyst suffices: referring only ever keeps material off the list."""
    return await change_entry(
        ctx,
        p,
        list_name,
        lambda session, list_id: store_guards.refer(
            session, list_id, entry_id, actor=p.name, actor_role=p.role, reason=body.reason
        ),
    )


@entry_action(
    router, "refer-override", "Override a referral proposal (administrators, with a reason)"
)
async def override_referral(
    ctx: ContextDep, p: AdminDep, list_name: ListPath, entry_id: EntryIdPath, body: ReferIn
) -> EntryOut:
    """The entry goes on through four-eyes (and its guard approval) as usual."""
    return await change_entry(
        ctx,
        p,
        list_name,
        lambda session, list_id: store_guards.override_referral(
            session, list_id, entry_id, actor=p.name, actor_role=p.role, reason=body.reason
        ),
    )
