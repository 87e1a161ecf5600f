"""The ``cleanfeed`` command line.

Each command group lives in the package it belongs to and is imported only
when it is invoked, so ``cleanfeed isp …`` and ``cleanfeed audit …`` run from
a base install that has neither FastAPI nor SQLAlchemy.

| group / command        | module                     | needs extra |
|------------------------|----------------------------|-------------|
| init, serve, token     | api.cli                    | server      |
| keys, signer           | signer.cli                 | server for ``signer run`` |
| isp                    | clients.isp.cli            | none        |
| audit                  | clients.audit.cli          | none        |
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from cleanfeed import __version__

#: command name -> "module:attribute" of the click command implementing it.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("api.cli:init_command", "Initialise a data directory: database, keys, list, admin token."),
    "serve": ("api.cli:serve_command", "Run the API (and, by default, the embedded signer)."),
    "token": ("api.cli:token_group", "Create, list and revoke API tokens."),
    "keys": ("signer.cli:keys_group", "Key ceremony: generate, show, rotate keys; sign keyrings."),
    "signer": ("signer.signer_cli:signer_group", "Run the publisher that cuts and signs versions."),
    "isp": ("clients.isp.cli:isp_group", "ISP client: sync, verify, export, check URLs."),
    "audit": ("clients.audit.cli:audit_group", "Offline audit: fetch bundles, verify, prove."),
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = LAZY_COMMANDS.get(cmd_name)
        if spec is None:
            return None
        target = spec[0]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = e.name or "a dependency"
            raise click.ClickException(
                f"'cleanfeed {cmd_name}' needs {missing}, which is not installed; "
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
