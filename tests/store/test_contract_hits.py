"""Contract: hit counts are stored per ISP and week, read only as totals (both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select
from support.contract_helpers import NOW, publish_pages, table_counts

from blocklist.blockref import InvalidBlockRef, block_ref
from blocklist.store import Database, InvalidField, LimitExceeded
from blocklist.store import entries as store_entries
from blocklist.store import hits as store_hits
from blocklist.store import tokens as store_tokens
from blocklist.store.errors import BelowThreshold, UnknownBlockRef, WeekNotOver
from blocklist.store.models import EntryRow, HitCountRow, ListRow

#: NOW is Sunday 2026-03-01, in ISO week 2026-W09: W08 is over, W09 is not.
DONE = "2026-W08"
AFTER = NOW + timedelta(days=2)  # W10: W09 is over too
K = 10


def published_refs(db: Database, list_id: int, n: int) -> list[tuple[int, str]]:
    """Add, approve and publish ``n`` pages; return (entry id, block_ref)."""
    ids = publish_pages(db, list_id, n, "h.example.com")
    with db.read() as s:
        return [(i, block_ref(s.get(EntryRow, i).hash)) for i in ids]  # type: ignore[union-attr]


def isp(db: Database, name: str, lists: list[str]) -> int:
    with db.transaction() as s:
        _, row = store_tokens.create_token(s, name=name, role="isp", lists=lists, now=NOW)
        return row.id


def post(db: Database, list_id: int, token_id: int, counts: list[tuple[str, int]], **kw: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {"week": DONE, "min_count": K, "now": NOW}
    values.update(kw)
    with db.transaction() as s:
        return store_hits.record_hits(
            s,
            list_id,
            token_id=token_id,
            counts=counts,
            **values,  # type: ignore[arg-type]
        )


def totals(db: Database, list_id: int, week: str = DONE) -> store_hits.WeekTotals:
    with db.read() as s:
        return store_hits.week_totals(s, list_id, week)


def test_the_table_holds_no_address_url_or_time(db: Database) -> None:
    with db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("hit_counts")}
    assert columns == {"list_id", "week", "token_id", "entry_id", "count"}


def test_totals_sum_isps_and_never_show_one(db: Database, list_id: int) -> None:
    (e1, r1), (e2, r2) = published_refs(db, list_id, 2)
    a, b = isp(db, "isp-a", ["main"]), isp(db, "isp-b", ["main"])
    post(db, list_id, a, [(r1, 12), (r2, 30)])
    post(db, list_id, b, [(r1, 15)])
    view = totals(db, list_id)
    assert view.isps == 2
    # Most hit first; one total per entry, whichever ISPs it came from.
    assert [(x.entry_id, x.block_ref, x.count) for x in view.entries] == [
        (e2, r2, 30),
        (e1, r1, 27),
    ]


def test_a_repost_of_the_same_week_replaces_it(db: Database, list_id: int) -> None:
    (_, r1), (_, r2) = published_refs(db, list_id, 2)
    a = isp(db, "isp-a", ["main"])
    first = post(db, list_id, a, [(r1, 12), (r2, 30)])
    assert not first.replaced
    assert first.total == 42
    again = post(db, list_id, a, [(r1, 11)])
    assert again.replaced
    assert again.entries == 1
    assert [(x.block_ref, x.count) for x in totals(db, list_id).entries] == [(r1, 11)]


def test_refusals_change_nothing(db: Database, list_id: int) -> None:
    (_, r1), (_, r2) = published_refs(db, list_id, 2)
    a = isp(db, "isp-a", ["main"])
    post(db, list_id, a, [(r1, 12)])
    pending_hash: bytes
    with db.transaction() as s:
        row, _ = store_entries.add_entry(
            s, list_id, url="http://p.example.com/x.html", scope="page", reason="r", actor="al"
        )
        pending_hash = row.hash
    before = table_counts(db)
    cases: list[tuple[list[tuple[str, int]], dict[str, object], type[Exception]]] = [
        ([(r1, 12), (r2, K - 1)], {}, BelowThreshold),
        ([(r1, 12), (block_ref(bytes(range(32))), 50)], {}, UnknownBlockRef),
        # A pending entry never reached an ISP: the same answer as no entry.
        ([(block_ref(pending_hash), 50)], {}, UnknownBlockRef),
        ([(r1, 12)], {"week": "2026-W09"}, WeekNotOver),
        ([(r1, 12)], {"week": "2026-W9"}, InvalidField),
        ([(r1, 12)], {"week": "2026-W54"}, InvalidField),
        ([(r1, 12)], {"week": "2024-W08"}, LimitExceeded),
        ([(r1, 12), (r1.lower(), 13)], {}, InvalidField),
        ([("CF1-not-a-ref", 12)], {}, InvalidBlockRef),
        ([(r1, store_hits.MAX_HIT_COUNT + 1)], {}, LimitExceeded),
        ([(r1, 12)] * (store_hits.MAX_HITS_PER_POST + 1), {}, LimitExceeded),
    ]
    for counts, kw, error in cases:
        with pytest.raises(error):
            post(db, list_id, a, counts, **kw)
    assert table_counts(db) == before
    assert [(x.block_ref, x.count) for x in totals(db, list_id).entries] == [(r1, 12)]


def test_the_canary_is_dropped_never_stored(db: Database, list_id: int) -> None:
    [(_, r1)] = published_refs(db, list_id, 1)
    with db.read() as s:
        lst = s.get(ListRow, list_id)
        canary = s.get(EntryRow, lst.canary_entry_id)  # type: ignore[union-attr]
        canary_ref = block_ref(canary.hash)  # type: ignore[union-attr]
    a = isp(db, "isp-a", ["main"])
    result = post(db, list_id, a, [(canary_ref, 500), (r1, 12)])
    assert result.dropped_canary == 1
    assert result.entries == 1
    with db.read() as s:
        stored = s.scalars(select(HitCountRow.entry_id)).all()
    assert canary.id not in stored  # type: ignore[union-attr]


def test_a_later_week_and_the_week_helpers(db: Database, list_id: int) -> None:
    [(_, r1)] = published_refs(db, list_id, 1)
    a = isp(db, "isp-a", ["main"])
    post(db, list_id, a, [(r1, 40)], week="2026-W09", now=AFTER)
    assert totals(db, list_id, "2026-W09").entries[0].count == 40
    assert totals(db, list_id, DONE).entries == ()
    assert store_hits.week_of(NOW) == "2026-W09"
    assert store_hits.week_over(DONE, NOW)
    assert not store_hits.week_over("2026-W09", NOW)
    with db.read() as s, pytest.raises(LimitExceeded):
        store_hits.week_totals(s, list_id, DONE, limit=0)
