"""Contract: lists and their canary entries (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.contract_helpers import NOW, publish

from blocklist.auditlog import Action, Actor
from blocklist.canonical import expression_hash
from blocklist.errors import InvalidEntry, InvalidURL
from blocklist.store import Conflict, Database, InvalidField, InvalidState, NotFound
from blocklist.store import audit as store_audit
from blocklist.store import entries as store_entries
from blocklist.store import lists as store_lists
from blocklist.store import search as store_search
from blocklist.store import versions as store_versions

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]


def test_create_list_creates_active_canary(db: Database, list_id: int) -> None:
    with db.read() as s:
        lst = store_lists.get_list(s, "main")
        assert lst.id == list_id
        assert lst.origin == "example.org/cleanfeed/main"
        assert lst.home_country == "CA"
        assert lst.approvals_required == 1
        assert lst.public is False
        assert lst.created_at == NOW
        assert lst.canary_entry_id is not None
        history = store_search.get_entry_with_history(s, list_id, lst.canary_entry_id)
        canary = history.entry
        assert canary.expression == "canary.example.org/cleanfeed-canary.html"
        assert canary.hash == expression_hash(canary.expression)
        assert canary.status == "active"
        assert canary.reason == "canary"
        assert canary.needs_publish is True
        assert canary.listed is False
        assert [a.actor for a in history.approvals] == [Actor.CANARY]
        assert [r.action for r in history.records] == [Action.ENTRY_ADD]
        records = store_audit.records(s, list_id)
        assert [(r.seq, r.action, r.list_name) for r in records] == [
            (1, Action.LIST_CREATE, "main"),
            (2, Action.ENTRY_ADD, "main"),
        ]


def test_canary_is_published_in_the_first_version(db: Database, list_id: int) -> None:
    version, adds, removes = publish(db, list_id)
    assert version == 1
    assert adds == [expression_hash("canary.example.org/cleanfeed-canary.html")]
    assert removes == []
    with db.read() as s:
        assert store_versions.snapshot(s, list_id, 1) == adds


def test_canary_cannot_be_expired(db: Database, list_id: int, unchanged: Unchanged) -> None:
    with db.read() as s:
        canary_id = store_lists.get_list_by_id(s, list_id).canary_entry_id
    assert canary_id is not None

    def expire() -> None:
        with db.transaction() as s:
            store_entries.expire(s, list_id, canary_id, actor="alice", reason="test", now=NOW)

    unchanged(expire, InvalidState)


def test_list_lists_and_lookup(db: Database, list_id: int, list2_id: int) -> None:
    with db.read() as s:
        assert [lst.name for lst in store_lists.list_lists(s)] == ["main", "strict"]
        assert store_lists.get_list_by_id(s, list2_id).approvals_required == 2
        with pytest.raises(NotFound):
            store_lists.get_list(s, "absent")
        with pytest.raises(NotFound):
            store_lists.get_list_by_id(s, 999_999)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"name": "main"}, Conflict),
        ({"origin": "example.org/cleanfeed/main"}, Conflict),
        ({"name": "Upper"}, InvalidField),
        ({"name": ""}, InvalidField),
        ({"name": "x" * 65}, InvalidField),
        ({"name": "a/b"}, InvalidField),
        ({"origin": "has space"}, InvalidField),
        ({"origin": "line\nbreak"}, InvalidField),
        ({"origin": ""}, InvalidField),
        ({"approvals_required": 0}, InvalidField),
        ({"approvals_required": 3}, InvalidField),
        ({"home_country": "Canada"}, InvalidField),
        ({"home_country": "C1"}, InvalidField),
        ({"canary_url": "mailto:someone@example.org"}, InvalidURL),
        ({"canary_url": "http://canary.example.org/dir/"}, InvalidEntry),
    ],
)
def test_bad_list_is_refused_and_changes_nothing(
    db: Database,
    list_id: int,
    unchanged: Unchanged,
    changes: dict[str, object],
    error: type[Exception],
) -> None:
    fields: dict[str, object] = {
        "name": "other",
        "origin": "example.org/cleanfeed/other",
        "canary_url": "http://canary.example.org/other.html",
        "approvals_required": 2,
        "home_country": None,
    }
    fields.update(changes)

    def create() -> None:
        with db.transaction() as s:
            store_lists.create_list(s, now=NOW, **fields)  # type: ignore[arg-type]

    unchanged(create, error)


def test_home_country_is_normalised_to_upper_case(db: Database) -> None:
    with db.transaction() as s:
        row = store_lists.create_list(
            s,
            name="lower",
            origin="example.org/lower",
            canary_url="http://canary.example.org/x.html",
            home_country="gb",
            now=NOW,
        )
        assert row.home_country == "GB"
