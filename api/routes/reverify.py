"""Re-verification proposals in the analysts' queue (issue 16 item 4).

``GET /v1/lists/{list}/proposals``: entries the re-verification job proposes
for a decision: ``expiry`` (gone for ``k`` consecutive checks; an analyst
accepts it with the normal expiry route, ``POST …/entries/{id}/expire``),
``referral`` (observed hosting in the list's home country) and
``unverified`` (not seen live for ``max_unverified_days``). Only active
entries appear: a decided entry leaves the queue. Entries are named by id;
their URL is on the entry's own page.
"""

from __future__ import annotations

import builtins
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import AnalystOrAdminDep, ContextDep, authorised_list
from api.routes.common import ListPath, problems
from blocklist.store import verification as store_verification

__all__ = ["ProposalOut", "ProposalsOut", "get_proposals", "router"]

router = APIRouter(prefix="/v1", tags=["analyst"])


class ProposalOut(BaseModel):
    """One proposal of the re-verification job."""

    entry: int
    kind: str = Field(description="expiry, referral or unverified")
    since: datetime
    status: str = Field(description="the entry's verification status")
    consecutive_gone: int
    checked_at: datetime | None


class ProposalsOut(BaseModel):
    """A list's re-verification proposals, by entry id."""

    list: str
    proposals: builtins.list[ProposalOut]


@router.get(
    "/lists/{list}/proposals",
    response_model=ProposalsOut,
    responses=problems(403, 404),
    summary="Re-verification proposals waiting for analysts (expiry, referral, unverified)",
)
async def get_proposals(ctx: ContextDep, p: AnalystOrAdminDep, list_name: ListPath) -> ProposalsOut:
    """The list's active entries the re-verification job wants a decision on."""
    info = await authorised_list(ctx, p, list_name)

    def work() -> list[store_verification.Proposal]:
        with ctx.db.read() as session:
            return store_verification.proposals(session, info.id)

    items = await run_in_threadpool(work)
    return ProposalsOut(
        list=info.name,
        proposals=[
            ProposalOut(
                entry=i.entry_id,
                kind=i.kind,
                since=i.since,
                status=i.status,
                consecutive_gone=i.consecutive_gone,
                checked_at=i.checked_at,
            )
            for i in items
        ],
    )
