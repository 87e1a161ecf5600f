"""The publisher-facing store: pending changes, versions, tree, checkpoints, keyrings.

The publisher (``signer/publisher.py``) cuts a version inside one
:meth:`~blocklist.store.db.Database.transaction`::

    lock_list(session, list_id)                        # one signer per list
    adds, removes = pending_changes(session, list_id, now=now, limit=...)
    previous = latest_version(session, list_id)        # state_vector, text_hash
    ... build and sign statement N, compute tree hashes with
    ... merkle.stored_hashes_for_leaf(N - 1, leaf, TreeHashReader(session, list_id))
    record_version(session, list_id, version=N, ...)
    put_checkpoint(session, list_id, size=N, ...)

Everything here is O(changes) except :func:`snapshot` and :func:`plaintext`
from version 0, which are O(list) by nature.

Why this is one file of more than 800 lines: it is the one idea "what a
version is, in rows": the publisher's transaction above and the readers of
what it wrote (statements, snapshots, tree hashes, checkpoints, keyrings)
share the row layout and its invariants (a version's statement, membership
rows and tree hashes are written together and read back by the same
keys). Splitting writer from readers would put the two halves of each
invariant in different files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import ColumnElement, CursorResult, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from blocklist.auditlog import Action
from blocklist.errors import ProofError
from blocklist.merkle import leaf_hash as merkle_leaf_hash
from blocklist.merkle import stored_hash_count, stored_hash_index
from blocklist.store import audit
from blocklist.store.db import is_postgresql
from blocklist.store.entries import due_for_expiry, expire_due
from blocklist.store.errors import (
    Conflict,
    InvalidField,
    InvalidState,
    LimitExceeded,
    NotFound,
    Pruned,
)
from blocklist.store.lists import get_list_by_id
from blocklist.store.models import (
    HASH_BYTES,
    STATE_VECTOR_BYTES,
    STATUS_ACTIVE,
    CheckpointHistoryRow,
    CheckpointRow,
    EntryRow,
    IspSeenRow,
    KeyringRow,
    ListRow,
    MembershipRow,
    PublishRequestRow,
    TokenRow,
    TreeHashRow,
    VersionRow,
)

__all__ = [
    "MAX_PAGE",
    "PLAINTEXT_PAGE_ROWS",
    "PUBLISH_CHANNEL",
    "IspVersion",
    "ListState",
    "PendingChanges",
    "PlaintextPage",
    "PublishedVersion",
    "TreeHashReader",
    "checkpoint_history",
    "complete_publish_requests",
    "current_members",
    "current_version",
    "get_checkpoint",
    "get_keyring",
    "get_version",
    "has_pending_work",
    "isp_versions",
    "iter_statements",
    "latest_version",
    "list_states",
    "lock_list",
    "notify_checkpoint_changed",
    "open_publish_requests",
    "pending_changes",
    "plaintext",
    "publish_request_version",
    "put_checkpoint",
    "put_keyring",
    "recent_versions",
    "record_isp_seen",
    "record_version",
    "request_publish",
    "snapshot",
    "statement",
    "statements",
    "still_listed",
]

#: Largest page of statements per call (bounded responses).
MAX_PAGE = 1000

#: Rows per plaintext page before it is cut back to a version boundary.
PLAINTEXT_PAGE_ROWS: Final = 5000

#: Hashes per ``IN (...)`` clause, below every backend's bind parameter limit.
_IN_CHUNK = 1000

lock_list = audit.lock_list


class PendingChanges(NamedTuple):
    """What the next version should change: ``(entry_id, hash)`` pairs, by entry id."""

    adds: list[tuple[int, bytes]]
    removes: list[tuple[int, bytes]]


@dataclass(frozen=True)
class PlaintextPage:
    """``(hash, expression)`` pairs, and the ``since`` of the next page (``None`` at the end)."""

    items: list[tuple[bytes, str]]
    next_cursor: int | None


class PublishedVersion(NamedTuple):
    """A published version with the entries it added and removed."""

    row: VersionRow
    adds: list[EntryRow]
    removes: list[EntryRow]


class IspVersion(NamedTuple):
    """The last version an ISP token fetched of a list, and when."""

    token_id: int
    token_name: str
    version: int
    at: datetime


def _chunks(items: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise InvalidField(f"{what} must be {HASH_BYTES} bytes")


def pending_changes(session: Session, list_id: int, *, now: datetime, limit: int) -> PendingChanges:
    """Expire due entries, then return up to ``limit`` unpublished changes.

    Entries whose ``expires_at`` has come are first expired (audit actor
    ``system:expiry``), in the caller's transaction. Removals come before
    additions when the change set exceeds ``limit``: a wrong block must come
    off fast, and the remaining additions go into the next version.

    Raises:
        LimitExceeded: ``limit`` below 1.
        NotFound: no such list.
    """
    if limit < 1:
        raise LimitExceeded("limit must be at least 1")
    get_list_by_id(session, list_id)
    lock_list(session, list_id)
    expire_due(session, list_id, now=now)
    flagged = select(EntryRow.id, EntryRow.hash).where(
        EntryRow.list_id == list_id, EntryRow.needs_publish.is_(True)
    )
    removes = [
        (row.id, row.hash)
        for row in session.execute(
            flagged.where(EntryRow.listed.is_(True)).order_by(EntryRow.id).limit(limit)
        )
    ]
    room = limit - len(removes)
    adds: list[tuple[int, bytes]] = []
    if room > 0:
        adds = [
            (row.id, row.hash)
            for row in session.execute(
                flagged.where(EntryRow.listed.is_(False), EntryRow.status == STATUS_ACTIVE)
                .order_by(EntryRow.id)
                .limit(room)
            )
        ]
    return PendingChanges(adds=adds, removes=removes)


def has_pending_work(session: Session, list_id: int, *, now: datetime) -> bool:
    """Whether a publish at ``now`` would have anything to do (a cheap read, no lock).

    True when an entry is flagged for publication (an approved addition or
    an expiry not yet published) or an entry's scheduled expiry has come.
    Lets the publisher skip the write lock when idle, so a busy SQLite
    database is not locked by a signer that has nothing to sign.
    """
    flagged = session.scalar(
        select(EntryRow.id)
        .where(EntryRow.list_id == list_id, EntryRow.needs_publish.is_(True))
        .limit(1)
    )
    if flagged is not None:
        return True
    due = session.scalar(select(EntryRow.id).where(*due_for_expiry(list_id, now)).limit(1))
    return due is not None


def current_version(session: Session, list_id: int) -> int:
    """The latest published version of a list (0 before the first)."""
    value = session.scalar(
        select(func.max(VersionRow.version)).where(VersionRow.list_id == list_id)
    )
    return int(value or 0)


def latest_version(session: Session, list_id: int) -> VersionRow | None:
    """The latest version row of a list, or ``None`` before the first."""
    return session.scalar(
        select(VersionRow)
        .where(VersionRow.list_id == list_id)
        .order_by(VersionRow.version.desc())
        .limit(1)
    )


def recent_versions(session: Session, list_id: int, limit: int) -> list[PublishedVersion]:
    """The latest ``limit`` versions of a list, newest first, with their entries.

    Two queries whatever ``limit`` is (the versions, then every entry added
    or removed by one of them): the console's Versions page.
    """
    rows = list(
        session.scalars(
            select(VersionRow)
            .where(VersionRow.list_id == list_id)
            .order_by(VersionRow.version.desc())
            .limit(limit)
        ).all()
    )
    if not rows:
        return []
    shown = [r.version for r in rows]
    changed = list(
        session.scalars(
            select(EntryRow)
            .where(
                EntryRow.list_id == list_id,
                EntryRow.added_version.in_(shown) | EntryRow.removed_version.in_(shown),
            )
            .order_by(EntryRow.id)
        ).all()
    )
    return [
        PublishedVersion(
            row,
            [e for e in changed if e.added_version == row.version],
            [e for e in changed if e.removed_version == row.version],
        )
        for row in rows
    ]


def get_version(session: Session, list_id: int, version: int) -> VersionRow:
    """Return version ``version`` of a list.

    Raises:
        NotFound: no such version.
    """
    row = session.get(VersionRow, (list_id, version))
    if row is None:
        raise NotFound(f"no version {version}")
    return row


def _statement_text(note: str) -> str:
    # c2sp.org/signed-note: the text ends in a newline and is followed by a
    # blank line; the text alone is the Merkle leaf (DESIGN.md, "Log").
    end = note.find("\n\n")
    if end < 0:
        raise InvalidField("statement note has no blank line before its signatures")
    return note[: end + 1]


def still_listed(removed_version: Any) -> ColumnElement[bool]:
    """``removed_version IS NULL``, written so no index on that column serves it.

    Lookups by hash must go through the (list_id, hash) key. Given a bare
    ``IS NULL``, SQLite without statistics prefers the (list_id,
    removed_version) index and walks every listed row: O(list size) per
    publish instead of O(changes). Versions start at 1, so 0 stands for NULL.
    """
    return func.coalesce(removed_version, 0) == 0


def current_members(session: Session, list_id: int, hashes: Sequence[bytes]) -> set[bytes]:
    """Return which of ``hashes`` are in the list's latest published version (O(changes))."""
    found: set[bytes] = set()
    for chunk in _chunks(hashes):
        found.update(
            session.scalars(
                select(MembershipRow.hash).where(
                    MembershipRow.list_id == list_id,
                    still_listed(MembershipRow.removed_version),
                    MembershipRow.hash.in_(chunk),
                )
            )
        )
    return found


def _count_entries(
    session: Session, list_id: int, hashes: Sequence[bytes], *where: ColumnElement[bool]
) -> int:
    total = 0
    for chunk in _chunks(hashes):
        total += int(
            session.scalar(
                select(func.count())
                .select_from(EntryRow)
                .where(EntryRow.list_id == list_id, EntryRow.hash.in_(chunk), *where)
            )
            or 0
        )
    return total


def record_version(
    session: Session,
    list_id: int,
    *,
    version: int,
    note: str,
    text_hash: bytes,
    leaf_hash: bytes,
    time: datetime,
    keyring_serial: int,
    count: int,
    state_vector: bytes,
    audit_head: bytes,
    adds: Sequence[bytes],
    removes: Sequence[bytes],
    tree_hashes: Sequence[bytes],
) -> VersionRow:
    """Store a signed version and apply it: memberships, tree hashes, entry flags.

    ``tree_hashes`` are the hashes :func:`blocklist.merkle.stored_hashes_for_leaf`
    returns for leaf ``version - 1`` (the leaf hash first); they are stored
    from ``stored_hash_index(0, version - 1)`` on.

    The store re-checks what it can, so a publisher bug cannot corrupt the
    log: consecutive version, statement text and leaf hash matching the note,
    a delta that adds only approved, unpublished entries and removes only
    current members, and a count that follows from the previous one.

    Raises:
        Conflict: ``version`` is not the current version + 1.
        InvalidField: wrong sizes, or hashes that do not match the note.
        InvalidState: the delta is empty, overlapping or inconsistent with
            the memberships, the entries or the previous count.
        NotFound: no such list.
    """
    get_list_by_id(session, list_id)
    lock_list(session, list_id)
    previous = latest_version(session, list_id)
    expected = (previous.version if previous else 0) + 1
    if version != expected:
        raise Conflict(f"version {version} cannot follow version {expected - 1}")
    _check_hash(text_hash, "text_hash")
    _check_hash(leaf_hash, "leaf_hash")
    _check_hash(audit_head, "audit_head")
    for h in (*adds, *removes, *tree_hashes):
        _check_hash(h, "a hash")
    if not isinstance(state_vector, bytes) or len(state_vector) != STATE_VECTOR_BYTES:
        raise InvalidField(f"state_vector must be {STATE_VECTOR_BYTES} bytes")
    text = _statement_text(note).encode("utf-8")
    if hashlib.sha256(text).digest() != text_hash:
        raise InvalidField("text_hash is not the SHA-256 of the note's text")
    if merkle_leaf_hash(text) != leaf_hash:
        raise InvalidField("leaf_hash is not the Merkle leaf hash of the note's text")
    n = version - 1
    stored = stored_hash_count(version) - stored_hash_count(n)
    if len(tree_hashes) != stored:
        raise InvalidField(f"appending leaf {n} stores {stored} tree hashes")
    if tree_hashes[0] != leaf_hash:
        raise InvalidField("the first tree hash must be the leaf hash")

    add_set, remove_set = set(adds), set(removes)
    if not adds and not removes:
        raise InvalidState("a version has at least one change")
    if len(add_set) != len(adds) or len(remove_set) != len(removes) or add_set & remove_set:
        raise InvalidState("additions and removals must be distinct and disjoint")
    previous_count = previous.count if previous else 0
    if count != previous_count + len(adds) - len(removes):
        raise InvalidState(f"count {count} does not follow from {previous_count} and the delta")
    if current_members(session, list_id, list(adds)):
        raise InvalidState("an added hash is already in the list")
    if len(current_members(session, list_id, list(removes))) != len(removes):
        raise InvalidState("a removed hash is not in the list")
    if _count_entries(
        session,
        list_id,
        list(adds),
        # an expression, so the (list_id, hash) key serves the lookup, not the
        # (list_id, status, expires_at) index (see still_listed)
        func.coalesce(EntryRow.status, "") == STATUS_ACTIVE,
        EntryRow.listed.is_(False),
    ) != len(adds):
        raise InvalidState("every added hash must be an approved, unpublished entry")
    if _count_entries(
        session, list_id, list(removes), EntryRow.status != STATUS_ACTIVE, EntryRow.listed.is_(True)
    ) != len(removes):
        raise InvalidState("every removed hash must be a listed entry taken off")

    row = VersionRow(
        list_id=list_id,
        version=version,
        note=note,
        text_hash=text_hash,
        leaf_hash=leaf_hash,
        time=time,
        keyring_serial=keyring_serial,
        count=count,
        state_vector=state_vector,
        audit_head=audit_head,
    )
    session.add(row)
    session.flush()
    if adds:
        session.execute(
            insert(MembershipRow),
            [{"list_id": list_id, "hash": h, "added_version": version} for h in adds],
        )
    start = stored_hash_index(0, n)
    session.execute(
        insert(TreeHashRow),
        [{"list_id": list_id, "idx": start + i, "hash": h} for i, h in enumerate(tree_hashes)],
    )
    for chunk in _chunks(list(removes)):
        session.execute(
            update(MembershipRow)
            .where(
                MembershipRow.list_id == list_id,
                still_listed(MembershipRow.removed_version),
                MembershipRow.hash.in_(chunk),
            )
            .values(removed_version=version)
        )
        session.execute(
            update(EntryRow)
            .where(EntryRow.list_id == list_id, EntryRow.hash.in_(chunk))
            .values(listed=False, removed_version=version, needs_publish=False)
        )
    for chunk in _chunks(list(adds)):
        session.execute(
            update(EntryRow)
            .where(EntryRow.list_id == list_id, EntryRow.hash.in_(chunk))
            .values(listed=True, added_version=version, removed_version=None, needs_publish=False)
        )
    # The ORM-enabled UPDATEs above synchronise already loaded entries
    # (synchronize_session="auto"), so callers see the new flags.
    return row


def snapshot(session: Session, list_id: int, version: int) -> list[bytes]:
    """The sorted raw hashes of a list at ``version`` (DESIGN.md, "Snapshot").

    Raises:
        NotFound: ``version`` is negative or not yet published.
        Pruned: ``version`` is below the list's snapshot floor
            (:mod:`blocklist.store.retention`).
    """
    if version < 0 or version > current_version(session, list_id):
        raise NotFound(f"no version {version}")
    floor = get_list_by_id(session, list_id).snapshot_floor
    if version < floor:
        raise Pruned(
            f"the snapshot of version {version} was pruned by retention; snapshots are kept "
            f"from version {floor} on (statements are kept for every version)"
        )
    query = (
        select(MembershipRow.hash)
        .where(
            MembershipRow.list_id == list_id,
            MembershipRow.added_version <= version,
            (MembershipRow.removed_version.is_(None)) | (MembershipRow.removed_version > version),
        )
        .order_by(MembershipRow.hash)
    )
    # Core, not ORM: a snapshot is up to millions of rows, and the ORM's
    # per-row work was half the cost of serving one (first syncs).
    return [row[0] for row in session.connection().execute(query)]


def statements(session: Session, list_id: int, *, since: int, limit: int) -> list[str]:
    """The signed notes of versions ``since + 1 ..``, at most ``limit``, in order.

    Raises:
        LimitExceeded: ``limit`` outside 1..MAX_PAGE.
        InvalidField: negative ``since``.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise LimitExceeded(f"limit must be 1..{MAX_PAGE}")
    if since < 0:
        raise InvalidField("since must not be negative")
    return list(
        session.scalars(
            select(VersionRow.note)
            .where(VersionRow.list_id == list_id, VersionRow.version > since)
            .order_by(VersionRow.version)
            .limit(limit)
        ).all()
    )


def iter_statements(session: Session, list_id: int, upto: int) -> Iterator[str]:
    """The signed notes of versions 1..``upto``, in order, read in pages of :data:`MAX_PAGE`."""
    after = 0
    while after < upto:
        notes = statements(session, list_id, since=after, limit=min(MAX_PAGE, upto - after))
        if not notes:
            return
        yield from notes
        # Versions are numbered 1, 2, ... without gaps (record_version).
        after += len(notes)


def statement(session: Session, list_id: int, version: int) -> str:
    """The signed note of one version.

    Raises:
        NotFound: no such version.
    """
    return get_version(session, list_id, version).note


class TreeHashReader:
    """:class:`blocklist.merkle.HashReader` over the ``tree_hashes`` table."""

    def __init__(self, session: Session, list_id: int) -> None:
        """Read the stored hashes of ``list_id`` through ``session``."""
        self._session = session
        self._list_id = list_id

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the hashes at ``indexes`` in order, with one query.

        Raises:
            ProofError: an index that is not stored.
        """
        if not indexes:
            return []
        wanted = sorted(set(indexes))
        found = {
            row.idx: row.hash
            for row in self._session.execute(
                select(TreeHashRow.idx, TreeHashRow.hash).where(
                    TreeHashRow.list_id == self._list_id, TreeHashRow.idx.in_(wanted)
                )
            )
        }
        missing = [i for i in wanted if i not in found]
        if missing:
            raise ProofError(f"stored hash {missing[0]} is not in the tree")
        return [found[i] for i in indexes]


def get_checkpoint(session: Session, list_id: int) -> CheckpointRow | None:
    """The latest signed checkpoint of a list, or ``None`` before ``init`` signed one."""
    return session.get(CheckpointRow, list_id)


#: PostgreSQL LISTEN/NOTIFY channel on which every change of a list's served
#: checkpoint is announced (payload: the list id as decimal text), so every
#: API worker wakes its long-polling ISPs at once (DESIGN.md, "Freshness").
PUBLISH_CHANNEL: Final = "cleanfeed_publish"


def notify_checkpoint_changed(session: Session, list_id: int) -> None:
    """Announce, at commit, that ``list_id``'s served checkpoint changed.

    PostgreSQL: ``pg_notify`` inside the caller's transaction, delivered to
    listeners only if and when it commits (PostgreSQL documentation, NOTIFY:
    "if a NOTIFY is executed inside a transaction, the notify events are
    not delivered until and unless the transaction is committed"), so a
    waiter never wakes for a version that was rolled back. SQLite has no
    such channel: the API polls instead (:mod:`api.longpoll`).
    """
    if is_postgresql(session):
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": PUBLISH_CHANNEL, "payload": str(list_id)},
        )


def put_checkpoint(
    session: Session, list_id: int, *, size: int, root: bytes, note: str, signed_at: datetime
) -> CheckpointRow:
    """Store a (re-)signed checkpoint as the latest; keep the first note of each size.

    Raises:
        InvalidState: a smaller tree than the latest (rollback) or a tree
            larger than the versions stored.
        Conflict: another root for a size already signed (equivocation).
        InvalidField: a root that is not 32 bytes.
    """
    _check_hash(root, "root")
    lock_list(session, list_id)
    if size < 0 or size > current_version(session, list_id):
        raise InvalidState(f"checkpoint size {size} exceeds the versions stored")
    latest = get_checkpoint(session, list_id)
    if latest is not None and size < latest.size:
        raise InvalidState(f"checkpoint size {size} is below the latest {latest.size} (rollback)")
    first = session.scalar(
        select(CheckpointHistoryRow).where(
            CheckpointHistoryRow.list_id == list_id, CheckpointHistoryRow.size == size
        )
    )
    if first is not None and first.root != root:
        raise Conflict(f"a different root was already signed for size {size} (equivocation)")
    if first is None:
        session.add(
            CheckpointHistoryRow(
                list_id=list_id, size=size, root=root, note=note, signed_at=signed_at
            )
        )
    if latest is None:
        latest = CheckpointRow(
            list_id=list_id, size=size, root=root, note=note, signed_at=signed_at
        )
        session.add(latest)
    else:
        latest.size, latest.root, latest.note, latest.signed_at = size, root, note, signed_at
    session.flush()
    notify_checkpoint_changed(session, list_id)
    return latest


def checkpoint_history(session: Session, list_id: int) -> list[CheckpointHistoryRow]:
    """Every distinct checkpoint signed for a list, by size."""
    return list(
        session.scalars(
            select(CheckpointHistoryRow)
            .where(CheckpointHistoryRow.list_id == list_id)
            .order_by(CheckpointHistoryRow.size)
        ).all()
    )


def get_keyring(session: Session, list_id: int, serial: int | None = None) -> KeyringRow | None:
    """The keyring with ``serial``, or the latest one; ``None`` when absent."""
    if serial is not None:
        return session.get(KeyringRow, (list_id, serial))
    return session.scalar(
        select(KeyringRow)
        .where(KeyringRow.list_id == list_id)
        .order_by(KeyringRow.serial.desc())
        .limit(1)
    )


def put_keyring(
    session: Session, list_id: int, *, serial: int, note: str, now: datetime | None = None
) -> KeyringRow:
    """Store a signed keyring; serials are consecutive from 1.

    Raises:
        Conflict: ``serial`` is not the latest serial + 1 (a second keyring
            with one serial would be equivocation).
    """
    lock_list(session, list_id)
    latest = get_keyring(session, list_id)
    expected = (latest.serial if latest else 0) + 1
    if serial != expected:
        raise Conflict(f"keyring serial {serial} cannot follow serial {expected - 1}")
    row = KeyringRow(list_id=list_id, serial=serial, note=note, created_at=audit.resolve_now(now))
    session.add(row)
    session.flush()
    return row


def plaintext(
    session: Session, list_id: int, *, since: int, rows: int | None = None
) -> PlaintextPage:
    """Expressions of entries added after version ``since`` and still listed.

    A page ends on a version boundary so that ``next_cursor`` can be the
    ``since`` of the following page (as for statements): it holds whole
    versions ``since + 1 .. next_cursor`` and at least one version, so a page
    can exceed ``rows`` (default :data:`PLAINTEXT_PAGE_ROWS`) only by one
    version's additions (at most 10,000, DESIGN.md).

    Raises:
        LimitExceeded: ``rows`` below 1.
    """
    # Read at call time, not bound as a default, so one setting serves all.
    rows = PLAINTEXT_PAGE_ROWS if rows is None else rows
    if rows < 1:
        raise LimitExceeded("rows must be at least 1")
    listed = (
        EntryRow.list_id == list_id,
        EntryRow.listed.is_(True),
        EntryRow.added_version > since,
    )
    columns = (EntryRow.added_version, EntryRow.hash, EntryRow.expression)
    found = session.execute(
        select(*columns)
        .where(*listed)
        .order_by(EntryRow.added_version, EntryRow.id)
        .limit(rows + 1)
    ).all()
    if len(found) <= rows:
        return PlaintextPage(items=[(r.hash, r.expression) for r in found], next_cursor=None)
    last_version = found[-1].added_version
    first_version = found[0].added_version
    if first_version == last_version:
        # One version larger than a page: serve it whole.
        found = session.execute(
            select(*columns)
            .where(*listed, EntryRow.added_version == first_version)
            .order_by(EntryRow.id)
        ).all()
        end = first_version
    else:
        found = [r for r in found if r.added_version < last_version]
        end = found[-1].added_version
    more = session.scalar(select(EntryRow.id).where(*listed, EntryRow.added_version > end).limit(1))
    return PlaintextPage(
        items=[(r.hash, r.expression) for r in found],
        next_cursor=end if more is not None else None,
    )


def request_publish(
    session: Session, list_id: int, *, actor: str, now: datetime | None = None
) -> PublishRequestRow:
    """Record a publish-now request for a separate signer process (audited).

    Raises:
        NotFound: no such list.
        InvalidField: a bad actor name.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    get_list_by_id(session, list_id)
    lock_list(session, list_id)
    row = PublishRequestRow(
        list_id=list_id, requested_by=actor, requested_at=now, done_version=None, done_at=None
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        list_id=list_id,
        actor=actor,
        action=Action.PUBLISH_REQUEST,
        details={"request": row.id},
        now=now,
    )
    return row


def open_publish_requests(session: Session, list_id: int) -> list[PublishRequestRow]:
    """Publish requests not yet served, oldest first."""
    return list(
        session.scalars(
            select(PublishRequestRow)
            .where(PublishRequestRow.list_id == list_id, PublishRequestRow.done_version.is_(None))
            .order_by(PublishRequestRow.id)
        ).all()
    )


def complete_publish_requests(
    session: Session, list_id: int, *, version: int, now: datetime | None = None
) -> int:
    """Mark every open request of a list as served by ``version``; return how many."""
    result = session.execute(
        update(PublishRequestRow)
        .where(PublishRequestRow.list_id == list_id, PublishRequestRow.done_version.is_(None))
        .values(done_version=version, done_at=audit.resolve_now(now))
    )
    return int(cast("CursorResult[Any]", result).rowcount)


def publish_request_version(session: Session, list_id: int, request_id: int) -> int | None:
    """The version that served a publish request, or None while it is open.

    Raises:
        NotFound: no such request on this list.
    """
    row = session.scalar(
        select(PublishRequestRow).where(
            PublishRequestRow.id == request_id, PublishRequestRow.list_id == list_id
        )
    )
    if row is None:
        raise NotFound(f"no publish request {request_id} on this list")
    return row.done_version


def record_isp_seen(
    session: Session, *, token_id: int, list_id: int, version: int, at: datetime
) -> None:
    """Remember the latest version an ISP token fetched (never moves backwards).

    One upsert statement, so concurrent fetches by one token cannot collide.
    """
    dialect_insert = pg_insert if is_postgresql(session) else sqlite_insert
    stmt = dialect_insert(IspSeenRow).values(
        token_id=token_id, list_id=list_id, version=version, at=at
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[IspSeenRow.token_id, IspSeenRow.list_id],
        set_={"version": stmt.excluded.version, "at": stmt.excluded.at},
        where=stmt.excluded.version >= IspSeenRow.version,
    )
    session.execute(stmt)


def isp_versions(session: Session, list_id: int) -> list[IspVersion]:
    """Which ISP is on which version of a list, by token name."""
    rows = session.execute(
        select(IspSeenRow.token_id, TokenRow.name, IspSeenRow.version, IspSeenRow.at)
        .join(TokenRow, TokenRow.id == IspSeenRow.token_id)
        .where(IspSeenRow.list_id == list_id)
        .order_by(TokenRow.name, IspSeenRow.token_id)
    ).all()
    return [IspVersion(r.token_id, r.name, r.version, r.at) for r in rows]


@dataclass(frozen=True)
class ListState:
    """Publish state of one list, for metrics and readiness."""

    list_id: int
    name: str
    version: int
    checkpoint_signed_at: datetime | None
    pending_changes: int

    def checkpoint_age_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the list's checkpoint was signed, or None without one."""
        if self.checkpoint_signed_at is None:
            return None
        return ((now or datetime.now(UTC)) - self.checkpoint_signed_at).total_seconds()


def list_states(session: Session) -> list[ListState]:
    """Publish state of every list, by name (a few aggregate queries, no per-entry work)."""
    lists = session.execute(select(ListRow.id, ListRow.name).order_by(ListRow.name)).all()
    # (Result objects have .keys(), so dict(result) would treat them as
    # mappings; build the dicts from the rows explicitly.)
    versions = {
        list_id: top
        for list_id, top in session.execute(
            select(VersionRow.list_id, func.max(VersionRow.version)).group_by(VersionRow.list_id)
        )
    }
    signed = {
        list_id: at
        for list_id, at in session.execute(select(CheckpointRow.list_id, CheckpointRow.signed_at))
    }
    pending = {
        list_id: n
        for list_id, n in session.execute(
            select(EntryRow.list_id, func.count())
            .where(EntryRow.needs_publish.is_(True))
            .group_by(EntryRow.list_id)
        )
    }
    return [
        ListState(
            list_id=row.id,
            name=row.name,
            version=int(versions.get(row.id) or 0),
            checkpoint_signed_at=signed.get(row.id),
            pending_changes=int(pending.get(row.id) or 0),
        )
        for row in lists
    ]
