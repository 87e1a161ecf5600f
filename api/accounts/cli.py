"""``cleanfeed account``: persons' accounts from the command line (issue 15).

Every command acts on the database directly, as ``cleanfeed token`` does,
and is recorded in the global audit chain with the actor ``cli:<user>``.
Enrolment links are built from the ``public_url`` setting (or
``--public-url``) and last ``enrolment_link_hours`` (or ``--hours``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from api.cli.common import (
    DATA_DIR_OPTION,
    DATABASE_OPTION,
    JSON_OPTION,
    actor,
    database_session,
    echo_json,
    iso_z,
    rows_for_people,
)

__all__ = [
    "account_attach_token_command",
    "account_confirm_command",
    "account_create_command",
    "account_disable_command",
    "account_grant_command",
    "account_group",
    "account_list_command",
    "account_reset_command",
    "account_revoke_command",
]

_ROLES = click.Choice(["admin", "analyst", "auditor"])


def _settings(data_dir: Path, public_url: str | None, hours: int | None) -> Any:
    from api.settings import SettingsError, load_settings

    try:
        return load_settings(data_dir, public_url=public_url, enrolment_link_hours=hours)
    except SettingsError as e:
        raise click.ClickException(str(e)) from e


def _grants(role: str, lists: tuple[str, ...]) -> list[Any]:
    from blocklist.store.accounts import grants_for

    return grants_for(role, list(lists))


def _view_dict(view: Any) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "disabled": view.disabled,
        "enrolled": view.enrolled,
        "enrol_expires_at": iso_z(view.enrol_expires_at),
        "roles": [{"role": g.role, "list": g.list_name} for g in view.roles],
        "pending": [{"grant": i, "role": g.role, "list": g.list_name} for i, g in view.pending],
        "created_at": iso_z(view.created_at),
    }


_hours_option = click.option(
    "--hours",
    type=click.IntRange(1, 24 * 31),
    default=None,
    help="How long the enrolment link stays valid (default: setting enrolment_link_hours, 72).",
)
_public_url_option = click.option(
    "--public-url",
    default=None,
    help="Base URL people reach the server at (default: setting public_url).",
)
_lists_option = click.option(
    "--list",
    "lists",
    multiple=True,
    help="A list the role applies to (repeat); none: every list. Admins hold every list.",
)


@click.group(name="account")
def account_group() -> None:
    """Persons' accounts: create, enrol links, roles, disable, attach tokens.

    An account is a person; four-eyes counts persons. The person enrols
    through the printed one-time link (password and TOTP), so no admin
    knows both factors. See docs/accounts.md.
    """


@account_group.command("create")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.option("--name", required=True, help="The person's account name (login name).")
@click.option("--role", type=_ROLES, required=True, help="admin, analyst or auditor.")
@_lists_option
@_hours_option
@_public_url_option
@JSON_OPTION
def account_create_command(
    data_dir: Path,
    database_url: str | None,
    name: str,
    role: str,
    lists: tuple[str, ...],
    hours: int | None,
    public_url: str | None,
    as_json: bool,
) -> None:
    """Create an account and print its one-time enrolment link.

    With two or more enabled admin accounts, an analyst or admin role is
    pending until a second admin confirms it (`account confirm`).
    """
    from api.accounts import enrol_url
    from blocklist.store import accounts as store_accounts

    settings = _settings(data_dir, public_url, hours)
    with database_session(data_dir, database_url, write=True) as session:
        token, row, results = store_accounts.create_account(
            session,
            name=name,
            grants=_grants(role, lists),
            actor=actor(),
            enrol_hours=settings.enrolment_link_hours,
        )
        expires = iso_z(row.enrol_expires_at)
    url = enrol_url(settings, token)
    out = {
        "name": name,
        "role": role,
        "lists": sorted(set(lists)),
        "enrol_url": url,
        "enrol_expires_at": expires,
        "grants": [
            {
                "role": r.grant.role,
                "list": r.grant.list_name,
                "status": r.status,
                "grant": r.pending_id,
            }
            for r in results
        ],
    }
    if as_json:
        echo_json(out)
        return
    click.echo(f"Account {name!r} created. Send this one-time enrolment link to the person")
    click.echo(f"(valid until {expires}; it is shown once):")
    click.echo(url)
    for r in results:
        if r.status == "pending":
            click.echo(
                f"The {r.grant.role} role on {r.grant.list_name} waits for a second admin: "
                f"grant {r.pending_id} (`cleanfeed account confirm {r.pending_id} --by ADMIN`)."
            )


@account_group.command("list")
@DATA_DIR_OPTION
@DATABASE_OPTION
@JSON_OPTION
def account_list_command(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List accounts with their roles and pending grants (never secrets)."""
    from blocklist.store import accounts as store_accounts

    rows = rows_for_people(
        data_dir,
        database_url,
        "accounts",
        lambda session: map(_view_dict, store_accounts.list_accounts(session)),
        as_json=as_json,
    )
    for a in rows:
        state = "disabled" if a["disabled"] else ("enrolled" if a["enrolled"] else "not enrolled")
        roles = ", ".join(f"{r['role']}@{r['list']}" for r in a["roles"]) or "no role"
        pending = ", ".join(f"#{p['grant']} {p['role']}@{p['list']}" for p in a["pending"])
        click.echo(
            f"{a['id']:>5}  {a['name']:<24} {state:<13} {roles}"
            + (f"  pending: {pending}" if pending else "")
        )


@account_group.command("disable")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.argument("name")
@JSON_OPTION
def account_disable_command(
    data_dir: Path, database_url: str | None, name: str, as_json: bool
) -> None:
    """Disable account NAME: no login, sessions ended, the person's tokens revoked."""
    from blocklist.store import accounts as store_accounts

    with database_session(data_dir, database_url, write=True) as session:
        revoked = store_accounts.disable_account(session, name, actor=actor())
    if as_json:
        echo_json({"name": name, "disabled": True, "tokens_revoked": revoked})
        return
    click.echo(f"Disabled {name!r}; {len(revoked)} token(s) revoked.")


@account_group.command("reset")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.argument("name")
@_hours_option
@_public_url_option
@JSON_OPTION
def account_reset_command(
    data_dir: Path,
    database_url: str | None,
    name: str,
    hours: int | None,
    public_url: str | None,
    as_json: bool,
) -> None:
    """Erase NAME's password and TOTP secret and print a new enrolment link."""
    from api.accounts import enrol_url
    from blocklist.store import accounts as store_accounts

    settings = _settings(data_dir, public_url, hours)
    with database_session(data_dir, database_url, write=True) as session:
        token, row = store_accounts.reset_account(
            session, name, actor=actor(), enrol_hours=settings.enrolment_link_hours
        )
        expires = iso_z(row.enrol_expires_at)
    url = enrol_url(settings, token)
    if as_json:
        echo_json({"name": name, "enrol_url": url, "enrol_expires_at": expires})
        return
    click.echo(f"{name!r} must enrol again through this one-time link (valid until {expires}):")
    click.echo(url)


def _grant_command(
    data_dir: Path,
    database_url: str | None,
    name: str,
    role: str,
    lists: tuple[str, ...],
    as_json: bool,
    *,
    revoke: bool,
) -> None:
    from blocklist.store import accounts as store_accounts

    out: list[dict[str, Any]] = []
    with database_session(data_dir, database_url, write=True) as session:
        for grant in _grants(role, lists):
            if revoke:
                tokens = store_accounts.revoke_role(session, name, grant, actor=actor())
                out.append({"role": grant.role, "list": grant.list_name, "tokens_revoked": tokens})
            else:
                result = store_accounts.grant_role(session, name, grant, actor=actor())
                out.append(
                    {
                        "role": grant.role,
                        "list": grant.list_name,
                        "status": result.status,
                        "grant": result.pending_id,
                    }
                )
    if as_json:
        echo_json({"name": name, "roles": out})
        return
    for item in out:
        if revoke:
            click.echo(f"{name!r} no longer holds {item['role']} on {item['list']}.")
        elif item["status"] == "pending":
            click.echo(
                f"{item['role']} on {item['list']} for {name!r} waits for a second admin: "
                f"grant {item['grant']}."
            )
        else:
            click.echo(f"{name!r} holds {item['role']} on {item['list']} ({item['status']}).")


def _role_change_command(command_name: str, help_text: str, *, revoke: bool) -> click.Command:
    """``account grant`` or ``account revoke``: NAME, --role and --list, one store call apart."""

    def command(
        data_dir: Path,
        database_url: str | None,
        name: str,
        role: str,
        lists: tuple[str, ...],
        as_json: bool,
    ) -> None:
        _grant_command(data_dir, database_url, name, role, lists, as_json, revoke=revoke)

    command.__doc__ = help_text
    decorated: Any = command
    for option in reversed(
        (
            DATA_DIR_OPTION,
            DATABASE_OPTION,
            click.argument("name"),
            click.option("--role", type=_ROLES, required=True),
            _lists_option,
            JSON_OPTION,
        )
    ):
        decorated = option(decorated)
    registered: click.Command = account_group.command(command_name)(decorated)
    return registered


account_grant_command = _role_change_command(
    "grant",
    "Grant NAME a role (pending a second admin when two or more admins exist).",
    revoke=False,
)
account_revoke_command = _role_change_command(
    "revoke", "Take a role (or a pending grant of it) from NAME.", revoke=True
)


@account_group.command("confirm")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.argument("grant_id", type=click.IntRange(min=1))
@click.option(
    "--by",
    "by",
    required=True,
    help="The confirming admin's account name: an enabled admin other than the requester.",
)
@JSON_OPTION
def account_confirm_command(
    data_dir: Path, database_url: str | None, grant_id: int, by: str, as_json: bool
) -> None:
    """Confirm pending grant GRANT_ID as the second admin named by --by.

    The console and the admin API (an admin's own session or token) are the
    usual way; this command is for operators acting for that admin.
    """
    from blocklist.store import accounts as store_accounts

    with database_session(data_dir, database_url, write=True) as session:
        admin = store_accounts.get_account_by_name(session, by)
        result = store_accounts.confirm_grant(
            session, grant_id, actor=f"{actor()} for {by}"[:128], person=admin.id
        )
    if as_json:
        echo_json({"grant": grant_id, "role": result.grant.role, "list": result.grant.list_name})
        return
    click.echo(f"Grant {grant_id} confirmed: {result.grant.role} on {result.grant.list_name}.")


@account_group.command("attach-token")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.option("--token-name", default=None, help="Name of the token (see `token list`).")
@click.option("--token-id", type=click.IntRange(min=1), default=None, help="Or its id.")
@click.option("--account", required=True, help="The person's account name.")
@JSON_OPTION
def account_attach_token_command(
    data_dir: Path,
    database_url: str | None,
    token_name: str | None,
    token_id: int | None,
    account: str,
    as_json: bool,
) -> None:
    """Attach an existing analyst, admin or auditor token to a person.

    From then on four-eyes counts the person, not the token's name. The
    person must hold the token's role on the token's lists.
    """
    from blocklist.store import accounts as store_accounts
    from blocklist.store import tokens as store_tokens

    if (token_name is None) == (token_id is None):
        raise click.UsageError("give exactly one of --token-name and --token-id")
    with database_session(data_dir, database_url, write=True) as session:
        if token_id is None:
            ids = store_tokens.live_token_ids(
                session, token_name or "", ("admin", "analyst", "auditor")
            )
            if len(ids) != 1:
                found = "no" if not ids else f"{len(ids)}"
                raise click.ClickException(
                    f"{found} live admin, analyst or auditor token(s) named {token_name!r}: "
                    "use --token-id (see `cleanfeed token list`)"
                )
            token_id = ids[0]
        row = store_accounts.attach_token(session, token_id, account, actor=actor())
        out = {"token": row.id, "name": row.name, "role": row.role, "account": account}
    if as_json:
        echo_json(out)
        return
    click.echo(f"Token {out['token']} ({out['name']}, {out['role']}) now belongs to {account!r}.")
