"""What every ``cleanfeed isp`` command shares: options, errors, exit codes.

The connection and state options each command takes
(:func:`common_options`), building the :class:`~clients.isp.config.IspConfig`
from them (:func:`config_from`), the one-line ``failed|error: reason:
message`` error with exit status 2 (:class:`CommandError`), and the small
output helpers. The commands themselves are in :mod:`clients.isp.cli` and
:mod:`clients.isp.cli_filters`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from clients.errors import ClientError
from clients.isp.config import IspConfig, load_config
from clients.isp.records import ExportReport
from clients.isp.store import StateStore

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_POST_COMMIT",
    "EXIT_REJECTED",
    "CommandError",
    "IspGroup",
    "common_options",
    "config_from",
    "echo_exports",
    "emit_json",
    "iso_time",
    "open_store",
    "setup_logging",
    "state_dir_of",
]

#: Exit statuses of ``sync --once``.
EXIT_OK: Final = 0


EXIT_REJECTED: Final = 1


EXIT_FAILED: Final = 2


EXIT_POST_COMMIT: Final = 3


#: Commands whose error line starts ``failed:`` like a sync outcome's.
_SYNC_COMMANDS: Final = frozenset({"sync", "run"})


class CommandError(click.ClickException):
    """A configuration or local-state problem: one line on stderr, exit 2.

    Never exit 1 for these: 1 means the hotline's data was rejected
    (``sync``) or that no URL is listed (``check``), and monitoring treats
    it so.
    """

    exit_code = EXIT_FAILED

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        # Decided now: by the time click prints the error, the command's
        # context is gone.
        ctx = click.get_current_context(silent=True)
        names = set() if ctx is None else {ctx.info_name, ctx.invoked_subcommand}
        self.word = "failed" if names & _SYNC_COMMANDS else "error"

    @classmethod
    def of(cls, e: ClientError) -> CommandError:
        """The command error for a client error (its reason and message)."""
        return cls(e.reason, str(e))

    def show(self, file: Any = None) -> None:
        """Print ``failed|error: <reason>: <message>`` on stderr, once."""
        click.echo(f"{self.word}: {self.reason}: {self.message}", err=True)


class IspGroup(click.Group):
    """The ``isp`` group: a client error no command handled exits 2, not 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as e:
            raise CommandError.of(e) from e


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            default=None,
            help="TOML configuration file.",
        ),
        click.option(
            "--server", default=None, help="Server base URL, e.g. https://hotline.example."
        ),
        click.option(
            "--token", default=None, help="Bearer token (prefer --token-file or CLEANFEED_TOKEN)."
        ),
        click.option(
            "--token-file",
            type=click.Path(path_type=Path),
            default=None,
            help="File holding the bearer token.",
        ),
        click.option("--list", "list_name", default=None, help="List name."),
        click.option(
            "--root-key",
            "root_keys",
            multiple=True,
            help="Pinned root vkey, or @FILE holding it (repeatable).",
        ),
        click.option(
            "--state-dir", type=click.Path(path_type=Path), default=None, help="State directory."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def config_from(
    config_file: Path | None,
    server: str | None,
    token: str | None,
    token_file: Path | None,
    list_name: str | None,
    root_keys: Sequence[str],
    state_dir: Path | None,
    **extra: Any,
) -> IspConfig:
    overrides: dict[str, Any] = {
        "server": server,
        "token": token,
        "token_file": token_file,
        "list": list_name,
        "root_keys": tuple(root_keys),
        "state_dir": state_dir,
    }
    overrides.update(extra)
    try:
        return load_config(config_file, overrides=overrides)
    except ClientError as e:
        raise CommandError.of(e) from e


def state_dir_of(config: IspConfig) -> Path:
    if config.state_dir is None:
        raise click.UsageError("--state-dir is required (or state_dir in --config)")
    return config.state_dir


def open_store(config: IspConfig) -> StateStore:
    try:
        return StateStore(state_dir_of(config), create=False)
    except ClientError as e:
        raise CommandError.of(e) from e


def echo_exports(reports: Iterable[ExportReport]) -> None:
    """One line per export (what it enforces and cannot), then its notes."""
    for report in reports:
        click.echo(f"export {report.summary()}")
        for note in report.notes:
            click.echo(f"  {note}")


def emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, sort_keys=True))


def iso_time(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
