"""End to end: ``cleanfeed serve`` started as a user would, on a loopback port.

The server runs in its own process (embedded SQLite, keys generated on first
start); the test talks HTTP to it over a real socket: an analyst adds a URL,
a second analyst approves it, publishing cuts a signed version, and an ISP
token fetches the checkpoint and the statements.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from support.e2e_helpers import Server, cli, serve

from blocklist.checkpoint import Checkpoint
from blocklist.statement import Statement
from blocklist.store import appeals as store_appeals
from blocklist.store.db import Database
from blocklist.store.models import AppealPrivateRow
from signer.datadir import resolve_database_url
from signer.keyring import verify_keyring_update
from signer.note import Verifier, parse_note, verify_note

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = serve(tmp_path / "cleanfeed-data", tmp_path / "serve.log", schedule=True)
    try:
        yield s
    finally:
        s.stop()


def _token(client: httpx.Client, admin: str, **body: object) -> str:
    r = client.post("/v1/tokens", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def _workflow(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30.0) as client:
        admin = server.admin_token
        alice = _token(client, admin, name="alice", role="analyst")
        bob = _token(client, admin, name="bob", role="analyst")
        isp = _token(client, admin, name="isp-e2e", role="isp", lists=["main"])

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        added = client.post(
            "/v1/lists/main/entries",
            json={"url": "http://203.0.113.9/abuse/page.html", "scope": "page", "reason": "report"},
            headers=auth(alice),
        )
        assert added.status_code == 201, added.text
        entry_id = added.json()["id"]
        approved = client.post(f"/v1/lists/main/entries/{entry_id}/approve", headers=auth(bob))
        assert approved.json()["status"] == "active"
        published = client.post("/v1/lists/main/publish", headers=auth(alice))
        assert published.status_code == 200, published.text
        version = published.json()["version"]
        assert version >= 1

        keyring_note = client.get("/v1/lists/main/keyring", headers=auth(isp)).text
        root_vkey = (server.data_dir / "keys" / "main" / "root.vkey").read_text().strip()
        keyring = verify_keyring_update(
            keyring_note, held=None, pinned_roots=[root_vkey], now=datetime.now(UTC)
        )
        online = Verifier.from_vkey(keyring.open_keys()[0])

        r = client.get("/v1/lists/main/checkpoint", headers=auth(isp))
        assert r.status_code == 200
        assert r.headers["cleanfeed-min-wait"]
        checkpoint = Checkpoint.parse(verify_note(r.text, [online]).text)
        assert checkpoint.size == version
        again = client.get(
            "/v1/lists/main/checkpoint", headers={**auth(isp), "If-None-Match": r.headers["etag"]}
        )
        assert again.status_code == 304

        page = client.get("/v1/lists/main/statements", params={"since": 0}, headers=auth(isp))
        notes = page.json()["statements"]
        assert len(notes) == version
        last = Statement.parse(verify_note(notes[-1], [online]).text)
        digest = hashlib.sha256(b"203.0.113.9/abuse/page.html").digest()
        assert any(digest in Statement.parse(parse_note(n).text).adds for n in notes)
        assert last.version == version


def test_serve_add_approve_publish_fetch(server: Server) -> None:
    _workflow(server)


def test_serve_with_two_workers_runs_one_signer(tmp_path: Path) -> None:
    s = serve(tmp_path / "cleanfeed-data", tmp_path / "serve.log", "--workers", "2", schedule=True)
    try:
        _workflow(s)
    finally:
        s.stop()
    # One signer for the data directory: the parent's, never one per worker.
    assert s.log.read_text().count("embedded signer started") == 1


#: How long the parent's signer may take to run its first appeal-retention
#: pass after ``serve`` is ready (the job's first run is at start).
APPEAL_RETENTION_DEADLINE_SECONDS = 30.0


def test_two_workers_signer_erases_appellant_data_past_retention(tmp_path: Path) -> None:
    """``serve --workers 2``: the parent's signer is the app's, appeal retention included.

    The signer of several workers and the one of a single process come from
    one factory (``api.signer_service.embedded_signer``); before, the
    parent's copy was built without ``appeal_retention_days`` and never
    erased an appellant's message, contact or URL.
    """
    data_dir = tmp_path / "cleanfeed-data"
    done = cli("init", "--data-dir", str(data_dir), "--json")
    assert done.returncode == 0, done.stderr
    long_ago = datetime.now(UTC) - timedelta(days=400)  # the default keeps 365 days
    db = Database(resolve_database_url(data_dir, None))
    try:
        with db.transaction() as session:
            filed = store_appeals.file_appeal(
                session,
                block_ref_text=None,
                url="http://appeal.example.com/page",
                message="please look again",
                contact="someone@example.org",
                dedup_window=timedelta(0),
                cap_per_hour=0,
                cap_per_day=0,
                now=long_ago,
            )
            store_appeals.close_unmatched(
                session, filed.appeal_id, actor="admin", reason="matched no list", now=long_ago
            )
        s = serve(data_dir, tmp_path / "serve.log", "--workers", "2", schedule=True)
        try:
            deadline = time.monotonic() + APPEAL_RETENTION_DEADLINE_SECONDS
            while True:
                with db.read() as session:
                    if session.get(AppealPrivateRow, filed.appeal_id) is None:
                        break
                assert time.monotonic() < deadline, "appeal retention never ran"
                time.sleep(0.2)
        finally:
            s.stop()
    finally:
        db.dispose()
