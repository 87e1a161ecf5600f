"""kill -9 while an incremental ``hashes`` export is written: old or new, never a mix.

The incremental export (``clients/isp/exports/hashlog.py``) appends each
version's changes to a log in place and, now and then, compacts it (a new
base file, then the log replaced by a rename). A reader (the Squid helper)
may read it at any moment. Each trial runs :func:`apply_hashes_log` in a
child process and SIGKILLs it at a named point (the child wraps the ``os``
calls the writer makes: half of a record written, the record written but
not synced, synced; before and after each rename of a compaction, before
the old base is deleted) or after a random delay. The log must then read
as exactly the old version or exactly the new one (never a shorter list,
never a refusal), and the next writer must bring it to the new version,
byte-identical in content to a full render.
"""

from __future__ import annotations

import random
import signal
import sys
from pathlib import Path

import pytest
from support.processes import run_child

from clients.isp.exports.hashlog import apply_hashes_log, read_hashes_log

#: Entries at the old version: a base of a few MB, so a compaction takes a moment.
ENTRIES = 30_000

#: The child: wrap the writer's os calls for the named point, say "ready",
#: then apply the new version in the named way (append or compact).
CHILD = r"""
import hashlib, os, signal, sys
point, how, out = sys.argv[1], sys.argv[2], sys.argv[3]
entries = int(sys.argv[4])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

renames = [0]
if point == "append-half":
    real_pwrite = os.pwrite
    def pwrite(fd, data, offset):
        real_pwrite(fd, data[: len(data) // 2], offset)
        die()
    os.pwrite = pwrite
elif point == "append-unsynced":
    real_pwrite = os.pwrite
    def pwrite(fd, data, offset):
        n = real_pwrite(fd, data, offset)
        die()
    os.pwrite = pwrite
elif point == "append-synced":
    real_fsync = os.fsync
    def fsync(fd):
        real_fsync(fd)
        die()
    os.fsync = fsync
elif point == "compact-unlink":
    def unlink(path, *a, **k):
        die()
    os.unlink = unlink
elif point.startswith("compact-"):
    # compact-before-1 / compact-after-1: the base's rename;
    # compact-before-2 / compact-after-2: the log's rename (the switch).
    _, when, which = point.split("-")
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        renames[0] += 1
        if renames[0] == int(which) and when == "before":
            die()
        real_replace(src, dst, *a, **k)
        if renames[0] == int(which) and when == "after":
            die()
    os.replace = replace

from pathlib import Path
sys.path[:0] = ["tests", "tests/faults"]
import test_hashlog_kill as t
print("ready", flush=True)
t.apply_new(Path(out), how, entries)
"""

APPEND_POINTS = ("append-half", "append-unsynced", "append-synced")
COMPACT_POINTS = (
    "compact-before-1",
    "compact-after-1",
    "compact-before-2",
    "compact-after-2",
)
#: Points after which the new version must be what is read (a killed
#: process loses nothing already written: the page cache stays).
NEW_POINTS = ("append-unsynced", "append-synced", "compact-after-2", "compact-unlink")


def h(i: int) -> bytes:
    import hashlib

    return hashlib.sha256(f"example.com/hashlog-kill/{i}".encode()).digest()


def old_members(entries: int) -> set[bytes]:
    return {h(i) for i in range(entries)} - {h(i) for i in range(0, 300, 3)}


def changes(entries: int) -> tuple[set[bytes], set[bytes]]:
    added = {h(entries + i) for i in range(700)}
    removed = {h(i) for i in range(1, 900, 3)}
    return added, removed


def new_members(entries: int) -> set[bytes]:
    added, removed = changes(entries)
    return (old_members(entries) - removed) | added


def make_old(out: Path, entries: int) -> None:
    """Version 1 as a base, then version 2 appended: the file a filter reads now."""
    first = {h(i) for i in range(entries)}
    apply_hashes_log(out, version=1, hashes=lambda: first)
    removed = {h(i) for i in range(0, 300, 3)}
    old = old_members(entries)
    apply_hashes_log(out, version=2, before=1, removed=removed, hashes=lambda: old)


def apply_new(out: Path, how: str, entries: int) -> None:
    """Version 3: appended from version 2, or (unknown changes) compacted."""
    added, removed = changes(entries)
    new = new_members(entries)
    if how == "append":
        result = apply_hashes_log(
            out, version=3, before=2, added=added, removed=removed, hashes=lambda: new
        )
        assert not result.compacted
    else:
        assert apply_hashes_log(out, version=3, hashes=lambda: new).compacted


def _trial(tmp_path: Path, point: str, how: str, delay: float | None) -> bool:
    out = tmp_path / "cleanfeed.hashes"
    for p in tmp_path.iterdir():
        p.unlink()
    make_old(out, ENTRIES)
    old, new = old_members(ENTRIES), new_members(ENTRIES)
    argv = [sys.executable, "-c", CHILD, point, how, str(out), str(ENTRIES)]
    run = run_child(argv, delay, timeout=300)
    if run.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"writer failed ({run.returncode}):\n{run.err}")
    seen = read_hashes_log(out)
    assert (seen.version, seen.hashes) in ((2, old), (3, new)), (
        f"after a kill at {point or delay}: version {seen.version}, {len(seen.hashes)} hashes"
    )
    if point in NEW_POINTS:
        assert seen.version == 3
    elif point:
        assert seen.version == 2
    # The next sync's writer repairs whatever was left and lands on version 3.
    repaired = apply_hashes_log(
        out,
        version=3,
        before=2,
        added=changes(ENTRIES)[0],
        removed=changes(ENTRIES)[1],
        hashes=lambda: new,
    )
    assert repaired.changed == (seen.version != 3)
    seen = read_hashes_log(out)
    assert (seen.version, seen.hashes) == (3, new)
    bases = sorted(p.name for p in tmp_path.iterdir() if ".base-" in p.name)
    assert seen.base in bases
    return run.killed


@pytest.mark.parametrize("point", APPEND_POINTS)
def test_kill_during_an_append(tmp_path: Path, point: str) -> None:
    assert _trial(tmp_path, point, "append", None)


@pytest.mark.parametrize("point", COMPACT_POINTS)
def test_kill_during_a_compaction(tmp_path: Path, point: str) -> None:
    assert _trial(tmp_path, point, "compact", None)


def test_kill_before_the_old_base_is_deleted(tmp_path: Path) -> None:
    # The switch happened: the new version is read; the old base is garbage
    # the next compaction removes.
    assert _trial(tmp_path, "compact-unlink", "compact", None)


def _loop(tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    kills = 0
    for _ in range(trials):
        how = rng.choice(("append", "compact"))
        kills += _trial(tmp_path, "", how, rng.uniform(0.0, 0.4))
    assert kills >= 1


def test_kill_at_random_moments(tmp_path: Path) -> None:
    _loop(tmp_path, 6, seed=19)


@pytest.mark.slow
def test_kill_loop(tmp_path: Path) -> None:
    """>= 50 trials."""
    _loop(tmp_path, 50, seed=1904)
