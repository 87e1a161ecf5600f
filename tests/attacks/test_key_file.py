"""A private key file other users can read is refused, never used.

A key file readable by group or others may already have been copied by
another local user: signing with it would lend the list's authority to a
key that is no longer secret. ``signer.keys.load_key`` refuses such files
(``InsecureKeyFile``, unit tests in ``tests/signer/test_keys.py``:
``test_load_refuses_group_or_other_access``,
``test_load_refuses_a_file_owned_by_someone_else``); here the processes
that sign are checked: the signer (``cleanfeed signer publish``, the
publisher, key rotation) and ``cleanfeed serve``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.api_testing import MAIN
from support.attack_helpers import World, checkpoint_of
from support.e2e_helpers import serve_argv
from support.processes import free_port

from signer.datadir import init_data_dir
from signer.errors import InsecureKeyFile
from signer.highwater import HighWater
from signer.keyring_ops import rotate_online_key
from signer.publisher import Publisher

#: Longest wait for ``cleanfeed serve`` to either exit or answer.
SERVE_DEADLINE_SECONDS = 60.0


def _online_key_file(keys_dir: Path) -> Path:
    (path,) = sorted((keys_dir / MAIN).glob("online-*.key"))
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_publisher_refuses_a_readable_online_key(world: World, mode: int) -> None:
    w = world
    key_file = _online_key_file(w.keys_dir)
    key_file.chmod(mode)
    w.add(w.url("pending"))
    before = w.checkpoint_note()
    mark = HighWater.for_list(w.keys_dir, MAIN).read()
    with pytest.raises(InsecureKeyFile) as info:
        Publisher(w.d.db, MAIN, w.keys_dir).publish_once()
    assert str(key_file) in str(info.value)
    assert "chmod 600" in str(info.value)
    # Nothing was signed: same head, same mark, no version.
    assert w.checkpoint_note() == before
    assert checkpoint_of(before).size == 0
    assert HighWater.for_list(w.keys_dir, MAIN).read() == mark


def test_api_publish_refuses_a_readable_online_key(world: World) -> None:
    w = world
    _online_key_file(w.keys_dir).chmod(0o644)
    w.add(w.url("pending"))
    before = w.checkpoint_note()
    r = w.call("POST", f"/v1/lists/{MAIN}/publish", w.tokens.alice)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "insecure_key_file"
    assert str(w.keys_dir) not in r.text  # the 5xx detail does not expose paths
    assert w.checkpoint_note() == before


def test_rotation_refuses_a_readable_root_key(world: World) -> None:
    w = world
    root = w.keys_dir / MAIN / "root.key"
    root.chmod(0o644)
    before = w.keyring_note()
    with pytest.raises(InsecureKeyFile):
        rotate_online_key(w.d.data_dir, MAIN)
    assert w.keyring_note() == before


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanfeed", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_signer_command_refuses_a_readable_online_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_data_dir(data_dir, list_name=MAIN, approvals_required=1)
    key_file = _online_key_file(data_dir / "keys")
    key_file.chmod(0o644)
    mark = HighWater.for_list(data_dir / "keys", MAIN).read()
    result = _cli("signer", "publish", "--once", "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode != 0
    assert str(key_file) in result.stderr
    assert HighWater.for_list(data_dir / "keys", MAIN).read() == mark


@pytest.mark.e2e
@pytest.mark.parametrize("key", ["online", "root"])
def test_serve_refuses_to_start_with_a_readable_key(tmp_path: Path, key: str) -> None:
    """``cleanfeed serve`` (embedded signer) must refuse a readable key at start.

    Started anyway, it would serve an ever older checkpoint while its
    schedule fails quietly in the log, until every ISP freezes (after the
    max age, 45 minutes by default) and /readyz notices (after twice the
    checkpoint interval). Refusing at start, like ``signer publish``, names
    the file and the fix before any ISP is affected.
    """
    data_dir = tmp_path / "data"
    init_data_dir(data_dir, list_name=MAIN, approvals_required=1)
    target = (
        _online_key_file(data_dir / "keys")
        if key == "online"
        else data_dir / "keys" / MAIN / "root.key"
    )
    target.chmod(0o644)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "CLEANFEED_JSON_LOGS": "true"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            serve_argv(data_dir, port),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + SERVE_DEADLINE_SECONDS
        served = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200:
                    served = True
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        output = log.read_text()
        assert not served, (
            f"cleanfeed serve started with a {oct(0o644)} {key} key:\n{output[-2000:]}"
        )
        assert process.poll() not in (None, 0), output[-2000:]
        assert str(target) in output
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
