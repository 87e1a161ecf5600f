"""The ``cleanfeed`` command line.

Each command group lives in the package it belongs to and is imported only
when it is invoked, so ``cleanfeed isp …`` and ``cleanfeed audit …`` run from
a base install that has neither FastAPI nor SQLAlchemy.

| group / command        | module                     | needs extra |
|------------------------|----------------------------|-------------|
| init, serve            | api.cli.server             | server      |
| token                  | api.cli.tokens             | server      |
| witness                | api.cli.witnesses          | server      |
| guard                  | api.cli.guards             | server      |
| account                | api.accounts.cli           | server      |
| keys                   | signer.keys_cli            | server for ``rotate``, ``import-keyring`` |
| signer                 | signer.publisher_cli       | server      |
| isp                    | clients.isp.cli            | none        |
| audit                  | clients.audit.cli          | none        |
| entries, publish       | clients.analyst.cli        | none        |
| appeals, report        | api.cli.appeals            | server      |
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

from cleanfeed import __version__

__all__ = [
    "LAZY_COMMANDS",
    "SERVER_COMMANDS",
    "LazyGroup",
    "main",
    "missing_modules",
]

#: command name -> "module:attribute" of the click command implementing it.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "api.cli.server:init_command",
        "Initialise a data directory: database, keys, list, token.",
    ),
    "serve": (
        "api.cli.server:serve_command",
        "Run the API (and, by default, the embedded signer).",
    ),
    "token": ("api.cli.tokens:token_group", "Create, list and revoke API tokens."),
    "account": (
        "api.accounts.cli:account_group",
        "Persons' accounts: create, enrolment links, roles, disable, attach tokens.",
    ),
    "witness": (
        "api.cli.witnesses:witness_group",
        "Register the witness keys whose cosignatures a list accepts.",
    ),
    "guard": (
        "api.cli.guards:guard_group",
        "Guarded hosts: high-collateral hosts whose entries need an admin's approval.",
    ),
    "keys": (
        "signer.keys_cli:keys_group",
        "Key ceremony: generate, show, rotate keys; sign keyrings.",
    ),
    "signer": (
        "signer.publisher_cli:signer_group",
        "Run the publisher that cuts and signs versions.",
    ),
    "isp": ("clients.isp.cli:isp_group", "ISP client: sync, verify, export, check URLs."),
    "audit": ("clients.audit.cli:audit_group", "Offline audit: fetch bundles, verify, prove."),
    "entries": (
        "clients.analyst.cli:entries_group",
        "Analyst: add, import, approve, expire, search, show entries over the API.",
    ),
    "publish": ("clients.analyst.cli:publish_command", "Analyst: cut a version now over the API."),
    "appeals": (
        "api.cli.appeals:appeals_group",
        "Appeals: erase an appellant's data, apply retention.",
    ),
    "report": (
        "api.cli.appeals:report_group",
        "Signed reports: the monthly transparency report of a list.",
    ),
}


#: Commands that need the server extra, and the distributions they import.
#: Checked before the command runs so a base install gets a clear message
#: instead of a traceback from inside the command.
SERVER_COMMANDS: dict[str, tuple[str, ...]] = {
    "init": ("fastapi", "sqlalchemy", "alembic"),
    "serve": ("fastapi", "sqlalchemy", "uvicorn", "alembic"),
    "token": ("sqlalchemy", "alembic"),
    "account": ("sqlalchemy", "alembic", "argon2", "pyotp"),
    "witness": ("sqlalchemy", "alembic"),
    "guard": ("sqlalchemy", "alembic"),
    "signer": ("sqlalchemy", "alembic"),
    "appeals": ("sqlalchemy", "alembic"),
    "report": ("sqlalchemy", "alembic"),
}


def missing_modules(cmd_name: str) -> list[str]:
    """Return the server-side modules a command needs that are not installed."""
    return [m for m in SERVER_COMMANDS.get(cmd_name, ()) if importlib.util.find_spec(m) is None]


class LazyGroup(click.Group):
    """A click group that imports each sub-command on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = LAZY_COMMANDS.get(cmd_name)
        if spec is None:
            return None
        missing = missing_modules(cmd_name)
        if missing:
            raise click.ClickException(
                f"'cleanfeed {cmd_name}' needs {', '.join(missing)}, which is not installed; "
                "install the server extra: pip install 'cleanfeed[server]'"
            )
        target = spec[0]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise click.ClickException(
                f"'cleanfeed {cmd_name}' needs {e.name or 'a dependency'}, which is not installed; "
                "install the server extra: pip install 'cleanfeed[server]'"
            ) from e
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above so --help never imports the
        # server stack.
        rows = [(name, LAZY_COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cleanfeed")
def main(**_: Any) -> None:
    """cleanfeed: signed, append-only URL blocklists for hotlines and ISPs.

    Analysts curate a list through the API; a signer turns each change set
    into a signed version in a transparency log; ISPs verify every version
    before applying it; auditors verify the whole history offline.

    Quick start (embedded SQLite, keys generated on first start):

        cleanfeed serve --data-dir ./cleanfeed-data
    """
