"""``cleanfeed audit …`` through the real dispatcher: exit codes and JSON keys."""

from __future__ import annotations

import dataclasses
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from support.audit_helpers import T0, LogServer, hash_only, sha, small_log, story
from support.memory_log import MemoryLog

from blocklist.canonical import expression
from cleanfeed.cli import main
from clients.audit import fetch as fetch_module
from clients.audit.bundle import dumps, save
from signer.keys import SecretKey, save_key
from signer.log import sign_checkpoint
from signer.note import CosignatureVerifier

REPORT_KEYS = {
    "ok",
    "kind",
    "list",
    "origin",
    "failure",
    "counts",
    "version",
    "count",
    "state",
    "keyring_serial",
    "keyring_expires",
    "first_time",
    "last_time",
    "checkpoint",
    "checkpoints",
    "extra_checkpoints",
    "equivocations",
    "approvals_required",
    "canary",
    "warnings",
    "unauthenticated",
    "bundle_file",
    "extra_sources",
}


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["audit", *args], env=env, catch_exceptions=False)


@pytest.fixture
def hash_only_file(tmp_path: Path) -> tuple[Path, MemoryLog]:
    log = small_log()
    path = tmp_path / "bundle.json"
    save(hash_only(log), path)
    return path, log


def test_verify_ok(hash_only_file: tuple[Path, MemoryLog]) -> None:
    path, log = hash_only_file
    result = cli("verify", str(path), "--root-key", log.root_vkey, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == REPORT_KEYS
    assert doc["ok"] is True
    assert doc["failure"] is None
    assert doc["version"] == 6
    assert doc["counts"]["statements"] == 6
    human = cli("verify", str(path), "--root-key", log.root_vkey)
    assert human.exit_code == 0
    assert "VERIFIED" in human.output
    assert "Keyrings" in human.output
    assert "Merkle log" in human.output


def test_verify_root_key_from_a_file(
    hash_only_file: tuple[Path, MemoryLog], tmp_path: Path
) -> None:
    path, log = hash_only_file
    (tmp_path / "root.vkey").write_text(log.root_vkey + "\n")
    result = cli("verify", str(path), "--root-key", f"@{tmp_path / 'root.vkey'}")
    assert result.exit_code == 0, result.output


def test_verify_failure_exits_1_with_the_first_failure(tmp_path: Path) -> None:
    log = small_log()
    bundle = hash_only(log)
    notes = list(bundle.statements)
    notes[2], notes[3] = notes[3], notes[2]
    path = tmp_path / "bundle.json"
    save(dataclasses.replace(bundle, statements=tuple(notes)), path)
    result = cli("verify", str(path), "--root-key", log.root_vkey, "--json")
    assert result.exit_code == 1
    failure = json.loads(result.stdout)["failure"]
    assert failure["check"] == "statement.numbering"
    assert failure["version"] == 3
    assert failure["message"].startswith("version 3: statement.numbering: position 3")
    human = cli("verify", str(path), "--root-key", log.root_vkey)
    assert human.exit_code == 1
    assert "NOT VERIFIED" in human.output
    assert "FAILED" in human.output


def test_verify_malformed_bundle_is_a_failure(tmp_path: Path) -> None:
    log = small_log()
    path = tmp_path / "bundle.json"
    path.write_text('{"format": "cleanfeed-bundle/v1", "kind": "hash-only"')
    result = cli("verify", str(path), "--root-key", log.root_vkey, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failure"]["check"] == "bundle"


def test_verify_cannot_run(tmp_path: Path, hash_only_file: tuple[Path, MemoryLog]) -> None:
    path, log = hash_only_file
    assert cli("verify", str(tmp_path / "missing.json"), "--root-key", log.root_vkey).exit_code == 2
    assert cli("verify", str(path), "--root-key", "not-a-vkey").exit_code == 2
    assert cli("verify", str(path)).exit_code == 2


def test_verify_extra_checkpoints_from_files(tmp_path: Path) -> None:
    log = small_log()
    path = tmp_path / "bundle.json"
    save(hash_only(log), path)
    good = tmp_path / "good.note"
    good.write_text(log.checkpoint(now=T0 + timedelta(days=1)))
    fork = sign_checkpoint(log.origin, 6, b"\x09" * 32, log.online_key, T0)
    export = tmp_path / "isp-checkpoints.json"
    export.write_text(
        json.dumps(
            {
                "format": "cleanfeed-isp-checkpoints/v1",
                "origin": log.origin,
                "version": 6,
                "keyrings": [],
                "checkpoints": [{"size": 6, "note": good.read_text(), "seen_at": None}],
                "evidence": [
                    {"kind": "checkpoint", "held_note": good.read_text(), "new_note": fork}
                ],
            }
        )
    )
    args = ["verify", str(path), "--root-key", log.root_vkey, "--checkpoint", str(good)]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    assert [c["status"] for c in json.loads(result.stdout)["extra_checkpoints"]] == ["ok"]
    result = cli(*args, "--checkpoint", str(export), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [c["status"] for c in doc["extra_checkpoints"]] == ["ok", "ok", "ok", "equivocation"]
    assert doc["extra_sources"] == [str(good), str(export), str(export), str(export)]
    assert doc["failure"]["check"] == "extra_checkpoint"
    assert doc["equivocations"][0]["conflicting_note"] == fork
    human = cli(*args, "--checkpoint", str(export))
    assert "EQUIVOCATION" in human.output
    assert fork.splitlines()[2] in human.output


def test_prove(tmp_path: Path) -> None:
    f = story()
    path = tmp_path / "bundle.json"
    save(f.bundle(), path)
    listed = sha(expression("http://example.org/abuse/page-1.html")).hex()
    result = cli("prove", "--bundle", str(path), "--hash", listed, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["listed"] is True
    assert [e["kind"] for e in doc["events"]] == ["added", "removed", "added"]
    result = cli("prove", "--bundle", str(path), "--hash", sha("example.org/no").hex())
    assert result.exit_code == 1
    assert "never listed" in result.output
    at = cli(
        "prove",
        "--bundle",
        str(path),
        "--url",
        "http://example.org/abuse/page-1.html",
        "--at",
        "2024-01-01T00:03:30Z",
        "--root-key",
        f.log.root_vkey,
    )
    assert at.exit_code == 1, at.output  # removed by version 2 at that time
    assert "listed at 2024-01-01T00:03:30Z: no" in at.output
    assert "bundle verified against the pinned root key(s): yes" in at.output


def test_prove_usage_errors(tmp_path: Path) -> None:
    f = story()
    path = tmp_path / "bundle.json"
    save(f.bundle(), path)
    h = sha("example.org/x").hex()
    assert cli("prove", "--bundle", str(path)).exit_code == 2
    assert (
        cli("prove", "--bundle", str(path), "--hash", h, "--url", "http://a.test/").exit_code == 2
    )
    assert cli("prove", "--bundle", str(path), "--hash", "zz").exit_code == 2
    assert cli("prove", "--bundle", str(path), "--hash", h, "--at", "yesterday").exit_code == 2
    other = SecretKey.generate("x.test/root").vkey
    refused = cli("prove", "--bundle", str(path), "--hash", h, "--root-key", other)
    assert refused.exit_code == 2
    assert "not_verified" in refused.output


def mock_client(monkeypatch: pytest.MonkeyPatch, handler: Any) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = handler(request)
        return response

    monkeypatch.setattr(
        fetch_module,
        "build_http_client",
        lambda *a, **k: httpx.Client(transport=httpx.MockTransport(recording)),
    )
    return seen


def test_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = dumps(hash_only(small_log()))
    seen = mock_client(monkeypatch, lambda r: httpx.Response(200, content=data))
    out = tmp_path / "bundle.json"
    args = ["fetch", "--server", "https://hotline.test", "--list", "main", "--output", str(out)]
    result = cli(*args, "--json", env={"CLEANFEED_TOKEN": "cf_env_token"})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"path", "bytes", "kind", "list", "origin", "statements", "seconds"}
    assert (doc["bytes"], doc["statements"]) == (len(data), 6)
    assert out.read_bytes() == data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert seen[0].headers["Authorization"] == "Bearer cf_env_token"
    token_file = tmp_path / "token"
    token_file.write_text("cf_file_token\n")
    assert cli(*args, "--token-file", str(token_file)).exit_code == 0
    assert seen[-1].headers["Authorization"] == "Bearer cf_file_token"
    assert cli(*args, "--token", "a", "--token-file", str(token_file)).exit_code == 2


def test_fetch_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bundle.json"
    args = ["fetch", "--server", "https://hotline.test", "--list", "main", "--output", str(out)]
    mock_client(monkeypatch, lambda r: httpx.Response(403, json={"code": "forbidden"}))
    denied = cli(*args, "--token", "cf_x")
    assert denied.exit_code == 2
    assert "access_denied" in denied.output
    mock_client(monkeypatch, lambda r: httpx.Response(200, content=b"{}"))
    rejected = cli(*args, "--token", "cf_x")
    assert rejected.exit_code == 1
    assert "bundle_format" in rejected.output
    assert not out.exists()
    assert cli("fetch", "--server", "ftp://x", "--list", "m", "--output", str(out)).exit_code == 2


def test_witness_key_and_witness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "witness.key"
    made = cli("witness-key", "--name", "witness.example.org", "--output", str(key_file), "--json")
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert set(doc) == {"name", "vkey", "path"}
    CosignatureVerifier.from_vkey(doc["vkey"])  # a type 0x04 cosigner vkey
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # The command runs on the real clock: a log of today.
    today = datetime.now(UTC)
    log = MemoryLog("cleanfeed.invalid/audit-test", now=today)
    log.publish([sha("example.org/1")], now=today)
    server = LogServer(log)
    server.now = today
    mock_client(monkeypatch, server.handler)
    args = [
        "witness",
        "--server",
        "https://hotline.test",
        "--list",
        "main",
        "--token",
        "cf_isp",
        "--root-key",
        log.root_vkey,
        "--key",
        str(key_file),
        "--state",
        str(tmp_path / "state.json"),
    ]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {
        "status",
        "origin",
        "size",
        "root",
        "old_size",
        "timestamp",
        "cosignature",
        "note",
        "posted",
    }
    assert (out["status"], out["size"], out["posted"]) == ("cosigned", 1, False)
    server.checkpoint = sign_checkpoint(log.origin, 1, b"\x01" * 32, log.online_key, T0)
    refused = cli(*args, "--json")
    assert refused.exit_code == 1
    answer = json.loads(refused.stdout)
    assert (answer["status"], answer["detail"]) == ("refused", "equivocation")
    assert Path(answer["evidence"]).exists()


def test_witness_with_an_unreadable_key(tmp_path: Path) -> None:
    key_file = tmp_path / "witness.key"
    save_key(key_file, SecretKey.generate("witness.example.org"))
    key_file.chmod(0o644)  # others could read it: refused
    result = cli(
        "witness",
        "--server",
        "https://hotline.test",
        "--list",
        "main",
        "--root-key",
        small_log().root_vkey,
        "--key",
        str(key_file),
        "--state",
        str(tmp_path / "s.json"),
    )
    assert result.exit_code == 2
    assert "cannot load the witness key" in result.output
