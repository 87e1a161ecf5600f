"""``cleanfeed token create|list|revoke``: API tokens, on the database directly.

With ``--json``, ``token create`` prints ``{"token", "name", "role",
"lists"}`` (DESIGN.md, "Interfaces other programs rely on"). A new token is
printed once and stored only as a hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

# `token create` spells the shared helpers with a leading underscore: its body
# is left as it was when the command moved here (issue 15 edits it meanwhile).
from api.cli.common import DATA_DIR_OPTION as _data_dir_option
from api.cli.common import DATABASE_OPTION as _database_option
from api.cli.common import JSON_OPTION, database_session, iso_z, parse_expiry, rows_for_people
from api.cli.common import actor as _actor
from api.cli.common import echo_json as _echo_json
from api.cli.common import fail as _fail
from api.cli.common import open_database as _database

__all__ = ["token_create_command", "token_group", "token_list_command", "token_revoke_command"]


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
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "lists": [lst.name for lst in row.lists],
        "plaintext": row.plaintext,
        "full_audit": row.full_audit,
        "expires_at": iso_z(row.expires_at),
        "revoked_at": iso_z(row.revoked_at),
        "last_used_at": iso_z(row.last_used_at),
        "created_at": iso_z(row.created_at),
    }


@token_group.command("list")
@_data_dir_option
@_database_option
@JSON_OPTION
def token_list_command(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from blocklist.store import tokens as store_tokens

    rows = rows_for_people(
        data_dir,
        database_url,
        "tokens",
        lambda session: map(_token_dict, store_tokens.list_tokens(session)),
        as_json=as_json,
    )
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
@JSON_OPTION
def token_revoke_command(
    data_dir: Path, database_url: str | None, token_id: int, as_json: bool
) -> None:
    """Revoke token TOKEN_ID (see `token list`); API processes drop it within seconds."""
    from blocklist.store import tokens as store_tokens

    with database_session(data_dir, database_url, write=True) as session:
        out = _token_dict(store_tokens.revoke_token(session, token_id, actor=_actor()))
    if as_json:
        _echo_json(out)
    else:
        click.echo(f"Revoked token {token_id} ({out['name']}, {out['prefix']}...).")
