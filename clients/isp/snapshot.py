"""The listed hashes of a snapshot: a sorted byte array and its state digest.

DESIGN.md item 6: a snapshot is the sorted raw 32-byte hashes of a version.
:class:`SnapshotHashes` validates and holds them as one immutable byte
string (binary search, no per-entry object), and :func:`snapshot_digest`
computes their LtHash16 state digest, across worker processes for a large
list (:mod:`clients.common.workers`). Pure computation, used by
:class:`clients.isp.trusted.TrustedState` before a snapshot is accepted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Final

import numpy as np

from blocklist.statedigest import StateDigest
from clients.common.workers import pool_context
from clients.errors import (
    MalformedData,
)

__all__ = [
    "HASH_SIZE",
    "PARALLEL_DIGEST_MIN",
    "SnapshotHashes",
    "snapshot_digest",
]

#: Size of an entry hash (SHA-256 of an expression).
HASH_SIZE: Final = 32


class SnapshotHashes:
    """An immutable, strictly increasing array of 32-byte hashes (a snapshot).

    Membership is a binary search over the raw bytes: no per-entry Python
    object, so a million hashes cost 32 MB.
    """

    __slots__ = ("_data", "_n")

    def __init__(self, data: bytes) -> None:
        """Wrap already-validated data (see :meth:`validate`)."""
        self._data = bytes(data)
        self._n = len(data) // HASH_SIZE

    @classmethod
    def validate(cls, data: bytes) -> SnapshotHashes:
        """Check that ``data`` is whole 32-byte hashes in strictly increasing order.

        Raises:
            MalformedData: a partial hash, or hashes out of order or repeated
                (DESIGN.md item 6: "the sorted raw hashes").
        """
        if len(data) % HASH_SIZE:
            raise MalformedData(f"snapshot length {len(data)} is not a multiple of {HASH_SIZE}")
        n = len(data) // HASH_SIZE
        if n > 1:
            rows = np.frombuffer(data, dtype=np.uint8).reshape(n, HASH_SIZE)
            prev, nxt = rows[:-1], rows[1:]
            differ = prev != nxt
            if not bool(differ.any(axis=1).all()):
                raise MalformedData("snapshot repeats a hash")
            first = differ.argmax(axis=1)
            idx = np.arange(n - 1)
            if not bool((nxt[idx, first] > prev[idx, first]).all()):
                raise MalformedData("snapshot hashes are not in increasing order")
        return cls(data)

    @property
    def data(self) -> bytes:
        """The concatenated hashes."""
        return self._data

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> bytes:
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._data[i * HASH_SIZE : (i + 1) * HASH_SIZE]

    def __contains__(self, h: object) -> bool:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            return False
        i = bisect.bisect_left(self, h, 0, self._n)
        return bool(i < self._n and self[i] == h)

    def __iter__(self) -> Iterator[bytes]:
        data = self._data
        for i in range(0, len(data), HASH_SIZE):
            yield data[i : i + HASH_SIZE]

    def batches(self, size: int = 4096) -> Iterator[list[bytes]]:
        """Yield the hashes in order, ``size`` at a time."""
        data = self._data
        step = size * HASH_SIZE
        for start in range(0, len(data), step):
            chunk = data[start : start + step]
            yield [chunk[i : i + HASH_SIZE] for i in range(0, len(chunk), HASH_SIZE)]


#: Below this many hashes a snapshot is digested in-process (a process pool
#: costs more than it saves).
PARALLEL_DIGEST_MIN: Final = 100_000


def _partial_vector(data: bytes) -> bytes:
    """LtHash16 vector of a chunk of concatenated hashes (runs in a worker)."""
    digest = StateDigest()
    for batch in SnapshotHashes(data).batches():
        digest.update(batch, ())
    return digest.to_bytes()


def snapshot_digest(hashes: SnapshotHashes, *, workers: int = 1) -> StateDigest:
    """The state digest of a snapshot, optionally across worker processes.

    LtHash16 is a lane-wise sum mod 2^16 (DESIGN.md item 5), so the vectors
    of disjoint chunks add up to the vector of the whole set: the chunks are
    digested in parallel and merged (:meth:`StateDigest.merge`). Pure computation;
    the result is the same for any number of workers.
    """
    n = len(hashes)
    if workers <= 1 or n < PARALLEL_DIGEST_MIN:
        return StateDigest.from_bytes(_partial_vector(hashes.data))
    per = -(-n // workers) * HASH_SIZE
    data = hashes.data
    chunks = [data[i : i + per] for i in range(0, len(data), per)]
    # Workers start as clients.common.workers says and get their chunk as
    # the mapped argument.
    with ProcessPoolExecutor(
        max_workers=len(chunks), mp_context=pool_context(preload=(__name__,))
    ) as pool:
        vectors = list(pool.map(_partial_vector, chunks))
    total = StateDigest()
    for vector in vectors:
        total.merge(StateDigest.from_bytes(vector))
    return total
