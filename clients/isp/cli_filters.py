"""The ``cleanfeed isp`` commands that serve a filter: Squid and block page.

``squid-helper`` (Squid's external ACL helper over the state directory),
``squid-template`` (Squid's ERR_CLEANFEED error page) and ``blockpage``
(the HTTP 451 server DNS exports send blocked hosts to). They are
registered on the ``isp`` group by :mod:`clients.isp.cli`.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from blocklist.errors import FormatError
from clients.errors import ClientError
from clients.isp.cli_options import (
    EXIT_FAILED,
    common_options,
    config_from,
    setup_logging,
    state_dir_of,
)
from clients.isp.lookup import (
    Matcher,
)
from clients.isp.store import StateStore

__all__ = [
    "StateDirSource",
    "blockpage_command",
    "squid_helper_command",
    "squid_template_command",
]


class StateDirSource:
    """A Squid-helper matcher source over the state directory.

    Rebuilds the matcher when the committed version changes, checking at
    most every ``interval`` seconds; a failed reload keeps the previous set.
    """

    def __init__(self, state_dir: Path, *, interval: float = 10.0) -> None:
        self._dir = state_dir
        self._interval = interval
        self._version: int | None = None
        self._checked = 0.0
        self._matcher = Matcher(())
        self._reload()

    def _reload(self) -> None:
        with StateStore(self._dir, create=False) as store, store.reading():
            version = store.status().version
            if version != self._version:
                # One blob read (about 0.12 s a million), no per-row tuples.
                self._matcher = Matcher.from_verified(store.hash_set())
                self._version = version
        self._checked = time.monotonic()

    @property
    def version(self) -> int | None:
        """The committed version the matcher holds (None: never synced)."""
        return self._version

    def current(self) -> Matcher:
        """The matcher for the latest committed version."""
        if time.monotonic() - self._checked >= self._interval:
            try:
                self._reload()
            except (ClientError, OSError) as e:
                click.echo(f"cleanfeed squid-helper: reload failed: {e}", err=True)
                self._checked = time.monotonic()
        return self._matcher


@click.command(
    "squid-helper", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@common_options
@click.option(
    "--hashes-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Read a 'hashes' export instead of the state directory (world-readable).",
)
@click.option(
    "--reload-interval", type=float, default=10.0, help="Seconds between checks for a new version."
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Load the list, say what was loaded (exit 0) or why not (exit 2); run as Squid's user.",
)
@click.pass_context
def squid_helper_command(
    ctx: click.Context,
    /,
    hashes_file: Path | None,
    reload_interval: float,
    check_only: bool,
    **common: Any,
) -> None:
    """Squid external_acl_type helper answering OK for listed URLs (%URI).

    Reads the verified set from --state-dir (or state_dir in --config) or
    from a 'hashes' export (--hashes-file). Squid starts helpers with
    argv[0] set to "(cleanfeed)", so squid.conf must name this installed
    script, never "python -m": the interpreter finds its virtual
    environment only from its own path. The list is loaded before the
    first request is read: a helper that cannot load it exits 2 at once,
    which Squid (children-startup=1 or more) turns into a FATAL at start or
    reconfigure rather than denying every request. Any other arguments
    (--channels, --no-unescape) go to the helper protocol loop.
    """
    from clients.isp import squid_helper

    config = config_from(**common)
    source: squid_helper.MatcherSource
    if hashes_file is not None:
        if config.state_dir is not None:
            raise click.UsageError("give --state-dir or --hashes-file, not both")
        try:
            source = squid_helper.HashesFileSource(hashes_file, interval=reload_interval)
        except (OSError, FormatError) as e:
            click.echo(f"cleanfeed squid-helper: cannot load {hashes_file}: {e}", err=True)
            sys.exit(2)
        loaded = f"{len(source.current())} hashes from {hashes_file}"
    else:
        state_dir = state_dir_of(config)
        try:
            state_source = StateDirSource(state_dir, interval=reload_interval)
        except (ClientError, OSError) as e:
            reason = e.reason if isinstance(e, ClientError) else "state_unreadable"
            click.echo(f"cleanfeed squid-helper: cannot load state: {reason}: {e}", err=True)
            sys.exit(2)
        if state_source.version is None:
            # An empty set would let every URL through while looking healthy:
            # fail closed and loudly until the first verified sync.
            click.echo(
                f"cleanfeed squid-helper: {state_dir} holds no verified version yet;"
                " run `cleanfeed isp sync` first",
                err=True,
            )
            sys.exit(2)
        source = state_source
        loaded = (
            f"{len(state_source.current())} hashes, version {state_source.version} from {state_dir}"
        )
    if check_only:
        click.echo(f"cleanfeed squid-helper: ok: {loaded}")
        sys.exit(0)
    sys.exit(squid_helper.main(list(ctx.args), source=source))


@click.command("squid-template")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML configuration: the [blockpage] table, as for `isp blockpage` (docs/blockpage.md).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Synced state, to name the hotline and policy when [blockpage] does not.",
)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Squid error directory of one language; ERR_CLEANFEED is written (atomically) there.",
)
@click.option(
    "--language",
    default=None,
    help="Language of the page (default: blockpage.language, else en); "
    "only English ships, others need --template.",
)
@click.option(
    "--template",
    type=click.Path(path_type=Path),
    default=None,
    help="Your own page (a translation of --print-source) instead of the shipped one.",
)
@click.option("--print-source", is_flag=True, help="Print the shipped English source and exit.")
def squid_template_command(
    config_file: Path | None,
    state_dir: Path | None,
    output_dir: Path | None,
    language: str | None,
    template: Path | None,
    print_source: bool,
) -> None:
    """Write Squid's ERR_CLEANFEED error page (deny_info 451:ERR_CLEANFEED).

    The page says what `cleanfeed isp blockpage` says, from the same
    [blockpage] settings, and shows the block_ref the external ACL helper
    returns (Squid's %o), also in the appeal link. It never shows or links
    the requested URL: every other % is escaped. Without --output the page
    is printed. Squid reads templates at start and at `squid -k
    reconfigure`. Exit status: 0 written, 2 on a configuration problem.
    """
    from clients.isp import blockpage, squid_template

    if print_source:
        click.echo(squid_template.template_source("en"), nl=False)
        return
    try:
        config = blockpage.load_blockpage_config(config_file, overrides={"state_dir": state_dir})
        lang = (language or config.language).lower()
        text = squid_template.render_squid_template(
            config,
            squid_template.page_context(config),
            squid_template.template_source(lang, template),
            language=lang,
        )
        if output_dir is None:
            click.echo(text, nl=False)
            return
        path = squid_template.write_squid_template(output_dir, text)
    except ClientError as e:
        click.echo(f"error: {e.reason}: {e}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as e:
        click.echo(f"error: cannot write {output_dir}: {e.strerror or e}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"wrote {path} ({lang}); run `squid -k reconfigure` to load it")


@click.command("blockpage")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML configuration: state_dir and the [blockpage] table (docs/blockpage.md).",
)
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="State directory.")
@click.option(
    "--listen",
    default=None,
    help="HOST:PORT or [IPV6]:PORT the DNS exports point blocked hosts to.",
)
@click.option("--print-template", is_flag=True, help="Print the default page template and exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log more (never request data).")
def blockpage_command(
    config_file: Path | None,
    state_dir: Path | None,
    listen: str | None,
    print_template: bool,
    verbose: bool,
) -> None:
    """Answer blocked hosts with HTTP 451 and a page naming the block_ref.

    For traffic a DNS export sends here: only host entries are matched
    (never a path), anything else gets a plain 404, only the configured
    client networks (default loopback) are answered, and nothing about a
    request is logged. A sync that commits is in force at the next request.
    Exit status: 0 after SIGTERM or SIGINT, 2 on a configuration or state
    problem.
    """
    from clients.isp import blockpage

    if print_template:
        click.echo(blockpage.DEFAULT_TEMPLATE, nl=False)
        return
    setup_logging(verbose)
    logging.getLogger("cleanfeed.blockpage").setLevel(logging.INFO)
    try:
        config = blockpage.load_blockpage_config(
            config_file, overrides={"state_dir": state_dir, "listen": listen}
        )
        sys.exit(blockpage.main(config))
    except ClientError as e:
        click.echo(f"error: {e.reason}: {e}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as e:  # the address cannot be bound
        click.echo(f"error: cannot listen: {e.strerror or e}", err=True)
        sys.exit(EXIT_FAILED)
