"""Registered witnesses and their cosignature lines (issue 12, item 1).

A witness cosigns a list's checkpoint (c2sp.org/tlog-cosignature) so that
ISPs requiring a quorum of witnesses (DESIGN.md, ISP sync step 8) cannot be
shown a view the witnesses have not seen. Only keys an administrator
registered for the list (CLI ``cleanfeed witness add``, admin API ``POST
/v1/lists/{list}/witnesses``) may post lines; everyone else is refused
(:class:`~blocklist.store.errors.WitnessNotRegistered`). The cap counts
registered witnesses, so an auditor token holding keys of its own can no
longer fill the table and lock the real witnesses out.

Each registration and removal is an audit record of the list's chain
(``witness.add``, ``witness.remove``), in the transaction of the change,
so the next statement commits to it. A witness holds at most one stored
line (the latest it posted); removal deletes it.

The store does not parse vkeys or verify signatures (that is
:mod:`signer.note`'s job, done by the caller); it keeps the parsed key and
serves back only lines of registered witnesses for one checkpoint text.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from blocklist.auditlog import Action
from blocklist.store import audit
from blocklist.store.errors import (
    Conflict,
    InvalidField,
    LimitExceeded,
    NotFound,
    WitnessNotRegistered,
)
from blocklist.store.models import (
    HASH_BYTES,
    WITNESS_NAME_LENGTH,
    WitnessCosignatureRow,
    WitnessKeyRow,
)

__all__ = [
    "MAX_LINE_CHARS",
    "MAX_VKEY_CHARS",
    "MAX_WITNESSES_PER_LIST",
    "add_witness",
    "checkpoint_text_hash",
    "cosignature_lines",
    "find_witness",
    "list_witnesses",
    "put_cosignature",
    "registered_witness",
    "remove_witness",
]

#: Most witnesses registered per list: bounds the served checkpoint (each
#: line is about 120 bytes) and what an ISP verifies per poll.
MAX_WITNESSES_PER_LIST: Final = 32

#: Longest vkey text kept (a name of 255 bytes plus key ID and base64 key).
MAX_VKEY_CHARS: Final = WITNESS_NAME_LENGTH + 64

#: Longest stored cosignature line ("— name base64(76 bytes)").
MAX_LINE_CHARS: Final = WITNESS_NAME_LENGTH + 128


def _check_key(name: str, key_id: bytes, public_key: bytes, vkey: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name.encode("utf-8")) <= WITNESS_NAME_LENGTH:
        raise InvalidField(f"witness key name must be 1..{WITNESS_NAME_LENGTH} bytes")
    if len(key_id) != 4 or len(public_key) != 32:
        raise InvalidField("a witness key has a 4-byte key ID and a 32-byte Ed25519 key")
    if not isinstance(vkey, str) or not 0 < len(vkey) <= MAX_VKEY_CHARS:
        raise InvalidField(f"witness vkey must be 1..{MAX_VKEY_CHARS} characters")


def list_witnesses(session: Session, list_id: int) -> list[WitnessKeyRow]:
    """The witnesses registered for a list, by name then id."""
    return list(
        session.scalars(
            select(WitnessKeyRow)
            .where(WitnessKeyRow.list_id == list_id)
            .order_by(WitnessKeyRow.name, WitnessKeyRow.id)
        ).all()
    )


def find_witness(session: Session, list_id: int, name: str, key_id: bytes) -> WitnessKeyRow | None:
    """The registered witness of a list with this key name and 0x04 key ID, if any."""
    return session.scalar(
        select(WitnessKeyRow).where(
            WitnessKeyRow.list_id == list_id,
            WitnessKeyRow.name == name,
            WitnessKeyRow.key_id == key_id,
        )
    )


def registered_witness(
    session: Session, list_id: int, *, name: str, key_id: bytes, public_key: bytes
) -> WitnessKeyRow:
    """The registered witness of a list holding exactly this key.

    Lockout attack (issue 12 item 1): only registered keys post; the public
    key must be the registered one, not merely a key whose 4-byte ID
    collides with it.

    Raises:
        WitnessNotRegistered: no witness of this list holds that key.
    """
    witness = find_witness(session, list_id, name, key_id)
    if witness is None or witness.public_key != public_key:
        raise WitnessNotRegistered(
            f"witness key {name[:64]!r} is not registered for this list; "
            "an administrator registers witnesses with `cleanfeed witness add`"
        )
    return witness


def checkpoint_text_hash(text: str) -> bytes:
    """The key under which lines cosigning a checkpoint text are stored (its SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def add_witness(
    session: Session,
    list_id: int,
    *,
    name: str,
    key_id: bytes,
    public_key: bytes,
    vkey: str,
    actor: str,
    now: datetime | None = None,
) -> WitnessKeyRow:
    """Register a witness key for a list (audited as ``witness.add``).

    Args:
        name: the key name of its signature lines.
        key_id: the 4-byte cosignature (type 0x04) key ID.
        public_key: the 32-byte Ed25519 public key.
        vkey: the vkey as the administrator gave it (type 0x04 form).

    Raises:
        InvalidField: a malformed name, key ID, key or vkey; a bad actor.
        Conflict: this key (name and key ID) is registered already.
        LimitExceeded: the list has :data:`MAX_WITNESSES_PER_LIST` witnesses.
        NotFound: no such list.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    _check_key(name, key_id, public_key, vkey)
    audit.lock_list(session, list_id)
    if find_witness(session, list_id, name, key_id) is not None:
        raise Conflict(f"witness key {name!r} is registered for this list already")
    count = session.scalar(
        select(func.count()).select_from(WitnessKeyRow).where(WitnessKeyRow.list_id == list_id)
    )
    if (count or 0) >= MAX_WITNESSES_PER_LIST:
        raise LimitExceeded(f"at most {MAX_WITNESSES_PER_LIST} witnesses per list")
    row = WitnessKeyRow(
        list_id=list_id,
        name=name,
        key_id=key_id,
        public_key=public_key,
        vkey=vkey,
        created_at=now,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        list_id=list_id,
        actor=actor,
        action=Action.WITNESS_ADD,
        details={"witness": row.id, "name": name, "vkey": vkey},
        now=now,
    )
    return row


def remove_witness(
    session: Session, list_id: int, witness_id: int, *, actor: str, now: datetime | None = None
) -> WitnessKeyRow:
    """Unregister a witness (audited as ``witness.remove``); its stored line goes too.

    Raises:
        NotFound: no witness with this id on this list.
        InvalidField: a bad actor.
    """
    now = audit.resolve_now(now)
    audit.check_actor(actor)
    audit.lock_list(session, list_id)
    row = session.scalar(
        select(WitnessKeyRow).where(
            WitnessKeyRow.id == witness_id, WitnessKeyRow.list_id == list_id
        )
    )
    if row is None:
        raise NotFound(f"no witness {witness_id} registered for this list")
    session.execute(
        delete(WitnessCosignatureRow).where(WitnessCosignatureRow.witness_id == witness_id)
    )
    audit.append(
        session,
        list_id=list_id,
        actor=actor,
        action=Action.WITNESS_REMOVE,
        details={"witness": row.id, "name": row.name, "vkey": row.vkey},
        now=now,
    )
    session.delete(row)
    session.flush()
    return row


def put_cosignature(
    session: Session,
    witness: WitnessKeyRow,
    *,
    text_hash: bytes,
    size: int,
    timestamp: int,
    line: str,
    now: datetime | None = None,
) -> WitnessCosignatureRow:
    """Store a registered witness's verified line, replacing its previous one.

    The caller has verified ``line`` against ``witness.public_key`` over the
    checkpoint text whose SHA-256 is ``text_hash``.

    Raises:
        InvalidField: a malformed hash, size, timestamp or line.
    """
    now = audit.resolve_now(now)
    if len(text_hash) != HASH_BYTES or size < 0 or timestamp < 0:
        raise InvalidField("bad checkpoint hash, size or timestamp")
    if not line or "\n" in line or len(line) > MAX_LINE_CHARS:
        raise InvalidField(f"a cosignature line is one line of at most {MAX_LINE_CHARS} characters")
    session.execute(
        delete(WitnessCosignatureRow).where(WitnessCosignatureRow.witness_id == witness.id)
    )
    row = WitnessCosignatureRow(
        list_id=witness.list_id,
        witness_id=witness.id,
        text_hash=text_hash,
        size=size,
        timestamp=timestamp,
        line=line,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def cosignature_lines(session: Session, list_id: int, text_hash: bytes) -> list[str]:
    """Lines of registered witnesses that cosign the checkpoint text with this hash.

    At most one per registered witness (one stored row each), ordered by
    witness key name then id, so the served note is deterministic.
    """
    rows = session.scalars(
        select(WitnessCosignatureRow.line)
        .join(WitnessKeyRow, WitnessKeyRow.id == WitnessCosignatureRow.witness_id)
        .where(
            WitnessCosignatureRow.list_id == list_id,
            WitnessKeyRow.list_id == list_id,
            WitnessCosignatureRow.text_hash == text_hash,
        )
        .order_by(WitnessKeyRow.name, WitnessKeyRow.id)
    ).all()
    return list(rows)
