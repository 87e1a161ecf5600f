"""``cleanfeed isp blockpage``: the page a DNS export sends blocked hosts to.

DESIGN.md part 2, "Enforcement at the ISP", block page; issue 18 item 2.
A resolver fed by a DNS export (RPZ, Unbound, dnsmasq, hosts) answers a
listed host with this server's address; the browser then asks this server
for the page, with the blocked name in ``Host``. The answer is:

- HTTP 451 Unavailable For Legal Reasons (RFC 7725 section 3) with
  ``Link: <the ISP's page>; rel="blocked-by"`` (section 4: blocked-by names
  who implements the block, the ISP), and a page that says who asked for
  the block (the hotline) and under what policy, the matched entry's
  ``block_ref`` (:mod:`blocklist.blockref`), a deterrence message, a
  confidential help line and how to appeal (the hotline's form with the
  ``block_ref`` filled in; the listed URL is never a link);
- a plain 404 for everything else.

Oracle protection (Clayton 2005): only **host** entries are looked up, from
the ``Host`` name alone. The path is never read: answering a listed page
URL sent here would let anyone who can reach the server test any URL
against the list's page entries. Lookups are the Safe Browsing host
suffixes (:func:`blocklist.canonical.expressions` of ``http://HOST/``) with
path ``/``, which are exactly the expressions of host entries (DESIGN.md,
"Entries": ``host/`` needs scope ``host``).

Privacy (DESIGN.md part 2, "Privacy by default"): nothing about a request
is logged or kept: no client address, no ``Host``, no path; an unexpected
error is logged by its type only. The one exception is opt-in and holds
none of those: with ``[hits] enabled = true`` each 451 answer to a GET adds
one to a count per ``block_ref`` per ISO week (:mod:`clients.isp.hits`;
the canary is never counted). No cookie is set, every
answer is ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``,
the page loads nothing from a third party and runs no script (its
Content-Security-Policy allows one stylesheet from the page's own origin).

Only configured client networks are answered (default: loopback); any
other peer's connection is closed unanswered, so the server is no oracle
for the Internet at large either.

Fresh state without a restart: every lookup reads the committed set from
the state database (SQLite WAL readers see the last committed version), so
a sync that commits is in force on the next request. A watcher re-opens the
database when the file was replaced and logs the version now served.

The server is asyncio with h11 (the HTTP/1.1 state machine httpx itself
uses, so it is part of the base install): no web framework on the ISP's
machine. Page templates use :class:`string.Template` with every value
HTML-escaped: a custom template holds placeholders, never logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import ipaddress
import logging
import os
import re
import signal
import string
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from sqlite3 import Error as SqliteError
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import h11

from blocklist.blockref import block_ref
from blocklist.canonical import expressions, split_expression
from blocklist.errors import InvalidURL
from clients.errors import ClientError, ConfigError, NotInitialised
from clients.isp.hits import FLUSH_INTERVAL, HitCounter, HitsConfig, parse_hits_table
from clients.isp.store import DB_NAME, StateStore

log = logging.getLogger("cleanfeed.blockpage")

#: Client networks answered by default: loopback only, so that a server
#: started without a configuration answers nobody else (deployments list
#: their subscribers' networks in ``allow_clients``).
DEFAULT_ALLOW_CLIENTS: Final = ("127.0.0.0/8", "::1/128")
#: Largest request head (request line and headers) accepted: browsers send
#: a few KiB; more is an attack on memory. h11 checks it on each incomplete
#: read (max_incomplete_event_size), so a head is refused with 431 once the
#: buffer passes it: at most this plus one READ_CHUNK is ever held.
MAX_REQUEST_HEAD: Final = 16 * 1024
#: Request body bytes read and discarded before the connection is closed
#: (GET and HEAD carry no body; a client sending one gets no more room).
MAX_DISCARDED_BODY: Final = 64 * 1024
#: Seconds to receive a whole request head, or to wait idle between two
#: requests of a keep-alive connection (slow-loris protection).
REQUEST_TIMEOUT: Final = 10.0
#: After an error answer, how long and how much of the rest of the request
#: is read and dropped so that closing does not reset the connection.
LINGER_SECONDS: Final = 2.0
LINGER_BYTES: Final = 256 * 1024
#: Open connections at most; a new one beyond that is closed at once.
DEFAULT_MAX_CONNECTIONS: Final = 1024
#: Bytes read from the socket at a time.
READ_CHUNK: Final = 16 * 1024
#: Seconds between checks of the state file (replaced file, new version).
WATCH_INTERVAL: Final = 1.0
#: Longest Host name looked up (RFC 1035 section 2.3.4: 253 characters of
#: name, plus a bracketed IPv6 literal and a port fit in 300).
MAX_HOST_CHARS: Final = 300
#: Path of the page's stylesheet on the blocked origin (CSP style-src 'self').
STYLESHEET_PATH: Final = "/.cleanfeed-blockpage.css"

#: ``Host`` values looked up: a DNS name (letters, digits, ``-``, ``_``,
#: dots) or a bracketed IPv6 literal, with an optional port (RFC 9110
#: section 7.2 and RFC 3986 section 3.2.2). Anything else (``%``, ``@``,
#: ``/``...) cannot be a host a DNS export sent here: 404.
_HOST_RE: Final = re.compile(
    r"(?P<host>[A-Za-z0-9_.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?"
)

#: RFC 9110 section 9.3.1 / 9.3.2: the only methods a page answers.
_ALLOWED_METHODS: Final = frozenset({b"GET", b"HEAD"})

#: The strictest policy the page allows itself: nothing but its own
#: stylesheet; no script, image, frame, form or base URL (CSP Level 3).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

#: Headers of every answer: no caching of anything on a blocked origin, no
#: Referer leaking the blocked host to the help line or the appeal form.
_COMMON_HEADERS: Final = (
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)

DEFAULT_TITLE: Final = "Access to this address has been blocked"
#: The deterrence message (issue 18: the material may be illegal). Plain
#: text; a custom one replaces it with ``message`` in the configuration.
DEFAULT_MESSAGE: Final = (
    "Access to this address was blocked because it may contain images of child sexual "
    "abuse. Viewing, downloading or sharing such material is illegal, and every image "
    "is a record of a crime against a real child."
)

#: The default page. Placeholders: plain values (HTML-escaped before they
#: are put in): $title, $message, $block_ref, $language, $stylesheet,
#: $isp_name, $hotline_name, $policy; HTML built by the server from escaped
#: values: $who_html, $help_html, $appeal_html. ``$$`` is a dollar sign.
DEFAULT_TEMPLATE: Final = """\
<!DOCTYPE html>
<html lang="$language">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>$title</title>
<link rel="stylesheet" href="$stylesheet">
</head>
<body>
<main>
<h1>$title</h1>
<p class="warning">$message</p>

<h2>Who blocked it</h2>
<p>$who_html</p>
<p>Block reference: <strong class="ref">$block_ref</strong></p>

<h2>Confidential help</h2>
<p>$help_html</p>

<h2>If you think this is a mistake</h2>
<p>$appeal_html</p>
</main>
</body>
</html>
"""

DEFAULT_STYLESHEET: Final = """\
/* cleanfeed block page: served by the block page itself (CSP style-src 'self'). */
html { font-family: system-ui, sans-serif; line-height: 1.5; color: #1a1a1a; background: #f3f3f3; }
main { max-width: 40rem; margin: 3rem auto; padding: 1.5rem 2rem; background: #fff;
       border-top: 0.5rem solid #a4001d; }
h1 { font-size: 1.6rem; margin-top: 0.5rem; }
h2 { font-size: 1.1rem; margin-bottom: 0.25rem; }
.warning { font-size: 1.1rem; }
.ref { font-family: ui-monospace, monospace; font-size: 1.2rem; letter-spacing: 0.05em; }
a { color: #0b4f9c; }
"""


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
        try:
            with config_file.open("rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read configuration {config_file}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"invalid TOML in {config_file}: {e}") from e
        values.update(_from_mapping(data, config_file.resolve().parent))
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


# --- the page ---------------------------------------------------------------------


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'


def appeal_link(appeal_url: str, parameter: str, ref: str) -> str:
    """The hotline's appeal form URL with the reference as a query parameter."""
    parts = urlsplit(appeal_url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (parameter, ref)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class PageContext:
    """Who and what the page names, resolved once per served version."""

    hotline_name: str
    policy: str


class PageRenderer:
    """Renders the 451 page; the template is checked once, at start.

    Args:
        config: the block page settings.

    Raises:
        ConfigError: the template cannot be read, is not UTF-8, or uses a
            placeholder that does not exist.
    """

    def __init__(self, config: BlockPageConfig) -> None:
        self._config = config
        self._template = string.Template(_read_text(config.template, DEFAULT_TEMPLATE, "template"))
        self.stylesheet = _read_text(config.stylesheet, DEFAULT_STYLESHEET, "stylesheet").encode()
        # Catch a typo in a custom template now rather than on a user's screen.
        sample = block_ref(bytes(32))
        try:
            page = self.render(sample, PageContext("hotline", "policy"))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"blockpage template: unknown or malformed placeholder {e}") from e
        if sample.encode() not in page:
            # The reference is what lets a visitor appeal: a page without it
            # leaves only the "outcry" route of 2008 (DESIGN.md part 2).
            raise ConfigError("blockpage template: it must show $block_ref")

    def render(self, ref: str, context: PageContext) -> bytes:
        """The page for one block reference, as UTF-8.

        Raises:
            KeyError: the template names an unknown placeholder.
            ValueError: the template holds a malformed placeholder.
        """
        values = page_values(self._config, ref, context)
        return self._template.substitute(values).encode("utf-8")


def page_values(c: BlockPageConfig, ref: str, context: PageContext) -> dict[str, str]:
    """The placeholders' values for one block reference, HTML-escaped.

    Shared with the Squid error page (:mod:`clients.isp.squid_template`),
    so both pages say the same thing.
    """
    esc = html.escape
    hotline = (
        _link(c.hotline_url, context.hotline_name) if c.hotline_url else esc(context.hotline_name)
    )
    policy = _link(c.policy_url, context.policy) if c.policy_url else esc(context.policy)
    isp = _link(c.blocked_by, c.isp_name) if c.blocked_by else esc(c.isp_name)
    who = (
        f"{hotline} asked for this address to be blocked, under {policy}. "
        f"The block is implemented by {isp}."
    )
    contacts = []
    if c.help_line_url:
        contacts.append(_link(c.help_line_url, c.help_line_url))
    if c.help_line_phone:
        contacts.append(f"phone {esc(c.help_line_phone)}")
    reach = f": {', '.join(contacts)}" if contacts else "."
    help_html = (
        "If you are worried about your own thoughts or behaviour online, or about "
        f"someone else's, you can talk to {esc(c.help_line_name)} in confidence{reach}"
    )
    if c.appeal_url:
        form = appeal_link(c.appeal_url, c.appeal_parameter, ref)
        appeal = (
            f"Ask {hotline} to review the block with its appeal form: "
            f"{_link(form, form)}. The form needs the block reference {esc(ref)}."
        )
    else:
        appeal = f"Ask {hotline} to review the block, quoting the block reference {esc(ref)}."
    values = {
        "title": esc(c.title),
        "message": esc(c.message),
        "block_ref": esc(ref),
        "language": esc(c.language),
        "stylesheet": esc(STYLESHEET_PATH),
        "isp_name": esc(c.isp_name),
        "hotline_name": esc(context.hotline_name),
        "policy": esc(context.policy),
        "who_html": who,
        "help_html": help_html,
        "appeal_html": appeal,
    }
    return values


def _read_text(path: Path | None, default: str, what: str) -> str:
    if path is None:
        return default
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read blockpage {what} {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"blockpage {what} {path} is not UTF-8") from e


# --- the lookup -------------------------------------------------------------------


def host_expressions(host: str) -> list[str]:
    """The host-entry expressions a ``Host`` name can match, most specific first.

    Only expressions whose path is ``/``: those of host entries. A page or
    prefix entry can never match here, whatever was requested.

    Raises:
        InvalidURL: ``host`` is not a host name.
    """
    m = _HOST_RE.fullmatch(host) if len(host) <= MAX_HOST_CHARS else None
    if m is None:
        raise InvalidURL("not a host name")
    found = []
    for expr in expressions(f"http://{m.group('host')}/"):
        # Belt and braces: the URL has path "/", so every expression should
        # be host/; never probe one that is not.
        name, path = split_expression(expr)
        if path == "/" and name:
            found.append(expr)
    return found


class HostIndex:
    """Host entries of the verified state, read from the committed database.

    Every lookup runs in its own read transaction, so it sees the last
    committed version: a sync that commits needs no reload here. ``watch``
    re-opens the database when its file was replaced (a state directory
    rebuilt from scratch) and reports the version in force.

    Args:
        state_dir: the ISP client's state directory.

    Raises:
        NotInitialised: no state there, or no verified list yet.
        LocalStateError: the database cannot be opened.
    """

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._store, self._file_id = self._open()
        self.version: int | None = None
        self.origin: str = ""
        self._read_meta()
        if self.version is None:
            self._store.close()
            raise NotInitialised(f"no verified list in {state_dir} yet: run a sync first")

    def _open(self) -> tuple[StateStore, tuple[int, int]]:
        store = StateStore(self._dir, create=False)
        st = os.stat(self._dir / DB_NAME)
        return store, (st.st_dev, st.st_ino)

    def _read_meta(self) -> None:
        version = self._store.get_meta("version")
        origin = self._store.get_meta("origin")
        self.version = version if isinstance(version, int) else None
        self.origin = origin if isinstance(origin, str) else ""

    def close(self) -> None:
        """Close the database."""
        self._store.close()

    def lookup(self, host: str) -> bytes | None:
        """The hash of the first listed host expression of ``host``, if any.

        Raises:
            InvalidURL: ``host`` is not a host name (a caller answers 404).
            LocalStateError: the database cannot be read.
        """
        exprs = host_expressions(host)
        table = self._store.hash_table()
        with self._store.reading():
            for expr in exprs:
                h = _sha256(expr)
                if h in table:
                    return h
        return None

    def watch(self) -> bool:
        """Re-open a replaced database and re-read the version in force.

        Returns:
            Whether the version changed.

        Raises:
            ClientError: the state cannot be opened or read.
            OSError: the database file cannot be examined.
        """
        st = os.stat(self._dir / DB_NAME)
        if (st.st_dev, st.st_ino) != self._file_id:
            store, file_id = self._open()
            self._store.close()
            self._store, self._file_id = store, file_id
        before = self.version
        self._read_meta()
        return self.version != before


def _sha256(expr: str) -> bytes:
    return hashlib.sha256(expr.encode("utf-8")).digest()


# --- HTTP ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, headers, body (the body of a GET)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    close: bool = False


def _plain(status: int, text: str, *extra: tuple[str, str], close: bool = False) -> Answer:
    body = (text + "\n").encode("ascii")
    headers = (("Content-Type", "text/plain; charset=utf-8"), *_COMMON_HEADERS, *extra)
    return Answer(status, headers, body, close)


NOT_FOUND: Final = _plain(404, "Not Found")
METHOD_NOT_ALLOWED: Final = _plain(405, "Method Not Allowed", ("Allow", "GET, HEAD"), close=True)
BAD_REQUEST: Final = _plain(400, "Bad Request", close=True)
UNAVAILABLE: Final = _plain(503, "Service Unavailable", ("Retry-After", "10"))


@dataclass
class BlockPage:
    """Decides the answer to one request; no sockets here.

    Args:
        config: the settings.
        index: the host entries in force.
    """

    config: BlockPageConfig
    index: HostIndex
    #: Opt-in hit counts (None: nothing is counted).
    counter: HitCounter | None = None
    renderer: PageRenderer = field(init=False)
    _headers: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        self.renderer = PageRenderer(self.config)
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Language", self.config.language),
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            *_COMMON_HEADERS,
        ]
        if self.config.blocked_by:
            # RFC 7725 section 4: identifies the entity implementing the block.
            headers.append(("Link", f'<{self.config.blocked_by}>; rel="blocked-by"'))
        self._headers = tuple(headers)

    def context(self) -> PageContext:
        """Who asked for the block and under what policy, for the version in force."""
        origin = self.index.origin
        return PageContext(
            hotline_name=self.config.hotline_name or origin.split("/", 1)[0] or "the hotline",
            policy=self.config.policy or f"the blocklist {origin}",
        )

    def answer(self, method: bytes, target: bytes, host: str | None) -> Answer:
        """The answer to one request.

        Args:
            method: the request method.
            target: the request target (only its authority is read, when
                it is in absolute form; the path never is).
            host: the ``Host`` header, or None.
        """
        if method not in _ALLOWED_METHODS:
            return METHOD_NOT_ALLOWED
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            # RFC 9112 section 3.2.2: an absolute-form target's authority
            # replaces the Host header.
            host = urlsplit(target.decode("ascii", "replace")).netloc
        if not host:
            return BAD_REQUEST
        try:
            h = self.index.lookup(host)
        except InvalidURL:
            return NOT_FOUND
        except (ClientError, OSError, SqliteError):
            return UNAVAILABLE
        if h is None:
            return NOT_FOUND
        if target.split(b"?", 1)[0] == STYLESHEET_PATH.encode():
            css = (("Content-Type", "text/css; charset=utf-8"), *_COMMON_HEADERS)
            return Answer(200, css, self.renderer.stylesheet)
        if self.counter is not None and method == b"GET":
            # One hit per page shown (HEAD shows no page); only the week and
            # the block_ref are kept (clients/isp/hits.py).
            self.counter.hit(h)
        # RFC 7725 section 3: 451 for a resource blocked by a legal demand.
        return Answer(451, self._headers, self.renderer.render(block_ref(h), self.context()))


class BlockPageServer:
    """The asyncio HTTP/1.1 server around :class:`BlockPage`.

    Args:
        page: the decisions.
        host: address to listen on.
        port: port (0: any free one; see :attr:`port` after :meth:`start`).
    """

    def __init__(self, page: BlockPage, host: str, port: int) -> None:
        self.page = page
        self._host = host
        self._port = port
        self._allowed = _networks(page.config.allow_clients)
        self._server: asyncio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The port actually bound."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start answering.

        Raises:
            OSError: the address cannot be bound.
        """
        self._server = await asyncio.start_server(
            self._connection, self._host, self._port, reuse_address=True, limit=READ_CHUNK
        )
        self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()  # keep-alive connections end with the server
            await self._server.wait_closed()
        self.page.index.close()
        if self.page.counter is not None:
            self.page.counter.close()

    async def _watch(self) -> None:
        since_flush = 0.0
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            since_flush += WATCH_INTERVAL
            if self.page.counter is not None and since_flush >= FLUSH_INTERVAL:
                since_flush = 0.0
                try:
                    self.page.counter.flush()
                except ClientError as e:
                    log.warning("cannot save hit counts: %s", type(e).__name__)
            try:
                if self.page.index.watch():
                    log.info("serving version %s", self.page.index.version)
            except (ClientError, OSError, SqliteError) as e:
                # The previous connection keeps serving the last good state.
                log.warning("cannot re-read the state: %s", type(e).__name__)

    def _admitted(self, peer: object) -> bool:
        if not isinstance(peer, tuple) or not peer:
            return False  # not an IP socket: nobody configured it
        try:
            addr = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # a dual-stack socket's IPv4 client
        return any(addr in net for net in self._allowed)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Only configured client networks are answered; others are closed
        # without a byte, and nothing about them is logged.
        if (
            not self._admitted(writer.get_extra_info("peername"))
            or len(self._writers) >= self.page.config.max_connections
        ):
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass  # the client went away or misbehaved: nothing to report
        except Exception as e:  # never a traceback: it could carry request data
            log.error("internal error answering a request: %s", type(e).__name__)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        while True:
            # Slow-loris protection: a whole request head, or the idle time
            # before the next one, within REQUEST_TIMEOUT.
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    event = await self._next(conn, reader)
            except h11.RemoteProtocolError as e:
                # A malformed or oversized request head: say so (400, or 431
                # for a head over MAX_REQUEST_HEAD, h11's hint) and close.
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = e.error_status_hint
                    reason = "Request Header Fields Too Large" if status == 431 else "Bad Request"
                    await self._send(conn, writer, _plain(status, reason, close=True), head=False)
                    await _linger(reader, writer)
                return
            if isinstance(event, h11.ConnectionClosed):
                return
            if not isinstance(event, h11.Request):
                return
            host = None
            hosts = [v for k, v in event.headers if k == b"host"]
            if len(hosts) == 1:
                host = hosts[0].decode("ascii", "replace")
            if len(hosts) > 1:
                answer = BAD_REQUEST  # RFC 9112 section 3.2: exactly one Host
            else:
                answer = self.page.answer(event.method, event.target, host)
            await self._send(conn, writer, answer, head=event.method == b"HEAD")
            if answer.close or conn.our_state is not h11.DONE:
                if conn.their_state is not h11.DONE:
                    await _linger(reader, writer)
                return
            # Discard any request body, within a bound, then keep alive.
            discarded = 0
            async with asyncio.timeout(REQUEST_TIMEOUT):
                while conn.their_state is not h11.DONE:
                    ev = await self._next(conn, reader)
                    if isinstance(ev, h11.Data):
                        discarded += len(ev.data)
                        if discarded > MAX_DISCARDED_BODY:
                            return
                    elif not isinstance(ev, h11.EndOfMessage):
                        return
            conn.start_next_cycle()  # both sides DONE: keep the connection alive

    @staticmethod
    async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await reader.read(READ_CHUNK)
            conn.receive_data(data)

    @staticmethod
    async def _send(
        conn: h11.Connection, writer: asyncio.StreamWriter, answer: Answer, *, head: bool
    ) -> None:
        headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
        if answer.close:
            headers.append(("Connection", "close"))
        out = conn.send(h11.Response(status_code=answer.status, headers=headers)) or b""
        if not head:
            out += conn.send(h11.Data(data=answer.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        writer.write(out)
        await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close our side, then read what the client is still sending, within bounds.

    Closing a socket with unread data makes the kernel send a reset, which
    can destroy the error answer before the client reads it (the "lingering
    close" of RFC 9112 section 9.6).
    """
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    drained = 0
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES and (chunk := await reader.read(READ_CHUNK)):
                drained += len(chunk)


async def open_server(config: BlockPageConfig, host: str, port: int) -> BlockPageServer:
    """Open the state, check the settings and start answering on ``host:port``.

    The state database is opened in the running loop's thread (SQLite
    connections stay in the thread that made them); :meth:`BlockPageServer.close`
    closes it.

    Raises:
        ClientError: the state cannot be opened or holds no verified list.
        ConfigError: a bad setting or template.
        OSError: the address cannot be bound.
    """
    if config.state_dir is None:
        raise ConfigError("missing required setting: --state-dir")
    index = HostIndex(config.state_dir)
    counter = HitCounter(config.state_dir, config.hits) if config.hits.enabled else None
    try:
        server = BlockPageServer(BlockPage(config, index, counter), host, port)
        await server.start()
    except BaseException:
        index.close()
        raise
    if not config.blocked_by:
        log.warning("no blocked_by URL configured: answers carry no RFC 7725 Link header")
    if not config.appeal_url:
        log.warning("no appeal_url configured: the page cannot link the appeal form")
    log.info(
        "cleanfeed blockpage listening on %s port %d, serving version %s",
        host,
        server.port,
        index.version,
    )
    return server


async def serve(config: BlockPageConfig, host: str, port: int) -> int:
    """Run the block page until SIGTERM or SIGINT.

    Returns:
        The exit status (0).

    Raises:
        ClientError: the state cannot be opened or holds no verified list.
        ConfigError: a bad setting or template.
        OSError: the address cannot be bound.
    """
    server = await open_server(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
    log.info("cleanfeed blockpage stopped")
    return 0


def main(config: BlockPageConfig) -> int:
    """Entry point of ``cleanfeed isp blockpage`` (after option parsing).

    Raises:
        ClientError: as :func:`serve`.
        OSError: as :func:`serve`.
    """
    if config.listen is None:
        raise ConfigError("missing required setting: --listen HOST:PORT (or blockpage.listen)")
    host, port = parse_listen(config.listen)
    return asyncio.run(serve(config, host, port))


__all__: Sequence[str] = (
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_TEMPLATE",
    "STYLESHEET_PATH",
    "Answer",
    "BlockPage",
    "BlockPageConfig",
    "BlockPageServer",
    "HostIndex",
    "PageRenderer",
    "appeal_link",
    "host_expressions",
    "load_blockpage_config",
    "main",
    "open_server",
    "parse_listen",
    "serve",
)
