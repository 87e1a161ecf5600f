"""``cleanfeed signer …`` (signer.publisher_cli); ``cleanfeed keys rotate`` / ``import-keyring``."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from click.testing import CliRunner
from support.log_verifier import verify_log
from support.publish_helpers import START, Deployment, add_active, list_id, published

from blocklist.keyring import Keyring
from blocklist.store import versions as store_versions
from signer.datadir import init_data_dir
from signer.keyring import sign_keyring
from signer.keys import SecretKey
from signer.keys_cli import import_keyring_command, rotate_command
from signer.publisher_cli import signer_group

#: Bound on waiting for the daemon's next log line; reached only on a hang.
LINE_TIMEOUT = 60


def test_publish_once_prints_json(deployment: Deployment) -> None:
    dep = deployment
    args = ["publish", "--once", "--data-dir", str(dep.data_dir)]
    args += ["--database-url", dep.init.database_url]
    result = CliRunner().invoke(signer_group, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"list": "main", "version_before": 0, "version": 1}
    result = CliRunner().invoke(signer_group, args)
    assert json.loads(result.output) == {"list": "main", "version_before": 1, "version": 1}
    pub = published(dep.db)
    verify_log(
        pub.keyrings,
        pub.statements,
        root_vkey=dep.init.root_vkey,
        origin=dep.init.origin,
        now=START,
    )


def test_publish_without_once_is_a_usage_error(deployment: Deployment) -> None:
    result = CliRunner().invoke(signer_group, ["publish", "--data-dir", str(deployment.data_dir)])
    assert result.exit_code == 2
    assert "--once" in result.output


def test_database_url_from_the_environment(deployment: Deployment) -> None:
    dep = deployment
    result = CliRunner().invoke(
        signer_group,
        ["publish", "--once", "--data-dir", str(dep.data_dir)],
        env={"CLEANFEED_DATABASE_URL": dep.init.database_url},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == 1


def test_uninitialised_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(signer_group, ["publish", "--once", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "cleanfeed init" in result.output


def test_refused_fork_exits_non_zero_with_the_message(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    add_active(dep.db, "http://example.com/a.html", dep.clock())
    dep.publisher.publish_once()
    # A mark ahead of the database is what a restored backup looks like.
    mark = dep.publisher.highwater.read()
    dep.publisher.highwater.overwrite(type(mark)(mark.origin, mark.size + 5, mark.root))
    add_active(dep.db, "http://example.com/b.html", dep.clock())
    result = CliRunner().invoke(
        signer_group,
        ["publish", "--once", "--data-dir", str(dep.data_dir)],
        env={"CLEANFEED_DATABASE_URL": dep.init.database_url},
    )
    assert result.exit_code == 1
    assert "the database is behind the signer's high-water mark (size 7" in result.output
    assert len(published(dep.db).statements) == 2


def test_adopt_highwater(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    dep.publisher.highwater.path.unlink()
    args = ["adopt-highwater", "--data-dir", str(dep.data_dir)]
    result = CliRunner().invoke(
        signer_group, args, env={"CLEANFEED_DATABASE_URL": dep.init.database_url}
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["list"], out["size"]) == ("main", 1)
    assert dep.publisher.highwater.read().size == 1


def test_rotate_command(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    result = CliRunner().invoke(
        rotate_command,
        ["--data-dir", str(dep.data_dir), "--list", "main"],
        env={"CLEANFEED_DATABASE_URL": dep.init.database_url},
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["list"], out["serial"], out["version"]) == ("main", 2, 1)
    pub = published(dep.db)
    log = verify_log(
        pub.keyrings,
        pub.statements,
        root_vkey=dep.init.root_vkey,
        origin=dep.init.origin,
        now=START,
    )
    assert log.keyring.open_keys() == [out["new_vkey"]]


def test_import_keyring_command(tmp_path: Path) -> None:
    root = SecretKey.generate("example.org/cleanfeed/main/root")
    init = init_data_dir(
        tmp_path / "data", origin="example.org/cleanfeed/main", root_vkey=root.vkey, now=START
    )
    assert init.unsigned_keyring is not None
    keyring = Keyring.parse(init.unsigned_keyring.read_text())
    signed = tmp_path / "keyring-1.signed"
    signed.write_text(sign_keyring(keyring, [root]))
    result = CliRunner().invoke(
        import_keyring_command, ["--data-dir", str(init.data_dir), str(signed)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"list": "main", "serial": 1}
    # Importing the same serial again is refused.
    again = CliRunner().invoke(
        import_keyring_command, ["--data-dir", str(init.data_dir), str(signed)]
    )
    assert again.exit_code == 1


def _reader(stream: IO[str], lines: queue.Queue[dict[str, Any]]) -> None:
    for line in stream:
        try:
            lines.put(json.loads(line))
        except ValueError:
            lines.put({"raw": line})


def _wait_for(lines: queue.Queue[dict[str, Any]], **fields: object) -> dict[str, Any]:
    while True:
        record = lines.get(timeout=LINE_TIMEOUT)
        assert record.get("level") != "ERROR", record
        if all(record.get(k) == v for k, v in fields.items()):
            return record


def test_daemon_publishes_serves_requests_and_stops_cleanly(deployment: Deployment) -> None:
    dep = deployment
    code = "import sys; from signer.publisher_cli import signer_group; signer_group(sys.argv[1:])"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--data-dir",
            str(dep.data_dir),
            "--database-url",
            dep.init.database_url,
            "--publish-interval",
            "3600",
            "--checkpoint-interval",
            "3600",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    assert proc.stderr is not None
    reader = threading.Thread(target=_reader, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, event="signer_started")
        first = _wait_for(lines, event="publish")
        assert (first["list"], first["version_before"], first["version"]) == ("main", 0, 1)

        # An API started with --no-signer records a request; the daemon serves it.
        add_active(dep.db, "http://example.com/a.html", dep.clock())
        with dep.db.transaction() as s:
            store_versions.request_publish(s, list_id(dep.db), actor="alice", now=dep.clock())
        second = _wait_for(lines, event="publish")
        assert (second["version_before"], second["version"], second["versions"]) == (1, 2, [2])

        proc.send_signal(signal.SIGTERM)
        _wait_for(lines, event="signer_stopped")
        assert proc.wait(timeout=LINE_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(LINE_TIMEOUT)  # the stream ends with the process
        proc.stderr.close()
    pub = published(dep.db)
    assert pub.open_requests == 0
    log = verify_log(
        pub.keyrings,
        pub.statements,
        root_vkey=dep.init.root_vkey,
        origin=dep.init.origin,
        now=START,
    )
    assert len(log.statements) == 2


def test_run_refuses_to_start_with_a_readable_key(deployment: Deployment) -> None:
    # An insecure key must stop the daemon at once with the fix, not fail
    # later in a background job while checkpoints go stale.
    dep = deployment
    key = next((dep.data_dir / "keys").glob("*/online-*.key"))
    key.chmod(0o644)
    args = ["run", "--data-dir", str(dep.data_dir), "--database-url", dep.init.database_url]
    result = CliRunner().invoke(signer_group, args)
    assert result.exit_code == 1, result.output
    assert f"chmod 600 {key}" in result.output
    assert published(dep.db).statements == []
