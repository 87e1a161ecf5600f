"""Inputs of the ISP exports shared by the export tests.

``tests/clients/isp/test_exports.py`` checks the rendered files in Python;
``test_exports_tools.py`` feeds the same inputs to the real consumers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from blocklist.canonical import expression_hash
from clients.isp.exports.formats import ExportInput

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# Hosts no DNS file may carry, as canonicalisation produces them.
WEIRD_HOSTS = {
    "%01%80.com/": b"http://\x01\x80.com/",  # SB v4 example: escaped bytes in a host
    "host%23.com/": "http://host%23.com/",
    "x!$.example/": "http://x!$.example/",
    ("a" * 64) + ".example/": "http://" + "a" * 64 + ".example/",  # 64-octet label
    ".".join(["b" * 63] * 4) + ".example/": "http://" + ".".join(["b" * 63] * 4) + ".example/",
}


def make_input(
    exprs: list[str],
    *,
    version: int = 7,
    plaintext: bool = True,
    generated: datetime = WHEN,
) -> ExportInput:
    hashes = [expression_hash(e) for e in exprs]
    return ExportInput(
        version=version,
        hashes=hashes,
        expressions={h: e for h, e in zip(hashes, exprs, strict=True)} if plaintext else None,
        list_name="main",
        origin="hotline.example/main",
        generated=generated,
    )


DNS_MIX = [
    "example.com/",
    "www.example.org/",
    "a_b.example.net/",  # underscore: legal in DNS
    "-x.example/",
    "a.b.c.d.e.example/",  # six labels
    "example.com/page.html",  # page: not enforceable by DNS
    "example.org/dir/",  # prefix: not enforceable by DNS
    "192.0.2.1/",
    "[2001:db8::1]/",
    "localhost/",  # single label
    *WEIRD_HOSTS,
]
