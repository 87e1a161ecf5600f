"""Version statements: the signed text of one list version.

DESIGN.md, "Versions, the log and what is signed", item 2. The text, line by
line and in this order (every line ends in ``\\n``)::

    cleanfeed-version/v1
    origin <list origin>
    version <N>
    previous <base64 SHA-256 of version N-1's text; 32 zero bytes for N=1>
    keyring <serial of the keyring in force>
    audit <base64 32-byte audit log head>
    state <base64 32-byte state digest after version N>
    count <number of entries after version N>
    time <UTC RFC 3339, seconds, Z>
    add <base64 32-byte hash>        (one line per addition)
    remove <base64 32-byte hash>     (one line per removal)

Rules enforced on both sides (:meth:`Statement.to_text` can only emit what
:meth:`Statement.parse` accepts, and parse accepts one spelling per
statement, so the text hash that chains versions and feeds the Merkle log
is a function of the statement):

* base64 is canonical padded RFC 4648 section 4, decimals canonical
  (no sign, no leading zeros, at most 2^63 - 1);
* ``version`` >= 1; ``previous`` is 32 zero bytes exactly when the version
  is 1; ``keyring`` >= 1; ``count`` >= the number of additions;
* ``time`` is 1970-01-01T00:00:00Z or later, whole seconds;
* ``add`` lines come before ``remove`` lines, each group strictly increasing
  by the raw 32 bytes (so no duplicates), the groups disjoint, and 1 to
  :data:`MAX_CHANGES_PER_VERSION` changes in all;
* the origin follows :func:`blocklist.checkpoint.validate_origin`;
* no empty, unknown, repeated or misplaced line, nothing after the last
  change, ASCII only.

Whether an addition is absent from the list before (and a removal present)
depends on the previous state and is checked where that state is known
(``DeltaError``), not here.
"""

from __future__ import annotations

import binascii
import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from blocklist.checkpoint import MAX_ORIGIN_LENGTH, validate_origin
from blocklist.encoding import (
    MAX_DECIMAL,
    b64decode,
    b64encode,
    format_time,
    parse_decimal,
    parse_time,
)
from blocklist.errors import DeltaError, FormatError

__all__ = [
    "MAGIC",
    "MAX_CHANGES_PER_VERSION",
    "MAX_STATEMENT_BYTES",
    "MIN_TIME",
    "ZERO_HASH",
    "Statement",
    "split_changes",
]

#: First line of every statement: the format and its version.
MAGIC = "cleanfeed-version/v1"

#: ``previous`` of version 1: there is no version 0 text to hash.
ZERO_HASH = bytes(32)

#: Most changes in one version (DESIGN.md item 2): the publisher splits larger
#: change sets, so no statement exceeds about 500 KB and a client can cap
#: what it downloads and parses per statement.
MAX_CHANGES_PER_VERSION = 10_000

#: Earliest statement time: POSIX time 0. Nothing was published earlier, and
#: the bound keeps every year four digits wide (one spelling per time).
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)

_HEADER_KEYS = ("origin", "version", "previous", "keyring", "audit", "state", "count", "time")
_B64_HASH_LENGTH = 44
_DECIMAL_WIDTH = len(str(MAX_DECIMAL))
_TIME_WIDTH = len("1970-01-01T00:00:00Z")
_ADD = b"add "
_REMOVE = b"remove "
_ADD_LINE = len(_ADD) + _B64_HASH_LENGTH + 1
_REMOVE_LINE = len(_REMOVE) + _B64_HASH_LENGTH + 1
_HEADER_VALUE_WIDTH = {
    "origin": MAX_ORIGIN_LENGTH,
    "version": _DECIMAL_WIDTH,
    "previous": _B64_HASH_LENGTH,
    "keyring": _DECIMAL_WIDTH,
    "audit": _B64_HASH_LENGTH,
    "state": _B64_HASH_LENGTH,
    "count": _DECIMAL_WIDTH,
    "time": _TIME_WIDTH,
}
_MAX_HEADER_BYTES = len(MAGIC) + 1 + sum(len(k) + 1 + w + 1 for k, w in _HEADER_VALUE_WIDTH.items())

#: Largest statement text: the longest header plus the longest change lines
#: (``remove``) at the change cap, about 520 KB. Checked before any parsing
#: so an oversized text costs nothing (endless-data protection).
MAX_STATEMENT_BYTES = _MAX_HEADER_BYTES + MAX_CHANGES_PER_VERSION * _REMOVE_LINE


def _check_hash(value: Any, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise FormatError(f"{what} must be 32 bytes")


def _check_int(value: Any, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{what} must be an int")
    if not minimum <= value <= MAX_DECIMAL:
        raise FormatError(f"{what} {value} is outside {minimum}..{MAX_DECIMAL}")


def _first_unsorted(hashes: Sequence[bytes]) -> int | None:
    """Index of the first hash not strictly above its predecessor, if any."""
    if all(map(operator.lt, hashes, hashes[1:])):
        return None
    for i in range(1, len(hashes)):
        if not hashes[i - 1] < hashes[i]:
            return i
    return None  # pragma: no cover - unreachable


def _decode_block(block: bytes, prefix: bytes, count: int) -> list[bytes] | None:
    """Check and decode ``count`` fixed-width change lines in one vectorised pass.

    Each line must be ``prefix``, 43 base64 characters, ``=`` and ``\\n``. The
    block is viewed as a (count, width) byte matrix: the fixed columns are
    compared at once, then the 44 characters of every line, with ``=``
    replaced by ``A``, are decoded by a single strict base64 call into 33
    bytes per line. The 33rd byte holds the 2 unused bits of the last
    character, which must be zero in canonical base64 (RFC 4648 section
    3.5). Returns None when any line is malformed (the caller then finds and
    names it line by line).
    """
    if count == 0:
        return []
    width = len(prefix) + _B64_HASH_LENGTH + 1
    rows = np.frombuffer(block, dtype=np.uint8).reshape(count, width)
    start, pad = len(prefix), len(prefix) + _B64_HASH_LENGTH - 1
    if not (rows[:, :start] == np.frombuffer(prefix, dtype=np.uint8)).all():
        return None
    if not ((rows[:, pad] == ord("=")).all() and (rows[:, pad + 1] == ord("\n")).all()):
        return None
    body = rows[:, start : pad + 1].copy()
    body[:, -1] = ord("A")
    try:
        raw = binascii.a2b_base64(body.tobytes(), strict_mode=True)
    except binascii.Error:
        return None
    decoded = np.frombuffer(raw, dtype=np.uint8).reshape(count, 33)
    if decoded[:, 32].any():
        return None
    hashes: list[bytes] = np.ascontiguousarray(decoded[:, :32]).view("V32").ravel().tolist()
    return hashes


@dataclass(frozen=True)
class Statement:
    """One list version: what changed and the state it leads to.

    ``adds`` and ``removes`` are tuples of raw 32-byte hashes, each sorted
    by raw bytes; ``time`` is an aware datetime in whole seconds (stored in
    UTC). Construction validates every rule in the module docstring.
    """

    origin: str
    version: int
    previous: bytes
    keyring: int
    audit: bytes
    state: bytes
    count: int
    time: datetime
    adds: tuple[bytes, ...]
    removes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        """Validate every field so that only encodable statements exist.

        Raises:
            FormatError: a field breaks the format rules.
        """
        validate_origin(self.origin)
        _check_int(self.version, "version", 1)
        _check_hash(self.previous, "previous")
        if (self.version == 1) != (self.previous == ZERO_HASH):
            raise FormatError("previous must be 32 zero bytes for version 1, and only then")
        _check_int(self.keyring, "keyring", 1)
        _check_hash(self.audit, "audit")
        _check_hash(self.state, "state")
        _check_int(self.count, "count", 0)
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise FormatError("time must be an aware datetime")
        if self.time.microsecond:
            raise FormatError("time must be whole seconds")
        if self.time < MIN_TIME:
            raise FormatError("time must not be before 1970-01-01T00:00:00Z")
        try:
            object.__setattr__(self, "time", self.time.astimezone(UTC))
        except OverflowError as e:
            raise FormatError("time is out of range once converted to UTC") from e
        for name in ("adds", "removes"):
            value = getattr(self, name)
            if isinstance(value, bytes | str):
                raise FormatError(f"{name} must be a sequence of hashes")
            object.__setattr__(self, name, tuple(value))
        adds, removes = self.adds, self.removes
        for h in adds:
            _check_hash(h, "an added hash")
        for h in removes:
            _check_hash(h, "a removed hash")
        changes = len(adds) + len(removes)
        if changes == 0:
            raise FormatError("a version has at least one change")
        if changes > MAX_CHANGES_PER_VERSION:
            raise FormatError(
                f"{changes} changes exceed the {MAX_CHANGES_PER_VERSION} allowed per version"
            )
        if _first_unsorted(adds) is not None:
            raise FormatError("adds must be strictly increasing by raw bytes")
        if _first_unsorted(removes) is not None:
            raise FormatError("removes must be strictly increasing by raw bytes")
        if not set(adds).isdisjoint(removes):
            raise FormatError("a hash is both added and removed")
        if self.count < len(adds):
            raise FormatError(f"count {self.count} is below the {len(adds)} additions")

    @classmethod
    def _unchecked(cls, **fields: Any) -> Statement:
        """Build without __post_init__: only for values parse() has checked."""
        statement = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(statement, name, value)
        return statement

    def to_text(self) -> str:
        """The canonical statement text (ends in ``\\n``)."""
        cached: str | None = self.__dict__.get("_text")
        if cached is not None:
            return cached
        lines = [
            MAGIC,
            f"origin {self.origin}",
            f"version {self.version}",
            f"previous {b64encode(self.previous)}",
            f"keyring {self.keyring}",
            f"audit {b64encode(self.audit)}",
            f"state {b64encode(self.state)}",
            f"count {self.count}",
            f"time {format_time(self.time)}",
        ]
        lines.extend(["add " + b64encode(h) for h in self.adds])
        lines.extend(["remove " + b64encode(h) for h in self.removes])
        text = "\n".join(lines) + "\n"
        # Immutable, so the text can be cached; the dataclass fields (and so
        # equality and hashing) are unaffected.
        object.__setattr__(self, "_text", text)
        return text

    def text_hash(self) -> bytes:
        """SHA-256 of the text: the next version's ``previous`` line."""
        return hashlib.sha256(self.to_text().encode("ascii")).digest()

    @classmethod
    def parse(cls, text: str) -> Statement:
        """Parse a statement text, accepting only the canonical spelling.

        Raises:
            FormatError: any deviation, with the line number and problem.
        """
        if not isinstance(text, str):
            raise FormatError("statement text must be a string")
        if len(text) > MAX_STATEMENT_BYTES:
            raise FormatError(f"statement text exceeds {MAX_STATEMENT_BYTES} bytes")
        if not text.isascii():
            at = next(i for i, c in enumerate(text) if not c.isascii())
            raise FormatError(f"line {text.count(chr(10), 0, at) + 1}: non-ASCII character")
        if not text.endswith("\n"):
            raise FormatError("statement text must end in a newline")

        # Header: nine lines in a fixed order.
        pos = 0
        values: dict[str, str] = {}
        for lineno, key in enumerate(("", *_HEADER_KEYS), start=1):
            end = text.find("\n", pos)
            if end < 0:
                expected = f"'{key}'" if key else "the format line"
                raise FormatError(f"line {lineno}: missing, expected {expected}")
            line = text[pos:end]
            pos = end + 1
            if lineno == 1:
                if line != MAGIC:
                    raise FormatError(f"line 1: expected {MAGIC!r}, got {line[:40]!r}")
                continue
            found, sep, value = line.partition(" ")
            if found != key or not sep:
                raise FormatError(f"line {lineno}: {_misplaced(line, key, values)}")
            values[key] = value
        origin = values["origin"]
        validate_origin(origin, what="line 2 (origin)")
        version = parse_decimal(values["version"], what="line 3 (version)")
        previous = b64decode(values["previous"], length=32, what="line 4 (previous)")
        keyring = parse_decimal(values["keyring"], what="line 5 (keyring)")
        audit = b64decode(values["audit"], length=32, what="line 6 (audit)")
        state = b64decode(values["state"], length=32, what="line 7 (state)")
        count = parse_decimal(values["count"], what="line 8 (count)")
        when = parse_time(values["time"], what="line 9 (time)")
        if version < 1:
            raise FormatError("line 3 (version): versions start at 1")
        if (version == 1) != (previous == ZERO_HASH):
            raise FormatError(
                "line 4 (previous): must be 32 zero bytes for version 1, and only then"
            )
        if keyring < 1:
            raise FormatError("line 5 (keyring): keyring serials start at 1")
        if when < MIN_TIME:
            raise FormatError("line 9 (time): before 1970-01-01T00:00:00Z")

        # Changes: fixed-width lines, validated and decoded block-wise.
        first = len(_HEADER_KEYS) + 2  # line number of the first change
        changes = text[pos:]
        if not changes:
            raise FormatError(f"line {first}: no changes (a version has at least one)")
        data = changes.encode("ascii")
        split = data.find(_REMOVE)
        a_end = len(data) if split < 0 else split
        if a_end % _ADD_LINE or (len(data) - a_end) % _REMOVE_LINE:
            raise _diagnose(changes, first)
        n_adds = a_end // _ADD_LINE
        n_removes = (len(data) - a_end) // _REMOVE_LINE
        if n_adds + n_removes > MAX_CHANGES_PER_VERSION:
            raise FormatError(
                f"line {first + MAX_CHANGES_PER_VERSION}: more than "
                f"{MAX_CHANGES_PER_VERSION} changes in one version"
            )
        maybe_adds = _decode_block(data[:a_end], _ADD, n_adds)
        maybe_removes = _decode_block(data[a_end:], _REMOVE, n_removes)
        if maybe_adds is None or maybe_removes is None:
            raise _diagnose(changes, first)
        adds, removes = maybe_adds, maybe_removes
        bad = _first_unsorted(adds)
        if bad is not None:
            problem = "duplicate" if adds[bad] == adds[bad - 1] else "not sorted"
            raise FormatError(f"line {first + bad}: add {problem} (raw bytes must increase)")
        bad = _first_unsorted(removes)
        if bad is not None:
            problem = "duplicate" if removes[bad] == removes[bad - 1] else "not sorted"
            raise FormatError(
                f"line {first + n_adds + bad}: remove {problem} (raw bytes must increase)"
            )
        added = set(adds)
        if not added.isdisjoint(removes):
            j = next(j for j, h in enumerate(removes) if h in added)
            i = adds.index(removes[j])
            raise FormatError(
                f"line {first + n_adds + j}: removes the hash added on line {first + i}"
            )
        if count < n_adds:
            raise FormatError(f"line 8 (count): {count} is below the {n_adds} additions")
        # Every rule __post_init__ enforces was checked above, with line
        # numbers; skipping the second pass keeps 10,000-change parses cheap.
        return cls._unchecked(
            origin=origin,
            version=version,
            previous=previous,
            keyring=keyring,
            audit=audit,
            state=state,
            count=count,
            time=when,
            adds=tuple(adds),
            removes=tuple(removes),
        )


def _misplaced(line: str, expected: str, seen: dict[str, str]) -> str:
    """Describe a header line that is not the expected one."""
    if not line:
        return f"empty line, expected '{expected}'"
    found = line.partition(" ")[0]
    if found in seen or found == MAGIC:
        return f"repeated '{found[:40]}' line, expected '{expected}'"
    if found in _HEADER_KEYS and found != expected:
        return f"'{found}' out of order, expected '{expected}'"
    if found in ("add", "remove"):
        return f"missing '{expected}' line before the changes"
    if found == expected:
        return f"'{expected}' needs a single space and a value"
    return f"unknown line {line[:40]!r}, expected '{expected}'"


def _diagnose(changes: str, first: int) -> FormatError:
    """Find and name the first bad change line once the block check has failed."""
    lines = changes[:-1].split("\n")
    in_removes = False
    for lineno, line in enumerate(lines, start=first):
        if not line:
            return FormatError(f"line {lineno}: empty line")
        key, sep, value = line.partition(" ")
        if key == "add":
            if in_removes:
                return FormatError(f"line {lineno}: add line after remove lines")
        elif key == "remove":
            in_removes = True
        elif key == MAGIC or key in _HEADER_KEYS:
            return FormatError(f"line {lineno}: repeated '{key}' line among the changes")
        else:
            return FormatError(f"line {lineno}: unknown line {line[:40]!r}")
        try:
            b64decode(value, length=32, what=f"line {lineno} ({key})")
        except FormatError as e:
            return e
        if not sep or len(value) != _B64_HASH_LENGTH:
            return FormatError(f"line {lineno}: malformed {key} line")
    return FormatError(f"line {first}: malformed change lines")  # pragma: no cover


def split_changes(
    adds: Sequence[bytes], removes: Sequence[bytes], limit: int = MAX_CHANGES_PER_VERSION
) -> list[tuple[list[bytes], list[bytes]]]:
    """Split a change set into consecutive versions of at most ``limit`` changes.

    The changes are sorted by raw bytes, additions first, then cut into
    chunks of ``limit``: each chunk is ``(adds, removes)`` for one version
    and the chunks applied in order give the same result as the whole set.
    An empty change set gives no chunk (no version).

    Raises:
        ValueError: ``limit`` is not between 1 and
            :data:`MAX_CHANGES_PER_VERSION`.
        FormatError: a hash that is not 32 bytes.
        DeltaError: a hash listed twice, or both added and removed.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError("limit must be an int")
    if not 1 <= limit <= MAX_CHANGES_PER_VERSION:
        raise ValueError(f"limit {limit} is outside 1..{MAX_CHANGES_PER_VERSION}")
    for h in adds:
        _check_hash(h, "an added hash")
    for h in removes:
        _check_hash(h, "a removed hash")
    sorted_adds = sorted(adds)
    sorted_removes = sorted(removes)
    if _first_unsorted(sorted_adds) is not None:
        raise DeltaError("a hash is added twice")
    if _first_unsorted(sorted_removes) is not None:
        raise DeltaError("a hash is removed twice")
    if not set(sorted_adds).isdisjoint(sorted_removes):
        raise DeltaError("a hash is both added and removed")
    n_adds = len(sorted_adds)
    total = n_adds + len(sorted_removes)
    chunks: list[tuple[list[bytes], list[bytes]]] = []
    for start in range(0, total, limit):
        end = min(start + limit, total)
        chunk_adds = sorted_adds[start:end] if start < n_adds else []
        chunk_removes = sorted_removes[max(start - n_adds, 0) : max(end - n_adds, 0)]
        chunks.append((chunk_adds, chunk_removes))
    return chunks
