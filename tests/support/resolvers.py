"""dnsmasq and Unbound as loopback resolvers for the DNS export tests.

Used by tests/clients/isp/test_exports_tools.py (the resolver loads the
export) and tests/e2e/test_dns_blockpage.py (it answers with the block
page's address): foreground processes on 127.0.0.1 that read no system
configuration and forward nothing (the tests never touch the internet).
"""

from __future__ import annotations

from pathlib import Path


def write_unbound_conf(directory: Path, server: str, body: str) -> Path:
    """``directory/unbound.conf``: a ``server:`` clause run as the test's user.

    No chroot, no user switch, no pid file and no syslog, so it runs
    unprivileged in ``directory``; ``server`` adds clause lines, ``body``
    follows them (an include or more clauses).
    """
    conf = directory / "unbound.conf"
    conf.write_text(
        "server:\n"
        '    chroot: ""\n'
        '    username: ""\n'
        f'    directory: "{directory}"\n'
        '    pidfile: ""\n'
        "    use-syslog: no\n" + server + body
    )
    return conf


def dnsmasq_argv(dnsmasq: str, port: int, *extra: str) -> list[str]:
    """argv of ``dnsmasq`` serving UDP/TCP ``port`` on 127.0.0.1 only, plus ``extra``."""
    return [
        dnsmasq,
        "--keep-in-foreground",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        *extra,
    ]
