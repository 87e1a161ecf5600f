"""``cleanfeed init``, ``cleanfeed serve``, ``cleanfeed token …`` and ``cleanfeed witness …``.

Output that scripts rely on (DESIGN.md, "Interfaces other programs rely
on"): with ``--json`` each command prints exactly one JSON object:

- ``init`` → ``{"data_dir", "list", "origin", "root_vkey", "admin_token"}``;
- ``token create`` → ``{"token", "name", "role", "lists"}``.

Without ``--json`` the output is for people. Secrets printed here (the admin
token at init, a new token at creation) are shown once; the first admin
token is also in ``DATA_DIR/admin-token`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Final

import click

__all__ = [
    "DEFAULT_DATA_DIR",
    "guard_add_command",
    "guard_group",
    "guard_list_command",
    "guard_remove_command",
    "init_command",
    "insecure_data_paths",
    "parse_expiry",
    "serve_command",
    "token_create_command",
    "token_group",
    "token_list_command",
    "token_revoke_command",
    "witness_add_command",
    "witness_group",
    "witness_list_command",
    "witness_remove_command",
]

#: The data directory of the embedded default.
DEFAULT_DATA_DIR: Final = Path("./cleanfeed-data")

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Data directory (database, keys, admin token).",
)
_database_option = click.option(
    "--database-url",
    default=None,
    envvar="CLEANFEED_DATABASE_URL",
    help="SQLAlchemy database URL (default: SQLite in the data directory).",
)


def _actor() -> str:
    """Audit actor of CLI actions: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:128]


def _echo_json(obj: dict[str, Any] | list[Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _fail(error: Exception) -> click.ClickException:
    code = getattr(error, "code", None)
    prefix = f"[{code}] " if code else ""
    return click.ClickException(f"{prefix}{error}")


# --- init --------------------------------------------------------------------


@click.command("init")
@_data_dir_option
@click.option("--list", "list_name", default="main", show_default=True, help="First list's name.")
@click.option("--origin", default=None, help="List origin (default cleanfeed.invalid/<list>).")
@click.option(
    "--root-vkey",
    default=None,
    help="Production key ceremony: the public vkey of a root key kept offline.",
)
@_database_option
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
        raise _fail(e) from e
    if as_json:
        _echo_json(
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


# --- tokens ------------------------------------------------------------------


def _database(data_dir: Path, database_url: str | None) -> Any:
    from blocklist.store.db import Database
    from signer.datadir import keys_dir_of, resolve_database_url

    if database_url is None and not keys_dir_of(data_dir).is_dir():
        raise click.ClickException(f"{data_dir} is not initialised: run `cleanfeed init` first")
    return Database(resolve_database_url(data_dir, database_url))


def parse_expiry(value: str) -> datetime:
    """Parse ``--expires``: a date (end of that day, UTC) or an RFC 3339 time.

    Raises:
        click.BadParameter: neither form.
    """
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise click.BadParameter(
            "use YYYY-MM-DD or an RFC 3339 time such as 2027-01-31T12:00:00Z",
            param_hint="--expires",
        ) from e
    if when.tzinfo is None:
        raise click.BadParameter("give a time zone (e.g. Z)", param_hint="--expires")
    return when.astimezone(UTC)


@click.group(name="token")
def token_group() -> None:
    """Create, list and revoke API tokens."""


@token_group.command("create")
@_data_dir_option
@_database_option
@click.option("--role", type=click.Choice(["admin", "analyst", "isp", "auditor"]), required=True)
@click.option("--name", required=True, help="Who holds it (ISP name, analyst's name).")
@click.option("--list", "lists", multiple=True, help="A list it may read (repeat).")
@click.option("--plaintext", is_flag=True, help="ISP only: may fetch plaintext expressions.")
@click.option("--full-audit", is_flag=True, help="Auditor only: may fetch full bundles.")
@click.option("--expires", default=None, help="Expiry: YYYY-MM-DD (end of day, UTC) or RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def token_create_command(
    data_dir: Path,
    database_url: str | None,
    role: str,
    name: str,
    lists: tuple[str, ...],
    plaintext: bool,
    full_audit: bool,
    expires: str | None,
    as_json: bool,
) -> None:
    """Issue a token. It is printed once and stored only as a hash."""
    from blocklist.errors import BlocklistError
    from blocklist.store import tokens as store_tokens

    expires_at = parse_expiry(expires) if expires else None
    db = _database(data_dir, database_url)
    try:
        with db.transaction() as session:
            token, row = store_tokens.create_token(
                session,
                name=name,
                role=role,
                lists=list(lists),
                plaintext=plaintext,
                full_audit=full_audit,
                expires_at=expires_at,
                actor=_actor(),
            )
            names = [lst.name for lst in row.lists]
    except BlocklistError as e:
        raise _fail(e) from e
    finally:
        db.dispose()
    if as_json:
        _echo_json({"token": token, "name": name, "role": role, "lists": names})
        return
    scope = ", ".join(names) if names else "all lists"
    click.echo(f"Token for {name!r} ({role}, {scope}); shown once, store it safely:")
    click.echo(token)


def _token_dict(row: Any) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "lists": [lst.name for lst in row.lists],
        "plaintext": row.plaintext,
        "full_audit": row.full_audit,
        "expires_at": when(row.expires_at),
        "revoked_at": when(row.revoked_at),
        "last_used_at": when(row.last_used_at),
        "created_at": when(row.created_at),
    }


@token_group.command("list")
@_data_dir_option
@_database_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def token_list_command(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from blocklist.store import tokens as store_tokens

    db = _database(data_dir, database_url)
    try:
        with db.read() as session:
            rows = [_token_dict(row) for row in store_tokens.list_tokens(session)]
    finally:
        db.dispose()
    if as_json:
        _echo_json({"tokens": rows})
        return
    for t in rows:
        state = "revoked" if t["revoked_at"] else "active"
        lists = ",".join(t["lists"]) or "*"
        click.echo(
            f"{t['id']:>5}  {t['prefix']:<16} {t['role']:<8} {t['name']:<24} {lists:<16} {state}"
            f"  last used {t['last_used_at'] or 'never'}"
        )


@token_group.command("revoke")
@_data_dir_option
@_database_option
@click.argument("token_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def token_revoke_command(
    data_dir: Path, database_url: str | None, token_id: int, as_json: bool
) -> None:
    """Revoke token TOKEN_ID (see `token list`); API processes drop it within seconds."""
    from blocklist.errors import BlocklistError
    from blocklist.store import tokens as store_tokens

    db = _database(data_dir, database_url)
    try:
        with db.transaction() as session:
            row = store_tokens.revoke_token(session, token_id, actor=_actor())
            out = _token_dict(row)
    except BlocklistError as e:
        raise _fail(e) from e
    finally:
        db.dispose()
    if as_json:
        _echo_json(out)
    else:
        click.echo(f"Revoked token {token_id} ({out['name']}, {out['prefix']}...).")


# --- witnesses -----------------------------------------------------------------


@click.group(name="witness")
def witness_group() -> None:
    """Register the witness keys whose cosignatures a list accepts.

    Only registered witnesses may post cosignatures of a list's checkpoint
    (`cleanfeed audit witness --post`); ISPs that require a witness quorum
    count their lines. Adding and removing are records of the list's audit
    chain.
    """


def _witness_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "vkey": row.vkey,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
        "created_by": row.created_by,
    }


_witness_list_option = click.option(
    "--list", "list_name", required=True, help="The list whose checkpoint the witness cosigns."
)


@contextlib.contextmanager
def _list_session(
    data_dir: Path, database_url: str | None, list_name: str, *, write: bool
) -> Iterator[tuple[Any, Any]]:
    """One transaction (or read) on ``list_name``: yields (session, list row).

    Domain errors become a one-line CLI failure; the database is disposed.
    """
    from blocklist.errors import BlocklistError
    from blocklist.store import lists as store_lists

    db = _database(data_dir, database_url)
    try:
        with db.transaction() if write else db.read() as session:
            yield session, store_lists.get_list(session, list_name)
    except BlocklistError as e:
        raise _fail(e) from e
    finally:
        db.dispose()


@witness_group.command("add")
@_data_dir_option
@_database_option
@_witness_list_option
@click.argument("vkey")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def witness_add_command(
    data_dir: Path, database_url: str | None, list_name: str, vkey: str, as_json: bool
) -> None:
    """Register witness key VKEY (type 0x04 or 0x01; `cleanfeed audit witness-key` prints it)."""
    from api.witness import register_witness

    with _list_session(data_dir, database_url, list_name, write=True) as (session, lst):
        out = _witness_dict(register_witness(session, lst.id, lst.origin, vkey, actor=_actor()))
    if as_json:
        _echo_json({"list": list_name, **out})
    else:
        click.echo(f"Registered witness {out['id']} ({out['name']}) for list {list_name!r}:")
        click.echo(f"  {out['vkey']}")


@witness_group.command("remove")
@_data_dir_option
@_database_option
@_witness_list_option
@click.argument("witness")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def witness_remove_command(
    data_dir: Path, database_url: str | None, list_name: str, witness: str, as_json: bool
) -> None:
    """Unregister WITNESS (its id from `witness list`, or its vkey); its line goes too."""
    from api.witness import canonical_witness_vkey, parse_witness_vkey
    from blocklist.store import witnesses as store_witnesses
    from blocklist.store.errors import NotFound

    with _list_session(data_dir, database_url, list_name, write=True) as (session, lst):
        if witness.isdigit():
            witness_id = int(witness)
        else:
            wanted = canonical_witness_vkey(parse_witness_vkey(witness.strip()))
            match = [
                r.id for r in store_witnesses.list_witnesses(session, lst.id) if r.vkey == wanted
            ]
            if not match:
                raise NotFound(f"no witness with this vkey is registered for {list_name!r}")
            witness_id = match[0]
        out = _witness_dict(
            store_witnesses.remove_witness(session, lst.id, witness_id, actor=_actor())
        )
    if as_json:
        _echo_json({"list": list_name, **out})
    else:
        click.echo(f"Removed witness {out['id']} ({out['name']}) from list {list_name!r}.")


@witness_group.command("list")
@_data_dir_option
@_database_option
@_witness_list_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def witness_list_command(
    data_dir: Path, database_url: str | None, list_name: str, as_json: bool
) -> None:
    """List the witnesses registered for a list."""
    from blocklist.store import witnesses as store_witnesses

    with _list_session(data_dir, database_url, list_name, write=False) as (session, lst):
        rows = [_witness_dict(r) for r in store_witnesses.list_witnesses(session, lst.id)]
    if as_json:
        _echo_json({"list": list_name, "witnesses": rows})
        return
    if not rows:
        click.echo(f"No witness is registered for list {list_name!r}.")
    for w in rows:
        click.echo(f"{w['id']:>5}  {w['name']:<32} {w['vkey']}")


# --- serve -------------------------------------------------------------------


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
@_database_option
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
        from api.signer_service import SignerService, reverifier_for
        from blocklist.store.db import Database

        database = Database(settings.resolved_database_url)
        service = SignerService(
            database,
            settings.keys_dir,
            publish_interval=settings.publish_interval,
            checkpoint_interval=settings.checkpoint_interval,
            serve_requests=True,
            data_dir=settings.data_dir,
            database_url=settings.database_url,
            retention=settings.retention,
            reverifier=reverifier_for(database, settings.reverify_config),
        )
        try:
            service.start()
        except (SignerError, BlocklistError) as e:
            raise _fail(e) from e
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
        raise _fail(e) from e
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


# --- guarded hosts (issue 16 item 2) ----------------------------------------------


@click.group(name="guard")
def guard_group() -> None:
    """Manage the guard list: high-collateral hosts whose entries need an extra approval.

    A host or prefix entry on a guarded host (or a subdomain of one), or on
    any IP address, needs besides four-eyes the approval of an administrator
    who neither added nor approved it, with a written justification
    (`POST /v1/lists/{list}/entries/{id}/guard-approve`). The list is seeded
    with shared hosting, CDNs, file lockers and large platforms
    (docs/safeguards.md); adding and removing are records of the global
    audit chain.
    """


def _guard_dict(row: Any) -> dict[str, Any]:
    return {
        "host": row.host,
        "note": row.note,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
        "created_by": row.created_by,
    }


@guard_group.command("add")
@_data_dir_option
@_database_option
@click.argument("host")
@click.option("--note", default=None, help="Why it is guarded (at most 500 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def guard_add_command(
    data_dir: Path, database_url: str | None, host: str, note: str | None, as_json: bool
) -> None:
    """Guard HOST (a host name; IP addresses are always guarded)."""
    from blocklist.errors import BlocklistError
    from blocklist.store import guards as store_guards

    db = _database(data_dir, database_url)
    try:
        with db.transaction() as session:
            out = _guard_dict(store_guards.add_guard(session, host, actor=_actor(), note=note))
    except BlocklistError as e:
        raise _fail(e) from e
    finally:
        db.dispose()
    if as_json:
        _echo_json(out)
    else:
        click.echo(f"Guarded {out['host']}.")


@guard_group.command("remove")
@_data_dir_option
@_database_option
@click.argument("host")
@click.option("--reason", required=True, help="Why the guard is lifted (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def guard_remove_command(
    data_dir: Path, database_url: str | None, host: str, reason: str, as_json: bool
) -> None:
    """Lift the guard on HOST; entries added under it keep their guard rule."""
    from blocklist.errors import BlocklistError
    from blocklist.store import guards as store_guards

    db = _database(data_dir, database_url)
    try:
        with db.transaction() as session:
            name = store_guards.normalise_guard_host(host)
            store_guards.remove_guard(session, name, actor=_actor(), reason=reason)
    except BlocklistError as e:
        raise _fail(e) from e
    finally:
        db.dispose()
    if as_json:
        _echo_json({"host": name, "removed": True})
    else:
        click.echo(f"No longer guarded: {name}.")


@guard_group.command("list")
@_data_dir_option
@_database_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def guard_list_command(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List the guarded hosts."""
    from blocklist.store import guards as store_guards

    db = _database(data_dir, database_url)
    try:
        with db.read() as session:
            rows = [_guard_dict(r) for r in store_guards.list_guards(session)]
    finally:
        db.dispose()
    if as_json:
        _echo_json({"guards": rows})
        return
    for g in rows:
        click.echo(f"{g['host']:<40} {g['note'] or '':<24} by {g['created_by']}")
