"""Hit counts: ISPs post a completed week's counts; the hotline reads totals.

DESIGN.md part 2, "Enforcement at the ISP", hit counts (issue 18 item 5):

- ``POST /v1/lists/{list}/hits`` (ISP token of the list): ``{"week":
  "YYYY-Www", "counts": [{"block_ref", "count"}]}``, at most
  :data:`~blocklist.store.hits.MAX_HITS_PER_POST` rows. Idempotent per ISP
  token and week: a re-post *replaces* the earlier one (a retry after a
  lost answer must not count twice). Refused as a whole, changing nothing:
  a week not over, a count below the server's k
  (``CLEANFEED_HITS_MIN_COUNT``), a reference naming no published entry.
  The canary's reference is dropped, never stored.
- ``GET /v1/lists/{list}/hits?week=YYYY-Www`` (analyst or admin): totals
  per entry across every ISP, most hit first, to prioritise
  re-verification. Never per ISP: no token, name or per-ISP figure is in
  the answer, only how many ISPs posted that week.
"""

from __future__ import annotations

import builtins
from typing import Annotated, Final

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import AnalystOrAdminDep, ContextDep, IspDep, authorised_list
from api.routes.common import ListPath, problems
from blocklist.blockref import BLOCK_REF_LENGTH
from blocklist.store import hits as store_hits

__all__ = [
    "WEEK_PATTERN",
    "EntryHitsOut",
    "HitCountIn",
    "HitsIn",
    "HitsOut",
    "HitsPostOut",
    "get_hits",
    "post_hits",
    "router",
]

router = APIRouter(prefix="/v1", tags=["hits"])

#: ``YYYY-Www`` (ISO 8601 week date, week precision).
WEEK_PATTERN: Final = r"^[0-9]{4}-W[0-9]{2}$"


class HitCountIn(BaseModel):
    """One reference's hits in the week."""

    model_config = ConfigDict(extra="forbid", strict=True)

    block_ref: str = Field(
        min_length=1,
        max_length=BLOCK_REF_LENGTH + 8,
        description="the block reference the block page showed",
        examples=["CF1-OPMY-NYAJ-AZPR-QLAQ-3"],
    )
    count: int = Field(ge=1, le=store_hits.MAX_HIT_COUNT, description="hits in the week")


class HitsIn(BaseModel):
    """One ISP's counts of one completed ISO week."""

    model_config = ConfigDict(extra="forbid", strict=True)

    week: str = Field(pattern=WEEK_PATTERN, description="ISO week", examples=["2026-W49"])
    counts: list[HitCountIn] = Field(max_length=store_hits.MAX_HITS_PER_POST)


class HitsPostOut(BaseModel):
    """What was stored."""

    list: str
    week: str
    entries: int = Field(description="entries counted")
    total: int = Field(description="hits stored, summed")
    replaced: bool = Field(description="an earlier post of this week by this ISP was replaced")
    dropped_canary: int = Field(description="references to the canary, never counted")


class EntryHitsOut(BaseModel):
    """One entry's hits in the week, summed across ISPs."""

    entry: int
    block_ref: str
    count: int


class HitsOut(BaseModel):
    """Totals of one week across ISPs, most hit first."""

    list: str
    week: str
    isps: int = Field(description="how many ISPs posted counts for this week")
    entries: builtins.list[EntryHitsOut]


@router.post(
    "/lists/{list}/hits",
    response_model=HitsPostOut,
    responses=problems(403, 404, 413),
    summary="Post a completed week's block-page hit counts (ISP; replaces a re-post)",
)
async def post_hits(ctx: ContextDep, p: IspDep, list_name: ListPath, body: HitsIn) -> HitsPostOut:
    """Store the counts of one completed week for this ISP token (all or nothing)."""
    info = await authorised_list(ctx, p, list_name)
    counts = [(c.block_ref, c.count) for c in body.counts]

    def work() -> store_hits.RecordedHits:
        with ctx.db.transaction() as session:
            return store_hits.record_hits(
                session,
                info.id,
                token_id=p.token_id,
                week=body.week,
                counts=counts,
                min_count=ctx.settings.hits_min_count,
            )

    done = await run_in_threadpool(work)
    return HitsPostOut(
        list=info.name,
        week=done.week,
        entries=done.entries,
        total=done.total,
        replaced=done.replaced,
        dropped_canary=done.dropped_canary,
    )


@router.get(
    "/lists/{list}/hits",
    response_model=HitsOut,
    responses=problems(403, 404),
    summary="Hits of one week per entry, summed across ISPs (analyst, admin)",
)
async def get_hits(
    ctx: ContextDep,
    p: AnalystOrAdminDep,
    list_name: ListPath,
    week: Annotated[str, Query(pattern=WEEK_PATTERN, description="ISO week, YYYY-Www")],
    limit: Annotated[
        int, Query(ge=1, le=store_hits.MAX_TOTALS_LIMIT, description="most entries returned")
    ] = store_hits.DEFAULT_TOTALS_LIMIT,
) -> HitsOut:
    """Per-entry totals across every ISP; never a single ISP's figures."""
    info = await authorised_list(ctx, p, list_name)

    def work() -> store_hits.WeekTotals:
        with ctx.db.read() as session:
            return store_hits.week_totals(session, info.id, week, limit=limit)

    view = await run_in_threadpool(work)
    return HitsOut(
        list=info.name,
        week=view.week,
        isps=view.isps,
        entries=[
            EntryHitsOut(entry=e.entry_id, block_ref=e.block_ref, count=e.count)
            for e in view.entries
        ],
    )
