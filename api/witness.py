"""Witness cosignatures of the current checkpoint (DESIGN.md, ISP sync step 8).

A witness checks that the log only grows (consistency proofs between the
checkpoints it saw) and cosigns the checkpoint with a timestamped
c2sp.org/tlog-cosignature line (type 0x04). ``POST …/checkpoint/cosignatures``
hands such a line to the service; it is accepted only from a witness key an
administrator registered for the list (:mod:`blocklist.store.witnesses`,
issue 12 item 1: otherwise any auditor token could fill the list's witness
slots with keys of its own and lock the real witnesses out), verified
against the *registered* public key over the *current* checkpoint text and
stored, replacing that witness's previous line; ``GET …/checkpoint``
appends, per registered witness, its line if it cosigns the served text
(docs/architecture.md, "Wire details").

The lines live in the store's ``witness_cosignatures`` table (migration
0004); they are not part of the signed history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.errors import ApiProblem
from blocklist.errors import FormatError
from blocklist.keyring import SIG_TYPE_COSIGNATURE_V1, format_vkey
from blocklist.store import versions as store_versions
from blocklist.store import witnesses as store_witnesses
from blocklist.store.db import Database
from blocklist.store.errors import InvalidField
from blocklist.store.models import WitnessKeyRow
from signer.note import (
    SIGNATURE_PREFIX,
    CosignatureVerifier,
    Verifier,
    parse_note,
    verify_cosignature,
)

__all__ = [
    "MAX_WITNESSES_PER_LIST",
    "AcceptedCosignature",
    "WitnessStore",
    "canonical_witness_vkey",
    "parse_witness_vkey",
    "register_witness",
]

log = logging.getLogger("cleanfeed.api")

#: Most witnesses registered per list (the store's cap).
MAX_WITNESSES_PER_LIST = store_witnesses.MAX_WITNESSES_PER_LIST


@dataclass(frozen=True)
class AcceptedCosignature:
    """A verified, stored cosignature line."""

    size: int
    timestamp: int
    line: str


def parse_witness_vkey(vkey: str) -> CosignatureVerifier:
    """A witness vkey: type 0x04, or the same key written as type 0x01.

    Raises:
        FormatError: neither form parses.
    """
    try:
        return CosignatureVerifier.from_vkey(vkey)
    except FormatError:
        return Verifier.from_vkey(vkey).cosigner


def canonical_witness_vkey(cosigner: CosignatureVerifier) -> str:
    """The type-0x04 vkey of a witness key (what ISPs configure)."""
    return format_vkey(cosigner.name, SIG_TYPE_COSIGNATURE_V1, cosigner.public_key)


def register_witness(
    session: Session, list_id: int, origin: str, vkey: str, *, actor: str
) -> WitnessKeyRow:
    """Parse a witness vkey and register it for a list (audited).

    Raises:
        FormatError: a malformed vkey (neither type 0x04 nor 0x01).
        InvalidField: the key is the log's own (its name is the origin).
        Conflict: registered already.
        LimitExceeded: the list has its maximum of witnesses.
    """
    cosigner = parse_witness_vkey(vkey.strip())
    if cosigner.name == origin:
        # A witness is never the log itself (see WitnessStore.submit).
        raise InvalidField("a witness key may not carry the list's origin as its name")
    return store_witnesses.add_witness(
        session,
        list_id,
        name=cosigner.name,
        key_id=cosigner.key_id,
        public_key=cosigner.public_key,
        vkey=canonical_witness_vkey(cosigner),
        actor=actor,
    )


class WitnessStore:
    """Stores and serves verified lines of registered witnesses."""

    def __init__(self, db: Database) -> None:
        """Use ``db`` (its witness tables come from the migrations)."""
        self.db = db

    def lines_for(self, session: Session, list_id: int, checkpoint_note: str) -> list[str]:
        """Registered witnesses' lines that cosign this checkpoint's text, by witness name."""
        text = parse_note(checkpoint_note).text
        digest = store_witnesses.checkpoint_text_hash(text)
        return store_witnesses.cosignature_lines(session, list_id, digest)

    def submit(
        self, list_id: int, checkpoint_note: str, vkey: str, line: str, size: int
    ) -> AcceptedCosignature:
        """Verify ``line`` by a registered witness over the current checkpoint text; store it.

        Raises:
            ApiProblem: 422 ``witness_refused`` for a line by the log's own key.
            WitnessNotRegistered: ``vkey`` is not a witness registered for
                this list (403 ``witness_not_registered``).
            FormatError: a malformed vkey or line.
            NoteError: the line is not a valid cosignature by that key over
                the current checkpoint (``BadSignature``, ``UnknownKey``,
                ``MalformedNote``).
        """
        cosigner = parse_witness_vkey(vkey)
        line = line.rstrip("\n")
        if not line.startswith(SIGNATURE_PREFIX) or "\n" in line:
            raise FormatError("signature must be one line '— <name> <base64>'")
        note = parse_note(checkpoint_note)
        text = note.text
        # Freeze attack: the log re-signs the same text with newer
        # timestamps, so its own older 0x04 lines are public. Appended as a
        # "witness" line, one would give the served note two cosignatures of
        # the log key with different times, which clients must reject
        # (ambiguous freshness). A witness is never the log itself.
        origin = text.split("\n", 1)[0]
        own = {(sig.name, sig.key_id) for sig in note.signatures}
        if cosigner.name == origin or (cosigner.name, cosigner.key_id) in own:
            raise ApiProblem(
                "witness_refused",
                "a witness cosignature must come from a witness key, not from the log's own key",
            )
        digest = store_witnesses.checkpoint_text_hash(text)
        with self.db.transaction() as session:
            witness = store_witnesses.registered_witness(
                session,
                list_id,
                name=cosigner.name,
                key_id=cosigner.key_id,
                public_key=cosigner.public_key,
            )
            # c2sp.org/tlog-cosignature: the 0x04 line signs
            # "cosignature/v1\ntime <t>\n" + checkpoint text; verified with
            # the registered key.
            registered = CosignatureVerifier(witness.name, witness.key_id, witness.public_key)
            timestamp = verify_cosignature(text + "\n" + line + "\n", registered)
            store_witnesses.put_cosignature(
                session, witness, text_hash=digest, size=size, timestamp=timestamp, line=line
            )
            # The served note gains a line: long-polling ISPs of every
            # worker learn of it at commit (PostgreSQL NOTIFY).
            store_versions.notify_checkpoint_changed(session, list_id)
        return AcceptedCosignature(size=size, timestamp=timestamp, line=line)
