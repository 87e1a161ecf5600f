"""The dependency direction of DESIGN.md, "Layout and dependency direction".

clients (the ISP client and the auditor) install without the server stack,
so importing them must never pull in FastAPI, SQLAlchemy or the server-side
packages. A regression here would break every base install.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SERVER_ONLY = ("fastapi", "sqlalchemy", "starlette", "uvicorn", "alembic", "api", "blocklist.store")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import clients",
        "import clients.isp",
        "import clients.audit",
        "import clients.analyst.cli",
        "import blocklist.canonical",
        "import cleanfeed.cli",
        "from cleanfeed.cli import main",
    ],
)
def test_client_side_imports_no_server_stack(statement: str) -> None:
    modules = _imported_after(statement)
    leaked = sorted(m for m in modules if m.split(".")[0] in SERVER_ONLY or m in SERVER_ONLY)
    assert not leaked, f"{statement!r} imported server-side modules: {leaked}"


def test_every_client_module_avoids_server_stack() -> None:
    names = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "clients").rglob("*.py")
        if p.name != "__main__.py"
    )
    assert names, "no client modules found"
    statement = "\n".join(f"import {n.removesuffix('.__init__')}" for n in names)
    modules = _imported_after(statement)
    leaked = sorted(m for m in modules if m.split(".")[0] in ("fastapi", "sqlalchemy", "api"))
    assert not leaked, f"client modules imported server-side modules: {leaked}"
    assert "blocklist.store" not in modules


def _client_imports(package: str) -> set[str]:
    """Every ``clients.*`` module named by an import statement in ``package``."""
    import ast

    found: set[str] = set()
    for path in (ROOT / "clients" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("clients.")}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        # Issue 14, item 2: what both clients share lives in clients.common;
        # the auditor never reaches into the ISP client (nor the reverse).
        ("audit", "clients.isp"),
        ("isp", "clients.audit"),
        # The floor stands alone: it imports neither client.
        ("common", "clients.isp"),
        ("common", "clients.audit"),
    ],
)
def test_client_packages_do_not_reach_into_each_other(package: str, forbidden: str) -> None:
    imports = _client_imports(package)
    assert imports, f"no client imports found in clients/{package}"
    leaked = sorted(m for m in imports if m == forbidden or m.startswith(forbidden + "."))
    assert not leaked, f"clients/{package} imports {leaked}"
