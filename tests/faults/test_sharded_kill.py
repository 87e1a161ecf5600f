"""kill -9 while a sharded export is written: whole files, then repaired.

A sharded export (``clients/isp/exports/sharded.py``) replaces the shards
a version touches as one batch, then its main file, then commits its
index. Each trial runs :func:`apply_sharded` in a child process and
SIGKILLs it at a named point (before the batch's fsyncs, after its first
rename, after its last, after the main file's rename, before the index
commits). Every file must then be whole (no line of a version that is not
the old or the new one, each ending in a newline), and the next sync's
writer, given the same changes, must produce exactly the lines of a full
render of the new version.
"""

from __future__ import annotations

import hashlib
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.processes import run_child

from clients.isp.exports.formats import ExportInput
from clients.isp.exports.output import render
from clients.isp.exports.sharded import ShardedSource, apply_sharded, shard_dir

WHEN = datetime(2026, 1, 2, tzinfo=UTC)
ENTRIES = 3_000

CHILD = r"""
import os, signal, sys
point, out = sys.argv[1], sys.argv[2]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

replaces = [0]
if point == "before-fsyncs":
    os.fsync = lambda fd: die()
elif point in ("after-first-rename", "after-main-rename"):
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        replaces[0] += 1
        if point == "after-first-rename" and replaces[0] == 1:
            die()
        if point == "after-main-rename" and os.path.basename(dst) == os.path.basename(out):
            die()
    os.replace = replace
elif point == "before-directory-fsync":
    real_open = os.open
    def opener(path, flags, *a, **k):
        if str(path).endswith(".d") and flags & getattr(os, "O_DIRECTORY", 0):
            die()
        return real_open(path, flags, *a, **k)
    os.open = opener

from pathlib import Path
sys.path[:0] = ["tests", "tests/faults"]
import test_sharded_kill as t
print("ready", flush=True)
t.apply_version(Path(out), 2)
"""

POINTS = ("before-fsyncs", "after-first-rename", "before-directory-fsync", "after-main-rename")


def _expr(i: int) -> str:
    return f"x.h{i - 1}.example/" if i % 7 == 1 else f"h{i}.example/"


def members(version: int) -> dict[bytes, str]:
    exprs = [_expr(i) for i in range(ENTRIES)]
    if version == 2:
        exprs = [e for i, e in enumerate(exprs) if i % 40 != 3] + [
            _expr(ENTRIES + i) for i in range(60)
        ]
    return {hashlib.sha256(e.encode()).digest(): e for e in exprs}


def apply_version(out: Path, version: int) -> None:
    held = members(version)
    old = members(version - 1) if version > 1 else {}
    apply_sharded(
        "unbound",
        out,
        out.parent / "index.db",
        ExportInput(version, (), None, "main", "hotline.example", WHEN),
        ShardedSource(held.get, lambda: sorted(held.items()), lambda: len(held)),
        before=version - 1 if version > 1 else None,
        added=[h for h in held if h not in old],
        removed=[h for h in old if h not in held],
    )


def lines_of(version: int) -> set[bytes]:
    held = members(version)
    data = ExportInput(version, list(held), held, "main", "hotline.example", WHEN)
    return {x for x in render("unbound", data).files[""].splitlines() if x.startswith(b"local")}


def shard_lines(out: Path) -> list[bytes]:
    lines: list[bytes] = []
    for p in shard_dir(out).iterdir():
        if p.name.startswith("."):
            continue
        content = p.read_bytes()
        assert content.endswith(b"\n"), p
        lines += [x for x in content.splitlines() if x.startswith(b"local")]
    return lines


@pytest.mark.parametrize("point", POINTS)
def test_kill_during_a_sharded_write(tmp_path: Path, point: str) -> None:
    out = tmp_path / "cleanfeed.conf"
    apply_version(out, 1)
    assert sorted(shard_lines(out)) == sorted(lines_of(1))
    argv = [sys.executable, "-c", CHILD, point, str(out)]
    run = run_child(argv, None, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.err
    seen = shard_lines(out)
    assert set(seen) <= lines_of(1) | lines_of(2)
    assert len(seen) == len(set(seen))  # no shard written twice
    # The index did not commit: the next sync applies the same changes.
    apply_version(out, 2)
    assert sorted(shard_lines(out)) == sorted(lines_of(2))
    assert b"version 2" in out.read_bytes()
    assert not list(shard_dir(out).glob(".*.tmp"))
