"""kill -9 during a bulk import leaves all or none of an all-or-nothing batch.

Each trial starts a child that imports several batches of rows one after
the other, each ``all_or_nothing`` (one transaction per batch), and prints a
line after each batch committed (or was rejected); the parent SIGKILLs it
after a random delay. Two paths are exercised:

- ``store``: the store service (:func:`blocklist.store.entries.bulk_add`)
  in a write transaction, as the API and the CLI call it;
- ``api``: the real application (``create_app``) in the child, driven
  through ``POST /v1/lists/main/entries/bulk?all_or_nothing=true`` over an
  in-process ASGI transport.

Some batches carry an invalid last row and must be refused whole. After
each kill: SQLite's integrity and foreign-key checks pass; every batch has
all of its rows or none (and all of them once the child said it
committed, none if it said rejected); each stored entry has exactly one
``entry.add`` audit record and the audit chain recomputes; the interrupted
batch can be imported again and ends up complete.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.processes import run_child
from support.published_log import sqlite_integrity

from blocklist.auditlog import Action
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import imports as store_imports
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store.imports import BULK_ADDED, BULK_EXISTING, BulkRow
from blocklist.store.models import AuditRow, EntryRow
from signer.datadir import init_data_dir, resolve_database_url

LIST = "main"

#: Rows per batch: enough that writing a batch takes a while (about a
#: millisecond per row here), well within one JSON body (1 MiB cap,
#: api/middleware.py).
ROWS = 1_000

#: Batches one child imports before it exits on its own.
BATCHES_PER_CHILD = 3

#: Every how-many-th batch carries an invalid last row (refused whole).
INVALID_EVERY = 3

_HOST_RE = re.compile(r"^b(\d+)-\d+\.bulk\.example\.com$")

#: The child: import batches FIRST..FIRST+COUNT-1 through MODE, printing
#: "ready", then "committed B" / "rejected B" after each batch, then "done".
CHILD = r"""
import asyncio, sys
from pathlib import Path
data_dir, mode, first, count, rows, token = sys.argv[1:7]
first, count, rows = int(first), int(count), int(rows)
invalid_every = int(sys.argv[7])

def batch(b):
    out = [
        {"url": f"http://b{b}-{i}.bulk.example.com/page.html", "scope": "page",
         "reason": "bulk kill test", "reference": f"ref-{b}-{i}"}
        for i in range(rows)
    ]
    if b % invalid_every == invalid_every - 1:
        out[-1] = {"url": "mailto:abuse@example.com", "scope": "page", "reason": "bad row"}
    return out

if mode == "store":
    from blocklist.store import Database
    from blocklist.store import imports as se
    from blocklist.store import lists as sl
    from blocklist.store.errors import BulkRejected
    from signer.datadir import resolve_database_url
    db = Database(resolve_database_url(Path(data_dir)))
    with db.read() as s:
        list_id = sl.get_list(s, "main").id
    print("ready", flush=True)
    for b in range(first, first + count):
        try:
            with db.transaction() as s:
                se.bulk_add(s, list_id, [se.BulkRow(**r) for r in batch(b)], actor="alice",
                            all_or_nothing=True)
        except BulkRejected:
            print(f"rejected {b}", flush=True)
        else:
            print(f"committed {b}", flush=True)
else:
    import httpx
    from api.app import create_app
    from api.settings import load_settings
    settings = load_settings(Path(data_dir), schedule=False, rate_limit_per_second=0,
                             json_logs=False, log_level="ERROR")
    app = create_app(settings)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bulk.test") as c:
            headers = {"Authorization": f"Bearer {token}"}
            await c.get("/healthz")
            print("ready", flush=True)
            for b in range(first, first + count):
                r = await c.post("/v1/lists/main/entries/bulk", params={"all_or_nothing": "true"},
                                 json=batch(b), headers=headers, timeout=120)
                if r.status_code == 200:
                    print(f"committed {b}", flush=True)
                elif r.status_code == 422 and r.json().get("code") == "bulk_rejected":
                    print(f"rejected {b}", flush=True)
                else:
                    print(f"error {b} {r.status_code} {r.text[:300]}", flush=True)
                    sys.exit(3)
    asyncio.run(main())
print("done", flush=True)
"""


@dataclass
class Deployment:
    data_dir: Path
    db: Database
    list_id: int
    token: str
    next_batch: int = 0

    @property
    def db_file(self) -> Path:
        return self.data_dir / "cleanfeed.db"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("bulk-kill") / "template"
    init_data_dir(data_dir, list_name=LIST)
    return data_dir


def _deploy(template: Path, where: Path) -> Deployment:
    shutil.copytree(template, where)
    db = Database(resolve_database_url(where))
    with db.transaction() as s:
        token, _ = store_tokens.create_token(s, name="alice", role="analyst", actor="test")
        list_id = store_lists.get_list(s, LIST).id
    return Deployment(where, db, list_id, token)


def _is_invalid(batch: int) -> bool:
    return batch % INVALID_EVERY == INVALID_EVERY - 1


def _run_child(
    dep: Deployment, mode: str, first: int, delay: float | None
) -> tuple[dict[int, str], float]:
    """Run the importing child; return what it reported per batch and how
    long it ran after saying "ready"."""
    argv = [
        sys.executable,
        "-c",
        CHILD,
        str(dep.data_dir),
        mode,
        str(first),
        str(BATCHES_PER_CHILD),
        str(ROWS),
        dep.token,
        str(INVALID_EVERY),
    ]
    run = run_child(argv, delay, timeout=600)
    if run.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"bulk child failed ({run.returncode}):\n{run.out}\n{run.err}")
    reported: dict[int, str] = {}
    for line in run.out.splitlines():
        word, _, number = line.partition(" ")
        if word in ("committed", "rejected"):
            reported[int(number)] = word
    return reported, run.seconds


def _batch_counts(dep: Deployment) -> tuple[Counter[int], list[int]]:
    """Rows per batch number, and the ids of every bulk entry."""
    counts: Counter[int] = Counter()
    ids: list[int] = []
    with dep.db.read() as s:
        for entry_id, host in s.execute(
            select(EntryRow.id, EntryRow.host).where(
                EntryRow.list_id == dep.list_id, EntryRow.host.like("%.bulk.example.com")
            )
        ):
            match = _HOST_RE.match(host)
            assert match, host
            counts[int(match.group(1))] += 1
            ids.append(entry_id)
    return counts, ids


def _check(dep: Deployment, reported: dict[int, str], started: range) -> Counter[int]:
    sqlite_integrity(dep.db_file)
    counts, ids = _batch_counts(dep)
    for batch in started:
        # All or nothing, whatever moment the process died.
        assert counts[batch] in (0, ROWS), f"batch {batch} is partly stored: {counts[batch]}"
        if _is_invalid(batch):
            assert counts[batch] == 0, f"batch {batch} has an invalid row yet was stored"
        if reported.get(batch) == "committed":
            assert counts[batch] == ROWS, f"batch {batch} was reported committed but is gone"
        if reported.get(batch) == "rejected":
            assert counts[batch] == 0
    with dep.db.read() as s:
        # Every stored entry has exactly one addition record (same transaction).
        per_entry = dict(
            s.execute(
                select(AuditRow.entry_id, func.count())
                .where(AuditRow.list_id == dep.list_id, AuditRow.action == Action.ENTRY_ADD)
                .group_by(AuditRow.entry_id)
            ).all()
        )
        missing = [i for i in ids if per_entry.get(i) != 1]
        assert not missing, f"{len(missing)} entries without exactly one entry.add record"
        # The hash chain recomputes record by record.
        store_audit.verify(s, dep.list_id)
    return counts


def _reimport(dep: Deployment, batch: int, present: bool) -> None:
    """Import ``batch`` again in-process: it completes, or is already complete."""
    rows = [
        BulkRow(
            url=f"http://b{batch}-{i}.bulk.example.com/page.html",
            scope="page",
            reason="bulk kill test",
            reference=f"ref-{batch}-{i}",
        )
        for i in range(ROWS)
    ]
    with dep.db.transaction() as s:
        results = store_imports.bulk_add(s, dep.list_id, rows, actor="alice", all_or_nothing=True)
    statuses = {r.status for r in results}
    assert statuses == {BULK_EXISTING if present else BULK_ADDED}, statuses


@dataclass
class Calibration:
    """Seconds an unkilled child spends importing its batches (the kill-delay range)."""

    seconds: dict[str, float]


@pytest.fixture(scope="module")
def calibration(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    seconds: dict[str, float] = {}
    for mode in ("store", "api"):
        dep = _deploy(template, tmp_path_factory.mktemp("calibrate") / mode)
        reported, seconds[mode] = _run_child(dep, mode, 0, None)
        expected = {
            b: "rejected" if _is_invalid(b) else "committed" for b in range(BATCHES_PER_CHILD)
        }
        assert reported == expected
        _check(dep, reported, range(BATCHES_PER_CHILD))
        dep.db.dispose()
    return Calibration(seconds)


def _trial(dep: Deployment, rng: random.Random, mode: str, calibration: Calibration) -> bool:
    first = dep.next_batch
    started = range(first, first + BATCHES_PER_CHILD)
    dep.next_batch += BATCHES_PER_CHILD
    delay = rng.uniform(0.0, calibration.seconds[mode])
    reported, seconds = _run_child(dep, mode, first, delay)
    counts = _check(dep, reported, started)
    killed = len(reported) < BATCHES_PER_CHILD
    if not killed:
        # The child finished before its kill: the machine got faster than
        # when the range was measured (load from other tests went away).
        # Kill delays follow the latest full run, so kills stay spread over
        # the whole import instead of mostly landing after it.
        calibration.seconds[mode] = seconds
    # The batch in flight (the first one not reported) can be imported again.
    for batch in started:
        if batch not in reported and not _is_invalid(batch):
            _reimport(dep, batch, present=counts[batch] == ROWS)
            _check(dep, reported, started)
            break
    return killed


def _run_trials(template: Path, calibration: Calibration, root: Path, modes: list[str]) -> None:
    rng = random.Random(len(modes))
    dep = _deploy(template, root / "data")
    kills = 0
    try:
        for mode in modes:
            kills += _trial(dep, rng, mode, calibration)
    finally:
        dep.db.dispose()
    assert kills >= len(modes) // 2, f"only {kills} of {len(modes)} imports were killed"


def test_kill_bulk_import(template: Path, calibration: Calibration, tmp_path: Path) -> None:
    """8 trials, half through the store service, half through the API."""
    _run_trials(template, calibration, tmp_path, ["store", "api"] * 4)


@pytest.mark.slow
def test_kill_bulk_import_loop(template: Path, calibration: Calibration, tmp_path: Path) -> None:
    """>= 50 trials."""
    _run_trials(template, calibration, tmp_path, ["store", "api"] * 25)
