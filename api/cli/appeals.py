"""``cleanfeed appeals …`` and ``cleanfeed report …``: operators' commands of issue 17.

- ``cleanfeed appeals erase --data-dir DIR --appeal ID``: erase an
  appellant's message, contact and URL now (a request under data
  protection law, say); the audit records, which name the appeal by id
  only, stay and verify.
- ``cleanfeed appeals prune --data-dir DIR [--days N]``: the retention job
  by hand (the embedded signer runs it hourly).
- ``cleanfeed report transparency --data-dir DIR --list L --period
  YYYY-MM [--format text|json|csv] [--output FILE]``: the month's signed
  report (issued on first use, the same note afterwards) and its figures.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from api.cli.common import (
    DATA_DIR_OPTION,
    DATABASE_OPTION,
    JSON_OPTION,
    actor,
    database_session,
    fail,
    open_database,
)
from blocklist.tempfiles import replace_file

__all__ = ["appeals_group", "report_group"]


@click.group(name="appeals")
def appeals_group() -> None:
    """Appeals: erase an appellant's data, apply retention."""


@appeals_group.command("erase")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.option("--appeal", "appeal_id", type=click.IntRange(min=1), required=True)
@JSON_OPTION
def erase_command(data_dir: Path, database_url: str | None, appeal_id: int, as_json: bool) -> None:
    """Erase appeal APPEAL's message, contact and URL (its audit records stay)."""
    from blocklist.store import appeals as store_appeals

    with database_session(data_dir, database_url, write=True) as session:
        erased = store_appeals.erase(session, appeal_id, actor=actor(), why="request")
    if as_json:
        click.echo(json.dumps({"appeal": appeal_id, "erased": erased}))
    elif erased:
        click.echo(f"Erased the appellant's data of appeal {appeal_id}.")
    else:
        click.echo(f"Appeal {appeal_id} holds no appellant data (erased before).")


@appeals_group.command("prune")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Erase data of appeals closed more than this many days ago "
    "(default: the appeal_retention_days setting).",
)
@JSON_OPTION
def prune_command(
    data_dir: Path, database_url: str | None, days: int | None, as_json: bool
) -> None:
    """Apply appeal retention now."""
    from api.settings import load_settings
    from blocklist.store import appeals as store_appeals

    if days is None:
        days = load_settings(data_dir).appeal_retention_days
    with database_session(data_dir, database_url, write=True) as session:
        erased = store_appeals.erase_expired(session, days=days)
    if as_json:
        click.echo(json.dumps({"erased": erased, "days": days}))
    else:
        click.echo(
            f"Erased the appellant data of {len(erased)} appeal(s) closed over {days} days ago."
        )


@click.group(name="report")
def report_group() -> None:
    """Signed reports about a list."""


@report_group.command("transparency")
@DATA_DIR_OPTION
@DATABASE_OPTION
@click.option("--list", "list_name", required=True, help="The list.")
@click.option("--period", required=True, help="The calendar month, YYYY-MM (ended).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
    help="How the figures are printed.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the signed note here (verify it with `cleanfeed audit verify-report`).",
)
def transparency_command(
    data_dir: Path,
    database_url: str | None,
    list_name: str,
    period: str,
    fmt: str,
    output: Path | None,
) -> None:
    """The signed transparency report of LIST for PERIOD, issued once and kept.

    Issued on first use after the month ended, signed by the online key of
    the version current at the month's end; later calls print the same note.
    """
    from blocklist.errors import BlocklistError
    from blocklist.transparency import FIGURES, parse_report
    from signer.datadir import keys_dir_of
    from signer.errors import SignerError
    from signer.note import parse_note
    from signer.transparency import issue_report

    db = open_database(data_dir, database_url)
    try:
        note = issue_report(db, list_name, period, keys_dir_of(data_dir))
    except (BlocklistError, SignerError) as e:
        raise fail(e) from e
    finally:
        db.dispose()
    report = parse_report(parse_note(note).text)
    if output is not None:
        replace_file(output, note.encode("utf-8"), mode=0o644)  # a public note
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "list": list_name,
                    "origin": report.origin,
                    "period": report.period,
                    "version": report.version,
                    "audit_seq": report.audit_seq,
                    "figures": {name: report.figures[name] for name in FIGURES},
                    "note": note,
                },
                sort_keys=True,
            )
        )
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["figure", "value"])
        for name in FIGURES:
            writer.writerow([name, report.figures[name]])
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(note, nl=False)
