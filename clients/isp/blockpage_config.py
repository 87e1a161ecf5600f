"""The block page's settings: the ``[blockpage]`` table, checked once.

:func:`load_blockpage_config` reads and validates the operator's settings
(links must be absolute http(s) URLs a page may show, the allowed client
networks parsed) into an immutable :class:`BlockPageConfig`
used by the page renderer and the server (:mod:`clients.isp.blockpage`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from clients.errors import ConfigError
from clients.isp.config import read_toml
from clients.isp.hits import HitsConfig, parse_hits_table

__all__ = [
    "DEFAULT_ALLOW_CLIENTS",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MESSAGE",
    "DEFAULT_TITLE",
    "BlockPageConfig",
    "load_blockpage_config",
    "parse_listen",
]

#: Client networks answered by default: loopback only, so that a server
#: started without a configuration answers nobody else (deployments list
#: their subscribers' networks in ``allow_clients``).
DEFAULT_ALLOW_CLIENTS: Final = ("127.0.0.0/8", "::1/128")


#: Open connections at most; a new one beyond that is closed at once.
DEFAULT_MAX_CONNECTIONS: Final = 1024


DEFAULT_TITLE: Final = "Access to this address has been blocked"


#: The deterrence message (issue 18: the material may be illegal). Plain
#: text; a custom one replaces it with ``message`` in the configuration.
DEFAULT_MESSAGE: Final = (
    "Access to this address was blocked because it may contain images of child sexual "
    "abuse. Viewing, downloading or sharing such material is illegal, and every image "
    "is a record of a crime against a real child."
)


@dataclass(frozen=True, slots=True)
class BlockPageConfig:
    """What the block page says and whom it answers (``[blockpage]`` in the TOML file)."""

    state_dir: Path | None = None
    listen: str | None = None
    allow_clients: tuple[str, ...] = DEFAULT_ALLOW_CLIENTS
    #: The ISP's page about its blocking: RFC 7725 ``Link rel="blocked-by"``.
    blocked_by: str | None = None
    isp_name: str = "your Internet provider"
    #: Who asked for the block; default: the host of the list's origin.
    hotline_name: str | None = None
    hotline_url: str | None = None
    #: Under what policy; default: the list, named by its origin.
    policy: str | None = None
    policy_url: str | None = None
    #: The hotline's public appeal form; the block_ref is added as a query
    #: parameter named ``appeal_parameter``.
    appeal_url: str | None = None
    appeal_parameter: str = "block_ref"
    help_line_name: str = "a confidential help line"
    help_line_url: str | None = None
    help_line_phone: str | None = None
    title: str = DEFAULT_TITLE
    message: str = DEFAULT_MESSAGE
    language: str = "en"
    #: A custom page (string.Template; see DEFAULT_TEMPLATE's placeholders).
    template: Path | None = None
    #: A custom stylesheet, served at STYLESHEET_PATH.
    stylesheet: Path | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Opt-in hit counts (the top-level ``[hits]`` table, not ``[blockpage]``).
    hits: HitsConfig = field(default_factory=HitsConfig)


_URL_KEYS: Final = ("blocked_by", "hotline_url", "policy_url", "appeal_url", "help_line_url")


_TEXT_KEYS: Final = (
    "listen",
    "isp_name",
    "hotline_name",
    "policy",
    "appeal_parameter",
    "help_line_name",
    "help_line_phone",
    "title",
    "message",
    "language",
)


_URL_UNSAFE_RE: Final = re.compile(r'[\x00-\x20"<>\\^`{|}\x7f-\U0010ffff]')


_LANGUAGE_RE: Final = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")  # RFC 5646, loosely


def _check_url(name: str, value: str) -> str:
    # Only absolute http(s) links: a javascript: or data: URL on the page
    # would be script the CSP has to stop; a relative one would point at
    # the blocked origin itself.
    if _URL_UNSAFE_RE.search(value):
        # RFC 3986 leaves these out of URLs; in the Link header or an href
        # they would end the value early (or, CR/LF, split the header).
        raise ConfigError(
            f"blockpage.{name}: characters a URL cannot hold (spaces, quotes, <, >, controls); "
            "percent-encode them"
        )
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"blockpage.{name}: expected an absolute http(s) URL, got {value!r}")
    if parts.fragment:
        raise ConfigError(f"blockpage.{name}: no #fragment, please")
    return value


def load_blockpage_config(
    config_file: Path | None = None, *, overrides: Mapping[str, Any] | None = None
) -> BlockPageConfig:
    """Read the block page's settings: ``state_dir`` and the ``[blockpage]`` table.

    The file is the ISP client's own TOML configuration (clients/isp/config.py
    reads the rest of it); relative paths are relative to the file. Unknown
    keys in ``[blockpage]`` are refused, like everywhere in that file.

    Args:
        config_file: the TOML file, or None for the defaults.
        overrides: field values from flags (None values are ignored).

    Raises:
        ConfigError: unreadable file, unknown keys, bad values, an
            unreadable or invalid template.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_from_mapping(read_toml(config_file), config_file.resolve().parent))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    config = BlockPageConfig(**values)
    if config.state_dir is not None:
        config = replace(config, state_dir=Path(config.state_dir).expanduser())
    _networks(config.allow_clients)  # fail at start, not at the first client
    return config


def _from_mapping(data: Mapping[str, Any], base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def path(name: str, value: Any) -> Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: expected a path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    if "state_dir" in data:
        out["state_dir"] = path("state_dir", data["state_dir"])
    if "hits" in data:
        out["hits"] = parse_hits_table(data["hits"])
    table = data.get("blockpage", {})
    if not isinstance(table, dict):
        raise ConfigError("[blockpage] must be a table")
    known = {f.name for f in fields(BlockPageConfig)} - {"state_dir", "hits"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[blockpage]: unknown key(s) {', '.join(unknown)}")
    for key, value in table.items():
        if key in _URL_KEYS:
            if not isinstance(value, str):
                raise ConfigError(f"blockpage.{key}: expected a URL")
            out[key] = _check_url(key, value)
        elif key in _TEXT_KEYS:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"blockpage.{key}: expected a non-empty string")
            out[key] = value.strip()
        elif key in ("template", "stylesheet"):
            out[key] = path(f"blockpage.{key}", value)
        elif key == "allow_clients":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError("blockpage.allow_clients: expected a list of networks (CIDR)")
            out[key] = tuple(value)
        elif key == "max_connections":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError("blockpage.max_connections: expected a positive integer")
            out[key] = value
    if "language" in out and not _LANGUAGE_RE.fullmatch(out["language"]):
        raise ConfigError(f"blockpage.language: not a language tag: {out['language']!r}")
    return out


def _networks(
    specs: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for spec in specs:
        try:
            nets.append(ipaddress.ip_network(spec, strict=True))
        except ValueError as e:
            raise ConfigError(f"blockpage.allow_clients: {e}") from e
    return tuple(nets)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as a host and a port.

    Raises:
        ConfigError: not of that shape, or a port outside 0-65535.
    """
    m = re.fullmatch(
        r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d{1,5})|(?P<h>[^:\[\]]+):(?P<p>\d{1,5})", value
    )
    if m is None:
        raise ConfigError(f"--listen: expected HOST:PORT or [IPV6]:PORT, got {value!r}")
    host = m.group("v6") or m.group("h")
    port = int(m.group("p6") or m.group("p"))
    if port > 65535:
        raise ConfigError(f"--listen: port {port} is out of range")
    return host, port
