"""Safeguards in the store, on SQLite and PostgreSQL (issue 16 items 1-3).

Guard rules recorded at add time (single and bulk), the guard approval after
four-eyes and again after a reinstatement, bulk approval held by the guard,
referrals that take a listed entry off at the next version, hosting
evidence, and the canary's exemption.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.contract_helpers import NOW, later, publish

from blocklist.errors import PublicSuffix
from blocklist.safeguards import HostingAddress, HostingEvidence
from blocklist.store import Database
from blocklist.store import entries as store_entries
from blocklist.store import guards as store_guards
from blocklist.store import imports as store_imports
from blocklist.store import lists as store_lists
from blocklist.store.errors import AwaitingSafeguard, GuardIneligible, InvalidState
from blocklist.store.imports import BulkRow
from blocklist.store.models import EntryRow

GUARDED = "http://files.example.org/dir/"


def _guard(db: Database, host: str = "example.org") -> None:
    with db.transaction() as s:
        store_guards.add_guard(s, host, actor="admin", now=NOW)


def _add(
    db: Database, list_id: int, url: str = GUARDED, scope: str = "prefix", **kw: object
) -> EntryRow:
    with db.transaction() as s:
        row, _ = store_entries.add_entry(
            s,
            list_id,
            url=url,
            scope=scope,
            reason="r",
            actor="alice",
            now=NOW,
            **kw,  # type: ignore[arg-type]
        )
        return row


def _get(db: Database, list_id: int, entry_id: int) -> EntryRow:
    with db.read() as s:
        return store_entries.get_entry(s, list_id, entry_id)


def _approve(db: Database, list_id: int, entry_id: int, actor: str = "bob") -> str:
    with db.transaction() as s:
        return store_entries.approve(
            s, list_id, entry_id, actor=actor, actor_role="analyst", now=NOW
        ).status


def _guard_approve(
    db: Database, list_id: int, entry_id: int, actor: str = "admin", role: str = "admin"
) -> EntryRow:
    with db.transaction() as s:
        return store_guards.guard_approve(
            s, list_id, entry_id, actor=actor, actor_role=role, justification="dedicated", now=NOW
        )


def test_a_guarded_entry_needs_a_guard_approval_each_round(
    db: Database, list_id: int, unchanged: Callable[..., None]
) -> None:
    _guard(db)
    entry = _add(db, list_id)
    assert entry.guard == "example.org"
    assert _approve(db, list_id, entry.id) == "pending"
    assert entry.hash not in publish(db, list_id, now=later(minutes=1))[1]
    for actor, role in (("alice", "admin"), ("bob", "admin"), ("carol", "analyst")):
        unchanged(
            lambda a=actor, r=role: _guard_approve(db, list_id, entry.id, a, r), GuardIneligible
        )
    assert _guard_approve(db, list_id, entry.id).status == "active"
    _, adds, _ = publish(db, list_id, now=later(minutes=2))
    assert adds == [entry.hash]
    # A reinstatement opens a new round: four-eyes and the guard again.
    with db.transaction() as s:
        store_entries.expire(s, list_id, entry.id, actor="bob", reason="x", now=later(minutes=3))
        store_entries.reinstate(
            s, list_id, entry.id, actor="carol", reason="back", now=later(minutes=4)
        )
    assert _get(db, list_id, entry.id).guard_approved_by is None
    unchanged(lambda: _guard_approve(db, list_id, entry.id), AwaitingSafeguard)
    assert _approve(db, list_id, entry.id, "bob") == "pending"
    assert _guard_approve(db, list_id, entry.id).status == "active"


def test_bulk_add_records_guards_and_bulk_approval_respects_them(
    db: Database, list_id: int
) -> None:
    _guard(db)
    with db.transaction() as s:
        results = store_imports.bulk_add(
            s,
            list_id,
            [
                BulkRow(GUARDED, "prefix", "r"),
                BulkRow("http://files.example.org/one.html", "page", "r"),
                BulkRow("http://192.0.2.3/", "host", "r"),
                BulkRow("http://co.uk/x.html", "page", "r"),
            ],
            actor="alice",
            now=NOW,
        )
    ids = [r.entry_id for r in results[:3]]
    assert results[3].code == "public_suffix"
    guards = [_get(db, list_id, i).guard for i in ids]  # type: ignore[arg-type]
    assert guards == ["example.org", None, "ip-address"]
    with db.transaction() as s:
        store_imports.approve_many(s, list_id, ids, actor="bob", actor_role="analyst", now=NOW)  # type: ignore[arg-type]
    statuses = [_get(db, list_id, i).status for i in ids]  # type: ignore[arg-type]
    assert statuses == ["pending", "active", "pending"]


def test_referring_a_listed_entry_takes_it_off_and_it_never_comes_back(
    db: Database, list_id: int, unchanged: Callable[..., None]
) -> None:
    entry = _add(db, list_id, "http://bad.example.com/a.html", "page")
    _approve(db, list_id, entry.id)
    publish(db, list_id, now=later(minutes=1))
    with db.transaction() as s:
        store_guards.refer(
            s, list_id, entry.id, actor="carol", actor_role="analyst", reason="home", now=NOW
        )
    _, _, removes = publish(db, list_id, now=later(minutes=2))
    assert removes == [entry.hash]
    assert _get(db, list_id, entry.id).status == "referred"

    def reinstate() -> None:
        with db.transaction() as s:
            store_entries.reinstate(s, list_id, entry.id, actor="bob", reason="x", now=NOW)

    unchanged(reinstate, InvalidState)


def test_hosting_evidence_proposes_a_referral_only_for_home_hosting_without_cdn(
    db: Database,
) -> None:
    with db.transaction() as s:
        home = store_lists.create_list(
            s, name="gb", origin="example.org/gb", canary_url="http://canary.example.org/gb.html",
            home_country="GB", approvals_required=1, now=NOW,
        ).id  # fmt: skip

    def evidence(*addresses: HostingAddress) -> HostingEvidence:
        return HostingEvidence(verified=True, addresses=addresses, database="t", resolver="r")

    cases = [
        ("http://a.example.com/1.html", evidence(HostingAddress("192.0.2.1", "GB")), "proposed"),
        (
            "http://a.example.com/2.html",
            evidence(HostingAddress("192.0.2.2", None, cdn=True)),
            None,
        ),
        ("http://a.example.com/3.html", evidence(HostingAddress("198.51.100.2", "NL")), None),
        ("http://a.example.com/4.html", HostingEvidence(verified=False, error="timeout"), None),
    ]
    for url, ev, referral in cases:
        entry = _add(db, home, url, "page", hosting=ev)
        stored = _get(db, home, entry.id)
        assert stored.referral == referral, url
        assert stored.hosting == ev.to_json()
        assert _approve(db, home, entry.id) == ("pending" if referral else "active")


def test_the_canary_is_exempt_from_the_public_suffix_rule(db: Database) -> None:
    with db.transaction() as s:
        lst = store_lists.create_list(
            s, name="ps", origin="example.org/ps", canary_url="http://blogspot.com/canary.html",
            approvals_required=1, now=NOW,
        )  # fmt: skip
        list_id = lst.id
    with pytest.raises(PublicSuffix):
        _add(db, list_id, "http://blogspot.com/other.html", "page")


def test_the_canary_is_never_proposed_for_referral(db: Database, list_id: int) -> None:
    with db.transaction() as s:
        lst = store_lists.get_list_by_id(s, list_id)
        canary = store_entries.get_entry(s, list_id, lst.canary_entry_id)  # type: ignore[arg-type]
        store_guards.propose_referral(
            s, list_id, canary, actor="system:reverify", home_country="GB", now=NOW
        )
    with db.read() as s:
        lst = store_lists.get_list_by_id(s, list_id)
        assert store_entries.get_entry(s, list_id, lst.canary_entry_id).referral is None  # type: ignore[arg-type]
        assert store_guards.referrals(s, list_id) == []
