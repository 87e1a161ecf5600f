"""kill -9 during ``cleanfeed isp export`` leaves the old or the new complete file.

A filter daemon may re-read its blocklist file at any moment; a truncated
file would silently drop the ISP's filter. The state directory holds a
verified list (synced in-process from a signed in-memory log); the target
file holds the complete export of the previous version. Each trial runs the
real ``cleanfeed isp export`` in a child process and SIGKILLs it, either
after a random delay or at a named point of the atomic write (the child
wraps the ``os`` calls the writer makes and SIGKILLs itself there: half of
the data written, temporary file written and synced, just before the
rename, just after it). The target must then be byte-for-byte the old
export or the new one, each compared with an independent rendering of the
format (one lower-case hex SHA-256 per line, sorted).
"""

from __future__ import annotations

import hashlib
import random
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.isp_helpers import LIST, SERVER, MemoryServer
from support.memory_log import MemoryLog
from support.processes import run_child

from clients.common.files import write_atomic
from clients.isp.config import IspConfig
from clients.isp.sync import Syncer

#: Hashes on the list: a file of several MB, so writing it takes a moment.
ENTRIES = 100_000

#: Points of the atomic write (clients/common/files.write_atomic, which is
#: blocklist/tempfiles.replace_file) where the child dies, and
#: which file the target must then hold.
OLD_POINTS = ("half-written", "tmp-synced", "before-rename")
NEW_POINTS = ("after-rename",)
KILL_POINTS = OLD_POINTS + NEW_POINTS

#: The child: wrap the os calls of the atomic write for the named point,
#: say "ready", then run ``cleanfeed isp`` with the remaining arguments.
CHILD = r"""
import os, signal, sys
point, args = sys.argv[1], sys.argv[2:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "half-written":
    # blocklist.tempfiles.write_new_file writes the content with os.write;
    # the export is megabytes, anything else this process writes is small.
    real_write = os.write
    def write(fd, data):
        if len(data) < (1 << 16):
            return real_write(fd, data)
        real_write(fd, bytes(data[: len(data) // 2]))
        die()
    os.write = write
elif point == "tmp-synced":
    real_fsync = os.fsync
    def fsync(fd):
        real_fsync(fd)
        die()
    os.fsync = fsync
elif point in ("before-rename", "after-rename"):
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        if point == "before-rename":
            die()
        real_replace(src, dst, *a, **k)
        die()
    os.replace = replace

from clients.isp.cli import isp_group
print("ready", flush=True)
isp_group(args, prog_name="cleanfeed isp")
"""


def _render(members: set[bytes]) -> bytes:
    """The hashes export, rendered independently: sorted lower-case hex, one per line."""
    return "".join(h.hex() + "\n" for h in sorted(members)).encode("ascii")


def _hash(i: int) -> bytes:
    return hashlib.sha256(f"example.com/export/{i}".encode()).digest()


@dataclass
class Setup:
    state_dir: Path
    old: bytes
    new: bytes
    cli_seconds: float


def _export(state_dir: Path, output: Path, point: str, delay: float | None) -> tuple[bool, float]:
    """Run the export child; return whether it was killed, and how long it
    ran after saying "ready"."""
    argv = [
        sys.executable,
        "-c",
        CHILD,
        point,
        "export",
        "--state-dir",
        str(state_dir),
        "--format",
        "hashes",
        "--output",
        str(output),
    ]
    run = run_child(argv, delay, timeout=300)
    if run.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"export failed ({run.returncode}):\n{run.err}")
    return run.killed, run.seconds


def _sync(log: MemoryLog, state_dir: Path) -> None:
    server = MemoryServer(log)
    server.now = datetime.now(UTC)
    config = IspConfig(
        server=SERVER,
        list=LIST,
        token="cf_isp_export",
        root_keys=(log.root_vkey,),
        state_dir=state_dir,
        lock_timeout=5.0,
        full_check_interval=10 * 365 * 86400.0,
    )
    with server.client() as client:
        outcome = Syncer(config, client, clock=lambda: server.now.timestamp()).sync_once()
    assert outcome.ok, outcome


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("export-kill")
    state_dir = root / "state"
    log = MemoryLog("cleanfeed.invalid/export", now=datetime.now(UTC))
    log.publish([_hash(i) for i in range(ENTRIES)], now=datetime.now(UTC))
    _sync(log, state_dir)
    old_file = root / "old.txt"
    assert not _export(state_dir, old_file, "none", None)[0]
    old = old_file.read_bytes()
    assert old == _render(log.members)
    # The next version removes and adds entries; the state moves to it.
    current = sorted(log.members)
    log.publish([_hash(ENTRIES + i) for i in range(5_000)], current[:5_000], now=datetime.now(UTC))
    _sync(log, state_dir)
    new_file = root / "new.txt"
    killed, cli_seconds = _export(state_dir, new_file, "none", None)
    assert not killed
    new = new_file.read_bytes()
    assert new == _render(log.members)
    assert new != old
    return Setup(state_dir, old, new, cli_seconds)


def _trial(setup: Setup, target: Path, point: str, delay: float | None) -> bool:
    # The filter's current file: the complete export of the previous version.
    write_atomic(target, setup.old)
    killed, _ = _export(setup.state_dir, target, point, delay)
    content = target.read_bytes()
    assert content in (setup.old, setup.new), (
        f"partial export after kill at {point or delay}: {len(content)} bytes "
        f"(old {len(setup.old)}, new {len(setup.new)})"
    )
    if point in OLD_POINTS:
        assert content == setup.old
    if point in NEW_POINTS:
        assert content == setup.new
    return killed


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_export_at_each_point_of_the_write(setup: Setup, tmp_path: Path, point: str) -> None:
    assert _trial(setup, tmp_path / "blocklist.txt", point, None)


def _loop(setup: Setup, tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    target = tmp_path / "blocklist.txt"
    kills = 0
    for _ in range(trials):
        if rng.random() < 0.3:
            kills += _trial(setup, target, rng.choice(KILL_POINTS), None)
        else:
            # After "ready": the export reads the state and writes the file.
            kills += _trial(setup, target, "none", rng.uniform(0.0, setup.cli_seconds))
    assert kills >= trials // 3, f"only {kills} of {trials} exports were killed"


def test_kill_export_at_random_moments(setup: Setup, tmp_path: Path) -> None:
    _loop(setup, tmp_path, 6, seed=7)


@pytest.mark.slow
def test_kill_export_loop(setup: Setup, tmp_path: Path) -> None:
    """>= 50 trials."""
    _loop(setup, tmp_path, 56, seed=1128)
