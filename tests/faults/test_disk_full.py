"""Disk full and read-only database during a publish.

A deployment (embedded SQLite, the signer inside the API) has a published
version and a few thousand approved changes waiting. Then the storage
fails, four ways:

- ``tmpfs-full``: the data directory lives on a small tmpfs that a filler
  file fills to the last byte (real ENOSPC; needs mount rights);
- ``page-limit``: SQLite's ``PRAGMA max_page_count`` pinned at the current
  size on every connection of the app (the same SQLITE_FULL error, without
  mount rights);
- ``remount-ro``: that tmpfs remounted read-only (needs mount rights);
- ``query-only``: ``PRAGMA query_only`` on every connection of the app
  (SQLITE_READONLY without mount rights).

What must hold (DESIGN.md, "Operations"; issue 7, "Faults"): the publish
fails with a clear error (503 ``application/problem+json`` with
``Retry-After``, not an anonymous 500); ``/readyz`` reports the service
unhealthy (503) while the fault lasts; nothing is half-written (every table,
the audit head, the checkpoint and the high-water mark are as before, and
SQLite's integrity check passes); and once the fault clears the next
publish succeeds without a restart, the log verifies and the mark follows.
The command-line publisher must say what went wrong in one line, not with
a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert
from support.processes import ROOT, child_env, signer_argv
from support.publish_helpers import active_entry_row
from support.published_log import check_highwater, sqlite_integrity, verify_published_log

from api.app import create_app
from api.settings import load_settings
from blocklist.store import Database
from blocklist.store import tokens as store_tokens
from blocklist.store.models import Base, EntryRow
from signer.datadir import init_data_dir, keys_dir_of, resolve_database_url
from signer.highwater import HIGHWATER_FILE

LIST = "main"

#: Approved changes waiting when the fault strikes.
PENDING = 3_000

#: Size of the tmpfs holding the data directory: room for the database and
#: keys, small enough to fill in a moment.
TMPFS_SIZE = "48m"

DISK_FULL = ("tmpfs-full", "page-limit")
READ_ONLY = ("remount-ro", "query-only")
KINDS = DISK_FULL + READ_ONLY
NEEDS_MOUNT = frozenset({"tmpfs-full", "remount-ro"})


class Client:
    """Synchronous calls into the app; app exceptions become 500s as under a server."""

    def __init__(self, app: Any) -> None:
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://disk.test")

    def request(self, method: str, url: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self._runner.run(self._client.request(method, url, headers=headers, **kw))

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@dataclass
class Env:
    kind: str
    data_dir: Path
    root_vkey: str
    token: str
    app: Any
    client: Client
    mount: Path | None
    apply: Callable[[], None] = lambda: None
    clear: Callable[[], None] = lambda: None
    applied: bool = False
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def db_file(self) -> Path:
        return self.data_dir / "cleanfeed.db"

    @property
    def keys_dir(self) -> Path:
        return keys_dir_of(self.data_dir)

    def fault(self) -> None:
        self.apply()
        self.applied = True

    def heal(self) -> None:
        if self.applied:
            self.clear()
            self.applied = False

    def publish(self) -> httpx.Response:
        return self.client.request("POST", f"/v1/lists/{LIST}/publish", self.token)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _mount_tmpfs(where: Path) -> None:
    where.mkdir()
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        pytest.skip(
            f"cannot mount a tmpfs here ({detail.strip()}); the page-limit and query-only "
            "variants cover the same fault without mount rights"
        )


def _fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; return the filler."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def _queue(data_dir: Path, start: int, count: int) -> None:
    """Approved, unpublished entries (the publisher's pending work)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + count):
        expression = f"d{i}.disk.example.com/page.html"
        rows.append(
            active_entry_row(
                1, expression, host=f"d{i}.disk.example.com", reason="disk fault test", now=now
            )
        )
    db = Database(resolve_database_url(data_dir))
    try:
        with db.transaction() as s:
            s.execute(insert(EntryRow), rows)
    finally:
        db.dispose()


def _pragma_fault(env: Env, pragma: Callable[[], str]) -> None:
    engine = env.app.state.cf.db.engine

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(pragma())
        finally:
            cursor.close()

    def apply() -> None:
        event.listen(engine, "connect", on_connect)
        engine.dispose()  # every later connection gets the pragma

    def clear() -> None:
        event.remove(engine, "connect", on_connect)
        engine.dispose()

    env.apply, env.clear = apply, clear


def _page_count(db_file: Path) -> int:
    conn = sqlite3.connect(db_file)
    try:
        # Checkpoint the WAL so the main file holds every page.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(params=KINDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    kind: str = request.param
    mount: Path | None = None
    if kind in NEEDS_MOUNT:
        mount = tmp_path / "mnt"
        _mount_tmpfs(mount)
        data_dir = mount / "data"
    else:
        data_dir = tmp_path / "data"
    client: Client | None = None
    app: Any = None
    e: Env | None = None
    try:
        init = init_data_dir(data_dir, list_name=LIST)
        db = Database(resolve_database_url(data_dir))
        try:
            with db.transaction() as s:
                token, _ = store_tokens.create_token(s, name="alice", role="analyst", actor="test")
        finally:
            db.dispose()
        settings = load_settings(
            data_dir,
            schedule=False,
            rate_limit_per_second=0,
            json_logs=False,
            log_level="ERROR",
            checkpoint_cache_ttl=0,
        )
        app = create_app(settings)
        client = Client(app)
        e = Env(kind, data_dir, init.root_vkey, token, app, client, mount)
        # A published version first, so the log is not empty when the fault hits.
        _queue(data_dir, 0, 100)
        assert e.publish().status_code == 200
        _queue(data_dir, 100, PENDING)

        if kind == "tmpfs-full":
            holder: dict[str, Path] = {}

            def apply_full() -> None:
                assert mount is not None
                holder["filler"] = _fill(mount)

            def clear_full() -> None:
                holder.pop("filler").unlink()

            e.apply, e.clear = apply_full, clear_full
        elif kind == "page-limit":
            pages = _page_count(e.db_file)
            _pragma_fault(e, lambda: f"PRAGMA max_page_count={pages}")
        elif kind == "query-only":
            _pragma_fault(e, lambda: "PRAGMA query_only=ON")
        else:
            engine = app.state.cf.db.engine

            def apply_ro() -> None:
                assert mount is not None
                engine.dispose()  # open files would make the remount "busy"
                _run("mount", "-o", "remount,ro", str(mount))

            def clear_ro() -> None:
                assert mount is not None
                _run("mount", "-o", "remount,rw", str(mount))
                engine.dispose()

            e.apply, e.clear = apply_ro, clear_ro
        yield e
    finally:
        if e is not None:
            with contextlib.suppress(Exception):
                e.heal()
        if client is not None:
            client.close()
        if app is not None:
            app.state.cf.db.dispose()
        if mount is not None:
            subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def _fingerprint(env: Env) -> dict[str, Any]:
    """Everything a publish could change: rows of every table, the mark, the checkpoint."""
    conn = sqlite3.connect(f"file:{env.db_file}?mode=ro", uri=True)
    try:
        counts = {
            table.name: conn.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]  # noqa: S608
            for table in Base.metadata.sorted_tables
        }
        checkpoint = conn.execute("SELECT size, root, note FROM checkpoints").fetchall()
        flagged = conn.execute("SELECT count(*) FROM entries WHERE needs_publish").fetchone()[0]
        audit = conn.execute(
            "SELECT chain, seq, hash FROM audit_log ORDER BY chain, seq"
        ).fetchall()
    finally:
        conn.close()
    mark = (env.keys_dir / LIST / HIGHWATER_FILE).read_bytes()
    return {
        "counts": counts,
        "checkpoint": checkpoint,
        "flagged": flagged,
        "audit": audit,
        "mark": mark,
    }


def _verify(env: Env) -> tuple[int, int]:
    sqlite_integrity(env.db_file)
    db = Database(resolve_database_url(env.data_dir))
    try:
        view = verify_published_log(db, env.root_vkey)
        mark = check_highwater(env.keys_dir, view)
        return view.size, mark.size
    finally:
        db.dispose()


def test_publish_fault_leaves_nothing_half_written_and_recovers(env: Env) -> None:
    before = _fingerprint(env)
    size_before, _ = _verify(env)
    env.fault()
    failed = env.publish()
    assert failed.status_code >= 500, f"a publish on failing storage answered {failed.status_code}"
    assert failed.headers["content-type"].startswith("application/problem+json")
    env.heal()
    # Nothing half-written: not a row, not the mark, not the checkpoint.
    assert _fingerprint(env) == before
    assert _verify(env)[0] == size_before
    # The fault cleared: the same process publishes again, ready again.
    recovered = env.publish()
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["published"] is True
    size, mark = _verify(env)
    assert size > size_before
    assert mark == size
    assert env.client.request("GET", "/readyz").status_code == 200


def test_publish_fault_answers_503_with_retry_after(env: Env) -> None:
    env.fault()
    r = env.publish()
    assert r.status_code == 503, (
        f"FINDING: a publish on {env.kind} storage answers {r.status_code} "
        f"{r.json().get('code')!r}, not 503 with a stable code"
    )
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["code"] != "internal_error"


def test_readyz_unhealthy_during_fault(env: Env) -> None:
    assert env.client.request("GET", "/readyz").status_code == 200
    env.fault()
    env.publish()  # the signer has now hit the fault at least once
    r = env.client.request("GET", "/readyz")
    assert r.status_code == 503, (
        f"FINDING: /readyz answers {r.status_code} {r.text} while the storage is {env.kind}"
    )
    assert "retry-after" in r.headers
    env.heal()
    assert env.client.request("GET", "/readyz").status_code == 200


@pytest.mark.parametrize("env", ["tmpfs-full", "remount-ro"], indirect=True)
def test_cli_publish_reports_fault_in_one_line(env: Env) -> None:
    """``cleanfeed signer publish --once`` on failing storage: exit 1, a one-line error."""
    before = _fingerprint(env)
    env.fault()
    proc = subprocess.run(
        signer_argv("publish", "--once", "--data-dir", str(env.data_dir)),
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    env.heal()
    assert _fingerprint(env) == before
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, (
        "FINDING: the CLI publisher dies with a traceback on failing storage:\n"
        + proc.stderr[-600:]
    )
    assert proc.stderr.startswith("Error: "), proc.stderr[-600:]
