"""The dependency direction of DESIGN.md, "Layout and dependency direction".

clients (the ISP client and the auditor) install without the server stack,
so importing them must never pull in FastAPI, SQLAlchemy or the server-side
packages. A regression here would break every base install.
"""

from __future__ import annotations

import ast
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


# --- every arrow of docs/architecture.md, both ways (issue 14, item 8) ------------------

#: Top-level packages of the repository whose imports are checked.
PACKAGES = ("blocklist", "signer", "api", "clients", "cleanfeed")

#: What each part may never import (module prefixes). The arrows of
#: docs/architecture.md point one way, `api -> signer -> blocklist` and
#: `clients -> (blocklist pure, signer verify side)`; everything else is
#: never, and so is the server stack below the parts that must install
#: without it. `cleanfeed` (the package root) holds only `__version__`;
#: `cleanfeed.cli` is the dispatcher that imports everything lazily, so
#: nothing may import it back.
NEVER: dict[str, tuple[str, ...]] = {
    # the pure modules (docs/adr/0004-blocklist-io-corners.md)
    "blocklist": (
        "signer", "api", "clients", "cleanfeed", "fastapi", "starlette", "uvicorn",
        "sqlalchemy", "alembic", "httpx", "httpcore", "blocklist.store", "blocklist.tempfiles",
        "blocklist.httpdeadline",
        # resolvers and address databases do I/O: signer/hosting.py, signer/reverify.py
        "dns", "maxminddb", "iptocc", "socket",
    ),
    "blocklist.tempfiles": ("signer", "api", "clients", "cleanfeed", "blocklist.store"),
    # the HTTP deadline corner stands alone: the standard library, httpx and
    # httpcore only (test_http_deadline_corner_imports_only_httpx below)
    "blocklist.httpdeadline": (
        "blocklist", "signer", "api", "clients", "cleanfeed", "fastapi", "starlette",
        "uvicorn", "sqlalchemy", "alembic", "dns",
    ),
    "blocklist.store": (
        "signer", "api", "clients", "cleanfeed", "fastapi", "starlette", "blocklist.httpdeadline",
    ),
    "signer": ("api", "clients", "cleanfeed.cli", "fastapi", "starlette", "uvicorn"),
    "api": ("clients", "cleanfeed.cli"),
    "clients": (
        "api", "blocklist.store", "cleanfeed.cli", "fastapi", "starlette", "uvicorn",
        "sqlalchemy", "alembic",
    ),
}  # fmt: skip

#: The verify side of signer, the only part of it clients may use: signed
#: notes and keyrings, the errors, and (for a witness's own cosignature)
#: the key files. The publisher, the data directory and the high-water
#: mark are the signer host's.
CLIENT_SIGNER_MODULES = ("signer", "signer.note", "signer.keyring", "signer.keys", "signer.errors")


def _part(module: str) -> str:
    """The part of :data:`NEVER` a module of the repository belongs to."""
    if module == "blocklist.store" or module.startswith("blocklist.store."):
        return "blocklist.store"
    if module in ("blocklist.tempfiles", "blocklist.httpdeadline"):
        return module
    return module.split(".")[0]


def _imports_of_every_module() -> dict[str, set[str]]:
    """Each module of :data:`PACKAGES` -> every absolute module its code imports.

    Imports inside functions count too (the CLI's lazy imports are imports).
    """
    import ast

    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic scripts: SQL history, imported by Alembic only
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
                    names.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
            found[module.removesuffix(".__init__")] = names
    return found


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_every_never_arrow_holds() -> None:
    modules = _imports_of_every_module()
    assert {_part(m) for m in modules} == {
        *PACKAGES,
        "blocklist.store",
        "blocklist.tempfiles",
        "blocklist.httpdeadline",
    }
    broken = sorted(
        f"{module} imports {name}"
        for module, names in modules.items()
        for name in names
        for prefix in NEVER.get(_part(module), ())
        if _matches(name, prefix)
    )
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


#: The only modules that may import the HTTP deadline corner (ADR 0004,
#: "A third corner"): the network floor of the clients and the signer's
#: re-verification job, the two places that talk HTTP to an adversary and
#: may not import each other. Every other client module reaches the network
#: through ``clients.common.http``.
HTTP_DEADLINE_IMPORTERS = frozenset({"clients.common.http", "signer.reverify"})


def test_http_deadline_corner_has_exactly_its_two_importers() -> None:
    importers = {
        module
        for module, names in _imports_of_every_module().items()
        if module != "blocklist.httpdeadline"
        and any(_matches(name, "blocklist.httpdeadline") for name in names)
    }
    # Equality, not a subset: both users take the one backend (issue 14,
    # duplicates D6), so a copy regrown in either fails here too.
    assert importers == HTTP_DEADLINE_IMPORTERS


def test_http_deadline_corner_imports_only_httpx() -> None:
    names = _imports_of_every_module()["blocklist.httpdeadline"]
    allowed = {*sys.stdlib_module_names, "__future__", "httpx", "httpcore"}
    foreign = sorted(n for n in names if n.split(".")[0] not in allowed)
    assert not foreign, f"blocklist.httpdeadline imports {foreign}"


def test_clients_use_only_the_verify_side_of_signer() -> None:
    broken = sorted(
        f"{module} imports {name}"
        for module, names in _imports_of_every_module().items()
        if _part(module) == "clients"
        for name in names
        if _matches(name, "signer")
        and name not in CLIENT_SIGNER_MODULES
        and not any(_matches(name, allowed) for allowed in CLIENT_SIGNER_MODULES[1:])
    )
    assert not broken, "clients reach past signer's verify side:\n" + "\n".join(broken)


# --- what each module offers (issue 14, item 8: "`__all__` or a leading underscore") ----


def _module_sources() -> dict[str, Path]:
    """Each module of :data:`PACKAGES` (dotted name, packages without ``__init__``) -> path."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic scripts: loaded by Alembic, never imported
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[module.removesuffix(".__init__")] = path
    return found


def _bound_and_all(tree: ast.Module) -> tuple[set[str], list[str] | None]:
    """The names a module binds at top level, and its ``__all__`` literal (or None)."""
    bound: set[str] = set()
    declared: list[str] | None = None
    for node in tree.body:
        # Top-level `if`/`try` blocks (TYPE_CHECKING, optional imports) bind too.
        for inner in ast.walk(node) if isinstance(node, ast.If | ast.Try) else (node,):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(inner.name)
            elif isinstance(inner, ast.Import | ast.ImportFrom):
                bound.update((a.asname or a.name).split(".")[0] for a in inner.names)
            elif isinstance(inner, ast.Assign | ast.AnnAssign):
                targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
                for target in targets:
                    bound.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
                    if isinstance(target, ast.Name) and target.id == "__all__":
                        assert inner.value is not None
                        declared = list(ast.literal_eval(inner.value))
    return bound, declared


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from … import`` names."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def test_every_module_declares_what_it_offers() -> None:
    """Every module lists its offer in ``__all__``; every other package takes only from it.

    Issue 14, item 8: "``__all__`` or a leading underscore marks what each
    package offers to the others". A name another top-level package imports
    must be declared, so dropping it from ``__all__`` (or importing a helper
    that was never offered) fails here, not only under mypy.
    """
    sources = _module_sources()
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in sources.items()}
    declared: dict[str, set[str]] = {}
    problems: list[str] = []
    for module, tree in trees.items():
        bound, names = _bound_and_all(tree)
        if names is None:
            problems.append(f"{module} has no __all__")
            continue
        declared[module] = set(names)
        problems.extend(
            f"{module}.__all__ names {n!r}, which it does not bind" for n in names if n not in bound
        )
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _absolute(module, sources[module], node)
            if source not in declared or source.split(".")[0] == module.split(".")[0]:
                continue  # third-party, or inside one top-level package
            problems.extend(
                f"{module} imports {source}.{a.name}, not in {source}.__all__"
                for a in node.names
                if a.name not in declared[source] and f"{source}.{a.name}" not in sources
            )
    assert len(declared) > 100, "fewer modules than expected: is the walk broken?"
    assert not problems, "\n".join(sorted(problems))
