"""The parallel examination pass: each statement on its own.

Parsing a statement note (the strict parser of :mod:`blocklist.statement`),
checking its Ed25519 signature by the key its keyring gives its version, and
expanding its LtHash16 delta depend on that statement alone (and the
keyrings), so statements are examined in any order and, for large bundles,
in worker processes. :func:`examine_all` yields the results in statement
order; :mod:`clients.audit.verify` consumes them in one pass, keeping the
current set (a Python set of bytes), summing the per-statement LtHash16
deltas (a lane-wise sum mod 2^16, DESIGN.md item 5) and checking everything
that depends on the order.

Examination never raises for bad content: a statement that fails here is a
:class:`Problem` naming its check (``statement.format``,
``statement.keyring``, ``statement.signature``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Final

from blocklist.errors import FormatError
from blocklist.merkle import leaf_hash
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from clients.audit.report import CHECK_FORMAT, CHECK_KEYRING_USE, CHECK_SIGNATURE, key_label
from clients.common.workers import pool_context
from signer.errors import NoteError
from signer.note import MAX_NOTE_BYTES, Verifier, parse_note

__all__ = [
    "MAX_DEFAULT_WORKERS",
    "PARALLEL_MIN_BYTES",
    "WORKER_CHUNK",
    "Examined",
    "Examiner",
    "KeyRange",
    "Problem",
    "default_workers",
    "examine_all",
]

#: Statement bytes (summed) from which the per-statement work goes to worker
#: processes when ``workers`` is not given: below it, starting the pool
#: (a fresh interpreter importing numpy and PyNaCl per worker, about 0.5 s)
#: costs more than it saves.
PARALLEL_MIN_BYTES: Final = 8 * 1024 * 1024

#: Most worker processes started by default: the LtHash16 expansion is
#: CPU-bound, more workers than cores only add memory.
MAX_DEFAULT_WORKERS: Final = 8

#: Statements handed to a worker per task: amortises inter-process overhead
#: (a statement of 1,000 changes takes milliseconds) without holding back
#: the in-order consumer.
WORKER_CHUNK: Final = 4

#: A key range of a keyring: (vkey, first version, last version or None).
KeyRange = tuple[str, int, int | None]


@dataclass(frozen=True, slots=True)
class Examined:
    """A statement whose format and signature verified, with its derived hashes."""

    statement: Statement
    text_hash: bytes
    leaf_hash: bytes
    delta: bytes
    vkey: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A statement that failed before the in-order checks could see it."""

    check: str
    reason: str
    version: int | None


class Examiner:
    """Parses one statement note, checks its signature, expands its delta.

    Everything here depends on the statement alone (and the keyrings), so
    statements can be examined in any order and in parallel.
    """

    def __init__(self, ranges: Mapping[int, tuple[KeyRange, ...]]) -> None:
        self._ranges = ranges
        self._verifiers: dict[str, Verifier] = {}

    def _verifier(self, vkey: str) -> Verifier:
        verifier = self._verifiers.get(vkey)
        if verifier is None:
            verifier = self._verifiers[vkey] = Verifier.from_vkey(vkey)
        return verifier

    def examine(self, note: str) -> Examined | Problem:
        """Examine one statement note (never raises for bad content)."""
        try:
            size = len(note.encode("utf-8"))
        except UnicodeEncodeError:
            return Problem(CHECK_FORMAT, "note is not valid UTF-8", None)
        if size > MAX_NOTE_BYTES:
            return Problem(CHECK_FORMAT, f"note larger than {MAX_NOTE_BYTES} bytes", None)
        # c2sp.org/signed-note: the text ends at the last blank line.
        split = note.rfind("\n\n")
        if split < 0:
            return Problem(CHECK_FORMAT, "note has no blank line before its signatures", None)
        text = note[: split + 1]
        try:
            statement = Statement.parse(text)
        except FormatError as e:
            return Problem(CHECK_FORMAT, f"statement text: {e}", None)
        version = statement.version
        ranges = self._ranges.get(statement.keyring)
        if ranges is None:
            return Problem(
                CHECK_KEYRING_USE,
                f"names keyring serial {statement.keyring}, which the bundle does not hold",
                version,
            )
        vkey = next(
            (
                v
                for v, first, last in ranges
                if first <= version and (last is None or version <= last)
            ),
            None,
        )
        if vkey is None:
            return Problem(
                CHECK_KEYRING_USE,
                f"keyring serial {statement.keyring} has no key whose range contains {version}",
                version,
            )
        problem = self._check_signature(note[split + 2 :], text, vkey, version)
        if problem is not None:
            return problem
        data = text.encode("ascii")  # Statement.parse accepted it: ASCII only
        delta = StateDigest()
        delta.update(statement.adds, statement.removes)
        return Examined(
            statement=statement,
            text_hash=hashlib.sha256(data).digest(),
            leaf_hash=leaf_hash(data),
            delta=delta.to_bytes(),
            vkey=vkey,
        )

    def _check_signature(self, block: str, text: str, vkey: str, version: int) -> Problem | None:
        """verify_note's rules for one trusted key, without rescanning the text.

        :func:`signer.note.verify_note` would scan the whole note for control
        characters character by character (milliseconds per statement, tens
        of milliseconds at 10,000 changes);
        :meth:`Statement.parse` has already proven the text is printable
        ASCII lines. So only the signature block goes through
        :func:`signer.note.parse_note` (behind a one-character stand-in text,
        which leaves the block's split point unchanged: the block holds no
        blank line), then the same rules apply: lines by other keys are
        ignored, every line by the trusted key must verify, and there must
        be at least one.
        """
        verifier = self._verifier(vkey)
        try:
            signatures = parse_note("x\n\n" + block).signatures
        except NoteError as e:
            return Problem(CHECK_SIGNATURE, f"signature lines: {e}", version)
        message = text.encode("ascii")
        found = False
        for sig in signatures:
            if sig.name != verifier.name or sig.key_id != verifier.key_id:
                continue  # c2sp.org/signed-note: ignore unknown keys
            if not verifier.verify(message, sig.signature):
                return Problem(CHECK_SIGNATURE, f"invalid signature by {key_label(vkey)}", version)
            found = True
        if not found:
            return Problem(
                CHECK_SIGNATURE,
                f"no signature by {key_label(vkey)}, the key the keyring gives version {version}",
                version,
            )
        return None


_worker_examiner: Examiner | None = None


def _init_worker(ranges: Mapping[int, tuple[KeyRange, ...]]) -> None:
    global _worker_examiner
    _worker_examiner = Examiner(ranges)


def _examine_in_worker(note: str) -> Examined | Problem:
    assert _worker_examiner is not None, "worker not initialised"
    return _worker_examiner.examine(note)


def default_workers(statements: Sequence[str]) -> int:
    """Workers used when the caller does not say: 1 for small bundles, else the CPUs."""
    if sum(len(n) for n in statements) < PARALLEL_MIN_BYTES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def examine_all(
    notes: Sequence[str], ranges: Mapping[int, tuple[KeyRange, ...]], workers: int
) -> Iterator[Examined | Problem]:
    """Examine every note, yielding results in order (lazily, for early stops)."""
    if workers <= 1 or len(notes) < 2:
        examiner = Examiner(ranges)
        for note in notes:
            yield examiner.examine(note)
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(preload=(__name__,)),
        initializer=_init_worker,
        initargs=(dict(ranges),),
    ) as pool:
        try:
            yield from pool.map(_examine_in_worker, notes, chunksize=WORKER_CHUNK)
        finally:
            # An early stop (first failure) must not wait for the rest.
            pool.shutdown(wait=True, cancel_futures=True)
