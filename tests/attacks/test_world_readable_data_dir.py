"""A data directory, database or admin-token file that other users can read.

Issue 12, item 11. ``cleanfeed serve`` refused key files open to group or
others but served happily from a data directory, SQLite database (every
entry, reason and analyst, the token hashes) or ``admin-token`` file that
any local user could read; and it printed the first admin token to the
terminal, which for a service is journald or a container log. Now it
refuses to start and names the ``chmod`` to run, and prints only where the
token is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.e2e_helpers import ADMIN_TOKEN_FILE, DB_FILE, cli, env, free_port, serve

pytestmark = pytest.mark.e2e

#: Longest a refused start may take (it stops before serving anything).
REFUSAL_DEADLINE_SECONDS = 60.0


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cleanfeed-data"
    done = cli("init", "--data-dir", str(path))
    assert done.returncode == 0, done.stderr
    return path


def _serve_refused(data_dir: Path, tmp_path: Path) -> str:
    """Run ``cleanfeed serve``; return its output once it exits (fail if it serves)."""
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "cleanfeed", "serve", "--data-dir", str(data_dir)),
                *("--host", "127.0.0.1", "--port", str(free_port())),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env(),
        )
    try:
        code = process.wait(timeout=REFUSAL_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"serve started despite the open permissions:\n{log.read_text()}")
    assert code != 0, log.read_text()
    return log.read_text()


@pytest.mark.parametrize(
    ("target", "mode", "fix"),
    [
        ("", 0o755, "chmod 700"),
        (DB_FILE, 0o644, "chmod 600"),
        (ADMIN_TOKEN_FILE, 0o640, "chmod 600"),
    ],
    ids=["data-dir", "database", "admin-token"],
)
def test_serve_refuses_group_or_world_readable_data(
    data_dir: Path, tmp_path: Path, target: str, mode: int, fix: str
) -> None:
    path = data_dir / target if target else data_dir
    path.chmod(mode)
    out = _serve_refused(data_dir, tmp_path)
    assert "insecure_data_dir" in out
    assert f"{fix} {path}" in out
    path.chmod(0o700 if not target else 0o600)


def test_first_start_prints_where_the_admin_token_is_not_the_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "cleanfeed-data"
    server = serve(data_dir, tmp_path / "serve.log")
    try:
        token = server.admin_token
        out = server.log.read_text()
    finally:
        server.stop()
    assert token.startswith("cf_admin_")
    assert token not in out
    assert str(data_dir / ADMIN_TOKEN_FILE) in out
    # What the first start created is private.
    assert data_dir.stat().st_mode & 0o077 == 0
    assert (data_dir / ADMIN_TOKEN_FILE).stat().st_mode & 0o077 == 0
    assert (data_dir / DB_FILE).stat().st_mode & 0o077 == 0
