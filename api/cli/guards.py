"""``cleanfeed guard add|remove|list``: the guard list (issue 16 item 2)."""

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

__all__ = ["guard_add_command", "guard_group", "guard_list_command", "guard_remove_command"]


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
        "created_at": iso_z(row.created_at),
        "created_by": row.created_by,
    }


@guard_group.command("add")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.argument("host")
@click.option("--note", default=None, help="Why it is guarded (at most 500 characters).")
@JSON_OPTION
def guard_add_command(
    data_dir: Path, database_url: str | None, host: str, note: str | None, as_json: bool
) -> None:
    """Guard HOST (a host name; IP addresses are always guarded)."""
    from blocklist.store import guards as store_guards

    with database_session(data_dir, database_url, write=True) as session:
        out = _guard_dict(store_guards.add_guard(session, host, actor=actor(), note=note))
    if as_json:
        echo_json(out)
    else:
        click.echo(f"Guarded {out['host']}.")


@guard_group.command("remove")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.argument("host")
@click.option("--reason", required=True, help="Why the guard is lifted (audited).")
@JSON_OPTION
def guard_remove_command(
    data_dir: Path, database_url: str | None, host: str, reason: str, as_json: bool
) -> None:
    """Lift the guard on HOST; entries added under it keep their guard rule."""
    from blocklist.store import guards as store_guards

    with database_session(data_dir, database_url, write=True) as session:
        name = store_guards.normalise_guard_host(host)
        store_guards.remove_guard(session, name, actor=actor(), reason=reason)
    if as_json:
        echo_json({"host": name, "removed": True})
    else:
        click.echo(f"No longer guarded: {name}.")


@guard_group.command("list")
@DATA_DIR_OPTION
@DATABASE_OPTION
@JSON_OPTION
def guard_list_command(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List the guarded hosts."""
    from blocklist.store import guards as store_guards

    rows = rows_for_people(
        data_dir,
        database_url,
        "guards",
        lambda session: map(_guard_dict, store_guards.list_guards(session)),
        as_json=as_json,
    )
    for g in rows:
        click.echo(f"{g['host']:<40} {g['note'] or '':<24} by {g['created_by']}")
