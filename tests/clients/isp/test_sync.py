"""The Syncer against an in-memory implementation of the ISP endpoints.

MemoryServer (isp_helpers) serves a MemoryLog through httpx.MockTransport,
so every step of DESIGN.md "ISP sync, fail closed" can be driven and every
response tampered with precisely. test_sync_functional.py runs the same
client against the real app.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from support.isp_helpers import (
    LIST,
    NOW,
    SERVER,
    MemoryServer,
    craft_statement,
    expression_hash_of,
    h,
    hashes,
    new_log,
    raw_response,
    sign_cp,
)
from support.memory_log import MemoryLog

from clients.isp.config import ExportSpec, IspConfig, Limits
from clients.isp.store import DB_NAME, StateStore
from clients.isp.sync import Syncer, SyncOutcome
from signer.note import parse_note


class Env:
    """A server, a client configuration and a state directory."""

    def __init__(self, tmp_path: Path, log: MemoryLog, **config: object) -> None:
        self.log = log
        self.server = MemoryServer(log)
        self.state_dir = tmp_path / "state"
        self.hooks: list[str] = []
        values: dict[str, object] = {
            "server": SERVER,
            "list": LIST,
            "token": "cf_isp_test",
            "root_keys": (log.root_vkey,),
            "state_dir": self.state_dir,
            "lock_timeout": 5.0,
            "full_check_interval": 10 * 365 * 86400.0,
        }
        values.update(config)
        self.config = IspConfig(**values)  # type: ignore[arg-type]

    def hook(self, command: str) -> int:
        self.hooks.append(command)
        return 0

    def sync(self) -> SyncOutcome:
        with self.server.client() as client:
            syncer = Syncer(
                self.config,
                client,
                clock=lambda: self.server.now.timestamp(),
                hook_runner=self.hook,
            )
            return syncer.sync_once()

    def store(self) -> StateStore:
        return StateStore(self.state_dir, create=False)

    def held(self) -> tuple[int | None, set[bytes]]:
        with self.store() as store:
            return store.status().version, set(store.iter_hashes())

    def paths(self) -> list[str]:
        return [r.url.path.rsplit("/", 1)[-1] for r in self.server.requests]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    log = new_log()
    log.publish(hashes(1, 2, 3), now=NOW)
    log.publish(hashes(4), hashes(1), now=NOW)
    return Env(tmp_path, log)


def assert_kept(
    env: Env, outcome: SyncOutcome, reason: str, version: int, members: set[bytes]
) -> None:
    assert not outcome.ok, outcome
    assert outcome.reason == reason, outcome
    assert env.held() == (version, members)
    with env.store() as store:
        status = store.status()
        assert status.last_error_reason == reason
        assert status.counters.get(reason, 0) >= 1


# --- the happy paths ---------------------------------------------------------------


def test_first_sync_takes_the_snapshot_path(env: Env) -> None:
    outcome = env.sync()
    assert outcome.status == "updated"
    assert outcome.reason == "success"
    assert (outcome.version_before, outcome.version_after) == (0, 2)
    assert env.held() == (2, env.log.members)
    assert "snapshot" in env.paths()
    assert "statements" not in env.paths()
    # The token travels in the header, never in a URL.
    assert all(r.headers["Authorization"] == "Bearer cf_isp_test" for r in env.server.requests)
    assert all("cf_isp_test" not in str(r.url) for r in env.server.requests)


def test_first_sync_of_an_empty_list(tmp_path: Path) -> None:
    env = Env(tmp_path, new_log())
    outcome = env.sync()
    assert outcome.ok
    assert outcome.version_after == 0
    assert env.held() == (0, set())


def test_second_sync_is_current_via_etag(env: Env) -> None:
    env.sync()
    env.server.requests.clear()
    outcome = env.sync()
    assert outcome.status == "current"
    assert outcome.reason == "up_to_date"
    cp_request = next(r for r in env.server.requests if r.url.path.endswith("/checkpoint"))
    assert "if-none-match" in cp_request.headers
    assert env.paths() == ["keyring", "checkpoint"]


def test_incremental_sync_fetches_only_statements(env: Env) -> None:
    env.sync()
    env.log.publish(hashes(5, 6), hashes(2), now=NOW)
    env.log.publish(hashes(7), now=NOW)
    env.server.requests.clear()
    outcome = env.sync()
    assert outcome.status == "updated"
    assert (outcome.version_before, outcome.version_after) == (2, 4)
    assert env.held() == (4, env.log.members)
    assert "snapshot" not in env.paths()


def test_expiry_removes_the_entry(env: Env) -> None:
    env.sync()
    env.log.publish((), hashes(3), now=NOW)
    assert env.sync().ok
    version, members = env.held()
    assert version == 3
    assert h(3) not in members


def test_key_rotation(env: Env) -> None:
    env.sync()
    env.log.rotate_online_key(NOW)
    env.log.publish(hashes(8), now=NOW)
    assert env.sync().ok
    assert env.held() == (3, env.log.members)
    with env.store() as store:
        assert len(store.keyring_notes()) == 2


def test_refreshed_checkpoint_keeps_the_list_fresh(env: Env) -> None:
    env.sync()
    for minutes in (10, 20, 30, 40, 50, 60):
        env.server.now = NOW + timedelta(minutes=minutes)
        assert env.sync().status == "current"
    with env.store() as store:
        assert store.status().checkpoint_time == int((NOW + timedelta(minutes=60)).timestamp())


# --- local corruption: the snapshot path, not a repair of server data ---------------


def test_resync_from_snapshot_after_local_corruption(env: Env) -> None:
    env.sync()
    with sqlite3.connect(env.state_dir / DB_NAME) as raw:
        raw.execute("DELETE FROM hashes WHERE hash = ?", (h(4),))
    env.log.publish((), hashes(4), now=NOW)  # the delta now removes a hash we lost
    env.server.requests.clear()
    outcome = env.sync()
    assert outcome.status == "updated", outcome
    assert env.held() == (3, env.log.members)
    assert "snapshot" in env.paths()


def test_periodic_full_check_repairs_silent_corruption(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(1, 2), now=NOW)
    env = Env(tmp_path, log, full_check_interval=0.0)
    env.sync()
    with sqlite3.connect(env.state_dir / DB_NAME) as raw:
        raw.execute("INSERT INTO hashes (hash) VALUES (?)", (h(99),))
    outcome = env.sync()
    assert outcome.status == "updated"
    assert "repaired" in outcome.message
    assert env.held() == (1, log.members)


def test_damaged_meta_restarts_from_the_snapshot(env: Env) -> None:
    env.sync()
    with sqlite3.connect(env.state_dir / DB_NAME) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'state_vector'", (b"x" * 2048,))
    outcome = env.sync()
    assert outcome.ok
    assert env.held() == (2, env.log.members)


# --- rejections: the last good list stays ---------------------------------------------


def test_bad_delta_from_the_server_is_rejected_not_repaired(env: Env) -> None:
    env.sync()
    before = env.held()
    forged = craft_statement(env.log, adds=[h(2)])  # adds a present hash, validly signed
    env.log.publish(hashes(9), now=NOW)

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/statements"):
            return httpx.Response(200, json={"statements": [forged], "next": None})
        return response

    env.server.tamper = tamper
    env.server.requests.clear()
    outcome = env.sync()
    assert_kept(env, outcome, "delta_invalid", *before)
    assert "snapshot" not in env.paths()


def test_rollback_rejected(env: Env) -> None:
    env.log.publish(hashes(9), now=NOW)
    env.sync()
    before = env.held()
    old = sign_cp(env.log.origin, 2, env.log.root(2), env.log.online_key, NOW)
    env.server.tamper = lambda req, resp: (
        httpx.Response(200, text=old) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(env, env.sync(), "rollback", *before)


def test_stale_checkpoint_rejected(env: Env) -> None:
    env.sync()
    before = env.held()
    frozen = env.server.checkpoint_note()
    env.server.now = NOW + timedelta(hours=2)
    env.server.tamper = lambda req, resp: (
        httpx.Response(200, text=frozen) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(env, env.sync(), "stale", *before)


def test_stale_via_304_rejected(env: Env) -> None:
    env.sync()
    before = env.held()
    later = NOW + timedelta(hours=2)
    env.server.now = later
    env.server.tamper = lambda req, resp: (
        httpx.Response(304) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(env, env.sync(), "stale", *before)


def test_equivocation_kept_as_evidence(env: Env) -> None:
    env.sync()
    before = env.held()
    fork = sign_cp(env.log.origin, 2, h("fork"), env.log.online_key, NOW)
    env.server.tamper = lambda req, resp: (
        httpx.Response(200, text=fork) if req.url.path.endswith("/checkpoint") else resp
    )
    assert_kept(env, env.sync(), "equivocation", *before)
    with env.store() as store:
        evidence = store.evidence()
    assert len(evidence) == 1
    assert evidence[0].new_note == fork


def test_bad_signature_rejected(env: Env) -> None:
    env.sync()
    before = env.held()
    env.log.publish(hashes(9), now=NOW)

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/checkpoint"):
            parsed = parse_note(response.text)
            sig = parsed.signatures[0]
            bad = type(sig)(
                sig.name, sig.key_id, sig.signature[:-1] + bytes([sig.signature[-1] ^ 1])
            )
            lines = [bad.line] + [s.line for s in parsed.signatures[1:]]
            return httpx.Response(200, text=parsed.text + "\n" + "".join(lines))
        return response

    env.server.tamper = tamper
    outcome = env.sync()
    assert_kept(env, outcome, "signature_error", *before)


def test_broken_chain_rejected(env: Env) -> None:
    env.sync()
    before = env.held()
    env.log.publish(hashes(9), now=NOW)
    env.log.publish(hashes(10), now=NOW)

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/statements"):
            return httpx.Response(200, json={"statements": [env.log.statements[3]], "next": None})
        return response

    env.server.tamper = tamper
    assert_kept(env, env.sync(), "chain_broken", *before)


def test_oversized_snapshot_rejected(tmp_path: Path) -> None:
    log = new_log()
    log.publish(hashes(1, 2), now=NOW)
    env = Env(tmp_path, log)

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path.endswith("/snapshot"):
            return httpx.Response(200, content=response.content + bytes(32) * 1000)
        return response

    env.server.tamper = tamper
    outcome = env.sync()
    assert outcome.status == "rejected"
    assert outcome.reason == "oversize"
    with env.store() as store:
        assert store.load_record() is None


def test_gzip_bomb_rejected(env: Env) -> None:
    env.sync()
    before = env.held()
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    env.server.tamper = lambda req, resp: (
        raw_response(200, bomb, {"Content-Encoding": "gzip"})
        if req.url.path.endswith("/checkpoint")
        else resp
    )
    assert_kept(env, env.sync(), "oversize", *before)


def test_endless_statements_page_rejected(env: Env) -> None:
    env.config = dataclasses.replace(env.config, limits=Limits(statements_page=256 * 1024))
    env.sync()
    before = env.held()
    env.log.publish(hashes(9), now=NOW)
    env.server.tamper = lambda req, resp: (
        httpx.Response(200, content=b'{"statements": ["' + b"x" * 300_000 + b'"]}')
        if req.url.path.endswith("/statements")
        else resp
    )
    assert_kept(env, env.sync(), "oversize", *before)


def test_server_error_honours_retry_after(env: Env) -> None:
    env.sync()
    before = env.held()
    env.server.tamper = lambda req, resp: httpx.Response(503, headers={"Retry-After": "120"})
    outcome = env.sync()
    assert outcome.status == "failed"
    assert outcome.reason == "server_error"
    assert outcome.retry_after == 120
    assert env.held() == before


def test_rate_limited_is_backoff(env: Env) -> None:
    env.server.tamper = lambda req, resp: httpx.Response(429, headers={"Retry-After": "30"})
    outcome = env.sync()
    assert outcome.status == "failed"
    assert outcome.reason == "backoff"
    assert outcome.retry_after == 30


def test_network_error(env: Env) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(broken)) as client:
        outcome = Syncer(env.config, client, clock=lambda: NOW.timestamp()).sync_once()
    assert outcome.status == "failed"
    assert outcome.reason == "network_error"


def test_min_wait_is_reported(env: Env) -> None:
    env.server.min_wait = 900
    assert env.sync().min_wait == 900


# --- plaintext and exports ---------------------------------------------------------------


def plaintext_env(tmp_path: Path, **config: object) -> Env:
    log = new_log()
    exprs = {
        expression_hash_of(e): e for e in ("example.com/", "example.org/a/", "www.example.com/p")
    }
    log.publish(sorted(exprs), now=NOW)
    env = Env(tmp_path, log, plaintext=True, **config)
    env.server.expressions = exprs
    return env


def test_plaintext_stored_for_entitled_clients(tmp_path: Path) -> None:
    env = plaintext_env(tmp_path)
    outcome = env.sync()
    assert outcome.ok
    assert not outcome.problems
    with env.store() as store:
        assert dict(store.expressions()) == env.server.expressions
        assert store.status().plaintext_complete is True


def test_plaintext_not_matching_its_hash_is_refused(tmp_path: Path) -> None:
    env = plaintext_env(tmp_path)
    first = next(iter(env.server.expressions))
    env.server.expressions[first] = "example.net/other"
    outcome = env.sync()
    assert outcome.ok  # the verified list itself was committed
    assert [r for r, _ in outcome.problems] == ["plaintext_mismatch"]
    with env.store() as store:
        assert list(store.expressions()) == []
        assert store.status().plaintext_complete is False


def test_exports_written_and_hook_run_only_on_change(tmp_path: Path) -> None:
    out = tmp_path / "out" / "cleanfeed.hashes"
    out.parent.mkdir()
    log = new_log()
    log.publish(hashes(1, 2), now=NOW)
    env = Env(tmp_path, log, exports=(ExportSpec("hashes", out, on_change="reload-filter"),))
    assert env.sync().ok
    assert out.read_text().split() == sorted(x.hex() for x in log.members)
    assert env.hooks == ["reload-filter"]
    assert env.sync().status == "current"
    assert env.hooks == ["reload-filter"]
    log.publish(hashes(3), now=NOW)
    assert env.sync().ok
    assert env.hooks == ["reload-filter", "reload-filter"]
    assert len(out.read_text().split()) == 3


def test_failed_reload_hook_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    # The export is already rewritten when its hook fails; the next sync must
    # run the hook again although the file no longer changes, or the filter
    # keeps enforcing the old list.
    out = tmp_path / "out" / "cleanfeed.hashes"
    out.parent.mkdir()
    log = new_log()
    log.publish(hashes(1, 2), now=NOW)
    env = Env(tmp_path, log, exports=(ExportSpec("hashes", out, on_change="reload-filter"),))
    results = iter([1, 1, 0])

    def flaky(command: str) -> int:
        env.hooks.append(command)
        return next(results)

    env.hook = flaky  # type: ignore[method-assign]
    first = env.sync()
    assert "hook_failed" in [r for r, _ in first.problems]
    second = env.sync()
    assert "hook_failed" in [r for r, _ in second.problems]
    third = env.sync()
    assert third.problems == ()
    assert env.hooks == ["reload-filter"] * 3
    env.sync()
    assert env.hooks == ["reload-filter"] * 3  # succeeded once: not run again


def test_plaintext_export_waits_for_every_expression(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.urls"
    env = plaintext_env(tmp_path, exports=(ExportSpec("urls", out),))
    missing = next(iter(env.server.expressions))
    del env.server.expressions[missing]
    outcome = env.sync()
    assert outcome.ok
    assert "missing_plaintext" in [r for r, _ in outcome.problems]
    assert not out.exists()


def test_checkpoints_export_for_auditors(env: Env, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from clients.isp.cli import isp_group

    env.sync()
    result = CliRunner().invoke(isp_group, ["checkpoints", "--state-dir", str(env.state_dir)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["version"] == 2
    assert doc["keyrings"] == env.log.keyrings
    assert [c["size"] for c in doc["checkpoints"]] == [2]
