"""Models of witnesses: registering a witness key (admin) and posting a cosignature."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from api.models.common import Forbid, Out
from blocklist.store.models import WitnessKeyRow

__all__ = [
    "MAX_SIGNATURE_LINE_CHARS",
    "MAX_VKEY_CHARS",
    "CosignatureIn",
    "CosignatureOut",
    "WitnessIn",
    "WitnessListOut",
    "WitnessOut",
    "witness_out",
]

#: Longest witness vkey or signature line (a vkey is name + 8 hex + 44
#: base64; names are at most 255 bytes).
MAX_VKEY_CHARS = 400
MAX_SIGNATURE_LINE_CHARS = 600


class CosignatureIn(Forbid):
    """A witness cosignature (c2sp.org/tlog-cosignature) of the current checkpoint."""

    vkey: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VKEY_CHARS)] = Field(
        description="the witness's vkey (signature type 0x04 or 0x01 with the same public key)"
    )
    signature: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_SIGNATURE_LINE_CHARS)
    ] = Field(description="the signature line, '— <name> <base64>'")


class CosignatureOut(Out):
    """A stored cosignature line and the checkpoint size it covers."""

    size: int
    timestamp: int
    line: str


class WitnessIn(Forbid):
    """A witness key to register for a list (admin)."""

    vkey: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VKEY_CHARS)] = Field(
        description="the witness's vkey (type 0x04, or 0x01 of the same key); "
        "`cleanfeed audit witness-key` prints it"
    )


class WitnessOut(Out):
    """A witness registered for a list."""

    id: int
    name: str
    vkey: str = Field(description="type 0x04 vkey, as ISPs configure it")
    created_at: datetime
    created_by: str


class WitnessListOut(Out):
    """The witnesses registered for a list."""

    list: str
    witnesses: builtins.list[WitnessOut]


def witness_out(row: WitnessKeyRow) -> WitnessOut:
    """The API view of a registered witness."""
    return WitnessOut(
        id=row.id,
        name=row.name,
        vkey=row.vkey,
        created_at=row.created_at,
        created_by=row.created_by,
    )
