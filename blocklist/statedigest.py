"""The state digest: an LtHash16 set hash over a list's entry hashes.

DESIGN.md, "Versions, the log and what is signed", item 5. Each statement's
``state`` line commits to the whole set of entry hashes after that version,
and the digest updates in O(changes), so the publisher, the ISP client and
the auditor can follow millions of entries version by version.

LtHash16 (Lewi, Kim, Maykov, Weis, "Securing Update Propagation with
Homomorphic Hashing", IACR ePrint 2019/227), exactly as used here:

1. a 32-byte entry hash ``h`` is expanded to 2048 bytes with SHAKE-128, ``h``
   being the whole input: ``shake_128(h).digest(2048)``;
2. those bytes are read as 1024 little-endian unsigned 16-bit lanes;
3. the set's vector is the lane-wise sum mod 2^16 of the expansions of its
   members (insert adds, removal subtracts), so the empty set is 2048 zero
   bytes;
4. the digest is SHA-256 of the vector written as 2048 little-endian bytes.

The vector is a multiset sum: adding a present hash or removing an absent
one is not detected here (callers enforce set semantics, ``DeltaError``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from blocklist.errors import FormatError

__all__ = [
    "BATCH",
    "EMPTY_DIGEST",
    "HASH_SIZE",
    "LANES",
    "VECTOR_SIZE",
    "StateDigest",
]

#: Size of an entry hash (SHA-256 of the expression).
HASH_SIZE = 32
#: Lanes of the LtHash16 vector.
LANES = 1024
#: Bytes of the serialised vector (1024 little-endian uint16 lanes).
VECTOR_SIZE = 2 * LANES

#: Hashes expanded per numpy batch: bounds memory to BATCH * 2 KiB (8 MiB)
#: however large an update is (a first sync may replay millions of entries).
BATCH = 4096

_LE_U16 = np.dtype("<u2")

#: Digest of the empty set: SHA-256 of 2048 zero bytes.
EMPTY_DIGEST = hashlib.sha256(bytes(VECTOR_SIZE)).digest()

_Vector = npt.NDArray[np.uint64]


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise FormatError(f"{what}: an entry hash must be {HASH_SIZE} bytes")


def _expansion_sum(hashes: Sequence[bytes]) -> _Vector:
    """Lane-wise sum (mod 2^16) of the SHAKE-128 expansions of ``hashes``."""
    total = np.zeros(LANES, dtype=np.uint64)
    for start in range(0, len(hashes), BATCH):
        chunk = hashes[start : start + BATCH]
        blob = b"".join([hashlib.shake_128(h).digest(VECTOR_SIZE) for h in chunk])
        lanes = np.frombuffer(blob, dtype=_LE_U16).reshape(len(chunk), LANES)
        # A uint64 accumulator cannot overflow here (BATCH * 65535 < 2^64);
        # reducing after each batch keeps it small.
        total += lanes.sum(axis=0, dtype=np.uint64)
        total &= np.uint64(0xFFFF)
    return total


class StateDigest:
    """The LtHash16 vector of a set of 32-byte entry hashes.

    Mutable: :meth:`add`, :meth:`remove` and :meth:`update` change it in
    place; :meth:`copy` before applying a delta that may be rejected.
    """

    __slots__ = ("_lanes",)

    def __init__(self) -> None:
        """The empty set (all lanes zero)."""
        self._lanes: _Vector = np.zeros(LANES, dtype=np.uint64)

    @classmethod
    def from_hashes(cls, hashes: Iterable[bytes]) -> StateDigest:
        """The digest of a set given by its members.

        Raises:
            FormatError: a member that is not 32 bytes.
        """
        state = cls()
        state.update(list(hashes), ())
        return state

    @classmethod
    def from_bytes(cls, data: bytes) -> StateDigest:
        """Load a serialised 2048-byte vector (see :meth:`to_bytes`).

        Raises:
            FormatError: the data is not exactly 2048 bytes.
        """
        if not isinstance(data, bytes) or len(data) != VECTOR_SIZE:
            raise FormatError(f"state digest vector must be {VECTOR_SIZE} bytes")
        state = cls()
        state._lanes = np.frombuffer(data, dtype=_LE_U16).astype(np.uint64)
        return state

    def add(self, h: bytes) -> None:
        """Insert one entry hash.

        Raises:
            FormatError: the hash is not 32 bytes.
        """
        self.update((h,), ())

    def remove(self, h: bytes) -> None:
        """Remove one entry hash.

        Raises:
            FormatError: the hash is not 32 bytes.
        """
        self.update((), (h,))

    def update(self, adds: Sequence[bytes], removes: Sequence[bytes]) -> None:
        """Insert ``adds`` and remove ``removes`` in one batched pass.

        Every input is checked before anything changes, so a rejected update
        leaves the digest as it was.

        Raises:
            FormatError: a hash that is not 32 bytes.
        """
        _check_hashes(adds, "add")
        _check_hashes(removes, "remove")
        lanes = self._lanes.copy()
        if adds:
            lanes += _expansion_sum(adds)
        if removes:
            # Subtracting x mod 2^16 is adding 2^16 - x (x < 2^16): unsigned
            # lanes never go negative.
            lanes += np.uint64(0x10000) - _expansion_sum(removes)
        lanes &= np.uint64(0xFFFF)
        self._lanes = lanes

    def merge(self, other: StateDigest) -> None:
        """Add the set of ``other`` to this one (lane-wise sum mod 2^16, step 3).

        The vector of a disjoint union is the sum of the parts' vectors, so
        chunks of a set can be digested apart (in worker processes) and
        merged, and a version's delta vector can be added to the previous
        state. Like :meth:`update`, a multiset sum: overlap is not detected.
        """
        self._lanes = (self._lanes + other._lanes) & np.uint64(0xFFFF)

    def to_bytes(self) -> bytes:
        """The 2048-byte vector: 1024 little-endian uint16 lanes."""
        return self._lanes.astype(_LE_U16).tobytes()

    def digest(self) -> bytes:
        """SHA-256 of :meth:`to_bytes`: the statement's ``state`` value."""
        return hashlib.sha256(self.to_bytes()).digest()

    def copy(self) -> StateDigest:
        """An independent copy."""
        state = StateDigest()
        state._lanes = self._lanes.copy()
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StateDigest):
            return NotImplemented
        return bool(np.array_equal(self._lanes, other._lanes))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"StateDigest({self.digest().hex()})"
