"""The incremental ``hashes`` export: a base file plus an append-only change log.

A plain ``hashes`` export rewrites every line after every version: about
2 s for 1,000,000 entries, whatever the version changed. With
``incremental = true`` (issue 19 item 4) a version costs what it changed:

``OUTPUT`` (the log, what readers open)
    Line 1, the header, names the base file and binds it::

        # cleanfeed hashes log 1: base NAME version V count N sha256 HEX

    ``NAME`` is ``OUTPUT``'s file name plus ``.base-V``, in the same
    directory; ``HEX`` is the SHA-256 of the base file's bytes and ``N`` its
    number of lines. Then one record per later version, appended in place::

        +<64 hex digits>      a hash the version adds
        -<64 hex digits>      a hash the version removes
        = VERSION LINES SHA256

    The ``=`` line ends the record: ``LINES`` is the number of ``+``/``-``
    lines before it (66 bytes each) and ``SHA256`` the SHA-256 of exactly
    those bytes. Versions rise strictly, starting above ``V``.
``OUTPUT.base-V``
    The whole list at version ``V``, exactly a plain ``hashes`` export (one
    lower-case hex SHA-256 per line, sorted), written atomically.

**Reading** (:func:`read_hashes_log`, and so ``cleanfeed isp squid-helper
--hashes-file OUTPUT`` and :func:`clients.isp.lookup.read_hashes_file`):
open ``OUTPUT``, parse the header, open the base it names and check its
SHA-256 and count (a base that vanished meanwhile was compacted away: open
``OUTPUT`` again), then apply the records in order. A ``-`` of a hash that
is not listed, a ``+`` of one that is, or a complete record whose checksum
fails followed by another record is damage: the whole file is refused. A
last record that is incomplete (no ``=`` line, a line without its newline,
or a checksum that fails: an append in progress or cut by a crash) is
ignored, so a reader gets the previous version, never part of one. The
result is the list at the last complete record's version; it is identical
to a full ``hashes`` export of that version (a test holds them equal).

**Writing** (:func:`apply_hashes_log`, run by the syncer after each
verified commit, holding the state lock, so one writer at a time):

- the log's last complete version is found from its tail (O(one record));
  anything after it (a torn append) is truncated away;
- when that version is the one the sync started from, the record of the
  version's changes is appended with one ``write`` and ``fsync`` (O(changes));
- otherwise (first export, a snapshot, a failed earlier export, a damaged
  or missing file), or when the log outgrows :data:`COMPACT_FRACTION` of the
  base, the log is **compacted**: the new base is written atomically under
  its own name, then ``OUTPUT`` is replaced atomically by a header naming it
  (the switch is that one rename), then older bases are deleted.

At every instant ``OUTPUT`` names a complete base, so a crash at any point
leaves a file that reads as the old or the new version
(``tests/faults/test_hashlog_kill.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from blocklist.errors import FormatError
from clients.common.files import EXPORT_MODE, write_atomic, write_if_changed
from clients.isp.exports.formats import HASH_SIZE, ExportError, ExportWriteError

__all__ = [
    "COMPACT_FRACTION",
    "LOG_MAGIC",
    "HashLog",
    "HashLogWrite",
    "apply_hashes_log",
    "base_path",
    "is_hashes_log",
    "read_hashes_log",
]

#: First bytes of a log; a plain ``hashes`` export starts with a hex digit.
LOG_MAGIC: Final = b"# cleanfeed hashes log 1: "

#: The log is compacted when its records would exceed this fraction of the
#: base's size: readers then parse at most 1/8 more lines than a plain
#: export, and at 1,000,000 entries and 1,000 changes per version the 2 s
#: rewrite comes once in about 125 versions (about 16 ms a version).
COMPACT_FRACTION: Final = 0.125

#: A ``+``/``-`` line: sign, 64 hex digits, newline.
_LINE: Final = 2 * HASH_SIZE + 2

#: Tail bytes read at first when looking for the last complete record.
_TAIL_CHUNK: Final = 1 << 16

#: Attempts to read a log whose base is replaced while it is being read.
_READ_ATTEMPTS: Final = 3

_HEADER_RE: Final = re.compile(
    rb"# cleanfeed hashes log 1: base (\S+) version ([0-9]{1,19}) count ([0-9]{1,19}) "
    rb"sha256 ([0-9a-f]{64})\n"
)
_MARKER_RE: Final = re.compile(rb"= ([0-9]{1,19}) ([0-9]{1,19}) ([0-9a-f]{64})\n")
_BODY_RE: Final = re.compile(rb"(?:[+-][0-9a-f]{64}\n)*")
_BASE_RE: Final = re.compile(rb"(?:[0-9a-f]{64}\n)*")


def base_path(output: Path, version: int) -> Path:
    """The base file of ``output`` at ``version`` (beside it)."""
    return output.with_name(f"{output.name}.base-{version}")


def is_hashes_log(data: bytes) -> bool:
    """Whether file content is an incremental ``hashes`` log (not a plain export)."""
    return data.startswith(LOG_MAGIC)


@dataclass(frozen=True, slots=True)
class _Header:
    base: str
    version: int
    count: int
    sha256: bytes
    length: int


def _header(data: bytes, output: Path) -> _Header:
    end = data.find(b"\n")
    m = _HEADER_RE.fullmatch(data[: end + 1]) if end >= 0 else None
    if m is None:
        raise FormatError(f"{output}: not a cleanfeed hashes log (bad header line)")
    name, version = m.group(1).decode("ascii"), int(m.group(2))
    # Only the base of this very file: never a path elsewhere.
    if name != base_path(output, version).name:
        raise FormatError(f"{output}: header names base {name!r:.80}, not this log's base")
    return _Header(name, version, int(m.group(3)), bytes.fromhex(m.group(4).decode()), end + 1)


@dataclass(frozen=True, slots=True)
class HashLog:
    """A log as read: the listed set at its last complete version.

    Attributes:
        hashes: the listed hashes (32 raw bytes each).
        version: the version of the last complete record (or of the base).
        base: the base file's name.
        end: the byte offset just after the last complete record.
    """

    hashes: frozenset[bytes]
    version: int
    base: str
    end: int


def _parse_body(
    body: bytes, start: int, listed: set[bytes], version: int, output: Path
) -> tuple[int, int]:
    """Apply the complete records of ``body[start:]`` to ``listed``.

    Returns:
        (offset after the last complete record, its version).

    Raises:
        FormatError: damage (see the module docstring).
    """
    pos = start
    while pos < len(body):
        # pos is at a line start; the record ends at the next line starting "=".
        if body.startswith(b"=", pos):
            marker = pos
        else:
            at = body.find(b"\n=", pos)
            if at < 0:
                return pos, version  # no further marker: an append in progress
            marker = at + 1
        eol = body.find(b"\n", marker)
        if eol < 0:
            return pos, version  # the marker line itself is cut
        m = _MARKER_RE.fullmatch(body, marker, eol + 1)
        lines = body[pos:marker]
        ok = (
            m is not None
            and int(m.group(2)) * _LINE == len(lines)
            and _BODY_RE.fullmatch(lines) is not None
            and hashlib.sha256(lines).hexdigest().encode() == m.group(3)
        )
        if not ok:
            if body.find(b"\n=", eol) >= 0:
                raise FormatError(f"{output}: damaged record at byte {pos}")
            return pos, version  # a torn last record: the previous version holds
        assert m is not None
        new_version = int(m.group(1))
        if new_version <= version:
            raise FormatError(f"{output}: record at byte {pos} does not raise the version")
        for i in range(0, len(lines), _LINE):
            h = bytes.fromhex(lines[i + 1 : i + _LINE - 1].decode("ascii"))
            if lines[i] == 0x2B:  # "+"
                if h in listed:
                    raise FormatError(f"{output}: record {new_version} adds a listed hash")
                listed.add(h)
            else:
                if h not in listed:
                    raise FormatError(f"{output}: record {new_version} removes an unlisted hash")
                listed.remove(h)
        pos, version = eol + 1, new_version
    return pos, version


def _parse_base(data: bytes, path: Path) -> set[bytes]:
    if _BASE_RE.fullmatch(data) is None:
        raise FormatError(f"{path}: not a hashes base file")
    raw = bytes.fromhex(data.replace(b"\n", b"").decode("ascii"))
    return {raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)}


def read_hashes_log(output: Path) -> HashLog:
    """Read an incremental ``hashes`` export: its base plus its complete records.

    Args:
        output: the log (the export's configured output path).

    Raises:
        OSError: a file cannot be read.
        FormatError: the log or its base is damaged or they do not belong
            together.
    """
    output = Path(output)
    for attempt in range(_READ_ATTEMPTS):
        data = output.read_bytes()
        head = _header(data, output)
        base = output.with_name(head.base)
        try:
            base_data = base.read_bytes()
        except FileNotFoundError:
            if attempt + 1 < _READ_ATTEMPTS:
                continue  # compacted meanwhile: the log names a newer base now
            raise
        if hashlib.sha256(base_data).digest() != head.sha256:
            raise FormatError(f"{output}: base {head.base} does not match the log's checksum")
        listed = _parse_base(base_data, base)
        if len(listed) != head.count:
            raise FormatError(f"{output}: base {head.base} does not hold {head.count} hashes")
        end, version = _parse_body(data, head.length, listed, head.version, output)
        return HashLog(frozenset(listed), version, head.base, end)
    raise AssertionError("unreachable")  # pragma: no cover


# --- writing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HashLogWrite:
    """What :func:`apply_hashes_log` did.

    Attributes:
        compacted: the base was rewritten (else a record was appended, or
            nothing when the log was already at the version).
        changed: a file changed (readers will see a new version).
        paths: every file written.
    """

    compacted: bool
    changed: bool
    paths: tuple[Path, ...]


def _last_complete(fd: int, size: int, head: _Header) -> tuple[int, int]:
    """(end, version) of the log's last complete record, read from its tail.

    Reads about one record: the bytes after it (a torn append) are skipped.
    """
    if size <= head.length:
        return head.length, head.version
    span = size - head.length + 1  # from the header's final newline
    window = min(span, _TAIL_CHUNK)
    while True:
        offset = size - window
        tail = os.pread(fd, window, offset)
        search = len(tail)
        while True:
            # A marker line starts right after a newline.
            at = tail.rfind(b"\n=", 0, search)
            if at < 0:
                break
            search = at
            eol = tail.find(b"\n", at + 1)
            if eol < 0:
                continue
            m = _MARKER_RE.fullmatch(tail, at + 1, eol + 1)
            if m is None:
                continue
            marker = offset + at + 1
            body_len = int(m.group(2)) * _LINE
            start = marker - body_len
            if start < head.length:
                continue
            body = os.pread(fd, body_len, start)
            if _BODY_RE.fullmatch(body) is not None and hashlib.sha256(
                body
            ).hexdigest().encode() == m.group(3):
                return offset + eol + 1, int(m.group(1))
        if window >= span:
            # No complete record at all: only the header (and a torn append).
            return head.length, head.version
        window = min(span, window * 4)


def _record(version: int, added: Iterable[bytes], removed: Iterable[bytes]) -> bytes:
    body = b"".join(b"-" + h.hex().encode() + b"\n" for h in sorted(removed)) + b"".join(
        b"+" + h.hex().encode() + b"\n" for h in sorted(added)
    )
    digest = hashlib.sha256(body).hexdigest()
    return body + f"= {version} {len(body) // _LINE} {digest}\n".encode("ascii")


def _try_append(
    output: Path,
    *,
    version: int,
    before: int,
    added: Collection[bytes],
    removed: Collection[bytes],
) -> bool | None:
    """Append the record if the log is at ``before`` (True), at ``version`` (False).

    Returns None when the log must be compacted instead.
    """
    try:
        fd = os.open(output, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        head_bytes = os.pread(fd, min(size, 4096), 0)
        try:
            head = _header(head_bytes, output)
        except FormatError:
            return None
        base = output.with_name(head.base)
        try:
            base_size = base.stat().st_size
        except FileNotFoundError:
            return None
        end, last = _last_complete(fd, size, head)
        if last == version:
            if end != size:
                os.ftruncate(fd, end)
                os.fsync(fd)
            return False
        if last != before or version <= before:
            return None
        record = _record(version, added, removed)
        if end - head.length + len(record) > COMPACT_FRACTION * max(base_size, _LINE * 64):
            return None
        if end != size:
            os.ftruncate(fd, end)  # a torn append of an earlier attempt
        written = 0
        while written < len(record):
            written += os.pwrite(fd, record[written:], end + written)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)


def _compact(
    output: Path, version: int, hashes: Callable[[], Iterable[bytes]], mode: int
) -> tuple[Path, ...]:
    listed = sorted(set(hashes()))
    if any(type(h) is not bytes or len(h) != HASH_SIZE for h in listed):
        raise ExportError(f"listed hashes must be {HASH_SIZE} raw bytes")
    body = "".join(h.hex() + "\n" for h in listed).encode("ascii")
    base = base_path(output, version)
    write_if_changed(base, body, mode=mode)
    header = (
        LOG_MAGIC
        + f"base {base.name} version {version} count {len(listed)} sha256 ".encode()
        + hashlib.sha256(body).hexdigest().encode()
        + b"\n"
    )
    # The switch: one rename makes readers see the new base.
    write_atomic(output, header, mode=mode)
    prefix = f"{output.name}.base-"
    for old in output.parent.iterdir():
        if old.name.startswith(prefix) and old.name != base.name:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return (base, output)


def apply_hashes_log(
    output: Path,
    *,
    version: int,
    hashes: Callable[[], Iterable[bytes]],
    before: int | None = None,
    added: Collection[bytes] = (),
    removed: Collection[bytes] = (),
    mode: int = EXPORT_MODE,
) -> HashLogWrite:
    """Bring an incremental ``hashes`` export to ``version``.

    Args:
        output: the log's path (the export's configured output).
        version: the verified version now held.
        hashes: gives every hash listed at ``version``; called only when the
            log must be compacted (O(N)).
        before: the version ``added``/``removed`` start from; None when the
            changes are unknown (the log is compacted unless already at
            ``version``).
        added: hashes ``version`` adds to ``before``.
        removed: hashes ``version`` removes from ``before``.
        mode: permission bits of the files.

    Returns:
        What was written.

    Raises:
        ExportError: ``output`` is a directory, or a hash is not 32 bytes.
        ExportWriteError: a file could not be written (the previous complete
            version stays readable).
    """
    output = Path(output)
    if output.is_dir():
        raise ExportError(f"export output {output} is a directory; give a file path")
    for h in (*added, *removed):
        if type(h) is not bytes or len(h) != HASH_SIZE:
            raise ExportError(f"listed hashes must be {HASH_SIZE} raw bytes")
    try:
        appended = _try_append(
            output,
            version=version,
            before=version if before is None else before,
            added=added if before is not None else (),
            removed=removed if before is not None else (),
        )
        if appended is not None:
            return HashLogWrite(False, appended, (output,) if appended else ())
        return HashLogWrite(True, True, _compact(output, version, hashes, mode))
    except OSError as e:
        raise ExportWriteError(f"cannot write export {output}: {e}") from e
