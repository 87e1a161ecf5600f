"""``cleanfeed witness add|remove|list``: the witness keys a list accepts cosignatures from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
)

__all__ = ["witness_add_command", "witness_group", "witness_list_command", "witness_remove_command"]


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
        "created_at": iso_z(row.created_at),
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

    Raises:
        click.ClickException: a domain error (no such list among them).
    """
    from blocklist.store import lists as store_lists

    with database_session(data_dir, database_url, write=write) as session:
        yield session, store_lists.get_list(session, list_name)


@witness_group.command("add")
@DATA_DIR_OPTION
@DATABASE_OPTION
@_witness_list_option
@click.argument("vkey")
@JSON_OPTION
def witness_add_command(
    data_dir: Path, database_url: str | None, list_name: str, vkey: str, as_json: bool
) -> None:
    """Register witness key VKEY (type 0x04 or 0x01; `cleanfeed audit witness-key` prints it)."""
    from api.witness import register_witness

    with _list_session(data_dir, database_url, list_name, write=True) as (session, lst):
        out = _witness_dict(register_witness(session, lst.id, lst.origin, vkey, actor=actor()))
    if as_json:
        echo_json({"list": list_name, **out})
    else:
        click.echo(f"Registered witness {out['id']} ({out['name']}) for list {list_name!r}:")
        click.echo(f"  {out['vkey']}")


@witness_group.command("remove")
@DATA_DIR_OPTION
@DATABASE_OPTION
@_witness_list_option
@click.argument("witness")
@JSON_OPTION
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
            store_witnesses.remove_witness(session, lst.id, witness_id, actor=actor())
        )
    if as_json:
        echo_json({"list": list_name, **out})
    else:
        click.echo(f"Removed witness {out['id']} ({out['name']}) from list {list_name!r}.")


@witness_group.command("list")
@DATA_DIR_OPTION
@DATABASE_OPTION
@_witness_list_option
@JSON_OPTION
def witness_list_command(
    data_dir: Path, database_url: str | None, list_name: str, as_json: bool
) -> None:
    """List the witnesses registered for a list."""
    from blocklist.store import witnesses as store_witnesses

    with _list_session(data_dir, database_url, list_name, write=False) as (session, lst):
        rows = [_witness_dict(r) for r in store_witnesses.list_witnesses(session, lst.id)]
    if as_json:
        echo_json({"list": list_name, "witnesses": rows})
        return
    if not rows:
        click.echo(f"No witness is registered for list {list_name!r}.")
    for w in rows:
        click.echo(f"{w['id']:>5}  {w['name']:<32} {w['vkey']}")
