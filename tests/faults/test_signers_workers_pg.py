"""Two signer processes and several API workers on one PostgreSQL, under analyst load.

The production shape of DESIGN.md, "Processes": ``cleanfeed serve
--no-signer --workers 2`` (stateless API workers) and two ``cleanfeed signer
run`` processes (each with its own copy of the keys and its own high-water
mark, as on two hosts) share one fresh PostgreSQL database. For a sustained
run, analysts add and approve entries over HTTP from several threads at once,
expire some of them, and ask for publishes; an ISP client syncs the list the
whole time.

Afterwards, with every change published:

- one consistent log: it verifies as an auditor verifies it (signatures,
  the ``previous`` chain, every state digest, the checkpoint's root), each
  version number once, and the ISP client never saw a rollback, an
  equivocation or any other rejection;
- no lost entry: every entry an API call acknowledged is in the database
  with its hash and status, and the published set is exactly the approved,
  unexpired ones (plus the canary);
- no duplicate: each URL is stored once and listed at most once;
- both signers' high-water marks name prefixes of the final log;
- no process logged an error, and no request failed.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from support.pg_deployment import PgDeployment, init_pg_deployment, start_api, start_signer
from support.postgres import fresh_postgres_database, postgres_admin_url
from support.processes import error_lines, stop_process
from support.published_log import check_highwater, verify_published_log

from blocklist.encoding import b64decode
from blocklist.store import lists as store_lists
from blocklist.store import versions as store_versions
from blocklist.store.models import EntryRow
from blocklist.store.versions import has_pending_work
from clients.isp.config import IspConfig
from clients.isp.store import StateStore
from clients.isp.sync import Syncer
from signer.datadir import keys_dir_of

pytestmark = pytest.mark.postgres

#: Seconds of sustained load: the CI run, and the @slow run.
CI_SECONDS = 20.0
SLOW_SECONDS = 120.0

#: Analyst threads, each with its own pair of tokens (adder, approver).
ANALYST_THREADS = 4

#: Every how-many-th addition the thread also expires one of its entries,
#: and asks for a publish.
EXPIRE_EVERY = 7
PUBLISH_EVERY = 10

#: Longest wait for the signers to publish what is left after the load.
DRAIN_SECONDS = 120.0

#: Pause of the ISP client between syncs.
ISP_POLL_SECONDS = 0.5


@dataclass
class Ledger:
    """What the API acknowledged to one analyst thread."""

    added: dict[int, bytes] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)
    expired: set[int] = field(default_factory=set)
    publishes: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _analyst(
    base: str, adder: str, approver: str, thread: int, stop: threading.Event, ledger: Ledger
) -> None:
    rng = random.Random(thread)
    add_headers = {"Authorization": f"Bearer {adder}"}
    approve_headers = {"Authorization": f"Bearer {approver}"}
    with httpx.Client(base_url=base, timeout=60.0) as client:
        i = 0
        while not stop.is_set():
            try:
                url = f"http://t{thread}-{i}.load.example.org/page-{i}.html"
                r = client.post(
                    "/v1/lists/main/entries",
                    json={"url": url, "scope": "page", "reason": "load test"},
                    headers=add_headers,
                )
                if r.status_code != 201:
                    ledger.errors.append(f"add {url}: {r.status_code} {r.text[:200]}")
                    continue
                entry = r.json()
                entry_id = int(entry["id"])
                ledger.added[entry_id] = b64decode(entry["hash"], length=32)
                r = client.post(
                    f"/v1/lists/main/entries/{entry_id}/approve", json={}, headers=approve_headers
                )
                if r.status_code != 200 or r.json()["status"] != "active":
                    ledger.errors.append(f"approve {entry_id}: {r.status_code} {r.text[:200]}")
                    continue
                ledger.active.add(entry_id)
                if i % EXPIRE_EVERY == EXPIRE_EVERY - 1:
                    victim = rng.choice(sorted(ledger.active))
                    r = client.post(
                        f"/v1/lists/main/entries/{victim}/expire",
                        json={},
                        headers=add_headers,
                    )
                    if r.status_code != 200:
                        ledger.errors.append(f"expire {victim}: {r.status_code} {r.text[:200]}")
                    else:
                        ledger.active.discard(victim)
                        ledger.expired.add(victim)
                if i % PUBLISH_EVERY == PUBLISH_EVERY - 1:
                    r = client.post("/v1/lists/main/publish", headers=add_headers)
                    ledger.publishes[r.status_code] = ledger.publishes.get(r.status_code, 0) + 1
                    if r.status_code not in (200, 202):
                        ledger.errors.append(f"publish: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError as e:
                ledger.errors.append(f"transport: {type(e).__name__}: {e}")
            finally:
                i += 1


@dataclass
class IspWatch:
    outcomes: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)


def _isp_config(dep: PgDeployment, base: str, state_dir: Path) -> IspConfig:
    return IspConfig(
        server=base,
        list="main",
        token=dep.isp,
        root_keys=(dep.root_vkey,),
        state_dir=state_dir,
        lock_timeout=30.0,
        full_check_interval=10 * 365 * 86400.0,
    )


def _isp(config: IspConfig, stop: threading.Event, watch: IspWatch) -> None:
    with httpx.Client(timeout=60.0) as client:
        syncer = Syncer(config, client)
        while not stop.is_set():
            outcome = syncer.sync_once()
            watch.outcomes.append(outcome.status)
            if not outcome.ok:
                watch.bad.append(f"{outcome.status} {outcome.reason}: {outcome.message}")
            watch.versions.append(outcome.version_after)
            stop.wait(ISP_POLL_SECONDS)


def _drained(dep: PgDeployment) -> bool:
    db = dep.database()
    try:
        with db.read() as s:
            list_id = store_lists.get_list(s, "main").id
            if has_pending_work(s, list_id, now=datetime.now(UTC)):
                return False
            return not store_versions.open_publish_requests(s, list_id)
    finally:
        db.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    admin = postgres_admin_url()
    with fresh_postgres_database(admin) as url:
        yield url


def _run(tmp_path: Path, url: str, seconds: float) -> None:
    dep = init_pg_deployment(tmp_path / "api", url, analysts=2 * ANALYST_THREADS)
    # The second signer runs "on another host": its own copy of the keys and
    # its own high-water mark, the same database.
    second = tmp_path / "signer2"
    second.mkdir()
    shutil.copytree(keys_dir_of(dep.data_dir), keys_dir_of(second))
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "signer1", "signer2")}
    api, base = start_api(dep, logs["api"], workers=2)
    signers = [
        start_signer(dep.data_dir, dep, logs["signer1"]),
        start_signer(second, dep, logs["signer2"]),
    ]
    ledgers = [Ledger() for _ in range(ANALYST_THREADS)]
    watch = IspWatch()
    isp_config = _isp_config(dep, base, tmp_path / "isp")
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_analyst,
            args=(base, dep.analysts[2 * t], dep.analysts[2 * t + 1], t, stop, ledgers[t]),
            daemon=True,
        )
        for t in range(ANALYST_THREADS)
    ]
    threads.append(threading.Thread(target=_isp, args=(isp_config, stop, watch), daemon=True))
    try:
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a load thread hung"
        # Let the signers publish what is left (they poll every second).
        deadline = time.monotonic() + DRAIN_SECONDS
        while not _drained(dep):
            assert time.monotonic() < deadline, "the signers did not publish the backlog"
            for proc in (api, *signers):
                assert proc.poll() is None, f"a process died: {proc.args}"
            time.sleep(0.5)
        with httpx.Client(timeout=60.0) as client:
            final_sync = Syncer(isp_config, client).sync_once()
    finally:
        for proc in (*signers, api):
            stop_process(proc)

    errors = [e for ledger in ledgers for e in ledger.errors]
    assert not errors, f"{len(errors)} failed requests, e.g. {errors[:5]}"
    assert not watch.bad, f"the ISP client rejected or failed: {watch.bad[:5]}"
    assert watch.versions == sorted(watch.versions), "the ISP client's version went back"
    assert final_sync.ok, final_sync

    db = dep.database()
    try:
        view = verify_published_log(db, dep.root_vkey)
        added: dict[int, bytes] = {}
        active: set[int] = set()
        for ledger in ledgers:
            added.update(ledger.added)
            active |= ledger.active
        assert len(added) >= ANALYST_THREADS, "the load produced hardly any entries"
        with db.read() as s:
            rows = {
                row.id: row
                for row in s.scalars(
                    select(EntryRow).where(EntryRow.host.like("%.load.example.org"))
                )
            }
            canary = store_lists.get_list(s, "main").canary_entry_id
            canary_hash = s.scalar(select(EntryRow.hash).where(EntryRow.id == canary))
            per_hash = s.execute(
                select(EntryRow.hash, func.count()).group_by(EntryRow.hash).having(func.count() > 1)
            ).all()
        # No lost entry: every acknowledged entry is stored, with its hash and status.
        assert set(rows) == set(added), "entries lost or invented"
        for entry_id, h in added.items():
            assert rows[entry_id].hash == h
            # "removed" when it came off before any version listed it.
            wanted = {"active"} if entry_id in active else {"expired", "removed"}
            assert rows[entry_id].status in wanted, (entry_id, rows[entry_id].status)
        # No duplicate: one row per expression.
        assert not per_hash, f"duplicate entries: {per_hash[:3]}"
        # The published set is exactly the approved, unexpired entries.
        assert view.members == {added[i] for i in active} | {canary_hash}
    finally:
        db.dispose()
    for keys in (keys_dir_of(dep.data_dir), keys_dir_of(second)):
        check_highwater(keys, view)
    with StateStore(isp_config.state_path, create=False) as store:
        assert frozenset(store.iter_hashes()) == frozenset(view.members)
    for name, log in logs.items():
        bad = error_lines(log)
        assert not bad, f"{name} logged errors: {bad[:5]}"


def test_two_signers_and_api_workers_on_one_postgres(tmp_path: Path, pg_url: str) -> None:
    _run(tmp_path, pg_url, CI_SECONDS)


@pytest.mark.slow
def test_two_signers_and_api_workers_sustained(tmp_path: Path, pg_url: str) -> None:
    _run(tmp_path, pg_url, SLOW_SECONDS)
