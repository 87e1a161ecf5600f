"""The release path (issue 13 item 2): build, checksum, sign, install offline, sync.

The ``installed_client`` fixture (release_helpers) runs docs/release.md's
commands and docs/isp.md's installation block, with only paths changed,
into a fresh virtual environment with ``--no-index``; these tests check what
it produced and that the installed client syncs from a real server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from support.e2e_helpers import LIST, add_and_approve, publish, serve, token
from support.release_helpers import (
    RELEASE_SCRIPT,
    REPO,
    Installed,
    install_script,
    isp_python,
    offline_env,
    project_version,
    run_sh,
)

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

LISTED = "http://www.example.com/release-test/listed.html"


def _release_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cleanfeed_release_script", RELEASE_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_release_directory_is_versioned_checksummed_and_signed(installed_client: Installed) -> None:
    version = project_version()
    names = sorted(p.name for p in installed_client.release_dir.iterdir())
    assert names == [
        "RELEASE-NOTES.md",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        f"cleanfeed-{version}-py3-none-any.whl",
        f"cleanfeed-{version}.tar.gz",
        "wheelhouse",
    ]
    sums = (installed_client.release_dir / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1] for line in sums}
    assert f"cleanfeed-{version}-py3-none-any.whl" in listed
    assert f"cleanfeed-{version}.tar.gz" in listed
    assert any(name.startswith("wheelhouse/pynacl-") for name in listed)
    notes = (installed_client.release_dir / "RELEASE-NOTES.md").read_text()
    assert notes.startswith(f"## [{version}]")


def test_installed_client_comes_from_the_wheel(installed_client: Installed) -> None:
    proc = subprocess.run(
        [str(installed_client.cleanfeed), "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    assert project_version() in proc.stdout
    where = subprocess.run(
        [installed_client.venv / "bin" / "python", "-c", "import clients; print(clients.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    # Not the working tree: the venv's own site-packages.
    assert where.stdout.startswith(str(installed_client.venv)), where.stdout
    assert "Signature Verified Successfully" in installed_client.install_output


def test_installed_client_syncs_from_a_server(installed_client: Installed, tmp_path: Path) -> None:
    server = serve(tmp_path / "data", tmp_path / "server.log")
    try:
        alice = token(server, name="alice", role="analyst", lists=[LIST])
        bob = token(server, name="bob", role="analyst", lists=[LIST])
        isp = token(server, name="isp-release", role="isp", lists=[LIST])
        add_and_approve(server, alice, bob, LISTED, "page")
        assert publish(server, alice).status_code == 200
        root_vkey = (server.data_dir / "keys" / LIST / "root.vkey").read_text().strip()
        token_file = tmp_path / "isp.token"
        token_file.write_text(isp + "\n")
        token_file.chmod(0o600)
        state = tmp_path / "isp-state"
        env = offline_env()
        sync = subprocess.run(
            [
                str(installed_client.cleanfeed), "isp", "sync", "--once", "--json",
                "--server", server.base, "--token-file", str(token_file), "--list", LIST,
                "--root-key", root_vkey, "--state-dir", str(state),
            ],
            capture_output=True, text=True, env=env, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert sync.returncode == 0, sync.stdout + sync.stderr
        outcome = json.loads(sync.stdout)
        assert (outcome["status"], outcome["version_after"]) == ("updated", 1), outcome
        check = subprocess.run(
            [str(installed_client.cleanfeed), "isp", "check", "--state-dir", str(state), LISTED],
            capture_output=True, text=True, env=env, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip
        # `check` exits 0 when a URL is listed, 1 when none is.
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.startswith("listed\t"), check.stdout
        other = subprocess.run(
            [str(installed_client.cleanfeed), "isp", "check", "--state-dir", str(state),
             "http://www.example.com/release-test/other.html"],
            capture_output=True, text=True, env=env, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert other.returncode == 1, other.stdout + other.stderr
    finally:
        server.stop()


def test_a_tampered_release_fails_the_documented_checks(
    installed_client: Installed, tmp_path: Path
) -> None:
    # The negative control of the installation block: a changed wheel fails
    # sha256sum, a changed SHA256SUMS fails the signature, and nothing is installed.
    copy = tmp_path / installed_client.release_dir.name
    shutil.copytree(installed_client.release_dir, copy)
    wheel = next(copy.glob("cleanfeed-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    venv = tmp_path / "venv"
    script = install_script(installed_client.public_key, venv, isp_python())
    proc = run_sh(script, tmp_path, offline_env())
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr
    assert not venv.exists()

    sums = copy / "SHA256SUMS"
    sums.write_text(sums.read_text() + "\n")
    proc = run_sh(script, tmp_path, offline_env())
    assert proc.returncode != 0
    assert "Signature Verification Failure" in proc.stdout + proc.stderr
    assert not venv.exists()


def test_release_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    key = tmp_path / "release.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    key.chmod(0o644)
    proc = subprocess.run(
        [sys.executable, str(RELEASE_SCRIPT), "--key", str(key), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert proc.returncode == 2
    assert "readable by other users" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_release_refuses_a_version_without_changelog_entry(tmp_path: Path) -> None:
    release = _release_module()
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [Unreleased]\n\n## [0.0.9] - 2026-01-01\n- x\n")
    with pytest.raises(release.ReleaseError, match=r"no '## \[0.1.0\]"):
        release.changelog_section("0.1.0", changelog)
    section = release.changelog_section("0.0.9", changelog)
    assert section == "## [0.0.9] - 2026-01-01\n- x\n"
    # The repository's own CHANGELOG has this version's entry.
    assert release.changelog_section(project_version(), REPO / "CHANGELOG.md")


def test_release_help() -> None:
    proc = subprocess.run(
        [sys.executable, str(RELEASE_SCRIPT), "--help"], capture_output=True, text=True, check=True
    )
    assert "--wheelhouse" in proc.stdout
    assert "SHA256SUMS" in proc.stdout
