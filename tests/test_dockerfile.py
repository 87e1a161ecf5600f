"""The Dockerfile builds every package of the distribution and checks the client runs.

Docker cannot run in the test environment, so this reads the Dockerfile: a
package left out of its ``COPY`` lines would build an image without it (the
ISP client lives in ``clients``), which ``pip wheel`` would not notice.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _dockerfile() -> str:
    # Join continuation lines so that each instruction is one line.
    return (REPO / "Dockerfile").read_text().replace("\\\n", " ")


def test_every_package_and_the_readme_are_copied_into_the_build() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(
        p.name
        for p in REPO.iterdir()
        if (p / "__init__.py").exists() and any(p.name == pat.rstrip("*") for pat in include)
    )
    assert "clients" in packages
    copied = set(re.findall(r"^COPY (\S+) \./\S*$", _dockerfile(), re.M))
    missing = [p for p in packages if p not in copied]
    assert missing == [], f"packages not copied into the Docker build: {missing}"
    assert project["project"]["readme"] in " ".join(re.findall(r"^COPY (.*)$", _dockerfile(), re.M))


def test_the_image_checks_the_isp_client_and_the_auditor_run() -> None:
    runtime = _dockerfile().split("AS runtime", 1)[1]
    installed = runtime.index("pip install")
    check = re.search(
        r"^RUN cleanfeed --version && cleanfeed isp --help.*audit --help", runtime, re.M
    )
    assert check is not None
    assert check.start() > installed
    assert check.start() < runtime.index("USER cleanfeed")
