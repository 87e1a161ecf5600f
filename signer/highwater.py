"""The signer's high-water mark: the largest tree it ever signed, outside the database.

DESIGN.md, "Versions, the log and what is signed", item 4: the log never
signs two inconsistent checkpoints. The database alone cannot guarantee it:
restored from an old backup, or read through a lagging replica, it shows an
older tree, and a signer trusting it would sign a different version N+1, a
fork that every client detects as equivocation. So the signer keeps the last
(size, root) it signed in ``keys/<list>/highwater.json`` beside its key and
refuses to sign any checkpoint that is not a consistent extension of it
(RFC 9162 section 2.1.4 consistency proof).

The file is ``{"origin": ..., "size": N, "root": "<base64>"}``, written
atomically (temporary file, fsync, rename, directory fsync) with mode 0600,
and only ever moves forward (:meth:`HighWater.advance` under an exclusive
file lock, so two signer processes on one host cannot move it back).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blocklist.checkpoint import validate_origin
from blocklist.encoding import MAX_DECIMAL, b64decode, b64encode
from blocklist.errors import FormatError, ProofError
from blocklist.merkle import EMPTY_ROOT, verify_consistency
from blocklist.tempfiles import replace_file
from signer.errors import ForkRefused, HighWaterError, HighWaterMissing

__all__ = [
    "HIGHWATER_FILE",
    "ForkRefused",
    "HighWater",
    "HighWaterError",
    "HighWaterMark",
    "HighWaterMissing",
]

#: File name of the mark, in the list's key directory.
HIGHWATER_FILE = "highwater.json"

#: Largest mark file read: a valid one is under 400 bytes; refusing more
#: keeps a wrong file from being read into memory.
MAX_HIGHWATER_BYTES = 4096

#: What to do when the database is behind the mark; part of every refusal.
_REMEDY = (
    "restore the latest backup or point the signer at the primary database; if the newer "
    "versions are truly lost, the log cannot continue under this origin (clients pinned it): "
    "start a new list with a new origin"
)


@dataclass(frozen=True)
class HighWaterMark:
    """The largest tree the signer signed: its origin, size and root."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            FormatError: a bad origin, size or root.
        """
        validate_origin(self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise FormatError("high-water size must be an int")
        if not 0 <= self.size <= MAX_DECIMAL:
            raise FormatError(f"high-water size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise FormatError("high-water root must be 32 bytes")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise FormatError("the empty tree has one root, SHA-256 of the empty string")

    def to_json(self) -> str:
        """The file content (one JSON object and a newline)."""
        obj = {"origin": self.origin, "size": self.size, "root": b64encode(self.root)}
        return json.dumps(obj, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> HighWaterMark:
        """Parse the file content.

        Raises:
            FormatError: not the expected JSON object.
        """
        try:
            obj: Any = json.loads(text)
        except ValueError as e:
            raise FormatError(f"high-water mark is not JSON: {e}") from e
        if not isinstance(obj, dict) or set(obj) != {"origin", "size", "root"}:
            raise FormatError('high-water mark must be {"origin", "size", "root"}')
        origin, size, root = obj["origin"], obj["size"], obj["root"]
        if not isinstance(origin, str) or not isinstance(root, str):
            raise FormatError("high-water origin and root must be strings")
        if isinstance(size, bool) or not isinstance(size, int):
            raise FormatError("high-water size must be an integer")
        return cls(origin, size, b64decode(root, length=32, what="high-water root"))


def _behind_message(mark: HighWaterMark, detail: str) -> str:
    return (
        f"the database is behind the signer's high-water mark (size {mark.size}, root "
        f"{b64encode(mark.root)}): {detail}; it looks like an old backup or a lagging replica; "
        f"refusing to fork the log; {_REMEDY}"
    )


class HighWater:
    """The high-water mark file of one list (``keys/<list>/highwater.json``)."""

    def __init__(self, path: Path) -> None:
        """Use the mark at ``path`` (nothing is read until needed)."""
        self.path = Path(path)

    @classmethod
    def for_list(cls, keys_dir: Path, list_name: str) -> HighWater:
        """The mark of ``list_name`` under a key directory (``keys/<list>/highwater.json``)."""
        return cls(Path(keys_dir) / list_name / HIGHWATER_FILE)

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def exists(self) -> bool:
        """Whether the mark file exists."""
        return self.path.exists()

    def read(self) -> HighWaterMark:
        """Read the mark.

        Raises:
            HighWaterMissing: no file (the message says how to recover).
            HighWaterError: unreadable or malformed.
        """
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_HIGHWATER_BYTES + 1)
        except FileNotFoundError as e:
            raise HighWaterMissing(
                f"no high-water mark at {self.path}: this signer does not know which tree it "
                "signed last, so it refuses to sign anything; copy highwater.json from the "
                "previous signer host, or, after checking the database is the latest one, run "
                "`cleanfeed signer adopt-highwater`"
            ) from e
        except OSError as e:
            raise HighWaterError(f"cannot read {self.path}: {e.strerror}") from e
        if len(data) > MAX_HIGHWATER_BYTES:
            raise HighWaterError(f"{self.path} is too large to be a high-water mark")
        try:
            return HighWaterMark.from_json(data.decode("utf-8"))
        except (UnicodeDecodeError, FormatError) as e:
            raise HighWaterError(f"{self.path}: malformed high-water mark: {e}") from e

    def check_extension(
        self,
        new_size: int,
        new_root: bytes,
        consistency_proof_fn: Callable[[int, int], Sequence[bytes]],
        *,
        origin: str | None = None,
    ) -> HighWaterMark:
        """Refuse to sign a tree that is not a consistent extension of the mark.

        Args:
            new_size: size of the tree about to be signed.
            new_root: its root.
            consistency_proof_fn: ``(m, n) -> proof`` from the database's
                tree (RFC 9162 consistency proof of tree m in tree n).
            origin: the list origin; when given it must be the mark's.

        Returns:
            The mark that was checked against.

        Raises:
            ForkRefused: a smaller tree, the same size with another root, or
                a larger tree that does not extend the mark.
            HighWaterMissing: no mark file.
            HighWaterError: an unreadable mark or one of another origin.
        """
        mark = self.read()
        if origin is not None and mark.origin != origin:
            raise HighWaterError(
                f"{self.path} belongs to log {mark.origin!r}, not {origin!r}: wrong key directory"
            )
        # rollback/fork protection: never sign a smaller tree than signed before.
        if new_size < mark.size:
            raise ForkRefused(_behind_message(mark, f"its tree has only {new_size} leaves"))
        if new_size == mark.size:
            if new_root != mark.root:
                raise ForkRefused(
                    _behind_message(
                        mark, f"its tree of the same size has another root {b64encode(new_root)}"
                    )
                )
            return mark
        # RFC 9162 2.1.4.2: the new tree must contain the marked one as a prefix.
        try:
            proof = consistency_proof_fn(mark.size, new_size)
            verify_consistency(mark.size, new_size, mark.root, new_root, proof)
        except ProofError as e:
            raise ForkRefused(
                _behind_message(
                    mark,
                    f"its tree of size {new_size} does not contain the signed tree ({e})",
                )
            ) from e
        return mark

    def initialise(self, mark: HighWaterMark) -> None:
        """Write the first mark; never overwrites an existing one.

        Raises:
            HighWaterError: a mark exists already, or the file cannot be written.
        """
        with self._locked():
            if self.path.exists():
                raise HighWaterError(f"{self.path} exists already; refusing to overwrite it")
            self._write(mark)

    def advance(self, mark: HighWaterMark) -> bool:
        """Move the mark forward to ``mark``; never backwards.

        Called after the transaction that stored the signed checkpoint
        committed. A mark behind the database (a crash before this call) is
        safe: the next signing is an extension of it. Under an exclusive lock,
        so a concurrent signer process that committed a larger tree first is
        not overwritten by a smaller one.

        Returns:
            Whether the file changed.

        Raises:
            HighWaterError: the file cannot be read or written, or belongs
                to another origin.
        """
        with self._locked():
            current = self.read() if self.path.exists() else None
            if current is not None:
                if current.origin != mark.origin:
                    raise HighWaterError(
                        f"{self.path} belongs to log {current.origin!r}, not {mark.origin!r}"
                    )
                if mark.size <= current.size:
                    return False
            self._write(mark)
            return True

    def overwrite(self, mark: HighWaterMark) -> None:
        """Replace the mark whatever it holds (operator recovery only).

        Raises:
            HighWaterError: the file cannot be written.
        """
        with self._locked():
            self._write(mark)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise HighWaterError(f"cannot lock {self.path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _write(self, mark: HighWaterMark) -> None:
        """Atomic replace: temp file (0600), fsync, rename, directory fsync."""
        try:
            replace_file(self.path, mark.to_json().encode("utf-8"), mode=0o600)
        except OSError as e:
            raise HighWaterError(f"cannot write {self.path}: {e.strerror or e}") from e
