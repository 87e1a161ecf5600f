"""A released, installed client: what an ISP gets by following docs/isp.md.

``make_installed_client`` runs the release command of docs/release.md, then
the installation block of docs/isp.md (only paths substituted) into a fresh
virtual environment, with no package index: dependencies come from the
wheelhouse that ``.ci/run`` prepares before the tests (PyPI is allowed at
install time, never in a test) and names in ``CLEANFEED_TEST_WHEELHOUSE``.

The Squid tests use the same installation as their ``/opt/cleanfeed``: when
the tests run as root Squid starts helpers as ``proxy``, so the venv, its
interpreter and every file the helper reads must be usable by that user.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ISP_DOC = REPO / "docs" / "isp.md"
RELEASE_DOC = REPO / "docs" / "release.md"
RELEASE_SCRIPT = REPO / "scripts" / "release.py"
WHEELHOUSE_ENV = "CLEANFEED_TEST_WHEELHOUSE"

#: Longest a build, a venv creation or an offline install may take.
STEP_TIMEOUT_SECONDS = 600

#: The user Debian's Squid runs helpers as when started by root.
SQUID_USER = "proxy"

#: What a release is not built from (local environments, caches, outputs).
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "release", "__pycache__", ".*_cache",
    ".hypothesis", "cleanfeed-data", "isp-state", "*.token", "*.key",
)  # fmt: skip

_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def doc_blocks(path: Path, section: str | None = None) -> list[str]:
    """The fenced code blocks of a Markdown file, or of one ``#…`` section of it."""
    text = path.read_text(encoding="utf-8")
    if section is not None:
        start = text.index(section + "\n")
        level = section.split(" ", 1)[0]
        following = re.compile(rf"^#{{1,{len(level)}}} ", re.M).search(text, start + len(section))
        text = text[start : following.start() if following else len(text)]
    return [m.group(1) for m in _FENCE.finditer(text)]


def doc_block(path: Path, marker: str, section: str | None = None) -> str:
    """The only code block of ``path`` (``section``) containing ``marker``."""
    found = [b for b in doc_blocks(path, section) if marker in b]
    assert len(found) == 1, f"expected one block with {marker!r} in {path.name}, got {found}"
    return found[0]


def project_version() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"$', text, re.M)
    assert match is not None
    return match.group(1)


def wheelhouse_or_skip() -> Path:
    """The dependency wheelhouse; fail in CI (``.ci/run`` must make it), else skip."""
    value = os.environ.get(WHEELHOUSE_ENV, "")
    house = Path(value) if value else None
    if house is not None and any(house.glob("*.whl")):
        return house
    reason = (
        f"{WHEELHOUSE_ENV} does not name a directory of wheels (.ci/run fills one with"
        " `pip download` of the base dependencies, setuptools and wheel)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _usable_by_everyone(path: Path) -> bool:
    """Whether another user can run ``path``: it and every parent are o+x."""
    path = path.resolve()
    return all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents])


def isp_python() -> Path:
    """A CPython of this minor version that Squid's helper user may run.

    The wheelhouse holds wheels for this interpreter's tags; as root the
    helper runs as ``proxy``, which cannot enter a home-directory Python.
    """
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(getattr(sys, "_base_executable", sys.executable))]
    candidates += [Path(p) for p in (shutil.which(f"python{want}"), f"/usr/bin/python{want}") if p]
    for candidate in candidates:
        if not candidate.exists():
            continue
        if os.geteuid() == 0 and not _usable_by_everyone(candidate):
            continue
        probe = subprocess.run(
            [str(candidate), "-c", "import sys, ensurepip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return candidate
    reason = f"no Python {want} with ensurepip usable by {SQUID_USER} (Debian: python3-venv)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def world_readable_dir(prefix: str) -> Path:
    """A fresh directory outside pytest's 0700 tree, for files Squid's user reads."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of release and install steps: no index, no proxy, no user config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE="/dev/null")
    env.pop("CLEANFEED_TOKEN", None)
    env.update(extra)
    return env


def run_sh(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )


@dataclass(frozen=True)
class Installed:
    """A signed release and the client installed from it offline."""

    release_dir: Path
    public_key: Path
    venv: Path
    install_output: str

    @property
    def cleanfeed(self) -> Path:
        return self.venv / "bin" / "cleanfeed"


def make_release(workdir: Path, wheelhouse: Path) -> tuple[Path, Path]:
    """Run docs/release.md's key and release commands; return (release dir, public key)."""
    keygen = doc_block(RELEASE_DOC, "openssl genpkey")
    proc = run_sh(keygen, workdir, offline_env())
    assert proc.returncode == 0, proc.stderr
    command = doc_block(RELEASE_DOC, "scripts/release.py --key").strip()
    # A copy of the sources: setuptools writes egg-info into the tree it
    # builds, and pytest-xdist workers may build at the same time.
    source = workdir / "src"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES)
    # Only the paths change: the copied script, the offline wheelhouse.
    assert command.startswith(".venv/bin/python scripts/release.py "), command
    argv = [sys.executable, str(source / "scripts" / "release.py"), *command.split()[2:]]
    argv += ["--wheelhouse", str(wheelhouse)]
    proc = subprocess.run(
        argv,
        cwd=workdir,
        env=offline_env(PIP_FIND_LINKS=str(wheelhouse)),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    release_dir = workdir / "release" / f"cleanfeed-{project_version()}"
    assert release_dir.is_dir(), proc.stdout
    return release_dir, workdir / "cleanfeed-release.pub.pem"


def install_script(public_key: Path, venv: Path, python: Path) -> str:
    """docs/isp.md's installation block with the paths of this machine."""
    block = doc_block(ISP_DOC, "pip install --no-index", section="## Installation")
    assert f"cleanfeed=={project_version()}" in block
    assert f"cleanfeed-{project_version()}" in block
    script = block.replace("sudo ", "")
    script = script.replace("/etc/cleanfeed-release.pub.pem", str(public_key))
    script = script.replace("/opt/cleanfeed", str(venv))
    script = re.sub(r"^python3 -m venv", f"{python} -m venv", script, flags=re.M)
    assert "/etc/" not in script, script
    assert "/opt/" not in script, script
    return script


def make_installed_client() -> Installed:
    wheelhouse = wheelhouse_or_skip()
    python = isp_python()
    workdir = world_readable_dir("cleanfeed-release-")
    try:
        release_dir, public_key = make_release(workdir, wheelhouse)
        venv = workdir / "opt-cleanfeed"
        proc = run_sh(install_script(public_key, venv, python), release_dir.parent, offline_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Installed(release_dir, public_key, venv, proc.stdout + proc.stderr)
