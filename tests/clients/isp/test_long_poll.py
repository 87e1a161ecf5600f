"""``cleanfeed isp run`` long-polls between syncs (DESIGN.md, "Freshness").

Against the real app served by uvicorn on loopback: the daemon, scheduled
to sync only every 10 minutes, applies a version published while it waits
(only the long-poll can have woken it); its long-poll outlives the
client's read timeout; against a server without long-poll (the same app
behind a shim that drops ``wait`` and never echoes ``Cleanfeed-Wait``,
i.e. today's server) it falls back to plain polling and still syncs.
The daemon's own rules are checked with stand-in sync and watch functions.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from support.api_testing import (
    MAIN,
    URL_A,
    URL_B,
    Deployment,
    deployed,
)
from support.processes import free_port

from api.context import AppContext
from clients.common.fetcher import Fetcher
from clients.errors import ConfigError
from clients.isp.config import IspConfig, Timeouts, load_config
from clients.isp.daemon import Daemon
from clients.isp.store import StateStore
from clients.isp.sync import Syncer, SyncOutcome, WatchOutcome

uvicorn = pytest.importorskip("uvicorn")

#: Longest a test waits for something that should happen within a second or two.
GUARD_SECONDS = 20.0

ASGIApp = Callable[..., Any]


@contextmanager
def serving(app: ASGIApp, ctx: AppContext) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (lifespan on), stopped afterwards.

    Held long-polls are released first, as SIGTERM does in production
    (uvicorn's ``should_exit`` alone would wait for them).
    """
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _until(lambda: server.started or not thread.is_alive())
    assert server.started, "server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        ctx.waiters.release_all()
        server.should_exit = True
        thread.join(timeout=30)


def _until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


class WithoutLongPoll:
    """Today's server: the app behind a shim that drops ``wait`` (so nothing is held
    and nothing echoed); counts the long-polls it was asked for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.asked = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            pairs = parse_qsl(scope["query_string"].decode("latin-1"))
            kept = [(k, v) for k, v in pairs if k != "wait"]
            if len(kept) != len(pairs):
                self.asked += 1
                scope = {**scope, "query_string": urlencode(kept).encode("latin-1")}
        await self.app(scope, receive, send)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with deployed(tmp_path) as d:
        yield d


def _config(d: Deployment, base: str, tmp_path: Path, **kw: Any) -> IspConfig:
    options: dict[str, Any] = {
        "server": base,
        "list": MAIN,
        "token": d.tokens.isp,
        "root_keys": (d.init.root_vkey,),
        "state_dir": tmp_path / "isp-state",
        "interval": 600.0,
        "first_poll_jitter": 0.0,
        "lock_timeout": 5.0,
    }
    options.update(kw)
    return IspConfig(**options)


def _publish(base: str, d: Deployment, url: str) -> int:
    with httpx.Client(base_url=base, timeout=30.0) as c:
        alice = {"Authorization": f"Bearer {d.tokens.alice}"}
        added = c.post(
            f"/v1/lists/{MAIN}/entries",
            json={"url": url, "scope": "page", "reason": "long-poll test"},
            headers=alice,
        )
        assert added.status_code == 201, added.text
        approved = c.post(
            f"/v1/lists/{MAIN}/entries/{added.json()['id']}/approve",
            headers={"Authorization": f"Bearer {d.tokens.bob}"},
        )
        assert approved.status_code == 200, approved.text
        published = c.post(f"/v1/lists/{MAIN}/publish", headers=alice)
        assert published.status_code == 200, published.text
        return int(published.json()["version"])


def _held_version(config: IspConfig) -> int | None:
    with StateStore(config.state_path, create=False) as store:
        return store.status().version


def _waiters(d: Deployment) -> int:
    ctx: AppContext = d.app.state.cf
    return ctx.waiters.active


@contextmanager
def running(daemon: Daemon) -> Iterator[None]:
    thread = threading.Thread(target=lambda: daemon.run(install_signal_handlers=False), daemon=True)
    thread.start()
    try:
        yield
    finally:
        daemon.stop()
        thread.join(timeout=GUARD_SECONDS)


def test_run_applies_a_publish_while_long_polling(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    with serving(d.app, d.app.state.cf) as base:
        config = _config(d, base, tmp_path)
        with httpx.Client() as http:
            syncer = Syncer(config, http)
            daemon = Daemon(config, syncer.sync_once, watch=syncer.watch, rng=random.Random(3))
            with running(daemon):
                _until(lambda: daemon.runs == 1 and _waiters(d) == 1)
                assert _held_version(config) == 0
                version = _publish(base, d, URL_A)
                # The next scheduled sync is 10 minutes away: only the
                # long-poll's answer can bring this version in.
                _until(lambda: _held_version(config) == version)
                # runs counts a sync once its exports and metrics are done too.
                _until(lambda: daemon.runs == 2)
                assert daemon.wakeups == 1
                # And it goes back to waiting on the new checkpoint.
                _until(lambda: _waiters(d) == 1)


def test_the_long_poll_outlives_the_read_timeout(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    with serving(d.app, d.app.state.cf) as base:
        config = _config(d, base, tmp_path)
        with httpx.Client() as http:
            assert Syncer(config, http).sync_once().ok
        with StateStore(config.state_path, create=False) as store:
            etag = store.etag()
        # Tight timeouts for plain requests (a loaded machine still
        # connects within 10 s): a 2 s read timeout and a 3 s deadline.
        tight = replace(config, timeouts=Timeouts(read=2.0, deadline=3.0))
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=10.0)) as http:
            fetcher = Fetcher(
                http,
                server=base,
                list_name=MAIN,
                token=d.tokens.isp,
                response_deadline=tight.timeouts.deadline,
            )
            # Held 6 s, longer than both: this request's timeouts grow by the hold.
            r = fetcher.checkpoint(etag, wait=6)
            assert r.note is None
            assert r.wait == 6
            assert Syncer(tight, http).watch(6) is WatchOutcome.HELD


def test_falls_back_to_plain_polling_without_cleanfeed_wait(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    old = WithoutLongPoll(d.app)
    with serving(old, d.app.state.cf) as base:
        config = _config(d, base, tmp_path)
        with httpx.Client() as http:
            syncer = Syncer(config, http)
            assert syncer.sync_once().ok
            assert syncer.watch(55) is WatchOutcome.UNAVAILABLE
            assert old.asked == 1
            assert _waiters(d) == 0
            # Plain polling still brings new versions, verified as always.
            version = _publish(base, d, URL_B)
            outcome = syncer.sync_once()
            assert outcome.status == "updated"
            assert _held_version(config) == version


OK = SyncOutcome("current", 1, 1, "up_to_date", "ok")


def _fake_daemon(
    watch_outcome: WatchOutcome, **config: Any
) -> tuple[Daemon, list[int], list[int], threading.Event]:
    syncs: list[int] = []
    watches: list[int] = []
    release = threading.Event()

    def sync() -> SyncOutcome:
        syncs.append(1)
        return OK

    def watch(seconds: int) -> WatchOutcome:
        watches.append(seconds)
        if watch_outcome is WatchOutcome.HELD:
            release.wait(GUARD_SECONDS)
        return watch_outcome

    cfg = replace(IspConfig(first_poll_jitter=0.0, long_poll=30), **config)
    return Daemon(cfg, sync, watch=watch, rng=random.Random(5)), syncs, watches, release


def test_unavailable_long_poll_is_not_retried_before_the_next_sync() -> None:
    # Interval 0.05 s (below the file's minimum, set directly): many syncs.
    daemon, syncs, watches, _ = _fake_daemon(WatchOutcome.UNAVAILABLE, interval=0.05)
    with running(daemon):
        _until(lambda: len(syncs) >= 5)
    # At most one attempt per sync: a server without long-poll never sees
    # a tight loop of requests.
    assert 1 <= len(watches) <= len(syncs)
    assert daemon.wakeups == 0


def test_changed_moves_the_next_sync_to_now() -> None:
    daemon, syncs, watches, _ = _fake_daemon(WatchOutcome.CHANGED, interval=600.0)
    with running(daemon):
        _until(lambda: len(syncs) >= 3)
    assert daemon.wakeups >= 2
    assert watches[0] == 30


def test_long_poll_zero_is_plain_polling() -> None:
    daemon, syncs, watches, _ = _fake_daemon(WatchOutcome.CHANGED, interval=0.05, long_poll=0)
    with running(daemon):
        _until(lambda: len(syncs) >= 3)
    assert watches == []


@pytest.mark.parametrize("value", ["56", "-1", "true", "5.5"])
def test_a_long_poll_setting_out_of_range_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "isp.toml"
    path.write_text(f"long_poll = {value}\n")
    with pytest.raises(ConfigError, match="long_poll"):
        load_config(path, environ={})


def test_long_poll_defaults_to_55_and_can_be_turned_off(tmp_path: Path) -> None:
    assert load_config(None, environ={}).long_poll == 55
    path = tmp_path / "isp.toml"
    path.write_text("long_poll = 0\n")
    assert load_config(path, environ={}).long_poll == 0
    assert load_config(path, overrides={"long_poll": 20}, environ={}).long_poll == 20
