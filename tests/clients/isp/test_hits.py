"""Opt-in hit counts at the ISP (issue 18 item 5): the block page counts, ``run`` posts.

The block page is the real server on loopback over a state synced by the
real Syncer; the store is read back with ``sqlite3`` to check exactly what
it holds. The post goes to an httpx transport that records the request
(the server side is tested in tests/api/test_hits.py, end to end).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.blockpage_server import Running
from support.isp_helpers import NOW, MemoryServer, isp_config, new_log

from blocklist.blockref import block_ref
from blocklist.encoding import format_week
from clients.errors import ConfigError
from clients.isp.blockpage import (
    BlockPageConfig,
    load_blockpage_config,
)
from clients.isp.config import IspConfig, load_config
from clients.isp.hits import (
    HITS_DB,
    HitsConfig,
    HitStore,
    canary_hash,
    hits_poster,
    post_completed_weeks,
)
from clients.isp.sync import Syncer

FREQUENT = "abuse-only.example.net/"
RARE = "rare.example.net/"
CANARY = "canary.cleanfeed.invalid/"
PAGE = "pages.example.com/gallery/1.html"
K = 10


def sha(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


class State:
    """A state directory synced from an in-memory log with the real Syncer."""

    def __init__(self, tmp_path: Path) -> None:
        log = new_log()
        log.publish(sorted(sha(e) for e in (FREQUENT, RARE, CANARY, PAGE)), now=NOW)
        self.dir = tmp_path / "state"
        config = isp_config(log, self.dir)
        with MemoryServer(log).client() as client:
            outcome = Syncer(config, client, clock=lambda: NOW.timestamp()).sync_once()
        assert outcome.ok, outcome


def browse(state: State, hits: HitsConfig) -> None:
    """Send the same traffic to a block page with these settings, then stop it."""
    running = Running(BlockPageConfig(state_dir=state.dir, hits=hits))
    try:
        with httpx.Client(base_url=running.base, timeout=10) as c:
            for i in range(12):
                assert (
                    c.get(
                        f"/secret/path-{i}?q=private", headers={"Host": "abuse-only.example.net"}
                    ).status_code
                    == 451
                )
            for _ in range(3):
                assert c.get("/", headers={"Host": "rare.example.net"}).status_code == 451
            for _ in range(20):  # the ISP's own canary check
                assert c.get("/", headers={"Host": "canary.cleanfeed.invalid"}).status_code == 451
            for _ in range(5):  # HEAD shows no page: not a hit
                assert c.head("/", headers={"Host": "abuse-only.example.net"}).status_code == 451
            assert c.get("/", headers={"Host": "unlisted.example.org"}).status_code == 404
            assert (
                c.get("/gallery/1.html", headers={"Host": "pages.example.com"}).status_code == 404
            )
    finally:
        running.close()  # flushes the counts held in memory


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path)


def read_db(state_dir: Path) -> tuple[set[str], list[tuple[Any, ...]], set[str]]:
    """Tables, rows of ``hits`` and its columns, straight from the file."""
    conn = sqlite3.connect(state_dir / HITS_DB)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(hits)")}
        rows = conn.execute("SELECT week, block_ref, count FROM hits ORDER BY block_ref").fetchall()
    finally:
        conn.close()
    return tables, rows, columns


def test_nothing_is_counted_by_default(state: State, tmp_path: Path) -> None:
    toml = tmp_path / "isp.toml"
    toml.write_text(f'state_dir = "{state.dir}"\n')
    config = load_blockpage_config(toml)
    assert config.hits.enabled is False
    assert load_config(toml).hits.enabled is False
    browse(state, config.hits)
    assert not (state.dir / HITS_DB).exists()


def test_the_store_holds_only_week_block_ref_and_count(state: State) -> None:
    week = format_week(datetime.now(UTC))
    browse(state, HitsConfig(enabled=True, k=K))
    tables, rows, columns = read_db(state.dir)
    assert tables == {"hits"}
    assert columns == {"week", "block_ref", "count"}
    # GETs only, the canary never, whatever path or query was asked.
    assert sorted(rows) == sorted(
        [(week, block_ref(sha(FREQUENT)), 12), (week, block_ref(sha(RARE)), 3)]
    )
    # No address, host, path, query or finer time anywhere in the files.
    raw = b"".join(p.read_bytes() for p in state.dir.glob(HITS_DB + "*"))
    for secret in (b"127.0.0.1", b"abuse-only", b"example.net", b"secret", b"private", b"canary"):
        assert secret not in raw
    assert (state.dir / HITS_DB).stat().st_mode & 0o777 == 0o600


def post_with(store: HitStore, handler: Any, now: datetime) -> list[Any]:
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return post_completed_weeks(
            store,
            client,
            server="https://hotline.example",
            list_name="main",
            token="cf_isp_x",
            k=K,
            now=now,
        )


def test_completed_weeks_are_posted_above_k_and_forgotten(state: State) -> None:
    now = datetime.now(UTC)
    week = format_week(now)
    browse(state, HitsConfig(enabled=True, k=K))
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"ok": True})

    with HitStore(state.dir) as store:
        assert post_with(store, handler, now) == []  # the week is not over: nothing leaves
        assert sent == []
        outcomes = post_with(store, handler, now + timedelta(weeks=1))
        assert [(o.week, o.result, o.posted) for o in outcomes] == [(week, "posted", 1)]
        assert store.rows() == []  # forgotten once posted
    [request] = sent
    assert request.url == "https://hotline.example/v1/lists/main/hits"
    assert request.headers["Authorization"] == "Bearer cf_isp_x"
    # Below k (RARE: 3) never leaves the ISP; the canary was never counted.
    assert json.loads(request.content) == {
        "week": week,
        "counts": [{"block_ref": block_ref(sha(FREQUENT)), "count": 12}],
    }


def test_a_failed_post_is_kept_and_a_refused_one_forgotten(tmp_path: Path) -> None:
    now = datetime(2026, 12, 9, tzinfo=UTC)  # a Wednesday of 2026-W50
    ref = block_ref(sha(FREQUENT))
    with HitStore(tmp_path) as store:
        store.add({("2026-W49", ref): 40, ("2026-W48", ref): 30, ("2026-W30", ref): 99})
        down = post_with(store, lambda r: httpx.Response(503), now)
        # Too old: forgotten unposted; the first failure stops the run.
        assert [(o.week, o.result) for o in down] == [
            ("2026-W30", "expired"),
            ("2026-W48", "failed"),
        ]
        assert store.weeks() == ["2026-W48", "2026-W49"]
        problem = {"code": "hits_below_threshold", "detail": "k=50"}
        refused = post_with(store, lambda r: httpx.Response(422, json=problem), now)
        assert [(o.week, o.result) for o in refused] == [
            ("2026-W48", "refused"),
            ("2026-W49", "refused"),
        ]
        assert "hits_below_threshold" in refused[0].detail
        assert store.weeks() == []


def test_the_hits_table_is_validated(tmp_path: Path) -> None:
    toml = tmp_path / "isp.toml"
    toml.write_text("[hits]\nenabled = true\nk = 25\npost = false\n")
    assert load_config(toml).hits == HitsConfig(enabled=True, k=25, post=False)
    assert load_blockpage_config(toml).hits.k == 25
    # post = false: counted locally, never posted by run.
    config = IspConfig(
        server="https://h.example",
        list="main",
        state_dir=tmp_path,
        hits=HitsConfig(enabled=True, post=False),
    )
    with httpx.Client() as client:
        assert hits_poster(config, client) is None
        assert hits_poster(IspConfig(state_dir=tmp_path), client) is None  # off by default
    for bad in ("k = 0", "k = true", "enabled = 1", "colour = 1", 'canary = "mailto:x"'):
        toml.write_text(f"[hits]\n{bad}\n")
        with pytest.raises(ConfigError, match="hits"):
            load_config(toml)
    assert canary_hash("http://canary.cleanfeed.invalid/") == sha(CANARY)


def test_the_squid_helper_never_counts() -> None:
    """Counted in one place only: the helper has no counter and no way to enable one."""
    from clients.isp import squid_helper

    source = inspect.getsource(squid_helper)
    for name in ("HitCounter", "HitStore", "HITS_DB", "clients.isp.hits"):
        assert name not in source
    assert "hits" not in squid_helper._parser().format_help().lower()
