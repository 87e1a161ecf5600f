"""``cleanfeed init`` and ``cleanfeed serve``: a deployment's data directory and its service.

With ``--json``, ``init`` prints ``{"data_dir", "list", "origin",
"root_vkey", "admin_token"}`` (DESIGN.md, "Interfaces other programs rely
on"). Secrets printed here (the admin token at init) are shown once; the
first admin token is also in ``DATA_DIR/admin-token`` (mode 0600), and
``serve`` prints only that file's path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Final

import click

from api.cli.common import DATA_DIR_OPTION, DATABASE_OPTION, JSON_OPTION, echo_json, fail

__all__ = ["DEFAULT_DATA_DIR", "init_command", "insecure_data_paths", "serve_command"]

#: The data directory of the embedded default.
DEFAULT_DATA_DIR: Final = Path("./cleanfeed-data")


@click.command("init")
@DATA_DIR_OPTION
@click.option("--list", "list_name", default="main", show_default=True, help="First list's name.")
@click.option("--origin", default=None, help="List origin (default cleanfeed.invalid/<list>).")
@click.option(
    "--root-vkey",
    default=None,
    help="Production key ceremony: the public vkey of a root key kept offline.",
)
@DATABASE_OPTION
@click.option(
    "--approvals-required",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Four-eyes: distinct analysts other than the creator who must approve.",
)
@click.option("--home-country", default=None, help="ISO country whose hosting is refused.")
@click.option(
    "--canary",
    "canary_url",
    default="http://canary.cleanfeed.invalid/",
    show_default=True,
    help="The list's reserved canary URL.",
)
@click.option("--public", is_flag=True, help="Serve hash-only documents without a token.")
@JSON_OPTION
def init_command(
    data_dir: Path,
    list_name: str,
    origin: str | None,
    root_vkey: str | None,
    database_url: str | None,
    approvals_required: int,
    home_country: str | None,
    canary_url: str,
    public: bool,
    as_json: bool,
) -> None:
    """Initialise a data directory: database, keys, first list, admin token."""
    from blocklist.errors import BlocklistError
    from signer.datadir import init_data_dir
    from signer.errors import SignerError

    try:
        result = init_data_dir(
            data_dir,
            list_name=list_name,
            origin=origin,
            root_vkey=root_vkey,
            database_url=database_url,
            approvals_required=approvals_required,
            home_country=home_country,
            canary_url=canary_url,
            public=public,
        )
    except (SignerError, BlocklistError) as e:
        raise fail(e) from e
    if as_json:
        echo_json(
            {
                "data_dir": str(result.data_dir),
                "list": result.list,
                "origin": result.origin,
                "root_vkey": result.root_vkey,
                "admin_token": result.admin_token,
            }
        )
        return
    click.echo(f"Initialised {result.data_dir} with list {result.list!r} ({result.origin}).")
    click.echo(f"Root key to pin (give it to every ISP and auditor):\n  {result.root_vkey}")
    click.echo(
        f"Admin token (shown once; also in {result.data_dir / 'admin-token'}, mode 0600):\n"
        f"  {result.admin_token}"
    )
    if result.unsigned_keyring is not None:
        click.echo(
            "Production key ceremony: sign the keyring on the offline machine and import it:\n"
            f"  cleanfeed keys sign-keyring {result.unsigned_keyring} ...\n"
            f"  cleanfeed keys import-keyring --data-dir {result.data_dir} SIGNED_FILE"
        )


def _print_pins(data_dir: Path) -> None:
    """Print the root vkey(s) ISPs must pin (public, safe to print every start)."""
    keys = data_dir / "keys"
    if not keys.is_dir():
        return
    for vkey_file in sorted(keys.glob("*/root.vkey")):
        vkey = vkey_file.read_text("utf-8").strip()
        click.echo(f"list {vkey_file.parent.name}: root key to pin: {vkey}")


#: Permission bits that let group or others read, write or enter a path.
_GROUP_OTHER_BITS: Final = 0o077

#: Files SQLite keeps next to a database, with the same contents at risk.
_SQLITE_SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def insecure_data_paths(data_dir: Path, database_url: str | None) -> list[tuple[Path, str]]:
    """The private paths of a deployment that group or others may reach.

    Issue 12, item 11: the data directory, the SQLite database (entries,
    reasons, analysts, token hashes) and the first admin token are as
    private as the key files, which ``serve`` already refuses to use when
    readable by others (:func:`signer.keys.check_key_files`).

    The data directory itself is checked only when it holds one of these
    (an API started with ``--no-signer`` and PostgreSQL may get an empty,
    shared directory it never uses).

    Returns:
        ``(path, fix)`` for each path with group or other permission bits,
        where ``fix`` is the ``chmod`` command that removes them.
    """
    from sqlalchemy.engine import make_url

    from signer.datadir import ADMIN_TOKEN_FILE, resolve_database_url

    files: list[Path] = [data_dir / ADMIN_TOKEN_FILE]
    url = make_url(resolve_database_url(data_dir, database_url))
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        database = Path(url.database)
        files.append(database)
        files.extend(database.with_name(database.name + side) for side in _SQLITE_SIDE_FILES)
    found: list[tuple[Path, str]] = []
    holds_private = (data_dir / "keys").is_dir()
    for path in files:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if path.parent.resolve() == data_dir.resolve():
            holds_private = True
        if mode & _GROUP_OTHER_BITS:
            found.append((path, f"chmod 600 {path}"))
    if holds_private:
        try:
            mode = data_dir.stat().st_mode
        except FileNotFoundError:
            mode = 0
        if mode & _GROUP_OTHER_BITS:
            found.insert(0, (data_dir, f"chmod 700 {data_dir}"))
    return found


def _refuse_insecure_data(data_dir: Path, database_url: str | None) -> None:
    """Stop ``serve`` when a private path is open to group or others.

    Raises:
        click.ClickException: which paths, and the ``chmod`` that fixes each.
    """
    found = insecure_data_paths(data_dir, database_url)
    if not found:
        return
    names = ", ".join(str(path) for path, _ in found)
    fixes = " && ".join(fix for _, fix in found)
    raise click.ClickException(
        f"[insecure_data_dir] refusing to start: group or others may read {names} "
        f"(the list's history, token hashes, the first admin token); fix with: {fixes}"
    )


@click.command("serve")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Data directory; initialised on first start unless --no-signer.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@DATABASE_OPTION
@click.option(
    "--no-signer",
    is_flag=True,
    help="Do not sign in this process (run `cleanfeed signer run` elsewhere); "
    "the API then never reads private keys.",
)
@click.option("--list", "list_name", default="main", show_default=True, help="First list's name.")
@click.option("--origin", default=None, help="First list's origin (first start only).")
def serve_command(
    data_dir: Path,
    host: str,
    port: int,
    workers: int,
    database_url: str | None,
    no_signer: bool,
    list_name: str,
    origin: str | None,
) -> None:
    """Run the API (and, by default, the embedded signer).

    On first start of the embedded default the data directory is
    initialised and the first admin token is written to DATA_DIR/admin-token
    (mode 0600; its path is printed, never the token). The service refuses
    to start while the data directory, the SQLite database, the admin-token
    file or a key file is open to group or others, and says which chmod
    fixes it. With --workers N > 1 the signer runs in this
    parent process only and the N workers serve the API.
    """
    import uvicorn

    from api.app import create_app
    from api.settings import SettingsError, load_settings
    from blocklist.errors import BlocklistError
    from signer.errors import SignerError

    overrides: dict[str, Any] = {"database_url": database_url}
    if no_signer:
        overrides["signer"] = False
    try:
        settings = load_settings(data_dir, **overrides)
    except SettingsError as e:
        raise click.ClickException(str(e)) from e

    from api.logging import configure_logging

    configure_logging(settings.log_level, json_logs=settings.json_logs)
    if settings.signer:
        _prepare_embedded(settings, list_name, origin)
        # An insecure key must stop the service now, with the fix, not fail
        # later in the background while /readyz stays green.
        from signer.errors import KeyFileError
        from signer.keys import check_key_files

        try:
            check_key_files(settings.keys_dir)
        except KeyFileError as e:
            raise click.ClickException(str(e)) from e
    _refuse_insecure_data(settings.data_dir, settings.database_url)
    _print_pins(settings.data_dir)
    signer_where = "off (--no-signer)" if not settings.signer else "embedded"
    docs_where = "/docs" if settings.docs_enabled else "off"
    click.echo(
        f"cleanfeed API on http://{host}:{port} (docs: {docs_where}; signer: {signer_where})"
    )
    sys.stdout.flush()

    log_config = None  # our JSON logging; uvicorn's access log is replaced by ours
    if workers == 1:
        app = create_app(settings)
        uvicorn.run(app, host=host, port=port, log_config=log_config, access_log=False)
        return

    # Several workers: each is a fresh interpreter building the app from the
    # environment, without the signer; this parent runs the one signer.
    os.environ["CLEANFEED_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["CLEANFEED_SIGNER"] = "false"
    if settings.database_url:
        os.environ["CLEANFEED_DATABASE_URL"] = settings.database_url
    service = None
    if settings.signer:
        from api.signer_service import embedded_signer
        from blocklist.store.db import Database

        service = embedded_signer(settings, Database(settings.resolved_database_url))
        try:
            service.start()
        except (SignerError, BlocklistError) as e:
            raise fail(e) from e
    try:
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,
            access_log=False,
        )
    finally:
        if service is not None:
            service.shutdown()
            service.db.dispose()


def _prepare_embedded(settings: Any, list_name: str, origin: str | None) -> None:
    """First start: initialise; every start: migrate the schema."""
    from blocklist.errors import BlocklistError
    from blocklist.store.db import Database
    from signer.datadir import ensure_initialised
    from signer.errors import SignerError

    try:
        result = ensure_initialised(
            settings.data_dir,
            list_name=list_name,
            origin=origin,
            database_url=settings.database_url,
        )
    except (SignerError, BlocklistError) as e:
        raise fail(e) from e
    if result is not None:
        click.echo(f"Initialised {result.data_dir} with list {result.list!r}.")
        # Issue 12, item 11: a service's terminal ends up in journald or a
        # container log; the token itself stays in its 0600 file.
        click.echo(
            f"First admin token written to {result.data_dir / 'admin-token'} (mode 0600); "
            "read it from there, e.g. ADMIN=$(cat "
            f"{result.data_dir / 'admin-token'})"
        )
        sys.stdout.flush()
        return
    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
    finally:
        db.dispose()
