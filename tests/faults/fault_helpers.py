"""Shared building blocks of the fault-injection suites (tests/faults/).

- :func:`verify_published_log` checks a list's published log straight from
  the database the way an auditor would (a hash-only bundle through
  :func:`clients.audit.verify.verify_bundle`) and, independently of the code
  under test, with the RFC 6962 recursive root and a replay of every delta:
  version numbers 1..N each used once, the ``previous`` chain, signatures,
  state digests, the current checkpoint's size and root, the snapshot, and
  the audit chain.
- :func:`check_highwater` checks the signer's high-water mark against that
  log: never ahead of the database, and the root of the tree it names.
- :func:`sqlite_integrity` runs SQLite's own checks on a database file.
- :func:`kill_after` / :func:`run_child` run a child process and SIGKILL it.
- PostgreSQL: :func:`postgres_admin_url` (skip or fail like the store suite)
  and :func:`fresh_postgres_database` (a brand-new database per test).
- :func:`start_server` / :func:`stop_process`: ``cleanfeed serve`` and
  ``cleanfeed signer run`` on loopback, output to a log file.

The signer's command group is started through ``signer.publisher_cli`` (the
click group behind ``cleanfeed signer``), so these tests exercise the same
command whether or not the top-level dispatcher has registered it yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from blocklist.checkpoint import Checkpoint
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import lists as store_lists
from blocklist.store import versions as store_versions
from blocklist.store.db import normalise_url
from blocklist.store.models import MembershipRow, VersionRow
from clients.audit.bundle import KIND_HASH_ONLY, Bundle
from clients.audit.verify import verify_bundle
from signer.highwater import HighWater, HighWaterMark
from signer.note import parse_note

ROOT = Path(__file__).resolve().parents[2]

#: ``python -c`` body that runs the ``cleanfeed signer`` click group.
SIGNER_MAIN = (
    "import sys; from signer.publisher_cli import signer_group; "
    "signer_group(sys.argv[1:], prog_name='cleanfeed signer')"
)

POSTGRES_ENV = "CLEANFEED_TEST_POSTGRES_URL"

#: Longest wait for a server or signer process to come up (first start
#: migrates the database).
STARTUP_DEADLINE_SECONDS = 60.0


def signer_argv(*args: str) -> list[str]:
    """argv of ``cleanfeed signer ARGS`` in a fresh interpreter."""
    return [sys.executable, "-c", SIGNER_MAIN, *args]


def cleanfeed_argv(*args: str) -> list[str]:
    """argv of ``cleanfeed ARGS`` in a fresh interpreter."""
    return [sys.executable, "-m", "cleanfeed", *args]


# --- SQLite ----------------------------------------------------------------------


def sqlite_integrity(path: Path) -> None:
    """Assert SQLite's integrity and foreign-key checks pass on ``path``."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        assert rows == [("ok",)], f"integrity_check of {path}: {rows[:10]}"
        bad_keys = conn.execute("PRAGMA foreign_key_check").fetchall()
        assert bad_keys == [], f"foreign_key_check of {path}: {bad_keys[:10]}"
    finally:
        conn.close()


# --- the published log -------------------------------------------------------------


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 2.1 Merkle tree hash, by the recursive definition."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def _leaf_data(texts: Sequence[str]) -> list[bytes]:
    """Leaf data of each statement text (the text only, DESIGN.md item 3)."""
    return [t.encode("utf-8") for t in texts]


@dataclass
class LogView:
    """What a verified log establishes."""

    list_id: int
    origin: str
    size: int
    texts: list[str]
    members: set[bytes]
    root: bytes
    checkpoint_note: str


@dataclass
class _Stored:
    """What the database holds for one list's log."""

    list_id: int
    origin: str
    approvals_required: int
    numbers: list[int]
    keyrings: list[str]
    statements: list[str]
    checkpoints: list[str]
    checkpoint_note: str
    snapshot: list[bytes]


def _stored_log(db: Database, list_name: str) -> _Stored:
    with db.read() as s:
        lst = store_lists.get_list(s, list_name)
        keyrings: list[str] = []
        serial = 1
        while (row := store_versions.get_keyring(s, lst.id, serial)) is not None:
            keyrings.append(row.note)
            serial += 1
        numbers = list(
            s.scalars(
                select(VersionRow.version)
                .where(VersionRow.list_id == lst.id)
                .order_by(VersionRow.version)
            )
        )
        notes: list[str] = []
        while page := store_versions.statements(s, lst.id, since=len(notes), limit=1000):
            notes.extend(page)
        checkpoint = store_versions.get_checkpoint(s, lst.id)
        assert checkpoint is not None, "the list has no signed checkpoint"
        history = [row.note for row in store_versions.checkpoint_history(s, lst.id)]
        if checkpoint.note not in history:
            history.append(checkpoint.note)
        snapshot = store_versions.snapshot(s, lst.id, len(notes)) if notes else []
        twice = s.execute(
            select(MembershipRow.hash, func.count())
            .where(MembershipRow.list_id == lst.id, MembershipRow.removed_version.is_(None))
            .group_by(MembershipRow.hash)
            .having(func.count() > 1)
        ).all()
        assert not twice, f"a hash is listed twice at once: {twice[:3]}"
        # The audit chain recomputes (raises on a broken link).
        store_audit.verify(s, lst.id)
        return _Stored(
            lst.id,
            lst.origin,
            lst.approvals_required,
            numbers,
            keyrings,
            notes,
            history,
            checkpoint.note,
            snapshot,
        )


def verify_published_log(
    db: Database, root_vkey: str, *, list_name: str = "main", now: datetime | None = None
) -> LogView:
    """Verify everything a list has published; return what it establishes.

    Raises:
        AssertionError: any check fails (the message says which).
    """
    stored = _stored_log(db, list_name)
    notes = stored.statements
    # Every version number is used exactly once, without gaps.
    assert stored.numbers == list(range(1, len(stored.numbers) + 1)), (
        f"version numbers: {stored.numbers[:20]}..."
    )
    assert len(notes) == len(stored.numbers)
    bundle = Bundle(
        kind=KIND_HASH_ONLY,
        list_name=list_name,
        origin=stored.origin,
        approvals_required=stored.approvals_required,
        keyrings=tuple(stored.keyrings),
        statements=tuple(notes),
        checkpoints=tuple(stored.checkpoints),
    )
    report = verify_bundle(bundle, [root_vkey], now=now or datetime.now(UTC), workers=1)
    assert report.ok, f"the log does not verify: {report.failure}"
    assert report.version == len(notes)

    # Independent replay: numbering, chain, set semantics, digests, root.
    texts: list[str] = []
    members: set[bytes] = set()
    previous = bytes(32)
    for number, note in enumerate(notes, start=1):
        statement_text = parse_note(note).text
        st = Statement.parse(statement_text)
        assert st.version == number
        assert st.previous == previous, f"version {number} breaks the previous-chain"
        assert not members.intersection(st.adds), f"version {number} adds a present hash"
        assert members.issuperset(st.removes), f"version {number} removes an absent hash"
        members.difference_update(st.removes)
        members.update(st.adds)
        assert st.count == len(members)
        previous = hashlib.sha256(statement_text.encode("utf-8")).digest()
        texts.append(statement_text)
    if notes:
        last = Statement.parse(texts[-1])
        assert StateDigest.from_hashes(members).digest() == last.state
    assert stored.snapshot == sorted(members), "the stored snapshot is not the replayed set"
    root = naive_mth(_leaf_data(texts))
    checkpoint = Checkpoint.parse(parse_note(stored.checkpoint_note).text)
    assert (checkpoint.size, checkpoint.root) == (len(texts), root), (
        "the current checkpoint does not sign the stored tree"
    )
    return LogView(
        stored.list_id, stored.origin, len(texts), texts, members, root, stored.checkpoint_note
    )


def check_highwater(keys_dir: Path, view: LogView, *, list_name: str = "main") -> HighWaterMark:
    """Assert the signer's mark is never ahead of the log and names a real tree.

    A mark behind the database is safe (the next signing extends it); a
    mark ahead of it, or naming another root, would block every publish.
    """
    mark = HighWater.for_list(keys_dir, list_name).read()
    assert mark.origin == view.origin
    assert mark.size <= view.size, f"high-water mark {mark.size} ahead of the log {view.size}"
    assert mark.root == naive_mth(_leaf_data(view.texts[: mark.size])), (
        "the high-water mark names a tree that is not a prefix of the log"
    )
    return mark


# --- processes ---------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of child processes: this one, minus CI-only kill hooks."""
    env = {k: v for k, v in os.environ.items() if k != "CLEANFEED_TEST_KILL_AT"}
    env.update(extra)
    return env


def kill_after(proc: subprocess.Popen[Any], delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds unless it ended; return whether it was killed."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 120.0) -> str:
    """Read the child's stdout until a line starting with ``prefix``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=60)
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(
                f"child ended before printing {prefix!r} (rc={proc.returncode}):\n{err[-3000:]}"
            )
        if line.startswith(prefix):
            return line
    raise AssertionError(f"child did not print {prefix!r} in time")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn_logged(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log`` (never a full pipe)."""
    sink: IO[bytes]
    with log.open("ab") as sink:
        return subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/healthz`` until the server answers."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server did not come up:\n{log.read_text()}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it does not stop in ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def error_lines(log: Path) -> list[str]:
    """JSON log lines at level ERROR (or CRITICAL) in a process log."""
    out: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            if "Traceback" in line:
                out.append(line)
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
            out.append(line)
    return out


# --- PostgreSQL ----------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def postgres_admin_url() -> str:
    """The test server's URL; skip when unset, except under CI=true (then fail)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        if _in_ci():
            pytest.fail(f"CI=true but {POSTGRES_ENV} is unset: PostgreSQL tests must run in CI")
        pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL fault tests")
    return url


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """Create a brand-new database on the test server; drop it afterwards.

    Yields its SQLAlchemy URL (psycopg 3) as a string with the password.
    """
    base = normalise_url(admin_url)
    name = f"cf_fault_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the server while this engine's pool is idle.
    engine = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        engine.dispose()
        raise
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()


# --- a deployment on PostgreSQL with separate API and signer processes ---------------


@dataclass
class PgDeployment:
    """An initialised data directory whose database is PostgreSQL, and its tokens."""

    data_dir: Path
    url: str
    root_vkey: str
    origin: str
    analysts: list[str]
    isp: str
    admin: str

    def database(self) -> Database:
        return Database(self.url)


def init_pg_deployment(data_dir: Path, url: str, *, analysts: int) -> PgDeployment:
    """``cleanfeed init`` on ``url`` (list ``main``, one approval), plus tokens."""
    from blocklist.store import tokens as store_tokens
    from signer.datadir import init_data_dir

    init = init_data_dir(data_dir, database_url=url, list_name="main")
    db = Database(url)
    try:
        with db.transaction() as s:
            names = [
                store_tokens.create_token(s, name=f"analyst{i}", role="analyst", actor="test")[0]
                for i in range(analysts)
            ]
            isp, _ = store_tokens.create_token(
                s, name="isp-load", role="isp", lists=["main"], actor="test"
            )
    finally:
        db.dispose()
    return PgDeployment(data_dir, url, init.root_vkey, init.origin, names, isp, init.admin_token)


def serve_env(dep: PgDeployment) -> dict[str, str]:
    """Environment of API and signer processes: no rate limit, JSON logs."""
    return child_env(
        CLEANFEED_DATABASE_URL=dep.url,
        CLEANFEED_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_ANALYST_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_AUDITOR_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_ADMIN_RATE_LIMIT_PER_SECOND="0",
        CLEANFEED_JSON_LOGS="true",
        CLEANFEED_PUBLISH_WAIT_TIMEOUT="5",
        CLEANFEED_LOG_LEVEL="WARNING",
    )


def start_api(dep: PgDeployment, log: Path, *, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """``cleanfeed serve --no-signer --workers N`` on a free loopback port."""
    port = free_port()
    proc = spawn_logged(
        cleanfeed_argv(
            "serve",
            "--no-signer",
            "--data-dir",
            str(dep.data_dir),
            "--database-url",
            dep.url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ),
        log,
        serve_env(dep),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
    except AssertionError:
        stop_process(proc)
        raise
    return proc, base


def start_signer(
    data_dir: Path, dep: PgDeployment, log: Path, *, checkpoint_interval: float = 5.0
) -> subprocess.Popen[bytes]:
    """``cleanfeed signer run`` against the deployment's database, publishing every second."""
    return spawn_logged(
        signer_argv(
            "run",
            "--data-dir",
            str(data_dir),
            "--database-url",
            dep.url,
            "--publish-interval",
            "1",
            "--checkpoint-interval",
            str(checkpoint_interval),
            "--log-level",
            "WARNING",
        ),
        log,
        serve_env(dep),
    )
