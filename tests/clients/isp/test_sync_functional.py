"""The real ISP client against the real app, in-process and on loopback.

The app is api.app.create_app over a data directory made by
signer.datadir.init_data_dir; analysts add, approve, expire and publish
through the HTTP API; the client (clients.isp.sync.Syncer) syncs through
an ASGI bridge, sometimes behind a malicious proxy that tampers with
responses. Every rejection keeps the last good list.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.asgi_bridge import ASGIBridge
from support.isp_helpers import TamperTransport, raw_response, sign_cp
from support.stalling_server import stalling_server

from clients.isp.config import IspConfig, Limits, Timeouts
from clients.isp.store import DB_NAME, StateStore
from clients.isp.sync import Syncer, SyncOutcome

pytest.importorskip("fastapi")

from api.app import create_app
from api.settings import Settings
from blocklist.store import tokens as store_tokens
from blocklist.store.db import Database
from signer.datadir import init_data_dir, resolve_database_url
from signer.keyring_ops import rotate_online_key
from signer.keys import load_key

LIST = "main"
BASE = "https://cleanfeed.test"


class Deployment:
    """A data directory, the app, analyst tokens and an ISP client config."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        result = init_data_dir(self.data_dir, list_name=LIST)
        self.origin = result.origin
        self.root_vkey = result.root_vkey
        db = Database(resolve_database_url(self.data_dir))
        try:
            with db.transaction() as session:
                self.analyst_a = self._token(session, "analyst-a", "analyst")
                self.analyst_b = self._token(session, "analyst-b", "analyst")
                self.isp = self._token(session, "isp-1", "isp", plaintext=True)
        finally:
            db.dispose()
        settings = Settings(data_dir=self.data_dir, schedule=False, checkpoint_cache_ttl=0)
        self.app = create_app(settings)
        self.bridge = ASGIBridge(self.app)
        self.proxy = TamperTransport(self.bridge)
        self.http = httpx.Client(transport=self.bridge, base_url=BASE)
        self.state_dir = tmp_path / "isp-state"
        self.config = IspConfig(
            server=BASE,
            list=LIST,
            token=self.isp,
            root_keys=(self.root_vkey,),
            state_dir=self.state_dir,
            lock_timeout=5.0,
            plaintext=True,
        )
        self.entries: dict[str, int] = {}

    @staticmethod
    def _token(session: Any, name: str, role: str, plaintext: bool = False) -> str:
        token, _ = store_tokens.create_token(
            session,
            name=name,
            role=role,
            lists=[LIST],
            plaintext=plaintext,
            full_audit=False,
            expires_at=None,
            actor="test",
        )
        return str(token)

    def _post(self, path: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.http.post(
            f"/v1/lists/{LIST}{path}", json=body or {}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def add(self, url: str, scope: str = "page") -> None:
        entry = self._post(
            "/entries", self.analyst_a, {"url": url, "scope": scope, "reason": "test"}
        )
        self._post(f"/entries/{entry['id']}/approve", self.analyst_b)
        self.entries[url] = entry["id"]

    def expire(self, url: str) -> None:
        self._post(f"/entries/{self.entries[url]}/expire", self.analyst_a)

    def publish(self) -> int:
        return int(self._post("/publish", self.analyst_a)["version"])

    def sync(self, *, clock_offset: float = 0.0, config: IspConfig | None = None) -> SyncOutcome:
        with httpx.Client(transport=self.proxy) as client:
            syncer = Syncer(config or self.config, client, clock=lambda: time.time() + clock_offset)
            return syncer.sync_once()

    def held(self) -> tuple[int | None, frozenset[bytes]]:
        with StateStore(self.state_dir, create=False) as store:
            return store.status().version, frozenset(store.iter_hashes())

    def server_hashes(self) -> frozenset[bytes]:
        r = self.http.get(
            f"/v1/lists/{LIST}/snapshot", headers={"Authorization": f"Bearer {self.isp}"}
        )
        assert r.status_code == 200
        return frozenset(r.content[i : i + 32] for i in range(0, len(r.content), 32))

    def close(self) -> None:
        self.http.close()
        self.bridge.close()


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def synced_dep(dep: Deployment) -> Deployment:
    dep.add("http://example.com/a/page.html")
    dep.add("http://www.example.org/dir/", scope="prefix")
    dep.add("http://bad.example.net/", scope="host")
    dep.publish()
    outcome = dep.sync()
    assert outcome.status == "updated", outcome
    return dep


def sha(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


def assert_kept(dep: Deployment, outcome: SyncOutcome, reason: str, before: object) -> None:
    assert outcome.status in ("rejected", "failed"), outcome
    assert outcome.reason == reason, outcome
    assert dep.held() == before
    with StateStore(dep.state_dir, create=False) as store:
        assert store.status().last_error_reason == reason


# --- the happy paths ------------------------------------------------------------------


def test_first_sync_from_empty(synced_dep: Deployment) -> None:
    dep = synced_dep
    version, members = dep.held()
    assert version == 1
    assert members == dep.server_hashes()
    assert sha("example.com/a/page.html") in members
    with StateStore(dep.state_dir, create=False) as store:
        exprs = dict(store.expressions())
        assert store.status().plaintext_complete is True
    assert exprs[sha("bad.example.net/")] == "bad.example.net/"


def test_incremental_and_expiry(synced_dep: Deployment) -> None:
    dep = synced_dep
    dep.add("http://example.com/b.html")
    dep.expire("http://example.com/a/page.html")
    version = dep.publish()
    dep.proxy.requests.clear()
    outcome = dep.sync()
    assert outcome.status == "updated"
    assert outcome.version_after == version
    held_version, members = dep.held()
    assert held_version == version
    assert members == dep.server_hashes()
    assert sha("example.com/a/page.html") not in members
    assert not any(r.url.path.endswith("/snapshot") for r in dep.proxy.requests)
    assert dep.sync().status == "current"


def test_gzip_compressed_pages_are_decoded(synced_dep: Deployment) -> None:
    dep = synced_dep
    for i in range(25):
        dep.add(f"http://example.com/gzip/{i}.html")
    version = dep.publish()
    dep.proxy.encodings.clear()
    assert dep.sync().status == "updated"
    assert dep.held() == (version, dep.server_hashes())
    # The app compressed the statements page; the client decoded it itself.
    assert ("/v1/lists/main/statements", "gzip") in dep.proxy.encodings


def test_key_rotation(synced_dep: Deployment) -> None:
    dep = synced_dep
    rotate_online_key(dep.data_dir, LIST)
    dep.add("http://example.com/after-rotation")
    version = dep.publish()
    outcome = dep.sync()
    assert outcome.status == "updated", outcome
    assert dep.held() == (version, dep.server_hashes())


def test_resync_from_snapshot_after_local_corruption(synced_dep: Deployment) -> None:
    dep = synced_dep
    with sqlite3.connect(dep.state_dir / DB_NAME) as raw:
        raw.execute("DELETE FROM hashes WHERE hash = ?", (sha("bad.example.net/"),))
    dep.expire("http://bad.example.net/")  # the delta removes the hash we lost
    version = dep.publish()
    dep.proxy.requests.clear()
    outcome = dep.sync()
    assert outcome.status == "updated", outcome
    assert dep.held() == (version, dep.server_hashes())
    assert any(r.url.path.endswith("/snapshot") for r in dep.proxy.requests)


# --- rejection paths behind a malicious proxy --------------------------------------------


def test_bad_signature(synced_dep: Deployment) -> None:
    dep = synced_dep
    before = dep.held()
    dep.add("http://example.com/new")
    dep.publish()

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/statements"):
            doc = response.json()
            note = doc["statements"][0]
            # Flip one byte of the signed text: the signature no longer covers it.
            doc["statements"][0] = note.replace("count ", "count 1", 1)
            return httpx.Response(200, json=doc)
        return response

    dep.proxy.tamper = tamper
    outcome = dep.sync()
    assert outcome.reason in ("signature_error", "format_error"), outcome
    assert_kept(dep, outcome, outcome.reason, before)


def test_unknown_key(synced_dep: Deployment) -> None:
    from signer.keys import SecretKey

    dep = synced_dep
    before = dep.held()
    impostor = SecretKey.generate(dep.origin)
    cp = sign_cp(dep.origin, 1, bytes(32), impostor)
    dep.proxy.tamper = lambda req, resp: (
        httpx.Response(200, text=cp) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(dep, dep.sync(), "unknown_key", before)


def test_rollback(synced_dep: Deployment) -> None:
    dep = synced_dep
    old = dep.http.get(
        f"/v1/lists/{LIST}/checkpoint", headers={"Authorization": f"Bearer {dep.isp}"}
    ).text
    dep.add("http://example.com/more")
    dep.publish()
    assert dep.sync().status == "updated"
    before = dep.held()
    dep.proxy.tamper = lambda req, resp: (
        httpx.Response(200, text=old) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(dep, dep.sync(), "rollback", before)


def test_stale_checkpoint(synced_dep: Deployment) -> None:
    dep = synced_dep
    before = dep.held()
    # The server keeps serving its (old) checkpoint; two hours later it is frozen.
    assert_kept(dep, dep.sync(clock_offset=2 * 3600), "stale", before)


def test_broken_chain(synced_dep: Deployment) -> None:
    dep = synced_dep
    before = dep.held()
    for url in ("http://example.com/c1", "http://example.com/c2"):
        dep.add(url)
        dep.publish()

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/statements"):
            doc = response.json()
            return httpx.Response(200, json={"statements": doc["statements"][1:], "next": None})
        return response

    dep.proxy.tamper = tamper
    assert_kept(dep, dep.sync(), "chain_broken", before)


def test_equivocation_with_a_compromised_online_key(synced_dep: Deployment) -> None:
    dep = synced_dep
    before = dep.held()
    key_file = next((dep.data_dir / "keys" / LIST).glob("online-*.key"))
    key = load_key(key_file)
    fork = sign_cp(dep.origin, 1, hashlib.sha256(b"fork").digest(), key, _now())
    dep.proxy.tamper = lambda req, resp: (
        httpx.Response(200, text=fork) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(dep, dep.sync(), "equivocation", before)
    with StateStore(dep.state_dir, create=False) as store:
        evidence = store.evidence()
    assert len(evidence) == 1
    assert evidence[0].new_note == fork


def test_oversize(synced_dep: Deployment) -> None:
    dep = synced_dep
    before = dep.held()
    dep.add("http://example.com/big")
    dep.publish()
    small = replace(dep.config, limits=Limits(statements_page=64))
    assert_kept(dep, dep.sync(config=small), "oversize", before)


def test_gzip_bomb(synced_dep: Deployment) -> None:
    import gzip

    dep = synced_dep
    before = dep.held()
    bomb = gzip.compress(b" " * (32 * 1024 * 1024), compresslevel=9)
    dep.proxy.tamper = lambda req, resp: (
        raw_response(200, bomb, {"Content-Encoding": "gzip"})
        if req.url.path.endswith("/keyring")
        else resp
    )
    assert_kept(dep, dep.sync(), "oversize", before)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- on loopback: a slow server and a read timeout -------------------------------------------


def test_slow_response_read_timeout_on_loopback(synced_dep: Deployment) -> None:
    dep = synced_dep
    before = dep.held()
    with stalling_server(dep.app, "/checkpoint", b"x") as base:
        config = replace(dep.config, server=base, timeouts=Timeouts(read=0.5))
        with httpx.Client(timeout=httpx.Timeout(5.0, read=0.5)) as client:
            outcome = Syncer(config, client).sync_once()
        assert_kept(dep, outcome, "timeout", before)
