"""Who may transfer the zone: a TSIG key (RFC 8945) or an address list.

The key file is BIND's syntax, as ``tsig-keygen`` writes it and as the
secondary's ``named.conf`` includes it::

    key "cleanfeed-xfr" {
        algorithm hmac-sha256;
        secret "base64…";
    };

Only one key; the file must be readable by the owner only (it is a
secret). The secret is never logged or echoed in an error.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import dns.name
import dns.tsig

from clients.errors import ConfigError

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "TSIG_ALGORITHMS",
    "Admission",
    "parse_cidrs",
    "parse_hostport",
    "read_key_file",
]

#: A key file is a few lines; anything larger is not one.
MAX_KEY_FILE_BYTES: Final = 4096
#: HMAC algorithms accepted (RFC 8945 section 6: SHA-256 is mandatory to
#: implement; MD5 and SHA-1 are deprecated there, so refused here).
TSIG_ALGORITHMS: Final = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
#: A secret shorter than this many octets is refused (RFC 8945 section 6:
#: at least half the hash output; 16 octets for SHA-256).
MIN_SECRET_OCTETS: Final = 16

_KEY_RE: Final = re.compile(
    r"""^\s*key\s+"?(?P<name>[A-Za-z0-9._-]+)"?\s*\{\s*
        (?P<body>[^{}]*)
        \}\s*;\s*$""",
    re.VERBOSE | re.DOTALL,
)
_CLAUSE_RE: Final = re.compile(r'^\s*(algorithm|secret)\s+"?([^";\s]+)"?\s*$')


def read_key_file(path: Path) -> dns.tsig.Key:
    """Read one TSIG key in BIND ``key`` statement syntax.

    Raises:
        ConfigError: unreadable, readable by others, not one ``key``
            statement, an unknown algorithm or a secret that is not base64
            or too short. The message names the file and the problem,
            never the secret.
    """
    try:
        st = path.stat()
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"TSIG key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as e:
        raise ConfigError(f"TSIG key file {path} is not ASCII text") from e
    except OSError as e:
        raise ConfigError(f"cannot read TSIG key file {path}: {e.strerror}") from e
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix":
        raise ConfigError(
            f"TSIG key file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
            "chmod 600 it: it is a secret"
        )
    # Comments as BIND writes them (#, //) are dropped line by line.
    lines = [re.split(r"#|//", line, maxsplit=1)[0] for line in text.splitlines()]
    m = _KEY_RE.match("\n".join(lines))
    if m is None:
        raise ConfigError(
            f'TSIG key file {path}: expected one `key "name" {{ algorithm hmac-sha256; '
            'secret "base64"; };` statement (as tsig-keygen writes it)'
        )
    clauses: dict[str, str] = {}
    for part in m.group("body").split(";"):
        if not part.strip():
            continue
        c = _CLAUSE_RE.match(part)
        if c is None:
            raise ConfigError(
                f"TSIG key file {path}: only `algorithm` and `secret` clauses are allowed"
            )
        clauses[c.group(1)] = c.group(2)
    algorithm = clauses.get("algorithm", "").lower()
    if algorithm not in TSIG_ALGORITHMS:
        raise ConfigError(
            f"TSIG key file {path}: algorithm must be one of {', '.join(TSIG_ALGORITHMS)}"
        )
    try:
        secret = base64.b64decode(clauses.get("secret", ""), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"TSIG key file {path}: the secret is not base64") from e
    if len(secret) < MIN_SECRET_OCTETS:
        raise ConfigError(
            f"TSIG key file {path}: the secret is shorter than {MIN_SECRET_OCTETS} octets"
        )
    name = dns.name.from_text(m.group("name"))
    return dns.tsig.Key(name, secret, TSIG_ALGORITHMS[algorithm])


def parse_cidrs(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``--allow-transfer`` values as networks (a bare address is a /32 or /128).

    Raises:
        ConfigError: a value is not an address or network, or has host bits
            set (``192.0.2.1/24`` is ambiguous: say ``192.0.2.0/24``).
    """
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=True))
        except ValueError as e:
            raise ConfigError(f"--allow-transfer {value!r:.60}: not a CIDR network ({e})") from e
    return tuple(out)


def parse_hostport(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` (an IP address, never a name: no DNS lookup).

    Raises:
        ConfigError: malformed, not an IP address, or port out of range.
    """
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r:.60}: expected IP:PORT or [IPV6]:PORT (an address, not a name)"
        ) from None
    if not sep or not 0 < number < 65536:
        raise ConfigError(f"{option} {value!r:.60}: port must be 1 to 65535")
    return host, number


@dataclass(frozen=True)
class Admission:
    """The transfer policy: a TSIG key, an address list, or both.

    Attributes:
        key: the configured TSIG key (None: address list only).
        networks: addresses allowed to transfer without a key.
    """

    key: dns.tsig.Key | None = None
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=())

    @property
    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        """The keyring for :func:`dns.message.from_wire` (empty: no key)."""
        return {} if self.key is None else {self.key.name: self.key}

    def admits(self, peer: str, signed: bool) -> str | None:
        """How a request is admitted (``"tsig"`` or ``"address"``), or None.

        ``signed`` means the request carried a TSIG that verified against
        the configured key (dnspython checked it while parsing).
        """
        if signed and self.key is not None:
            return "tsig"
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.networks):
            return "address"
        return None
