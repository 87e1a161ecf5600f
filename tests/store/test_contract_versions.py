"""Contract: the publisher's store (versions, memberships, tree, checkpoints, keyrings)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from support.contract_helpers import NOW, later, publish, publish_in, sign_stub

from blocklist.canonical import expression_hash
from blocklist.errors import ProofError
from blocklist.merkle import (
    MemoryHashStore,
    inclusion_proof,
    leaf_hash,
    stored_hash_index,
    stored_hashes_for_leaf,
    tree_root,
    verify_inclusion,
)
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from blocklist.store import (
    Conflict,
    Database,
    InvalidField,
    InvalidState,
    LimitExceeded,
    NotFound,
)
from blocklist.store import entries as store_entries
from blocklist.store import imports as store_imports
from blocklist.store import search as store_search
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.models import MembershipRow, TreeHashRow

Unchanged = Callable[[Callable[[], object], type[BaseException]], None]


def add_active(db: Database, list_id: int, n: int, *, prefix: str = "p") -> list[int]:
    """Add and approve ``n`` pages in one bulk call; return their ids."""
    rows = [
        store_imports.BulkRow(f"http://{prefix}.example.com/{i}.html", "page", "r")
        for i in range(n)
    ]
    with db.transaction() as s:
        results = store_imports.bulk_add(s, list_id, rows, actor="alice", now=NOW)
    ids = [r.entry_id for r in results if r.entry_id is not None]
    for entry_id in ids:
        with db.transaction() as s:
            store_entries.approve(s, list_id, entry_id, actor="bob", actor_role="analyst", now=NOW)
    return ids


def expire_ids(db: Database, list_id: int, ids: list[int]) -> None:
    for entry_id in ids:
        with db.transaction() as s:
            store_entries.expire(s, list_id, entry_id, actor="dave", reason="off", now=NOW)


def test_publish_flow_stores_a_consistent_version(db: Database, list_id: int) -> None:
    ids = add_active(db, list_id, 3)
    version, adds, removes = publish(db, list_id)
    assert version == 1
    assert len(adds) == 4
    assert removes == []
    with db.read() as s:
        assert store_versions.current_version(s, list_id) == 1
        row = store_versions.latest_version(s, list_id)
        assert row is not None
        statement = Statement.parse(row.note[: row.note.index("\n\n") + 1])
        assert statement.version == 1
        assert statement.count == row.count == 4
        snapshot = store_versions.snapshot(s, list_id, 1)
        assert snapshot == sorted(adds)
        # The signed state digest is the digest of the stored snapshot.
        assert StateDigest.from_hashes(snapshot).digest() == statement.state
        assert StateDigest.from_bytes(row.state_vector).digest() == statement.state
        assert store_versions.statements(s, list_id, since=0, limit=10) == [row.note]
        assert store_versions.statement(s, list_id, 1) == row.note
        for entry_id in ids:
            e = store_entries.get_entry(s, list_id, entry_id)
            assert (e.listed, e.needs_publish, e.added_version) == (True, False, 1)
        assert store_versions.pending_changes(s, list_id, now=NOW, limit=10) == ([], [])


def test_nothing_pending_means_no_version(db: Database, list_id: int) -> None:
    publish(db, list_id)
    assert publish(db, list_id) == (0, [], [])


def test_snapshots_match_a_naive_replay_at_every_version(db: Database, list_id: int) -> None:
    """Law: snapshot(N) == the set built by applying deltas 1..N in memory."""
    rng = random.Random(20260301)
    ids = add_active(db, list_id, 12)
    hashes = {}
    with db.read() as s:
        for entry_id in ids:
            hashes[entry_id] = store_entries.get_entry(s, list_id, entry_id).hash
    naive: list[set[bytes]] = [set()]
    _, adds, removes = publish(db, list_id)
    naive.append(set(adds))
    for _ in range(14):
        listed = [i for i in ids if hashes[i] in naive[-1]]
        unlisted = [i for i in ids if hashes[i] not in naive[-1]]
        off = rng.sample(listed, k=min(len(listed), rng.randint(0, 3)))
        back = rng.sample(unlisted, k=min(len(unlisted), rng.randint(0, 3)))
        expire_ids(db, list_id, off)
        for entry_id in back:  # re-add after removal: reinstate + approve
            with db.transaction() as s:
                store_entries.reinstate(s, list_id, entry_id, actor="carol", reason="back")
                store_entries.approve(
                    s, list_id, entry_id, actor="bob", actor_role="analyst", now=NOW
                )
        version, adds, removes = publish(db, list_id)
        if version == 0:
            continue
        assert set(removes) == {hashes[i] for i in off}
        assert set(adds) == {hashes[i] for i in back}
        naive.append((naive[-1] - set(removes)) | set(adds))
    with db.read() as s:
        assert store_versions.current_version(s, list_id) == len(naive) - 1
        for n, expected in enumerate(naive):
            assert store_versions.snapshot(s, list_id, n) == sorted(expected)
            if n:
                assert store_versions.get_version(s, list_id, n).count == len(expected)
        readded = s.scalar(
            select(func.count()).select_from(MembershipRow).where(MembershipRow.list_id == list_id)
        )
        assert readded is not None
        assert readded > len(naive[-1])
        with pytest.raises(NotFound):
            store_versions.snapshot(s, list_id, len(naive))


def test_tree_hashes_give_the_same_roots_and_proofs_as_memory(db: Database, list_id: int) -> None:
    memory = MemoryHashStore()
    notes = []
    for round_ in range(6):
        add_active(db, list_id, 1, prefix=f"t{round_}")
        publish(db, list_id)
    with db.read() as s:
        notes = store_versions.statements(s, list_id, since=0, limit=100)
        for note in notes:
            memory.append_leaf_hash(leaf_hash(note[: note.index("\n\n") + 1].encode()))
        reader = store_versions.TreeHashReader(s, list_id)
        size = len(notes)
        assert size == 6
        for n in range(size + 1):
            assert tree_root(n, reader) == tree_root(n, memory)
        root = tree_root(size, reader)
        for index in range(size):
            proof = inclusion_proof(index, size, reader)
            assert proof == inclusion_proof(index, size, memory)
            verify_inclusion(
                memory.read_hashes([stored_hash_index(0, index)])[0], index, size, proof, root
            )
        with pytest.raises(ProofError):
            reader.read_hashes([10_000])
        assert reader.read_hashes([]) == []
        assert reader.read_hashes([0, 0]) == memory.read_hashes([0, 0])


def test_pending_changes_puts_removals_first_and_honours_the_limit(
    db: Database, list_id: int
) -> None:
    first = add_active(db, list_id, 3, prefix="a")
    publish(db, list_id)
    expire_ids(db, list_id, first[:2])
    add_active(db, list_id, 3, prefix="b")
    with db.transaction() as s:
        changes = store_versions.pending_changes(s, list_id, now=NOW, limit=3)
    assert [i for i, _ in changes.removes] == first[:2]
    assert len(changes.adds) == 1
    version, adds, removes = publish(db, list_id, limit=3)
    assert (len(adds), len(removes)) == (1, 2)
    version, adds, removes = publish(db, list_id, limit=3)
    assert (version, len(adds), len(removes)) == (3, 2, 0)


CANARY = expression_hash("canary.example.org/cleanfeed-canary.html")


@pytest.fixture
def one_version(db: Database, list_id: int) -> list[bytes]:
    """Publish version 1 (two pages and the canary); return the pages' hashes."""
    add_active(db, list_id, 2)
    _, adds, _ = publish(db, list_id)
    assert CANARY in adds
    return [h for h in adds if h != CANARY]


def _record(db: Database, list_id: int, **changes: object) -> None:
    """record_version of a well-formed version 2 with ``changes`` applied."""
    with db.transaction() as s:
        prev = store_versions.latest_version(s, list_id)
        assert prev is not None
        version = int(changes.pop("version", prev.version + 1))  # type: ignore[call-overload]
        adds: list[bytes] = list(changes.pop("adds", []))  # type: ignore[call-overload]
        removes: list[bytes] = list(changes.pop("removes", []))  # type: ignore[call-overload]
        text = f"statement {version}\n"
        note = sign_stub(text)
        leaf = leaf_hash(text.encode())
        reader = store_versions.TreeHashReader(s, list_id)
        fields: dict[str, object] = {
            "version": version,
            "note": note,
            "text_hash": hashlib.sha256(text.encode()).digest(),
            "leaf_hash": leaf,
            "time": later(hours=1),
            "keyring_serial": 1,
            "count": prev.count + len(adds) - len(removes),
            "state_vector": bytes(2048),
            "audit_head": bytes(32),
            "adds": adds,
            "removes": removes,
            "tree_hashes": stored_hashes_for_leaf(min(version, prev.version + 1) - 1, leaf, reader),
        }
        fields.update(changes)
        store_versions.record_version(s, list_id, **fields)  # type: ignore[arg-type]


def test_record_version_accepts_a_valid_removal(
    db: Database, list_id: int, one_version: list[bytes]
) -> None:
    with db.transaction() as s:
        page = store_search.search(s, list_id, hash=one_version[0]).items
        store_entries.expire(s, list_id, page[0].id, actor="dave", reason="off", now=NOW)
    _record(db, list_id, removes=[one_version[0]])
    with db.read() as s:
        assert store_versions.snapshot(s, list_id, 2) == sorted([one_version[1], CANARY])


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"version": 1}, Conflict, "cannot follow"),
        ({"version": 3}, Conflict, "cannot follow"),
        ({}, InvalidState, "at least one change"),
        ({"adds": [expression_hash("never.example.com/")]}, InvalidState, "approved, unpub"),
        ({"removes": [expression_hash("never.example.com/")]}, InvalidState, "not in the list"),
        ({"count": 99, "adds": ["ACTIVE"]}, InvalidState, "count 99 does not follow"),
        ({"adds": ["FIRST"]}, InvalidState, "already in the list"),
        ({"removes": ["FIRST"]}, InvalidState, "listed entry taken off"),  # still active
        ({"adds": ["PENDING"], "removes": ["PENDING"]}, InvalidState, "disjoint"),
        ({"adds": ["ACTIVE", "ACTIVE"]}, InvalidState, "distinct"),
        ({"adds": ["PENDING"]}, InvalidState, "approved, unpublished"),
        ({"text_hash": bytes(32), "adds": ["ACTIVE"]}, InvalidField, "text_hash"),
        ({"leaf_hash": bytes(32), "adds": ["ACTIVE"]}, InvalidField, "leaf_hash"),
        ({"note": "no signature block\n", "adds": ["ACTIVE"]}, InvalidField, "blank line"),
        ({"state_vector": bytes(10), "adds": ["ACTIVE"]}, InvalidField, "state_vector"),
        ({"tree_hashes": [], "adds": ["ACTIVE"]}, InvalidField, "tree hashes"),
        ({"audit_head": b"short", "adds": ["ACTIVE"]}, InvalidField, "audit_head"),
    ],
)
def test_record_version_refuses_inconsistent_versions(
    db: Database,
    list_id: int,
    one_version: list[bytes],
    unchanged: Unchanged,
    changes: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    changes = dict(changes)  # parametrised values are shared between backends
    with db.transaction() as s:
        pending, _ = store_entries.add_entry(
            s, list_id, url="http://q.example.com/p.html", scope="page", reason="r", actor="a"
        )
        active, _ = store_entries.add_entry(
            s, list_id, url="http://q.example.com/a.html", scope="page", reason="r", actor="a"
        )
        store_entries.approve(s, list_id, active.id, actor="b", actor_role="analyst")
        names = {"FIRST": one_version[0], "PENDING": pending.hash, "ACTIVE": active.hash}
    for key in ("adds", "removes"):
        if key in changes:
            values = changes[key]
            assert isinstance(values, list)
            changes[key] = [names.get(h, h) if isinstance(h, str) else h for h in values]
    unchanged(lambda: _record(db, list_id, **changes), error, match)
    # The same version without the defect is accepted (the test data is sound).
    if error is InvalidField:
        defect = next(key for key in changes if key != "adds")
        del changes[defect]
        _record(db, list_id, **changes)


def test_plaintext_returns_listed_expressions_after_a_version(db: Database, list_id: int) -> None:
    first = add_active(db, list_id, 3, prefix="one")
    publish(db, list_id)  # version 1: the canary and one/0..2
    add_active(db, list_id, 2, prefix="two")
    expire_ids(db, list_id, first[:1])
    publish(db, list_id)  # version 2: two/0..1 in, one/0 out
    add_active(db, list_id, 1, prefix="three")
    publish(db, list_id)  # version 3: three/0
    with db.read() as s:
        everything = store_versions.plaintext(s, list_id, since=0)
        since_one = store_versions.plaintext(s, list_id, since=1)
    expressions = {e for _, e in everything.items}
    assert everything.next_cursor is None
    assert "one.example.com/0.html" not in expressions  # removed
    assert {"one.example.com/1.html", "two.example.com/1.html"} <= expressions
    assert all(h == expression_hash(e) for h, e in everything.items)
    assert {e for _, e in since_one.items} == {
        "two.example.com/0.html",
        "two.example.com/1.html",
        "three.example.com/0.html",
    }
    # Pages end on version boundaries; next_cursor is the next page's since.
    # One row a page: each version, larger than a page, is served whole.
    seen: list[tuple[bytes, str]] = []
    cursors: list[int | None] = []
    since = 0
    while True:
        with db.read() as s:
            page = store_versions.plaintext(s, list_id, since=since, rows=1)
        seen.extend(page.items)
        cursors.append(page.next_cursor)
        if page.next_cursor is None:
            break
        since = page.next_cursor
    assert cursors == [1, 2, None]
    assert seen == everything.items
    with db.read() as s:
        # Four rows reach into version 2: the page is cut back to version 1.
        cut = store_versions.plaintext(s, list_id, since=0, rows=3)
        assert cut.next_cursor == 1
        assert {e for _, e in cut.items} == {e for _, e in everything.items} - {
            e for _, e in since_one.items
        }
        with pytest.raises(LimitExceeded):
            store_versions.plaintext(s, list_id, since=0, rows=0)


def test_has_pending_work_sees_flags_and_due_expiries(db: Database, list_id: int) -> None:
    with db.read() as s:
        # The new list's canary waits for version 1.
        assert store_versions.has_pending_work(s, list_id, now=NOW)
    publish(db, list_id)
    with db.read() as s:
        assert not store_versions.has_pending_work(s, list_id, now=NOW)
    (entry_id,) = add_active(db, list_id, 1)
    with db.read() as s:
        assert store_versions.has_pending_work(s, list_id, now=NOW)
    publish(db, list_id)
    with db.transaction() as s:
        store_entries.expire(
            s, list_id, entry_id, actor="dave", reason="off", at=later(hours=1), now=NOW
        )
    with db.read() as s:
        # Scheduled, not yet due: nothing to do until the time comes.
        assert not store_versions.has_pending_work(s, list_id, now=NOW)
        assert store_versions.has_pending_work(s, list_id, now=later(hours=1))


def test_iter_statements_reads_versions_up_to_a_size(db: Database, list_id: int) -> None:
    for i in range(3):
        add_active(db, list_id, 1, prefix=f"v{i}")
        publish(db, list_id)
    with db.read() as s:
        notes = store_versions.statements(s, list_id, since=0, limit=10)
        assert len(notes) == 3
        assert list(store_versions.iter_statements(s, list_id, 3)) == notes
        assert list(store_versions.iter_statements(s, list_id, 2)) == notes[:2]
        assert list(store_versions.iter_statements(s, list_id, 0)) == []


def test_iter_entries_streams_every_entry_in_id_order(
    db: Database, list_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_active(db, list_id, 5)
    expire_ids(db, list_id, ids[:1])
    monkeypatch.setattr(store_entries, "ENTRY_BATCH", 2)
    with db.read() as s:
        streamed = [(e.id, e.status) for e in store_entries.iter_entries(s, list_id)]
    # The canary, then the five pages, expired ones included.
    assert [entry_id for entry_id, _ in streamed][1:] == ids
    assert len(streamed) == 6
    assert streamed[1][1] == "removed"


def test_list_states_report_version_checkpoint_and_pending(db: Database, list_id: int) -> None:
    with db.read() as s:
        (state,) = store_versions.list_states(s)
    assert (state.list_id, state.name, state.version) == (list_id, "main", 0)
    assert state.checkpoint_signed_at is None
    assert state.checkpoint_age_seconds(NOW) is None
    assert state.pending_changes == 1  # the canary
    publish(db, list_id)
    add_active(db, list_id, 2)
    with db.transaction() as s:
        store_versions.put_checkpoint(s, list_id, size=1, root=bytes(32), note="n1", signed_at=NOW)
    with db.read() as s:
        (state,) = store_versions.list_states(s)
    assert (state.version, state.pending_changes) == (1, 2)
    assert state.checkpoint_age_seconds(later(seconds=90)) == 90.0


def test_publish_request_version_follows_a_request(db: Database, list_id: int) -> None:
    with db.transaction() as s:
        request = store_versions.request_publish(s, list_id, actor="alice", now=NOW)
    with db.read() as s:
        assert store_versions.publish_request_version(s, list_id, request.id) is None
        with pytest.raises(NotFound):
            store_versions.publish_request_version(s, list_id, request.id + 1)
    with db.transaction() as s:
        store_versions.complete_publish_requests(s, list_id, version=7, now=NOW)
    with db.read() as s:
        assert store_versions.publish_request_version(s, list_id, request.id) == 7


def test_checkpoints_refuse_rollback_and_equivocation(
    db: Database, list_id: int, one_version: list[bytes], unchanged: Unchanged
) -> None:
    root1 = hashlib.sha256(b"root1").digest()
    with db.transaction() as s:
        assert store_versions.get_checkpoint(s, list_id) is None
        store_versions.put_checkpoint(s, list_id, size=0, root=bytes(32), note="n0", signed_at=NOW)
        store_versions.put_checkpoint(s, list_id, size=1, root=root1, note="n1", signed_at=NOW)
        # Re-signing the same tree later only refreshes the latest note.
        store_versions.put_checkpoint(
            s, list_id, size=1, root=root1, note="n1-fresh", signed_at=later(minutes=10)
        )
    with db.read() as s:
        latest = store_versions.get_checkpoint(s, list_id)
        assert latest is not None
        assert (latest.size, latest.root, latest.note) == (1, root1, "n1-fresh")
        assert [(c.size, c.note) for c in store_versions.checkpoint_history(s, list_id)] == [
            (0, "n0"),
            (1, "n1"),
        ]

    def put(size: int, root: bytes) -> None:
        with db.transaction() as s:
            store_versions.put_checkpoint(s, list_id, size=size, root=root, note="x", signed_at=NOW)

    unchanged(lambda: put(0, bytes(32)), InvalidState)  # rollback
    unchanged(lambda: put(1, bytes(32)), Conflict)  # equivocation
    unchanged(lambda: put(2, root1), InvalidState)  # beyond the versions stored
    unchanged(lambda: put(1, b"short"), InvalidField)


def test_keyrings_have_consecutive_serials(
    db: Database, list_id: int, unchanged: Unchanged
) -> None:
    with db.transaction() as s:
        assert store_versions.get_keyring(s, list_id) is None
        store_versions.put_keyring(s, list_id, serial=1, note="k1", now=NOW)
        store_versions.put_keyring(s, list_id, serial=2, note="k2", now=NOW)

    def put(serial: int) -> None:
        with db.transaction() as s:
            store_versions.put_keyring(s, list_id, serial=serial, note="kx", now=NOW)

    unchanged(lambda: put(2), Conflict)
    unchanged(lambda: put(4), Conflict)
    with db.read() as s:
        latest = store_versions.get_keyring(s, list_id)
        assert latest is not None
        assert (latest.serial, latest.note) == (2, "k2")
        first = store_versions.get_keyring(s, list_id, 1)
        assert first is not None
        assert first.note == "k1"
        assert store_versions.get_keyring(s, list_id, 9) is None


def test_publish_requests(db: Database, list_id: int) -> None:
    with db.transaction() as s:
        a = store_versions.request_publish(s, list_id, actor="alice", now=NOW)
        b = store_versions.request_publish(s, list_id, actor="root", now=NOW)
    with db.transaction() as s:
        assert [r.id for r in store_versions.open_publish_requests(s, list_id)] == [a.id, b.id]
        assert store_versions.complete_publish_requests(s, list_id, version=4, now=NOW) == 2
    with db.read() as s:
        assert store_versions.open_publish_requests(s, list_id) == []


def test_isp_seen_tracks_the_latest_version(db: Database, list_id: int) -> None:
    with db.transaction() as s:
        _, isp_a = store_tokens.create_token(s, name="isp-a", role="isp", lists=["main"], now=NOW)
        _, isp_b = store_tokens.create_token(s, name="isp-b", role="isp", lists=["main"], now=NOW)
    with db.transaction() as s:
        store_versions.record_isp_seen(s, token_id=isp_a.id, list_id=list_id, version=3, at=NOW)
        store_versions.record_isp_seen(s, token_id=isp_b.id, list_id=list_id, version=1, at=NOW)
    with db.transaction() as s:
        store_versions.record_isp_seen(
            s, token_id=isp_a.id, list_id=list_id, version=2, at=later(minutes=1)
        )  # an older version fetched later never moves it back
        store_versions.record_isp_seen(
            s, token_id=isp_b.id, list_id=list_id, version=4, at=later(minutes=2)
        )
    with db.read() as s:
        seen = store_versions.isp_versions(s, list_id)
    assert [(v.token_name, v.version, v.at) for v in seen] == [
        ("isp-a", 3, NOW),
        ("isp-b", 4, later(minutes=2)),
    ]


def test_tree_hashes_are_stored_at_their_scheme_index(db: Database, list_id: int) -> None:
    for i in range(4):
        add_active(db, list_id, 1, prefix=f"idx{i}")
        publish(db, list_id)
    with db.read() as s:
        indexes = s.scalars(
            select(TreeHashRow.idx).where(TreeHashRow.list_id == list_id).order_by(TreeHashRow.idx)
        ).all()
    # Four leaves store 2*4 - popcount(4) = 7 hashes at indexes 0..6.
    assert list(indexes) == list(range(7))


def test_entries_loaded_before_a_publish_see_its_effect_in_the_same_session(
    db: Database, list_id: int
) -> None:
    ids = add_active(db, list_id, 1)
    with db.transaction() as s:
        page = store_entries.get_entry(s, list_id, ids[0])
        canary = store_entries.get_entry(s, list_id, 1)
        assert (page.listed, canary.listed, canary.added_version) == (False, False, None)
        version, _, _ = publish_in(s, list_id)
        assert (page.listed, page.needs_publish, page.added_version) == (True, False, version)
        assert (canary.listed, canary.added_version) == (True, version)
        request = store_versions.request_publish(s, list_id, actor="alice", now=NOW)
        assert store_versions.complete_publish_requests(s, list_id, version=1, now=NOW) == 1
        assert request.done_version == 1
        latest = store_versions.latest_version(s, list_id)
    # Rows stay readable after the transaction closed (no expiry on commit).
    assert latest is not None
    assert latest.version == 1
    assert request.done_at == NOW
    assert page.listed is True


def test_recent_versions_pair_each_version_with_its_adds_and_removes(
    db: Database, list_id: int
) -> None:
    with db.read() as s:
        assert store_versions.recent_versions(s, list_id, 5) == []
    first = add_active(db, list_id, 2, prefix="v1")
    publish(db, list_id)  # version 1: the canary and two pages
    expire_ids(db, list_id, first[:1])
    second = add_active(db, list_id, 1, prefix="v2")
    publish(db, list_id)  # version 2: one added, one removed
    with db.read() as s:
        newest = store_versions.recent_versions(s, list_id, 1)
        everything = store_versions.recent_versions(s, list_id, 10)
    assert [v.row.version for v in newest] == [2]
    assert [v.row.version for v in everything] == [2, 1]
    by_version = {v.row.version: v for v in everything}
    assert [e.id for e in by_version[2].adds] == second
    assert [e.id for e in by_version[2].removes] == first[:1]
    assert set(first) <= {e.id for e in by_version[1].adds}
    assert len(by_version[1].adds) == 3
    assert by_version[1].removes == []
