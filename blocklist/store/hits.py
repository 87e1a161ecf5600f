"""Hit counts posted by ISPs: stored per ISP, read only as totals across ISPs.

DESIGN.md part 2, "Enforcement at the ISP", hit counts (issue 18 item 5).
An ISP that opts in counts block-page answers per ``block_ref`` per ISO
week, drops counts below its threshold k, and ``cleanfeed isp run`` posts
each completed week once. This module stores such a post and answers the
hotline's one question: which entries were hit most, across all ISPs.

What is stored: (list, ISO week, ISP token, entry, count). Nothing finer:
no address, no URL, no time but the week (the post's own arrival time is
not kept either). The token is kept only so that a re-post of the same
week by the same ISP *replaces* its earlier post (a retry after a lost
answer must not count twice); :func:`week_totals` never returns it.

What is refused, all or nothing (the caller's transaction rolls back):

- a week that has not ended (:class:`WeekNotOver`): a week still in
  progress would be a finer time than the week once its later post
  replaced it;
- a count below the server's threshold k (:class:`BelowThreshold`): the
  privacy floor holds even if an ISP set a lower one;
- a block reference that names no *published* entry of the list
  (:class:`UnknownBlockRef`). Pending entries never reached an ISP; an
  answer that told them apart would be an oracle for what analysts are
  about to list.

The canary is never counted (DESIGN.md part 2): its reference is dropped,
not refused, since an ISP whose configuration does not name the canary
should not lose the whole week for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, delete, func, insert, select
from sqlalchemy.orm import Session

from blocklist import encoding
from blocklist.blockref import BLOCK_REF_BYTES, block_ref, parse_block_ref
from blocklist.errors import FormatError
from blocklist.store.errors import (
    BelowThreshold,
    InvalidField,
    LimitExceeded,
    NotFound,
    UnknownBlockRef,
    WeekNotOver,
)
from blocklist.store.models import EntryRow, HitCountRow, ListRow

#: Most (block_ref, count) rows in one post: about 60 bytes each in JSON,
#: well inside the API's 1 MiB body cap. An ISP with more references above
#: k in one week posts its most-hit ones (clients/isp/hits.py).
MAX_HITS_PER_POST: Final = 10_000
#: Largest count accepted: far above any real week (2^40), far below the
#: column's 2^63 even summed over many ISPs.
MAX_HIT_COUNT: Final = 1 << 40
#: Default and largest number of entries :func:`week_totals` returns.
DEFAULT_TOTALS_LIMIT: Final = 1000
MAX_TOTALS_LIMIT: Final = 10_000
#: Weeks further back than this are refused: the counts serve re-verification
#: now, and an old week posted late says nothing useful.
MAX_WEEK_AGE: Final = timedelta(weeks=53)


def parse_week(text: str) -> date:
    """The Monday of an ISO 8601 week written ``YYYY-Www`` (:func:`blocklist.encoding.parse_week`).

    Raises:
        InvalidField: not of that form, or no such week (``2026-W54``).
    """
    try:
        return encoding.parse_week(text)
    except FormatError as e:
        raise InvalidField(str(e)) from None


def week_of(when: datetime) -> str:
    """The ISO week (UTC) of a time, ``YYYY-Www`` (:func:`blocklist.encoding.format_week`)."""
    return encoding.format_week(when)


def week_over(week: str, now: datetime) -> bool:
    """Whether the ISO week (UTC) has ended at ``now``.

    Raises:
        InvalidField: not a week.
    """
    monday = parse_week(week)
    end = datetime(monday.year, monday.month, monday.day, tzinfo=UTC) + timedelta(weeks=1)
    return end <= now


@dataclass(frozen=True, slots=True)
class RecordedHits:
    """What :func:`record_hits` stored."""

    week: str
    #: Entries counted (rows stored).
    entries: int
    #: Hits stored, summed.
    total: int
    #: Whether an earlier post of this ISP for this week was replaced.
    replaced: bool
    #: References dropped because they name the canary (never counted).
    dropped_canary: int


def _entry_by_ref(session: Session, list_id: int, prefix: bytes) -> EntryRow | None:
    # The unique index on (list_id, hash) answers the prefix as a range:
    # every 32-byte hash starting with the 10 bytes lies in [lo, hi].
    lo = prefix + b"\x00" * (32 - BLOCK_REF_BYTES)
    hi = prefix + b"\xff" * (32 - BLOCK_REF_BYTES)
    return session.scalars(
        select(EntryRow)
        .where(
            EntryRow.list_id == list_id,
            EntryRow.hash >= lo,
            EntryRow.hash <= hi,
            # Published at least once: pending entries never reached an ISP.
            EntryRow.added_version.is_not(None),
        )
        .order_by(EntryRow.id)
        .limit(1)
    ).first()


def record_hits(
    session: Session,
    list_id: int,
    *,
    token_id: int,
    week: str,
    counts: Sequence[tuple[str, int]],
    min_count: int,
    now: datetime | None = None,
) -> RecordedHits:
    """Store one ISP's counts of one completed week, replacing its earlier post.

    Args:
        session: the caller's transaction (rolled back on any error).
        list_id: the list.
        token_id: the ISP token posting.
        week: ``YYYY-Www``, a week that has ended.
        counts: (block_ref, count) pairs, each reference once.
        min_count: the server's threshold k.
        now: the current time (tests).

    Raises:
        NotFound: no such list.
        InvalidField: a malformed week, a reference given twice.
        WeekNotOver: the week has not ended.
        LimitExceeded: too many rows, a count out of range, a week too old.
        BelowThreshold: a count below ``min_count``.
        InvalidBlockRef: a malformed reference (blocklist.blockref).
        UnknownBlockRef: a reference naming no published entry of the list.
    """
    now = now or datetime.now(UTC)
    lst = session.get(ListRow, list_id)
    if lst is None:
        raise NotFound(f"no list with id {list_id}")
    monday = parse_week(week)
    if not week_over(week, now):
        raise WeekNotOver(f"week {week} has not ended yet: post completed weeks only")
    if datetime(monday.year, monday.month, monday.day, tzinfo=UTC) < now - MAX_WEEK_AGE:
        raise LimitExceeded(f"week {week} is more than a year old")
    if len(counts) > MAX_HITS_PER_POST:
        raise LimitExceeded(f"{len(counts)} counts in one post; at most {MAX_HITS_PER_POST}")
    canary_hash = None
    if lst.canary_entry_id is not None:
        canary = session.get(EntryRow, lst.canary_entry_id)
        canary_hash = None if canary is None else canary.hash
    seen: set[bytes] = set()
    low = [ref for ref, n in counts if n < min_count]
    if low:
        raise BelowThreshold(
            f"{len(low)} count(s) below the threshold k={min_count} (first: {low[0][:32]}); "
            "the ISP drops them before posting"
        )
    rows: dict[int, int] = {}
    unknown: list[str] = []
    dropped = 0
    for ref, n in counts:
        if n > MAX_HIT_COUNT:
            raise LimitExceeded(f"count {n} of {ref[:32]} exceeds {MAX_HIT_COUNT}")
        prefix = parse_block_ref(ref)
        if prefix in seen:
            raise InvalidField(f"block_ref {block_ref_text(prefix)} is given twice")
        seen.add(prefix)
        if canary_hash is not None and canary_hash[:BLOCK_REF_BYTES] == prefix:
            dropped += 1  # never counted (DESIGN.md part 2)
            continue
        entry = _entry_by_ref(session, list_id, prefix)
        if entry is None:
            unknown.append(ref)
            continue
        rows[entry.id] = rows.get(entry.id, 0) + n
    if unknown:
        raise UnknownBlockRef(
            f"{len(unknown)} block reference(s) name no published entry of this list "
            f"(first: {unknown[0][:32]})"
        )
    key = (
        HitCountRow.list_id == list_id,
        HitCountRow.week == week,
        HitCountRow.token_id == token_id,
    )
    result = session.execute(delete(HitCountRow).where(*key))
    replaced = int(cast("CursorResult[Any]", result).rowcount) > 0
    if rows:
        session.execute(
            insert(HitCountRow),
            [
                {"list_id": list_id, "week": week, "token_id": token_id, "entry_id": e, "count": n}
                for e, n in sorted(rows.items())
            ],
        )
    return RecordedHits(
        week=week,
        entries=len(rows),
        total=sum(rows.values()),
        replaced=replaced,
        dropped_canary=dropped,
    )


def block_ref_text(prefix: bytes) -> str:
    """The printed reference of a 10-byte hash prefix (for messages)."""
    return block_ref(prefix + bytes(32 - BLOCK_REF_BYTES))


@dataclass(frozen=True, slots=True)
class EntryHits:
    """One entry's hits in one week, summed over every ISP that posted."""

    entry_id: int
    block_ref: str
    count: int


@dataclass(frozen=True, slots=True)
class WeekTotals:
    """The hotline's view of one week: totals per entry, never per ISP."""

    week: str
    #: ISPs (tokens) that posted this week: says how much the totals cover.
    isps: int
    entries: tuple[EntryHits, ...]


def week_totals(
    session: Session, list_id: int, week: str, *, limit: int = DEFAULT_TOTALS_LIMIT
) -> WeekTotals:
    """Per-entry totals of one week across all ISPs, most hit first.

    Raises:
        NotFound: no such list.
        InvalidField: a malformed week.
        LimitExceeded: ``limit`` outside 1..MAX_TOTALS_LIMIT.
    """
    parse_week(week)
    if not 1 <= limit <= MAX_TOTALS_LIMIT:
        raise LimitExceeded(f"limit must be between 1 and {MAX_TOTALS_LIMIT}")
    if session.get(ListRow, list_id) is None:
        raise NotFound(f"no list with id {list_id}")
    where = (HitCountRow.list_id == list_id, HitCountRow.week == week)
    isps = session.scalar(select(func.count(func.distinct(HitCountRow.token_id))).where(*where))
    total = func.sum(HitCountRow.count).label("total")
    rows = session.execute(
        select(HitCountRow.entry_id, EntryRow.hash, total)
        .join(EntryRow, EntryRow.id == HitCountRow.entry_id)
        .where(*where)
        .group_by(HitCountRow.entry_id, EntryRow.hash)
        .order_by(total.desc(), HitCountRow.entry_id)
        .limit(limit)
    ).all()
    return WeekTotals(
        week=week,
        isps=int(isps or 0),
        entries=tuple(EntryHits(int(e), block_ref(bytes(h)), int(n)) for e, h, n in rows),
    )


__all__ = (
    "DEFAULT_TOTALS_LIMIT",
    "MAX_HITS_PER_POST",
    "MAX_HIT_COUNT",
    "MAX_TOTALS_LIMIT",
    "EntryHits",
    "RecordedHits",
    "WeekTotals",
    "parse_week",
    "record_hits",
    "week_of",
    "week_over",
    "week_totals",
)
