"""Witness cosignatures of the current checkpoint (DESIGN.md, ISP sync step 8).

A witness checks that the log only grows (consistency proofs between the
checkpoints it saw) and cosigns the checkpoint with a timestamped
c2sp.org/tlog-cosignature line (type 0x04). ``POST …/checkpoint/cosignatures``
hands such a line to the service; it is verified against the submitted
witness vkey over the *current* checkpoint text and stored; ``GET
…/checkpoint`` appends every stored line whose checkpoint text is still
current (docs/architecture.md, "Wire details").

The lines live in the store's ``witness_cosignatures`` table (migration
0002); they are not part of the signed history.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.errors import ApiProblem
from blocklist.errors import FormatError
from blocklist.store.db import Database
from blocklist.store.models import WitnessCosignatureRow
from signer.note import (
    SIGNATURE_PREFIX,
    CosignatureVerifier,
    Verifier,
    parse_note,
    verify_cosignature,
)

log = logging.getLogger("cleanfeed.api")

#: Most witnesses whose lines are kept per list: bounds the checkpoint size
#: (each line is about 120 bytes).
MAX_WITNESSES_PER_LIST = 32


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


class WitnessStore:
    """Stores and serves verified witness cosignature lines."""

    def __init__(self, db: Database) -> None:
        """Use ``db`` (its ``witness_cosignatures`` table comes from the migrations)."""
        self.db = db

    def lines_for(self, session: Session, list_id: int, checkpoint_note: str) -> list[str]:
        """Stored lines that cosign this checkpoint's text, by witness name."""
        text = parse_note(checkpoint_note).text
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        rows = session.scalars(
            select(WitnessCosignatureRow.line)
            .where(
                WitnessCosignatureRow.list_id == list_id,
                WitnessCosignatureRow.text_hash == digest,
            )
            .order_by(WitnessCosignatureRow.key_name, WitnessCosignatureRow.id)
        ).all()
        return list(rows)

    def submit(
        self, list_id: int, checkpoint_note: str, vkey: str, line: str, size: int
    ) -> AcceptedCosignature:
        """Verify ``line`` against ``vkey`` over the current checkpoint text; store it.

        Raises:
            ApiProblem: 422 ``witness_refused`` for a line by the log's own key.
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
        # c2sp.org/tlog-cosignature: the 0x04 line signs
        # "cosignature/v1\ntime <t>\n" + checkpoint text; verify_cosignature
        # checks exactly that for this key.
        timestamp = verify_cosignature(text + "\n" + line + "\n", cosigner)
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        with self.db.transaction() as session:
            session.execute(
                delete(WitnessCosignatureRow).where(
                    WitnessCosignatureRow.list_id == list_id,
                    WitnessCosignatureRow.key_name == cosigner.name,
                    WitnessCosignatureRow.key_id == cosigner.key_id,
                )
            )
            count = len(
                session.scalars(
                    select(WitnessCosignatureRow.id).where(WitnessCosignatureRow.list_id == list_id)
                ).all()
            )
            if count >= MAX_WITNESSES_PER_LIST:
                raise FormatError(f"at most {MAX_WITNESSES_PER_LIST} witnesses per list")
            session.add(
                WitnessCosignatureRow(
                    list_id=list_id,
                    key_name=cosigner.name,
                    key_id=cosigner.key_id,
                    text_hash=digest,
                    size=size,
                    timestamp=timestamp,
                    line=line,
                    created_at=datetime.now(UTC),
                )
            )
        return AcceptedCosignature(size=size, timestamp=timestamp, line=line)
