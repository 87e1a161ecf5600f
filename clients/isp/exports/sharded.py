"""Incremental ``unbound``, ``dnsmasq`` and ``hosts`` exports: a directory of shards.

Unbound (``include:`` takes a glob), dnsmasq (``conf-dir=``) and dnsmasq's
``addn-hosts=`` (a directory) read many files as one list, so with
``incremental = true`` (issue 19 item 4) these exports are split into
:data:`SHARDS` files by a hash of each host's last two labels, and a version
rewrites only the shards its changes fall in:

``OUTPUT.d/NNNNN.conf`` (``unbound``, ``dnsmasq``) or ``OUTPUT.d/NNNNN``
(``hosts``)
    One shard: a comment header (list, shard number; no version, so a shard
    no change touches is never rewritten), ``server:`` for Unbound, then the
    lines a full export writes for the shard's hosts. An empty shard has no
    file.
``OUTPUT``
    A comment header with the list version, then for ``unbound``
    ``include: "OUTPUT.d/*.conf"`` and for ``dnsmasq``
    ``conf-dir=OUTPUT.d,*.conf`` (absolute paths), so the operator's
    configuration names ``OUTPUT`` as with a full export; for ``hosts``
    only the header: point ``addn-hosts=`` at ``OUTPUT.d``.

A host and every listed name below it share their last two labels, hence
their shard, so the pruning of names covered by another entry is the full
export's, shard by shard; the shards' lines together are exactly the full
export's lines (a test holds them equal). Entries are kept, by hash, in an
index private to the client (``STATE_DIR/exports/*.db``, SQLite, mode 0600):
a removed hash's plaintext is deleted at commit, and the index still knows
its host and shard.

Each version, under the index's write transaction: the changed hashes are
applied to the index, each touched shard is re-rendered from it and
replaced atomically, then ``OUTPUT`` (the new version) is replaced, and the
transaction commits. A crash anywhere leaves each file whole, from the old
or the new version, and the index at the old version; the next sync finds
its changes do not start from the index's version and rewrites every shard
(O(N), as does any first export, configuration change or snapshot).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from blocklist.canonical import expression_hash
from clients.common.files import EXPORT_MODE, write_if_changed
from clients.errors import PlaintextMismatch
from clients.isp.exports.dns import _PREAMBLES, _line_writer
from clients.isp.exports.entries import (
    _covers_subdomains,
    _Entry,
    _header,
    _parse_entry,
    _prune_covered,
    _valid_dns_name,
)
from clients.isp.exports.formats import (
    MAX_SUFFIX_LABELS,
    SCOPE_OTHER,
    ExportError,
    ExportFormat,
    ExportInput,
    ExportResult,
    ExportWriteError,
    MissingPlaintext,
)

__all__ = [
    "SHARDED_FORMATS",
    "SHARDS",
    "ShardedSource",
    "apply_sharded",
    "shard_dir",
    "shard_of",
]

#: Formats written as shards with ``incremental = true``.
SHARDED_FORMATS: Final[tuple[ExportFormat, ...]] = ("unbound", "dnsmasq", "hosts")

#: Number of shards. A version of 1,000 changes touches about 600 shards
#: whatever the list's size; with 16,384 shards one holds about 37 hosts at
#: 1,000,000 entries, so a version rewrites about 2 % of the list and the
#: cost is dominated by the ~600 file replacements, as at 10,000 entries
#: (issue 19: at most 2x). Fewer, larger shards would be rewritten whole.
SHARDS: Final = 16_384

#: Shard file names: five digits (below :data:`SHARDS`), plus the suffix.
_SUFFIX: Final[dict[str, str]] = {"unbound": ".conf", "dnsmasq": ".conf", "hosts": ""}

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hosts (
    hash BLOB PRIMARY KEY, shard INTEGER NOT NULL, host TEXT NOT NULL, labels INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hosts_shard ON hosts (shard);
CREATE TABLE IF NOT EXISTS skipped (
    hash BLOB PRIMARY KEY, scope TEXT NOT NULL, reason TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    reason TEXT NOT NULL, scope TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (reason, scope)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    shard INTEGER PRIMARY KEY, enforced INTEGER NOT NULL, partial INTEGER NOT NULL,
    deep INTEGER NOT NULL);
"""

# The reasons of the full render (clients/isp/exports/entries.py), verbatim,
# so the notes of both are the same.
_NOT_CANONICAL: Final = "entries are not canonical expressions and were left out"
_NOT_DNS: Final = (
    "page/prefix entries cannot be enforced by DNS "
    "(use the squid export or the external ACL helper)"
)
_IP: Final = "IP-address hosts cannot be enforced by DNS (no name is resolved)"
_SINGLE: Final = "single-label hosts were left out (they would block a whole TLD)"
_INVALID: Final = "hosts are not valid DNS names (or too long) and were left out"


def shard_of(host: str) -> int:
    """The shard of ``host``: a hash of its last two labels."""
    key = ".".join(host.rsplit(".", 2)[-2:])
    return int.from_bytes(hashlib.sha256(key.encode("ascii")).digest()[:4], "big") % SHARDS


def shard_dir(output: Path) -> Path:
    """The shard directory of ``output`` (beside it)."""
    return output.with_name(output.name + ".d")


def _classify(expr: str) -> tuple[str, str] | _Entry:
    """The entry as a DNS host, or (scope, reason) it is left out for."""
    entry = _parse_entry(expr)
    if entry is None:
        return SCOPE_OTHER, _NOT_CANONICAL
    if entry.scope != "host":
        return entry.scope, _NOT_DNS
    if entry.ip:
        return "host", _IP
    if entry.labels < 2:
        return "host", _SINGLE
    if not _valid_dns_name(entry.host):
        return "host", _INVALID
    return entry


@dataclass(frozen=True, slots=True)
class ShardedSource:
    """Where the changes and, for a rebuild, the whole list come from.

    Attributes:
        expression_of: the stored expression of a listed hash (None: missing).
        expressions: every (hash, expression) held, for a rebuild.
        count: how many hashes are listed.
    """

    expression_of: Callable[[bytes], str | None]
    expressions: Callable[[], Iterable[tuple[bytes, str]]]
    count: Callable[[], int]


class _Index:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.executescript(_SCHEMA)

    def meta(self, key: str) -> object:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: object) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def count(self, reason: str, scope: str, n: int) -> None:
        self.conn.execute(
            "INSERT INTO counts (reason, scope, n) VALUES (?, ?, ?) "
            "ON CONFLICT(reason, scope) DO UPDATE SET n = n + excluded.n",
            (reason, scope, n),
        )

    def add(self, h: bytes, expr: str) -> int | None:
        """Index one entry; its shard, or None when it is left out."""
        got = _classify(expr)
        if isinstance(got, _Entry):
            shard = shard_of(got.host)
            self.conn.execute(
                "INSERT INTO hosts (hash, shard, host, labels) VALUES (?, ?, ?, ?)",
                (h, shard, got.host, got.labels),
            )
            return shard
        scope, reason = got
        self.conn.execute(
            "INSERT INTO skipped (hash, scope, reason) VALUES (?, ?, ?)", (h, scope, reason)
        )
        self.count(reason, scope, 1)
        return None

    def remove(self, h: bytes) -> int | None:
        row = self.conn.execute("SELECT shard FROM hosts WHERE hash = ?", (h,)).fetchone()
        if row is not None:
            self.conn.execute("DELETE FROM hosts WHERE hash = ?", (h,))
            return int(row[0])
        row = self.conn.execute("SELECT scope, reason FROM skipped WHERE hash = ?", (h,)).fetchone()
        if row is None:
            raise _Stale(f"hash {h.hex()} is not in the export index")
        self.conn.execute("DELETE FROM skipped WHERE hash = ?", (h,))
        self.count(str(row[1]), str(row[0]), -1)
        return None

    def shard(self, shard: int) -> list[_Entry]:
        rows = self.conn.execute("SELECT host, labels FROM hosts WHERE shard = ?", (shard,))
        return [_Entry(f"{host}/", host, "/", "host", False, labels) for host, labels in rows]


class _Stale(Exception):
    """The index does not hold what the changes start from: rebuild."""


def _render_shard(
    fmt: ExportFormat, entries: list[_Entry], line: Callable[[str], str], head: str
) -> tuple[bytes | None, int, int, int]:
    """(file content or None when empty, enforced, partial, deep)."""
    if fmt == "hosts":
        kept, covered = entries, 0
        partial = sum(1 for e in kept if _covers_subdomains(e))
        deep = 0
    else:
        kept, covered = _prune_covered(entries)
        partial = 0
        deep = sum(1 for e in kept if e.labels > MAX_SUFFIX_LABELS)
    if not kept:
        return None, covered, partial, deep
    body = head + _PREAMBLES[fmt] + "".join(line(n) for n in sorted(e.host for e in kept))
    return body.encode("ascii"), covered + len(kept), partial, deep


def _main_file(fmt: ExportFormat, data: ExportInput, directory: Path) -> bytes:
    head = _header(data, "#")
    where = directory.resolve()
    if fmt == "unbound":
        # unbound.conf(5): include: takes a glob(7) pattern; each shard opens
        # its own server: clause.
        return (head + f'include: "{where}/*{_SUFFIX[fmt]}"\n').encode("ascii")
    if fmt == "dnsmasq":
        # dnsmasq(8) --conf-dir=<dir>,<only this extension>: dot files skipped.
        return (head + f"conf-dir={where},*{_SUFFIX[fmt]}\n").encode("ascii")
    return (head + f"# the hosts are in {where}/: point addn-hosts= at it\n").encode("ascii")


def _shard_path(directory: Path, fmt: ExportFormat, shard: int) -> Path:
    return directory / f"{shard:05d}{_SUFFIX[fmt]}"


def apply_sharded(
    fmt: ExportFormat,
    output: Path,
    index_path: Path,
    data: ExportInput,
    source: ShardedSource,
    *,
    before: int | None = None,
    added: Collection[bytes] = (),
    removed: Collection[bytes] = (),
    blockpage: tuple[str, ...] = (),
    mode: int = EXPORT_MODE,
) -> ExportResult:
    """Bring a sharded export to ``data.version``, rewriting only touched shards.

    Args:
        fmt: ``unbound``, ``dnsmasq`` or ``hosts``.
        output: the export's configured output (the main file).
        index_path: the export's private index (in the state directory).
        data: the version, list name and origin (``hashes`` and
            ``expressions`` are not read: ``source`` gives them).
        source: the verified state.
        before: the version the changes start from (None: unknown, rebuild
            unless already at ``data.version``).
        added: hashes added since ``before``.
        removed: hashes removed since ``before``.
        blockpage: block page addresses (already checked).
        mode: permission bits of the files.

    Returns:
        The counts of a full render of the same version, and ``written``.

    Raises:
        MissingPlaintext: an entry's expression is not held.
        PlaintextMismatch: an expression does not hash to its key.
        ExportError: ``output`` is a directory.
        ExportWriteError: a file could not be written (the index stays at
            the previous version).
    """
    if Path(output).is_dir():
        raise ExportError(f"export output {output} is a directory; give a file path")
    directory = shard_dir(output)
    fingerprint = repr((fmt, blockpage, data.list_name, data.origin, SHARDS, str(output)))
    line = _line_writer(fmt, blockpage)
    head = _header(data, "#").splitlines(keepends=True)[0]
    head = head.replace(f", version {data.version}\n", "\n")
    head += "# generated by cleanfeed; do not edit: one shard of an incremental export\n"
    try:
        index = _Index(index_path)
    except (OSError, sqlite3.Error) as e:
        raise ExportWriteError(f"cannot open the export index {index_path}: {e}") from e
    written: dict[Path, bool] = {}
    try:
        c = index.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            held = index.meta("version")
            same = index.meta("fingerprint") == fingerprint and directory.is_dir()
            touched: set[int] | None = None
            if same and held == data.version and before is None:
                touched = set()
            elif same and before is not None and held == before:
                try:
                    touched = _apply(index, source, added, removed)
                except _Stale:
                    touched = None
            if touched is None:
                touched = _rebuild(index, source)
                directory.mkdir(mode=0o755, exist_ok=True)
                # Shards of an earlier list that no host falls in any more.
                for old in directory.iterdir():
                    stem = old.name.removesuffix(_SUFFIX[fmt]) if _SUFFIX[fmt] else old.name
                    if stem.isdigit() and int(stem) not in touched:
                        old.unlink()
            # Temporaries of a batch killed before its renames: the state
            # lock makes this the only writer, so every one is stale.
            for leftover in directory.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            batch: list[tuple[Path, bytes]] = []
            for shard in sorted(touched):
                content, enforced, partial, deep = _render_shard(
                    fmt, index.shard(shard), line, head
                )
                path = _shard_path(directory, fmt, shard)
                if content is None:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        written[path] = True
                    c.execute("DELETE FROM stats WHERE shard = ?", (shard,))
                    continue
                batch.append((path, content))
                c.execute(
                    "INSERT INTO stats (shard, enforced, partial, deep) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(shard) DO UPDATE SET enforced = excluded.enforced, "
                    "partial = excluded.partial, deep = excluded.deep",
                    (shard, enforced, partial, deep),
                )
            written.update(_write_batch(directory, batch, mode))
            written[Path(output)] = write_if_changed(
                Path(output), _main_file(fmt, data, directory), mode=mode
            )
            index.set_meta("version", data.version)
            index.set_meta("fingerprint", fingerprint)
            result = _result(fmt, index, written)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
    except OSError as e:
        raise ExportWriteError(f"cannot write export {output}: {e}") from e
    except sqlite3.Error as e:
        raise ExportWriteError(f"export index {index_path}: {e}") from e
    finally:
        index.conn.close()
    return result


def _write_batch(directory: Path, files: list[tuple[Path, bytes]], mode: int) -> dict[Path, bool]:
    """Replace each file atomically, as :func:`clients.common.files.write_atomic`, in a batch.

    The same recipe (temporary file in the directory, data fsynced before
    its rename, the directory fsynced after), but every temporary is written
    first, then all are fsynced, renamed, and the directory fsynced once:
    the journal commits once for the batch instead of twice per file
    (about 600 files a version). A file already holding its content is
    left alone.
    """
    pending: list[tuple[Path, Path, int]] = []
    written: dict[Path, bool] = {}
    try:
        for path, content in files:
            with contextlib.suppress(FileNotFoundError):
                if path.read_bytes() == content:
                    written[path] = False
                    continue
            fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
            pending.append((path, Path(tmp_name), fd))
            os.fchmod(fd, stat.S_IMODE(mode))
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
        for _, _, fd in pending:
            os.fsync(fd)  # data on disk before any rename can be
        for target, temporary, _ in pending:
            os.replace(temporary, target)
            written[target] = True
    except BaseException:
        for _, temporary, _ in pending:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        raise
    finally:
        for _, _, fd in pending:
            with contextlib.suppress(OSError):
                os.close(fd)
    if pending:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)  # the renames survive a crash
        finally:
            os.close(dir_fd)
    return written


def _checked(h: bytes, expr: str | None, missing: list[bytes]) -> str | None:
    if expr is None:
        missing.append(h)
        return None
    # Defence in depth, as the full render: only expressions of their hash.
    if expression_hash(expr) != h:
        raise PlaintextMismatch(f"expression stored for {h.hex()} does not hash to it")
    return expr


def _apply(
    index: _Index, source: ShardedSource, added: Collection[bytes], removed: Collection[bytes]
) -> set[int]:
    touched: set[int] = set()
    for h in removed:
        shard = index.remove(h)
        if shard is not None:
            touched.add(shard)
    missing: list[bytes] = []
    for h in added:
        expr = _checked(h, source.expression_of(h), missing)
        if expr is not None:
            shard = index.add(h, expr)
            if shard is not None:
                touched.add(shard)
    if missing:
        raise MissingPlaintext("export", missing=len(missing), total=source.count())
    return touched


def _rebuild(index: _Index, source: ShardedSource) -> set[int]:
    c = index.conn
    for table in ("hosts", "skipped", "counts", "stats"):
        c.execute(f"DELETE FROM {table}")  # noqa: S608 - constant table names
    missing: list[bytes] = []
    held = 0
    touched: set[int] = set()
    for h, expr in source.expressions():
        checked = _checked(h, expr, missing)
        if checked is not None:
            held += 1
            shard = index.add(h, checked)
            if shard is not None:
                touched.add(shard)
    total = source.count()
    if held != total:
        raise MissingPlaintext("export", missing=total - held, total=total)
    return touched


def _result(fmt: ExportFormat, index: _Index, written: dict[Path, bool]) -> ExportResult:
    c = index.conn
    enforced, partial, deep = c.execute(
        "SELECT coalesce(sum(enforced), 0), coalesce(sum(partial), 0), coalesce(sum(deep), 0) "
        "FROM stats"
    ).fetchone()
    reasons: dict[str, int] = {}
    by_scope: dict[str, int] = {}
    for reason, scope, n in c.execute("SELECT reason, scope, n FROM counts WHERE n > 0"):
        reasons[reason] = reasons.get(reason, 0) + n
        by_scope[scope] = by_scope.get(scope, 0) + n
    notes = [f"{n} {reason}" for reason, n in sorted(reasons.items())]
    if fmt == "hosts" and partial:
        notes.append(
            f"{partial} host entries block their exact host only: "
            "a hosts file cannot name subdomains"
        )
    if fmt != "hosts" and deep:
        notes.append(
            f"{deep} host entries have more than {MAX_SUFFIX_LABELS} labels: "
            f"{fmt} also blocks their subdomains, which lookups do not"
        )
    return ExportResult(
        {},
        int(enforced),
        sum(reasons.values()),
        notes,
        written=written,
        left_out=by_scope,
        partial=int(partial) if fmt == "hosts" else 0,
    )
