"""Appending to and reading the hash-chained audit log.

One chain per list (``chain`` = list id) plus a deployment ("global")
chain (``chain`` 0) for token management, and later persons' accounts.
Per-list chains keep an auditor's bundle for one list free of other lists'
activity, and each version statement's ``audit`` line commits to its own
list's head. At each publish the global chain's head is recorded in the
list's chain (:func:`record_global_head`, a ``global.head`` record), so the
statements commit to the global records too without any change to the
statement format (issue 12, item 13).

Appenders of one chain are serialised so concurrent writers never fork it:
on PostgreSQL by the transaction-scoped advisory lock of :func:`lock_list`
(taken before the head is read, and re-entrant, so services that already
hold it lose nothing); on SQLite by the write transaction itself. The
primary key ``(chain, seq)`` is the last line of defence: a fork cannot be
committed. Records are appended in the caller's transaction, the same one as
the change they record (DESIGN.md, "Accountability").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from blocklist.auditlog import (
    AUDIT_ZERO,
    Action,
    Actor,
    AuditChainError,
    AuditRecord,
    chain_hash,
    verify_chain,
)
from blocklist.encoding import b64decode, b64encode
from blocklist.errors import FormatError
from blocklist.store.db import advisory_lock
from blocklist.store.errors import InvalidField, LimitExceeded, NotFound
from blocklist.store.models import ACTION_LENGTH, ACTOR_LENGTH, AuditRow, EntryRow, ListRow

__all__ = [
    "DEPLOYMENT_CHAIN",
    "GLOBAL_HEAD_ACTION",
    "MAX_AUDIT_PAGE",
    "PUBLISHER_ACTOR",
    "AuditEvent",
    "AuditHead",
    "append",
    "append_entry",
    "append_global",
    "append_many",
    "begin_global",
    "check_actor",
    "entry_records",
    "head",
    "last_global_head",
    "lock_list",
    "parse_global_head",
    "person_details",
    "record_global_head",
    "records",
    "resolve_now",
    "utcnow",
    "verify",
]

#: Chain of deployment-wide records (tokens); list chains use the list id.
DEPLOYMENT_CHAIN = 0

#: Action of the list-chain record that carries the global chain's head.
GLOBAL_HEAD_ACTION = Action.GLOBAL_HEAD

#: Actor of :func:`record_global_head` records.
PUBLISHER_ACTOR = Actor.PUBLISHER

#: Largest page of records returned by one call (bounded responses).
MAX_AUDIT_PAGE = 1000

#: Actor names: printable, no whitespace controls, so logs stay one line.
_ACTOR_RE = re.compile(rf"\A[^\x00-\x1f\x7f]{{1,{ACTOR_LENGTH}}}\Z")
_ACTION_RE = re.compile(rf"\A[a-z][a-z0-9_.]{{0,{ACTION_LENGTH - 1}}}\Z")


class AuditHead(NamedTuple):
    """The last record of a chain: its ``seq`` (0 when empty) and hash."""

    seq: int
    hash: bytes


@dataclass(frozen=True)
class AuditEvent:
    """An action to append (the store assigns ``seq``, ``time`` and hashes)."""

    actor: str
    action: str
    entry_id: int | None = None
    details: Mapping[str, object] = field(default_factory=dict)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def resolve_now(now: datetime | None) -> datetime:
    """``now`` in UTC, or the current time when ``None`` (services take ``now`` for tests).

    Raises:
        InvalidField: a naive datetime (its zone would be guessed).
    """
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise InvalidField("times must be timezone-aware")
    return now.astimezone(UTC)


def check_actor(actor: str) -> str:
    """Validate an actor name (analyst, admin or ``system:...``).

    Raises:
        InvalidField: empty, longer than ``ACTOR_LENGTH`` or with control characters.
    """
    if not isinstance(actor, str) or not _ACTOR_RE.match(actor):
        raise InvalidField(f"actor must be 1..{ACTOR_LENGTH} characters without control characters")
    return actor


def lock_list(session: Session, list_id: int | None) -> None:
    """Serialise writers of one list (or of the deployment chain for ``None``).

    Every service that changes a list takes this first, before reading the
    state it decides on, so two analysts or an analyst and the publisher
    never interleave (PostgreSQL); SQLite's write transaction already does.
    """
    advisory_lock(session, list_id if list_id is not None else DEPLOYMENT_CHAIN)


def _chain(list_id: int | None) -> int:
    return list_id if list_id is not None else DEPLOYMENT_CHAIN


def _list_name(session: Session, list_id: int | None) -> str | None:
    if list_id is None:
        return None
    name = session.scalar(select(ListRow.name).where(ListRow.id == list_id))
    if name is None:
        raise NotFound(f"no list with id {list_id}")
    return name


def head(session: Session, list_id: int | None) -> AuditHead:
    """Return the head of a list's chain (``None``: the deployment chain)."""
    row = session.execute(
        select(AuditRow.seq, AuditRow.hash)
        .where(AuditRow.chain == _chain(list_id))
        .order_by(AuditRow.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return AuditHead(0, AUDIT_ZERO)
    return AuditHead(row.seq, row.hash)


def append_many(
    session: Session,
    list_id: int | None,
    events: Sequence[AuditEvent],
    *,
    now: datetime | None = None,
) -> list[AuditRecord]:
    """Append ``events`` to a chain in one bulk insert; return the records.

    Raises:
        InvalidField: a bad actor or action name.
        FormatError: details without a canonical JSON form.
        NotFound: no list with ``list_id``.
    """
    for event in events:
        check_actor(event.actor)
        if not _ACTION_RE.match(event.action):
            raise InvalidField(f"bad audit action {event.action!r}")
    if not events:
        return []
    lock_list(session, list_id)
    list_name = _list_name(session, list_id)
    seq, prev = head(session, list_id)
    # Records are hashed at second resolution; store exactly what is hashed.
    when = resolve_now(now).replace(microsecond=0)
    records: list[AuditRecord] = []
    rows: list[dict[str, object]] = []
    for event in events:
        seq += 1
        record = AuditRecord(
            seq=seq,
            time=when,
            actor=event.actor,
            action=event.action,
            list_name=list_name,
            entry_id=event.entry_id,
            details=dict(event.details),
        )
        digest = chain_hash(prev, record)
        rows.append(
            {
                "chain": _chain(list_id),
                "seq": seq,
                "list_id": list_id,
                "time": when,
                "actor": event.actor,
                "action": event.action,
                "entry_id": event.entry_id,
                "details": dict(event.details),
                "prev_hash": prev,
                "hash": digest,
            }
        )
        records.append(
            AuditRecord(
                seq=seq,
                time=when,
                actor=record.actor,
                action=record.action,
                list_name=list_name,
                entry_id=record.entry_id,
                details=record.details,
                hash=digest,
            )
        )
        prev = digest
    session.execute(insert(AuditRow), rows)
    return records


def append(
    session: Session,
    *,
    list_id: int | None,
    actor: str,
    action: str,
    entry_id: int | None = None,
    details: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """Append one record to a chain in the caller's transaction.

    Raises:
        InvalidField: a bad actor or action name.
        FormatError: details without a canonical JSON form.
        NotFound: no list with ``list_id``.
    """
    event = AuditEvent(actor=actor, action=action, entry_id=entry_id, details=details or {})
    return append_many(session, list_id, [event], now=now)[0]


def begin_global(session: Session, actor: str, now: datetime | None) -> datetime:
    """The start of a change recorded in the deployment chain: ``now``
    resolved, the actor checked, the chain's lock taken before the state
    the change decides on is read.

    Raises:
        InvalidField: a naive ``now`` or a bad actor.
    """
    now = resolve_now(now)
    check_actor(actor)
    lock_list(session, None)
    return now


def append_entry(
    session: Session,
    entry: EntryRow,
    actor: str,
    action: str,
    details: Mapping[str, object],
    now: datetime | None = None,
) -> AuditRecord:
    """Append a record about one entry to its list's chain.

    The details start with the entry's ``hash`` (base64), as every entry
    record's do, so the auditor can follow the entry without its plaintext.

    Raises:
        InvalidField: a bad actor or action name.
        FormatError: details without a canonical JSON form.
    """
    return append(
        session,
        list_id=entry.list_id,
        actor=actor,
        action=action,
        entry_id=entry.id,
        details={"hash": b64encode(entry.hash), **details},
        now=now,
    )


def person_details(person: int | None) -> dict[str, object]:
    """The ``person`` key of a record's details: the acting person's account
    (issue 15), present only when the actor is a person, so other records
    keep their form."""
    return {} if person is None else {"person": person}


def append_global(
    session: Session,
    actor: str,
    action: str,
    details: Mapping[str, object],
    now: datetime | None = None,
) -> AuditRecord:
    """Append one record to the deployment ("global") chain: :func:`append` of no list.

    Accounts, tokens, guards and appeals record there what is not one
    list's business.

    Raises:
        InvalidField: a bad actor or action name.
        FormatError: details without a canonical JSON form.
    """
    return append(session, list_id=None, actor=actor, action=action, details=details, now=now)


def _to_record(row: AuditRow, list_name: str | None) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        action=row.action,
        list_name=list_name,
        entry_id=row.entry_id,
        details=dict(row.details),
        hash=row.hash,
    )


def records(
    session: Session, list_id: int | None, *, since: int = 0, limit: int = MAX_AUDIT_PAGE
) -> list[AuditRecord]:
    """Return records ``since + 1 ..`` of a chain, at most ``limit``, in order.

    Raises:
        LimitExceeded: ``limit`` above :data:`MAX_AUDIT_PAGE` or below 1.
        NotFound: no list with ``list_id``.
    """
    if not 1 <= limit <= MAX_AUDIT_PAGE:
        raise LimitExceeded(f"limit must be 1..{MAX_AUDIT_PAGE}")
    list_name = _list_name(session, list_id)
    rows = session.scalars(
        select(AuditRow)
        .where(AuditRow.chain == _chain(list_id), AuditRow.seq > since)
        .order_by(AuditRow.seq)
        .limit(limit)
    ).all()
    return [_to_record(row, list_name) for row in rows]


def entry_records(session: Session, entry_id: int) -> list[AuditRecord]:
    """Return every record naming ``entry_id``, oldest first."""
    rows = session.execute(
        select(AuditRow, ListRow.name)
        .outerjoin(ListRow, ListRow.id == AuditRow.list_id)
        .where(AuditRow.entry_id == entry_id)
        .order_by(AuditRow.seq)
    ).all()
    return [_to_record(row, name) for row, name in rows]


def verify(session: Session, list_id: int | None) -> AuditHead:
    """Re-verify a whole chain from the stored rows; return its head.

    Raises:
        AuditChainError: a record was altered, removed or reordered, or a
            stored ``prev_hash`` disagrees with the chain.
        NotFound: no list with ``list_id``.
    """
    list_name = _list_name(session, list_id)
    seq, prev = 0, AUDIT_ZERO
    while True:
        rows = session.scalars(
            select(AuditRow)
            .where(AuditRow.chain == _chain(list_id), AuditRow.seq > seq)
            .order_by(AuditRow.seq)
            .limit(MAX_AUDIT_PAGE)
        ).all()
        if not rows:
            return AuditHead(seq, prev)
        for row in rows:
            if row.prev_hash != prev:
                raise AuditChainError(f"audit record {row.seq}: stored prev_hash breaks the chain")
            prev = verify_chain([_to_record(row, list_name)], prev=prev, first_seq=seq + 1)
            seq = row.seq


def last_global_head(session: Session, list_id: int) -> AuditHead | None:
    """The global head last recorded in a list's chain (``None``: never recorded).

    Raises:
        AuditChainError: the stored record does not carry a valid head.
    """
    details = session.scalar(
        select(AuditRow.details)
        .where(AuditRow.chain == list_id, AuditRow.action == GLOBAL_HEAD_ACTION)
        .order_by(AuditRow.seq.desc())
        .limit(1)
    )
    if details is None:
        return None
    return parse_global_head(details)


def parse_global_head(details: Mapping[str, object]) -> AuditHead:
    """The ``(seq, hash)`` a ``global.head`` record's details carry.

    Raises:
        AuditChainError: ``seq`` is not a positive integer or ``hash`` not
            base64 of 32 bytes.
    """
    seq, digest = details.get("seq"), details.get("hash")
    try:
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise FormatError("seq is not a positive integer")
        if not isinstance(digest, str):
            raise FormatError("hash is not a string")
        return AuditHead(seq, b64decode(digest, length=32, what="hash"))
    except FormatError as e:
        raise AuditChainError(f"malformed {GLOBAL_HEAD_ACTION} record: {e}") from e


def record_global_head(
    session: Session, list_id: int, *, now: datetime | None = None
) -> AuditRecord | None:
    """Record the global chain's head in a list's chain, if it moved since last time.

    The publisher calls this before it reads the list's head for a new
    statement, so the statement's ``audit`` line commits to the global
    records (token, later account management) up to that head. Nothing is
    appended when the global chain is empty or its head is the one last
    recorded: the latest ``global.head`` record of a list always names the
    global head as of the list's latest publish. Details: ``{"chain":
    "global", "seq": n, "hash": base64}``.

    Raises:
        NotFound: no list with ``list_id``.
    """
    current = head(session, None)
    if current.seq == 0:
        return None
    last = last_global_head(session, list_id)
    if last is not None and last == current:
        return None
    return append(
        session,
        list_id=list_id,
        actor=PUBLISHER_ACTOR,
        action=GLOBAL_HEAD_ACTION,
        details={"chain": "global", "seq": current.seq, "hash": b64encode(current.hash)},
        now=now,
    )
