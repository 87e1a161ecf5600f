"""The ``cleanfeed isp dns-serve`` command (options, checks, exit codes)."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from pathlib import Path

import click
import dns.exception
import dns.name

from clients.errors import ClientError, ConfigError
from clients.isp.cli_options import EXIT_FAILED, setup_logging
from clients.isp.exports.formats import DEFAULT_RPZ_ZONE

__all__ = ["dns_serve_command"]


@click.command("dns-serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="ISP TOML configuration: state_dir, list, and the blockpage addresses of its "
    "rpz export (the zone is rendered exactly as that export).",
)
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="State directory.")
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Address and port (UDP and TCP) the secondaries transfer from, e.g. 127.0.0.1:5353.",
)
@click.option(
    "--tsig-key",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help='TSIG key in BIND syntax (key "name" { algorithm hmac-sha256; secret "..."; };), '
    "as tsig-keygen writes it, mode 0600. Transfers signed with it are admitted; "
    "NOTIFY is signed with it.",
)
@click.option(
    "--allow-transfer",
    multiple=True,
    metavar="CIDR",
    help="Admit unsigned transfers from this network (repeatable; for Unbound, which "
    "cannot sign transfers).",
)
@click.option(
    "--zone",
    default=DEFAULT_RPZ_ZONE,
    show_default=True,
    help="Zone name the secondaries load the policy zone as.",
)
@click.option(
    "--notify",
    multiple=True,
    metavar="HOST:PORT",
    help="Send NOTIFY (RFC 1996) here after every new zone generation (repeatable).",
)
@click.option(
    "--notify-unsigned",
    multiple=True,
    metavar="HOST:PORT",
    help="As --notify, never signed: for Unbound, which drops a TSIG-signed NOTIFY and "
    "admits it by its allow-notify address (repeatable).",
)
@click.option("--zonemd", is_flag=True, help="Add an RFC 8976 ZONEMD record (SHA-384, simple).")
@click.option(
    "--print-secondary",
    type=click.Choice(["bind", "unbound"]),
    default=None,
    help="Print the named.conf or unbound.conf lines of a secondary of this server "
    "(--listen and --zone; --tsig-key names BIND's key) and exit.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every transfer and NOTIFY.")
def dns_serve_command(
    config_file: Path | None,
    state_dir: Path | None,
    listen: str,
    tsig_key: Path | None,
    allow_transfer: tuple[str, ...],
    zone: str,
    notify: tuple[str, ...],
    notify_unsigned: tuple[str, ...],
    zonemd: bool,
    print_secondary: str | None,
    verbose: bool,
) -> None:
    """Serve the verified RPZ zone to the ISP's resolvers by AXFR and IXFR.

    The zone is the last verified, committed list in the state directory,
    rendered as the rpz export is; this command never contacts the hotline
    (run `cleanfeed isp run` for that). Each sync that changes the zone
    makes a new generation (SOA serial + 1): secondaries get the difference
    by IXFR (RFC 1995) from a journal kept in the state directory, or the
    whole zone when they are too far behind, and NOTIFY (RFC 1996) tells
    every --notify target within about a second of the commit.

    A transfer must be signed with --tsig-key or come from an
    --allow-transfer network; anything else is REFUSED and logged (zone,
    peer address, reason). Exit status: 0 after SIGTERM or SIGINT, 2 on a
    configuration or state problem (bad key file, bad CIDR, port in use).
    """
    from clients.isp.config import load_config
    from clients.isp.dnsserve.acl import Admission, parse_cidrs, parse_hostport, read_key_file
    from clients.isp.dnsserve.secondaries import SecondarySpec, bind_secondary, unbound_secondary
    from clients.isp.dnsserve.server import ServeConfig, run

    if print_secondary is not None:
        try:
            host, port = parse_hostport(listen, "--listen")
            key_name = None if tsig_key is None else read_key_file(tsig_key).name.to_text(True)
        except ClientError as e:
            click.echo(f"error: {e.reason}: {e}", err=True)
            sys.exit(EXIT_FAILED)
        spec = SecondarySpec(
            zone.rstrip("."), host, port, *(() if key_name is None else (key_name,))
        )
        click.echo(
            bind_secondary(spec) if print_secondary == "bind" else unbound_secondary(spec), nl=False
        )
        return
    setup_logging(verbose)
    logging.getLogger("cleanfeed.dns-serve").setLevel(logging.INFO)
    try:
        host, port = parse_hostport(listen, "--listen")
        targets = tuple(parse_hostport(t, "--notify") for t in notify)
        unsigned = tuple(parse_hostport(t, "--notify-unsigned") for t in notify_unsigned)
        networks = parse_cidrs(allow_transfer)
        key = None if tsig_key is None else read_key_file(tsig_key)
        if key is None and not networks:
            raise ConfigError(
                "no secondary could transfer: give --tsig-key FILE and/or --allow-transfer CIDR"
            )
        try:
            origin = dns.name.from_text(zone)
        except dns.exception.DNSException as e:
            raise ConfigError(f"--zone {zone!r:.60}: not a DNS name ({e})") from e
        config = load_config(config_file, overrides={"state_dir": state_dir})
        if config.state_dir is None:
            raise ConfigError("--state-dir is required (or state_dir in --config)")
        rpz = [spec for spec in config.exports if spec.format == "rpz"]
        serve = ServeConfig(
            state_dir=config.state_dir,
            host=host,
            port=port,
            zone=origin,
            admission=Admission(key, networks),
            notify=targets,
            notify_unsigned=unsigned,
            zonemd=zonemd,
            blockpage=rpz[0].blockpage if rpz else (),
            list_name=config.list or "",
        )
        asyncio.run(run(serve))
    except ClientError as e:
        click.echo(f"error: {e.reason}: {e}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as e:
        why = "port in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        click.echo(f"error: cannot listen on {listen}: {why}", err=True)
        sys.exit(EXIT_FAILED)
