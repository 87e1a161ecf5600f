"""What README.md and docs/quickstart.md say about the checkout (issue 13 item 9).

* Every file or directory the quickstart commands create in the checkout is
  ignored by git (the paths are read from the documents' code blocks).
* ``make serve PORT=…`` (README) serves on that port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from support.processes import free_port

REPO = Path(__file__).resolve().parent.parent
DOCS = (REPO / "README.md", REPO / "docs" / "quickstart.md")

#: Longest wait for `make serve` to answer /readyz (first start makes keys).
STARTUP_DEADLINE_SECONDS = 60.0

#: Shell spellings of a path the commands write: redirects, tee, and the
#: options that create a file or directory.
_CREATED = re.compile(
    r"""(?:>\s*|\btee\s+|--data-dir\s+|--state-dir\s+|--output\s+|\bcp\s+\S+\s+)"?([\w.$/-]+)"?"""
)


def created_paths() -> set[str]:
    paths: set[str] = set()
    for doc in DOCS:
        for block in re.findall(r"^```(?:sh|bash)?\n(.*?)^```", doc.read_text(), re.M | re.S):
            for path in _CREATED.findall(block):
                path = path.removeprefix("./").replace("$who", "alice")
                if not path.startswith(("/dev/", "$")):
                    paths.add(path)
    return paths


def test_quickstart_files_are_ignored_by_git() -> None:
    paths = created_paths()
    # The files the issue names are among those found, so the parser works.
    assert {"cleanfeed-data", "isp-state", "isp.token", "alice.token"} <= paths, paths
    not_ignored = []
    for path in sorted(paths):
        # A directory is ignored when a file inside it is.
        probe = f"{path}/x" if not Path(path).suffix else path
        proc = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", probe], cwd=REPO, check=False
        )
        if proc.returncode != 0:
            not_ignored.append(path)
    assert not_ignored == [], f"created by the quickstart but not in .gitignore: {not_ignored}"


@pytest.mark.e2e
def test_make_serve_port(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    assert "`make serve PORT=8081 DATA_DIR=./other-data`" in readme
    port = free_port()
    # The README's command with another port and data directory. `-o` keeps
    # make from re-installing the environment (no network in tests).
    env = {**os.environ, "CLEANFEED_SCHEDULE": "false"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            "make",
            "-o",
            ".venv/.installed",
            "serve",
            f"PORT={port}",
            f"DATA_DIR={tmp_path / 'data'}",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert (tmp_path / "data" / "admin-token").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
