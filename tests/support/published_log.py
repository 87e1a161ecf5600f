"""Checks of what a list has published, read straight from its database.

Used by the fault-injection suites (tests/faults/) after a crash, a full
disk or a database restart:

- :func:`verify_published_log` checks a list's published log the way an
  auditor would (a hash-only bundle through
  :func:`clients.audit.verify.verify_bundle`) and, independently of the code
  under test, with the RFC 6962 recursive root and a replay of every delta:
  version numbers 1..N each used once, the ``previous`` chain, signatures,
  state digests, the current checkpoint's size and root, the snapshot, and
  the audit chain.
- :func:`check_highwater` checks the signer's high-water mark against that
  log: never ahead of the database, and the root of the tree it names.
- :func:`sqlite_integrity` runs SQLite's own checks on a database file.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from blocklist.checkpoint import Checkpoint
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import lists as store_lists
from blocklist.store import versions as store_versions
from blocklist.store.models import MembershipRow, VersionRow
from clients.audit.bundle import KIND_HASH_ONLY, Bundle
from clients.audit.verify import verify_bundle
from signer.highwater import HighWater, HighWaterMark
from signer.note import parse_note
from support.log_verifier import naive_mth


def sqlite_integrity(path: Path) -> None:
    """Assert SQLite's integrity and foreign-key checks pass on ``path``."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        assert rows == [("ok",)], f"integrity_check of {path}: {rows[:10]}"
        bad_keys = conn.execute("PRAGMA foreign_key_check").fetchall()
        assert bad_keys == [], f"foreign_key_check of {path}: {bad_keys[:10]}"
    finally:
        conn.close()


def _leaf_data(texts: Sequence[str]) -> list[bytes]:
    """Leaf data of each statement text (the text only, DESIGN.md item 3)."""
    return [t.encode("utf-8") for t in texts]


@dataclass
class LogView:
    """What a verified log establishes."""

    list_id: int
    origin: str
    size: int
    texts: list[str]
    members: set[bytes]
    root: bytes
    checkpoint_note: str


@dataclass
class _Stored:
    """What the database holds for one list's log."""

    list_id: int
    origin: str
    approvals_required: int
    numbers: list[int]
    keyrings: list[str]
    statements: list[str]
    checkpoints: list[str]
    checkpoint_note: str
    snapshot: list[bytes]


def _stored_log(db: Database, list_name: str) -> _Stored:
    with db.read() as s:
        lst = store_lists.get_list(s, list_name)
        keyrings: list[str] = []
        serial = 1
        while (row := store_versions.get_keyring(s, lst.id, serial)) is not None:
            keyrings.append(row.note)
            serial += 1
        numbers = list(
            s.scalars(
                select(VersionRow.version)
                .where(VersionRow.list_id == lst.id)
                .order_by(VersionRow.version)
            )
        )
        notes: list[str] = []
        while page := store_versions.statements(s, lst.id, since=len(notes), limit=1000):
            notes.extend(page)
        checkpoint = store_versions.get_checkpoint(s, lst.id)
        assert checkpoint is not None, "the list has no signed checkpoint"
        history = [row.note for row in store_versions.checkpoint_history(s, lst.id)]
        if checkpoint.note not in history:
            history.append(checkpoint.note)
        snapshot = store_versions.snapshot(s, lst.id, len(notes)) if notes else []
        twice = s.execute(
            select(MembershipRow.hash, func.count())
            .where(MembershipRow.list_id == lst.id, MembershipRow.removed_version.is_(None))
            .group_by(MembershipRow.hash)
            .having(func.count() > 1)
        ).all()
        assert not twice, f"a hash is listed twice at once: {twice[:3]}"
        # The audit chain recomputes (raises on a broken link).
        store_audit.verify(s, lst.id)
        return _Stored(
            lst.id,
            lst.origin,
            lst.approvals_required,
            numbers,
            keyrings,
            notes,
            history,
            checkpoint.note,
            snapshot,
        )


def verify_published_log(
    db: Database, root_vkey: str, *, list_name: str = "main", now: datetime | None = None
) -> LogView:
    """Verify everything a list has published; return what it establishes.

    Raises:
        AssertionError: any check fails (the message says which).
    """
    stored = _stored_log(db, list_name)
    notes = stored.statements
    # Every version number is used exactly once, without gaps.
    assert stored.numbers == list(range(1, len(stored.numbers) + 1)), (
        f"version numbers: {stored.numbers[:20]}..."
    )
    assert len(notes) == len(stored.numbers)
    bundle = Bundle(
        kind=KIND_HASH_ONLY,
        list_name=list_name,
        origin=stored.origin,
        approvals_required=stored.approvals_required,
        keyrings=tuple(stored.keyrings),
        statements=tuple(notes),
        checkpoints=tuple(stored.checkpoints),
    )
    report = verify_bundle(bundle, [root_vkey], now=now or datetime.now(UTC), workers=1)
    assert report.ok, f"the log does not verify: {report.failure}"
    assert report.version == len(notes)

    # Independent replay: numbering, chain, set semantics, digests, root.
    texts: list[str] = []
    members: set[bytes] = set()
    previous = bytes(32)
    for number, note in enumerate(notes, start=1):
        statement_text = parse_note(note).text
        st = Statement.parse(statement_text)
        assert st.version == number
        assert st.previous == previous, f"version {number} breaks the previous-chain"
        assert not members.intersection(st.adds), f"version {number} adds a present hash"
        assert members.issuperset(st.removes), f"version {number} removes an absent hash"
        members.difference_update(st.removes)
        members.update(st.adds)
        assert st.count == len(members)
        previous = hashlib.sha256(statement_text.encode("utf-8")).digest()
        texts.append(statement_text)
    if notes:
        last = Statement.parse(texts[-1])
        assert StateDigest.from_hashes(members).digest() == last.state
    assert stored.snapshot == sorted(members), "the stored snapshot is not the replayed set"
    root = naive_mth(_leaf_data(texts))
    checkpoint = Checkpoint.parse(parse_note(stored.checkpoint_note).text)
    assert (checkpoint.size, checkpoint.root) == (len(texts), root), (
        "the current checkpoint does not sign the stored tree"
    )
    return LogView(
        stored.list_id, stored.origin, len(texts), texts, members, root, stored.checkpoint_note
    )


def check_highwater(keys_dir: Path, view: LogView, *, list_name: str = "main") -> HighWaterMark:
    """Assert the signer's mark is never ahead of the log and names a real tree.

    A mark behind the database is safe (the next signing extends it); a
    mark ahead of it, or naming another root, would block every publish.
    """
    mark = HighWater.for_list(keys_dir, list_name).read()
    assert mark.origin == view.origin
    assert mark.size <= view.size, f"high-water mark {mark.size} ahead of the log {view.size}"
    assert mark.root == naive_mth(_leaf_data(view.texts[: mark.size])), (
        "the high-water mark names a tree that is not a prefix of the log"
    )
    return mark
