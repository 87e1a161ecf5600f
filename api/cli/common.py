"""What every server command shares: the data-directory and database options,
the audit actor, one-line failures, the database session and JSON output."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click

__all__ = [
    "DATABASE_OPTION",
    "DATA_DIR_OPTION",
    "JSON_OPTION",
    "actor",
    "database_session",
    "echo_json",
    "fail",
    "iso_z",
    "open_database",
    "parse_expiry",
    "rows_for_people",
]

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Data directory (database, keys, admin token).",
)
DATABASE_OPTION = click.option(
    "--database-url",
    default=None,
    envvar="CLEANFEED_DATABASE_URL",
    help="SQLAlchemy database URL (default: SQLite in the data directory).",
)
#: ``--json``: the command prints exactly one JSON object (DESIGN.md,
#: "Interfaces other programs rely on").
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def actor() -> str:
    """Audit actor of CLI actions: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:128]


def echo_json(obj: dict[str, Any] | list[Any]) -> None:
    """Print ``obj`` as one line of JSON (non-ASCII kept as is)."""
    click.echo(json.dumps(obj, ensure_ascii=False))


def fail(error: Exception) -> click.ClickException:
    """A one-line CLI failure naming the error's stable code when it has one."""
    code = getattr(error, "code", None)
    prefix = f"[{code}] " if code else ""
    return click.ClickException(f"{prefix}{error}")


def iso_z(value: datetime | None) -> str | None:
    """An RFC 3339 UTC time with ``Z`` as the JSON output prints it; None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def open_database(data_dir: Path, database_url: str | None) -> Any:
    """The deployment's database (the caller disposes of it).

    Raises:
        click.ClickException: no database URL and ``data_dir`` is not initialised.
    """
    from blocklist.store.db import Database
    from signer.datadir import keys_dir_of, resolve_database_url

    if database_url is None and not keys_dir_of(data_dir).is_dir():
        raise click.ClickException(f"{data_dir} is not initialised: run `cleanfeed init` first")
    return Database(resolve_database_url(data_dir, database_url))


@contextlib.contextmanager
def database_session(data_dir: Path, database_url: str | None, *, write: bool) -> Iterator[Any]:
    """One transaction (``write``) or read on the deployment's database.

    Domain errors become a one-line CLI failure; the database is disposed.

    Raises:
        click.ClickException: a domain error (its code in brackets), or the
            data directory is not initialised.
    """
    from blocklist.errors import BlocklistError

    db = open_database(data_dir, database_url)
    try:
        with db.transaction() if write else db.read() as session:
            yield session
    except BlocklistError as e:
        raise fail(e) from e
    finally:
        db.dispose()


def rows_for_people(
    data_dir: Path,
    database_url: str | None,
    key: str,
    fetch: Callable[[Any], Iterable[dict[str, Any]]],
    *,
    as_json: bool,
) -> list[dict[str, Any]]:
    """The rows of a ``… list`` command, read in one session.

    With ``--json`` they are printed as ``{key: rows}`` here and none are
    left for the caller; otherwise the caller prints them for people.

    Raises:
        click.ClickException: as :func:`database_session`.
    """
    with database_session(data_dir, database_url, write=False) as session:
        rows = list(fetch(session))
    if as_json:
        echo_json({key: rows})
        return []
    return rows


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
