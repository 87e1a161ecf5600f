"""kill -9 during a publish never corrupts the database, forks the log or blocks the next publish.

Each trial queues more than 10,000 changes (so one publish cuts at least two
versions in one transaction), then runs a real publishing process against a
SQLite data directory and SIGKILLs it:

- ``cli``: the real ``cleanfeed signer publish --once``, killed after a
  random delay from its start;
- ``ready``: a child that has imported everything and opened the database,
  killed a random delay after it starts publishing (so kills land inside
  the transaction far more often);
- named points: the same child SIGKILLs itself when the publisher reaches a
  point (after taking the list lock, after the 1st / 2nd version row, after
  storing the checkpoint, after commit but before the high-water mark moves,
  with the new mark written but not yet renamed, right after the rename).
  The publisher has no kill hooks of its own, so the child wraps the store
  functions it calls; the real process dies there, nothing is mocked.

Afterwards: SQLite's integrity and foreign-key checks pass; the log
verifies as an auditor verifies it (signatures, chain, state digests, the
checkpoint's root is the RFC 6962 root of every statement); version numbers
are 1..N, each used once; the database holds either none or all of the
killed publish's versions; the high-water mark is never ahead of the
database and names a prefix of the log; and the next publish succeeds and
lists exactly the expected set.
"""

from __future__ import annotations

import math
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from support.processes import ROOT, child_env, kill_after, run_child, signer_argv
from support.publish_helpers import active_entry_row
from support.published_log import LogView, check_highwater, sqlite_integrity, verify_published_log

from blocklist.canonical import expression_hash
from blocklist.statement import MAX_CHANGES_PER_VERSION
from blocklist.store import Database
from blocklist.store import entries as store_entries
from blocklist.store import lists as store_lists
from blocklist.store.models import EntryRow
from signer.datadir import init_data_dir, keys_dir_of, resolve_database_url
from signer.highwater import HighWater
from signer.publisher import Publisher

LIST = "main"

#: Changes queued by a "large" trial: above one version's cap, so the publish
#: cuts two versions inside its single transaction (and takes long enough for
#: random kills to land inside it).
LARGE_CHANGES = (MAX_CHANGES_PER_VERSION + 500, MAX_CHANGES_PER_VERSION + 2_000)

#: Changes of a "small" trial: one version (named points that need no more).
SMALL_CHANGES = (1_000, 3_000)

#: Trials share a data directory for this many rounds, then start afresh
#: (the log grows by ~12k entries per trial; verification replays it all).
TRIALS_PER_DIR = 5

#: Points where the child SIGKILLs itself, and which side of the commit each is.
ROLLED_BACK_POINTS = ("lock", "version:1", "version:2", "checkpoint")
COMMITTED_POINTS = ("committed", "highwater-tmp", "highwater-replaced")
KILL_POINTS = ROLLED_BACK_POINTS + COMMITTED_POINTS

#: The child: open the data directory, wrap the store functions the
#: publisher calls so it SIGKILLs itself at the named point, say "ready",
#: publish, say "done <seconds>".
CHILD = r"""
import os, signal, sys, time
from pathlib import Path
data_dir, point = Path(sys.argv[1]), sys.argv[2]
from blocklist.store import Database
from blocklist.store import versions as sv
import signer.highwater as hw
from signer.datadir import keys_dir_of, resolve_database_url
from signer.publisher import Publisher

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(module, name, count=1):
    original = getattr(module, name)
    calls = [0]
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == count:
            die()
        return result
    setattr(module, name, wrapper)

if point == "lock":
    after(sv, "lock_list")
elif point.startswith("version:"):
    after(sv, "record_version", int(point.split(":")[1]))
elif point == "checkpoint":
    after(sv, "put_checkpoint")
elif point == "committed":
    Publisher._advance = lambda self, signed: die()
elif point in ("highwater-tmp", "highwater-replaced"):
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == hw.HIGHWATER_FILE and point == "highwater-tmp":
            die()
        real_replace(src, dst, *args, **kwargs)
        if Path(dst).name == hw.HIGHWATER_FILE:
            die()
    os.replace = replace

db = Database(resolve_database_url(data_dir))
publisher = Publisher(db, "main", keys_dir_of(data_dir))
with db.read() as session:
    pass
print("ready", flush=True)
start = time.monotonic()
result = publisher.publish_once()
print(f"done {time.monotonic() - start:.3f} {result.version_after}", flush=True)
"""


@dataclass
class Template:
    """An initialised data directory copied for each group of trials."""

    data_dir: Path
    root_vkey: str


@dataclass
class Deployment:
    """A copy of the template with its database and the set the log must hold."""

    data_dir: Path
    root_vkey: str
    db: Database
    list_id: int
    expected: set[bytes] = field(default_factory=set)
    next_entry: int = 0

    @property
    def keys_dir(self) -> Path:
        return keys_dir_of(self.data_dir)

    @property
    def db_file(self) -> Path:
        return self.data_dir / "cleanfeed.db"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    data_dir = tmp_path_factory.mktemp("publish-kill") / "template"
    result = init_data_dir(data_dir, list_name=LIST)
    return Template(data_dir, result.root_vkey)


def _deploy(template: Template, where: Path) -> Deployment:
    shutil.copytree(template.data_dir, where)
    db = Database(resolve_database_url(where))
    view = verify_published_log(db, template.root_vkey)
    with db.read() as s:
        list_id = store_lists.get_list(s, LIST).id
        # The canary is approved at init and waits for the first publish.
        pending = set(s.scalars(select(EntryRow.hash).where(EntryRow.list_id == list_id)).all())
    return Deployment(where, template.root_vkey, db, list_id, view.members | pending)


def _queue_additions(dep: Deployment, count: int, now: datetime) -> None:
    """Approved, unpublished entries in one statement (the publisher's pending work)."""
    rows = []
    for i in range(dep.next_entry, dep.next_entry + count):
        expression = f"k{i}.kill.example.com/page.html"
        h = expression_hash(expression)
        dep.expected.add(h)
        rows.append(
            active_entry_row(
                dep.list_id,
                expression,
                host=f"k{i}.kill.example.com",
                reason="publish kill test",
                now=now,
            )
        )
    dep.next_entry += count
    with dep.db.transaction() as s:
        s.execute(insert(EntryRow), rows)


def _queue_expiries(dep: Deployment, rng: random.Random, count: int, now: datetime) -> None:
    """Expire ``count`` listed entries (removals in the next version)."""
    with dep.db.read() as s:
        lst = store_lists.get_list(s, LIST)
        listed = list(
            s.execute(
                select(EntryRow.id, EntryRow.hash).where(
                    EntryRow.list_id == dep.list_id,
                    EntryRow.listed.is_(True),
                    EntryRow.status == "active",
                    EntryRow.id != lst.canary_entry_id,
                )
            ).all()
        )
    for entry_id, h in rng.sample(listed, min(count, len(listed))):
        with dep.db.transaction() as s:
            store_entries.expire(
                s, dep.list_id, entry_id, actor="carol", reason="wrong block", now=now
            )
        dep.expected.discard(h)


def _pending_count(dep: Deployment) -> int:
    with dep.db.read() as s:
        return len(
            s.scalars(
                select(EntryRow.id).where(
                    EntryRow.list_id == dep.list_id, EntryRow.needs_publish.is_(True)
                )
            ).all()
        )


def _check(dep: Deployment) -> tuple[LogView, int]:
    sqlite_integrity(dep.db_file)
    view = verify_published_log(dep.db, dep.root_vkey)
    mark = check_highwater(dep.keys_dir, view)
    return view, mark.size


def _run_child(dep: Deployment, point: str | None, delay: float | None) -> tuple[bool, float]:
    """Run the publishing child; return whether it died by SIGKILL and, if
    it finished, how long its publish took."""
    run = run_child(
        [sys.executable, "-c", CHILD, str(dep.data_dir), point or "none"], delay, timeout=300
    )
    if run.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"publish child failed ({run.returncode}):\n{run.err}")
    seconds = float(run.out.split()[1]) if run.out.startswith("done ") else 0.0
    return run.killed, seconds


def _run_cli(dep: Deployment, delay: float) -> bool:
    """``cleanfeed signer publish --once``, SIGKILLed after ``delay`` seconds."""
    with subprocess.Popen(
        signer_argv("publish", "--once", "--data-dir", str(dep.data_dir)),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        killed = kill_after(proc, delay)
        _, err = proc.communicate(timeout=60)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"cleanfeed signer publish failed ({proc.returncode}):\n{err}")
    return killed


@dataclass
class Calibration:
    """How long unkilled publishes take here, to spread random kill delays over them.

    Not an assertion about speed: only the range random delays are drawn from.
    """

    cli_startup: float
    cli_large: float
    publish_large: float

    def cli_delay(self, rng: random.Random, changes: int) -> float:
        work = (self.cli_large - self.cli_startup) * changes / LARGE_CHANGES[1]
        return rng.uniform(0.0, 1.05 * (self.cli_startup + max(work, 0.0)))

    def publish_delay(self, rng: random.Random, changes: int) -> float:
        return rng.uniform(0.0, 1.05 * self.publish_large * changes / LARGE_CHANGES[1])


@pytest.fixture(scope="module")
def calibration(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    dep = _deploy(template, tmp_path_factory.mktemp("calibrate") / "data")
    now = datetime.now(UTC)
    _queue_additions(dep, 1, now)
    start = time.monotonic()
    assert not _run_cli(dep, delay=600)
    cli_startup = time.monotonic() - start
    _queue_additions(dep, LARGE_CHANGES[1], now)
    start = time.monotonic()
    assert not _run_cli(dep, delay=600)
    cli_large = time.monotonic() - start
    _queue_additions(dep, LARGE_CHANGES[1], now)
    killed, publish_large = _run_child(dep, None, None)
    assert not killed
    _check(dep)
    dep.db.dispose()
    return Calibration(cli_startup, cli_large, publish_large)


def _trial(
    dep: Deployment,
    rng: random.Random,
    kind: str,
    calibration: Calibration,
    before: tuple[LogView, int],
) -> tuple[bool, tuple[LogView, int]]:
    """One killed publish and its recovery.

    ``before`` is the checked state the trial starts from (the previous
    trial's final check). Returns whether the kill landed, and the final
    checked state.
    """
    view_before, mark_before = before
    assert view_before.members == dep.expected - _unpublished(dep)
    now = datetime.now(UTC)
    large = kind == "version:2" or (kind in ("cli", "ready") and rng.random() < 0.5)
    additions = rng.randint(*(LARGE_CHANGES if large else SMALL_CHANGES))
    removals = rng.randint(1, 25) if view_before.size else 0
    _queue_expiries(dep, rng, removals, now)
    _queue_additions(dep, additions, now)
    pending = _pending_count(dep)
    versions = math.ceil(pending / MAX_CHANGES_PER_VERSION)
    assert versions >= (2 if large else 1)

    if kind == "cli":
        killed = _run_cli(dep, calibration.cli_delay(rng, pending))
    elif kind == "ready":
        killed, _ = _run_child(dep, None, calibration.publish_delay(rng, pending))
    else:
        killed, _ = _run_child(dep, kind, None)
        assert killed, f"the child never reached kill point {kind}"

    after, mark = _check(dep)
    # Atomic: none or all of the publish's versions, never some.
    start = view_before.size
    assert after.size in (start, start + versions), (kind, start, after.size)
    if kind in ROLLED_BACK_POINTS:
        assert after.size == start, f"killed before commit at {kind}, yet versions stayed"
    if kind in COMMITTED_POINTS:
        assert after.size == start + versions, f"killed after commit at {kind}"
    if after.size == start:
        assert after.members == view_before.members
        assert _pending_count(dep) == pending, "a rolled-back publish left entries marked"
    else:
        assert after.members == dep.expected
        assert _pending_count(dep) == 0
    # The mark moves only after commit and never past the database.
    assert mark in (mark_before, after.size)
    if kind in ("lock", "version:1", "version:2", "checkpoint", "committed", "highwater-tmp"):
        assert mark == mark_before
    if kind == "highwater-replaced":
        assert mark == after.size

    # The next publish succeeds, extends the (possibly lagging) mark and
    # lists exactly the expected set; one more addition makes sure it signs.
    _queue_additions(dep, 1, datetime.now(UTC))
    result = Publisher(dep.db, LIST, dep.keys_dir).publish_once()
    assert result.version_after > after.size
    final, final_mark = _check(dep)
    assert final.size == result.version_after
    assert final.members == dep.expected
    assert final_mark == final.size
    assert HighWater.for_list(dep.keys_dir, LIST).read().root == final.root
    return killed, (final, final_mark)


def _unpublished(dep: Deployment) -> set[bytes]:
    with dep.db.read() as s:
        return set(
            s.scalars(
                select(EntryRow.hash).where(
                    EntryRow.list_id == dep.list_id,
                    EntryRow.needs_publish.is_(True),
                    EntryRow.listed.is_(False),
                )
            ).all()
        )


def _run_trials(
    template: Template, calibration: Calibration, root: Path, kinds: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    dep: Deployment | None = None
    state: tuple[LogView, int] | None = None
    kills = 0
    try:
        for trial, kind in enumerate(kinds):
            if trial % TRIALS_PER_DIR == 0:
                if dep is not None:
                    dep.db.dispose()
                dep = _deploy(template, root / f"d{trial}")
                state = _check(dep)
            assert dep is not None
            assert state is not None
            killed, state = _trial(dep, rng, kind, calibration, state)
            kills += killed
    finally:
        if dep is not None:
            dep.db.dispose()
    # Most random delays must land before the process finished, or the
    # trials would prove nothing about crashes.
    assert kills >= len(kinds) // 2, f"only {kills} of {len(kinds)} publishes were killed"


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_at_each_point_of_a_publish(
    template: Template, calibration: Calibration, tmp_path: Path, point: str
) -> None:
    """Each named point once, on a log that already has versions."""
    dep = _deploy(template, tmp_path / "data")
    try:
        # A first, clean publish so the killed one extends a non-empty log.
        _queue_additions(dep, 50, datetime.now(UTC))
        Publisher(dep.db, LIST, dep.keys_dir).publish_once()
        killed, _ = _trial(dep, random.Random(point), point, calibration, _check(dep))
        assert killed
    finally:
        dep.db.dispose()


def test_kill_publish_at_random_moments(
    template: Template, calibration: Calibration, tmp_path: Path
) -> None:
    """A short loop: the real CLI and the ready child at random delays."""
    kinds = ["cli", "ready"] * 2
    _run_trials(template, calibration, tmp_path, kinds, seed=20261128)


@pytest.mark.slow
def test_kill_publish_loop(template: Template, calibration: Calibration, tmp_path: Path) -> None:
    """>= 50 trials mixing the CLI, random delays and every named point."""
    rng = random.Random(1128)
    kinds = [rng.choice(["cli", "ready", "ready", *KILL_POINTS]) for _ in range(60)]
    _run_trials(template, calibration, tmp_path, kinds, seed=2026)
