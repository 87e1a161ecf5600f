"""Configuration of the ISP client: a TOML file, flags and the environment.

STYLE.md, "Configuration is passed in, never imported": everything the
client needs is one :class:`IspConfig` value (python-tuf's ``UpdaterConfig``),
built by :func:`load_config` from, in rising precedence, the defaults, an
optional TOML file, the environment (``CLEANFEED_TOKEN``) and command-line
flags. Nothing here touches the network or the state directory.

Example file (every key optional; flags win)::

    server = "https://hotline.example"
    list = "main"
    token_file = "/etc/cleanfeed/token"
    root_keys = ["@/etc/cleanfeed/root.vkey"]
    state_dir = "/var/lib/cleanfeed"
    interval = 600
    long_poll = 55   # seconds a poll may be held by the server; 0: plain polling
    max_age = 2700
    ca_bundle = "/etc/ssl/certs/hotline-ca.pem"
    # allow_insecure_http = false  # clear-text http:// off loopback (warns every sync)
    plaintext = false
    prometheus_textfile = "/var/lib/node_exporter/cleanfeed.prom"

    [timeouts]
    connect = 10
    read = 30
    deadline = 600   # overall seconds per response

    [limits]
    statements_page = 8388608

    [witnesses]
    keys = ["witness.example+0123abcd+BASE64..."]
    quorum = 1

    [[exports]]
    format = "squid"
    output = "/etc/squid/cleanfeed"
    on_change = "squid -k reconfigure"

    [[exports]]
    format = "unbound"
    output = "/etc/unbound/cleanfeed.conf"
    on_change = "unbound-control reload"
    # answer blocked hosts with the block page's addresses, not NXDOMAIN
    blockpage = ["192.0.2.10", "2001:db8::10"]

HTTP(S) proxies come from the usual ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``NO_PROXY`` variables (httpx ``trust_env``), or ``proxy`` in the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from blocklist.checkpoint import validate_origin
from blocklist.errors import FormatError
from clients.common.credentials import TOKEN_ENV, read_token_file, read_vkey
from clients.common.http import check_server_url
from clients.common.limits import Limits, Timeouts
from clients.errors import ConfigError
from clients.isp.hits import HitsConfig, parse_hits_table

__all__ = [
    "DEFAULT_LONG_POLL",
    "DEFAULT_MAX_AGE",
    "MAX_FUTURE_SKEW",
    "TOKEN_ENV",
    "ExportSpec",
    "IspConfig",
    "Limits",
    "Timeouts",
    "load_config",
    "read_token_file",
    "read_toml",
    "read_vkey",
]


#: The signer's default checkpoint interval (DESIGN.md, checkpoint item 4).
DEFAULT_CHECKPOINT_INTERVAL: Final = 600.0
#: Freeze protection: 3 x the checkpoint interval + 15 minutes (DESIGN.md).
DEFAULT_MAX_AGE: Final = 3 * DEFAULT_CHECKPOINT_INTERVAL + 15 * 60
#: A checkpoint dated further than this in the future is stale (DESIGN.md):
#: tolerates clock skew, refuses a pre-signed "fresh forever" checkpoint.
MAX_FUTURE_SKEW: Final = 5 * 60.0
#: Poll interval default: the checkpoint interval (nothing is fresher).
DEFAULT_INTERVAL: Final = DEFAULT_CHECKPOINT_INTERVAL
#: Never poll faster than this, whatever the file says (be kind to the server).
MIN_INTERVAL: Final = 10.0
#: ``run`` long-polls by default (DESIGN.md, "Freshness"): the server holds
#: the checkpoint request up to this many seconds and answers as soon as a
#: new checkpoint exists, so a version is applied seconds after its publish.
DEFAULT_LONG_POLL: Final = 55
#: The server holds a request at most 55 s (DESIGN.md): a longer ask is moot.
MAX_LONG_POLL: Final = 55
#: Cap of the exponential back-off after errors: below the default max age, so
#: a client recovers before its list goes stale.
DEFAULT_MAX_BACKOFF: Final = 900.0


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """One export: a format of clients/isp/exports.py, a path, a hook."""

    format: str
    output: Path
    on_change: str | None = None
    #: DNS formats: the block page's addresses, answered instead of NXDOMAIN
    #: (clients/isp/exports.py ``check_blockpage``).
    blockpage: tuple[str, ...] = ()
    #: RFC 8914 Extended DNS Error code, 15 or 16 (``check_ede``).
    ede: int | None = None
    #: Write only each version's changes where the format allows it
    #: (``hashes``: a base file plus an append-only log, issue 19 item 4).
    incremental: bool = False


@dataclass(frozen=True, slots=True)
class IspConfig:
    """Everything the ISP client needs; built by :func:`load_config`."""

    server: str | None = None
    token: str | None = field(default=None, repr=False)
    list: str | None = None
    root_keys: tuple[str, ...] = ()
    state_dir: Path | None = None
    #: Expected list origin; when unset, pinned from the first verified keyring.
    origin: str | None = None
    interval: float = DEFAULT_INTERVAL
    #: ``run`` only: between scheduled syncs, hold a checkpoint request up
    #: to this many seconds and sync at once when it reports a change
    #: (0: plain polling; servers that do not long-poll get plain polling).
    long_poll: int = DEFAULT_LONG_POLL
    max_age: float = DEFAULT_MAX_AGE
    max_future_skew: float = MAX_FUTURE_SKEW
    #: Upper bound of the random delay before ``run``'s first poll.
    first_poll_jitter: float = 60.0
    max_backoff: float = DEFAULT_MAX_BACKOFF
    #: Seconds a second sync process waits for the state directory's lock.
    lock_timeout: float = 30.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    ca_bundle: Path | None = None
    proxy: str | None = None
    #: Accept a clear-text ``http://`` server that is not on loopback: the
    #: token and plaintext then travel unencrypted, so every sync logs a
    #: warning (docs/isp.md). Off by default (issue 12, item 5).
    allow_insecure_http: bool = False
    #: Fetch expressions (the token must be entitled to plaintext).
    plaintext: bool = False
    witnesses: tuple[str, ...] = ()
    witness_quorum: int = 0
    exports: tuple[ExportSpec, ...] = ()
    prometheus_textfile: Path | None = None
    #: Recompute the state digest from the stored hashes at most this often
    #: (seconds): catches silent local corruption without an O(N) cost per sync.
    full_check_interval: float = 24 * 3600.0
    #: Opt-in hit counts (``[hits]``): the block page counts, ``run`` posts.
    hits: HitsConfig = field(default_factory=HitsConfig)

    def require_sync(self) -> None:
        """Check that the fields a sync needs are present.

        Raises:
            ConfigError: server, list, root keys or state directory missing.
        """
        missing = [
            name
            for name, value in (
                ("--server", self.server),
                ("--list", self.list),
                ("--root-key", self.root_keys),
                ("--state-dir", self.state_dir),
            )
            if not value
        ]
        if missing:
            raise ConfigError("missing required setting(s): " + ", ".join(missing))

    @property
    def state_path(self) -> Path:
        """The state directory (raises if unset).

        Raises:
            ConfigError: no state directory configured.
        """
        if self.state_dir is None:
            raise ConfigError("missing required setting: --state-dir")
        return self.state_dir

    @property
    def list_name(self) -> str:
        """The list name (raises if unset).

        Raises:
            ConfigError: no list configured.
        """
        if not self.list:
            raise ConfigError("missing required setting: --list")
        return self.list


def _as_float(name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return float(value)


def _as_int(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _as_str_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}: expected a list of strings")
    return list(value)


def _number_table(name: str, table: Any, cls: type[Any], *, integer: bool) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[{name}]: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if integer:
            values[key] = _as_int(f"{name}.{key}", value, minimum=1)
        else:
            values[key] = _as_float(f"{name}.{key}", value, minimum=0.001)
    return cls(**values)


_FILE_KEYS: Final = frozenset(
    {
        "server",
        "token",
        "token_file",
        "list",
        "root_keys",
        "state_dir",
        "origin",
        "interval",
        "long_poll",
        "max_age",
        "first_poll_jitter",
        "max_backoff",
        "lock_timeout",
        "timeouts",
        "limits",
        "ca_bundle",
        "proxy",
        "allow_insecure_http",
        "plaintext",
        "witnesses",
        "exports",
        "prometheus_textfile",
        "full_check_interval",
        # Read by clients/isp/blockpage.py (``cleanfeed isp blockpage``).
        "blockpage",
        # Opt-in hit counts (clients/isp/hits.py).
        "hits",
    }
)


def _from_mapping(data: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """Translate a parsed TOML document into IspConfig keyword arguments."""
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")

    def path(value: Any, name: str) -> Path:
        p = Path(_as_str(name, value)).expanduser()
        return p if p.is_absolute() else base_dir / p

    out: dict[str, Any] = {}
    for key in ("server", "list", "origin", "proxy"):
        if key in data:
            out[key] = _as_str(key, data[key])
    if "token" in data:
        out["token"] = _as_str("token", data["token"])
    if "token_file" in data:
        out["token"] = read_token_file(path(data["token_file"], "token_file"))

    def key_ref(value: str) -> str:
        # "@file" in a configuration file is relative to that file.
        return "@" + str(path(value[1:], "key file")) if value.startswith("@") else value

    if "root_keys" in data:
        out["root_keys"] = tuple(key_ref(k) for k in _as_str_list("root_keys", data["root_keys"]))
    for key in ("state_dir", "ca_bundle", "prometheus_textfile"):
        if key in data:
            out[key] = path(data[key], key)
    for key in (
        "interval",
        "max_age",
        "first_poll_jitter",
        "max_backoff",
        "lock_timeout",
        "full_check_interval",
    ):
        if key in data:
            out[key] = _as_float(key, data[key])
    if "long_poll" in data:
        out["long_poll"] = _as_int("long_poll", data["long_poll"])
    for key in ("plaintext", "allow_insecure_http"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ConfigError(f"{key}: expected true or false")
            out[key] = data[key]
    if "hits" in data:
        out["hits"] = parse_hits_table(data["hits"])
    if "timeouts" in data:
        out["timeouts"] = _number_table("timeouts", data["timeouts"], Timeouts, integer=False)
    if "limits" in data:
        out["limits"] = _number_table("limits", data["limits"], Limits, integer=True)
    if "witnesses" in data:
        table = data["witnesses"]
        if not isinstance(table, dict) or set(table) - {"keys", "quorum"}:
            raise ConfigError("[witnesses] must be a table with 'keys' and 'quorum'")
        out["witnesses"] = tuple(
            key_ref(k) for k in _as_str_list("witnesses.keys", table.get("keys", []))
        )
        out["witness_quorum"] = _as_int("witnesses.quorum", table.get("quorum", 0))
    if "exports" in data:
        specs = data["exports"]
        if not isinstance(specs, list):
            raise ConfigError("exports must be an array of tables ([[exports]])")
        parsed: list[ExportSpec] = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict) or set(spec) - _EXPORT_KEYS:
                raise ConfigError(
                    f"exports[{i}]: keys are format, output, on_change, blockpage, ede, incremental"
                )
            on_change = spec.get("on_change")
            ede = spec.get("ede")
            incremental = spec.get("incremental", False)
            if not isinstance(incremental, bool):
                raise ConfigError(f"exports[{i}].incremental must be true or false")
            parsed.append(
                ExportSpec(
                    format=_as_str(f"exports[{i}].format", spec.get("format")),
                    output=path(spec.get("output"), f"exports[{i}].output"),
                    on_change=None if on_change is None else _as_str("on_change", on_change),
                    blockpage=tuple(
                        _as_str_list(f"exports[{i}].blockpage", spec.get("blockpage", []))
                    ),
                    # checked (and a keyword turned into its code) by _check_exports
                    ede=ede,
                    incremental=incremental,
                )
            )
        _check_exports(parsed)
        out["exports"] = tuple(parsed)
    return out


_EXPORT_KEYS: Final = frozenset(
    {"format", "output", "on_change", "blockpage", "ede", "incremental"}
)


def _check_exports(specs: list[ExportSpec]) -> None:
    """Refuse at load time what every sync would otherwise fail on after its commit.

    Normalises each export's ``blockpage`` addresses and ``ede`` code in place
    of the values read.

    Raises:
        ConfigError: an unknown format, two exports writing one path, a
            ``blockpage`` address that is not a usable IP address or on a
            format that cannot use it, an ``ede`` code other than 15 or 16
            or on a format whose resolver cannot carry it.
    """
    # the renderers: loaded only with exports
    from clients.isp.exports.formats import (
        FORMATS,
        INCREMENTAL_FORMATS,
        ExportError,
        check_blockpage,
        check_ede,
    )

    seen: dict[Path, int] = {}
    for i, spec in enumerate(specs):
        if spec.format not in FORMATS:
            raise ConfigError(
                f"exports[{i}].format: unknown export format {spec.format!r:.40}; "
                f"expected one of {', '.join(FORMATS)}"
            )
        if spec.output in seen:
            first = seen[spec.output]
            raise ConfigError(
                f"exports[{i}].output: {spec.output} is already the output of exports[{first}]"
            )
        seen[spec.output] = i
        if spec.incremental and spec.format not in INCREMENTAL_FORMATS:
            raise ConfigError(
                f"exports[{i}].incremental: only {', '.join(INCREMENTAL_FORMATS)} exports "
                f"are written incrementally, not {spec.format} (docs/isp.md, "
                '"Incremental exports")'
            )
        try:
            if spec.blockpage:  # an empty list: NXDOMAIN, as without the key
                specs[i] = replace(specs[i], blockpage=check_blockpage(spec.format, spec.blockpage))
            if spec.ede is not None:
                specs[i] = replace(specs[i], ede=check_ede(spec.format, spec.ede))
        except ExportError as e:
            raise ConfigError(f"exports[{i}].{e}") from e


#: Proxy URL schemes httpx speaks (SOCKS needs the optional socksio package).
PROXY_SCHEMES: Final = ("http", "https", "socks5", "socks5h")


def _check_proxy(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in PROXY_SCHEMES or not parts.netloc:
        raise ConfigError(
            f"proxy must be a URL with a scheme ({', '.join(PROXY_SCHEMES)}) and a host, "
            f"e.g. http://proxy.example.net:3128: {url!r}"
        )
    return url


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document of a configuration file (the ISP's and the block page's).

    Raises:
        ConfigError: the file cannot be read or is not valid TOML.
    """
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in {path}: {e}") from e


def load_config(
    config_file: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> IspConfig:
    """Build and validate the configuration.

    Precedence, lowest first: defaults, ``config_file``, the environment,
    ``overrides`` (command-line flags; ``None`` values are ignored). An
    override ``token_file`` is read here; root and witness keys given as
    ``@file`` are resolved and syntax-checked.

    Args:
        config_file: optional TOML file.
        overrides: IspConfig field names (plus ``token_file``) from flags.
        environ: the environment (default ``os.environ``).

    Raises:
        ConfigError: unreadable or invalid file, unknown keys, bad values.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_from_mapping(read_toml(config_file), config_file.resolve().parent))
    if env.get(TOKEN_ENV):
        values["token"] = env[TOKEN_ENV].strip()
    for key, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        if key == "token_file":
            values["token"] = read_token_file(Path(value))
        else:
            values[key] = value
    known = {f.name for f in fields(IspConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    config = IspConfig(**values)
    return _validate(config)


def _validate(config: IspConfig) -> IspConfig:
    updates: dict[str, Any] = {}
    if config.server is not None:
        updates["server"] = check_server_url(
            config.server, allow_insecure_http=config.allow_insecure_http
        )
    if config.root_keys:
        roots = tuple(read_vkey(k) for k in config.root_keys)
        if len(set(roots)) != len(roots):
            raise ConfigError("a root key is listed twice")
        updates["root_keys"] = roots
    if config.witnesses or config.witness_quorum:
        witnesses = tuple(read_vkey(k, witness=True) for k in config.witnesses)
        if not 0 <= config.witness_quorum <= len(witnesses):
            raise ConfigError(
                f"witness quorum {config.witness_quorum} exceeds the {len(witnesses)} "
                "witness key(s) configured"
            )
        updates["witnesses"] = witnesses
    if config.origin is not None:
        try:
            validate_origin(config.origin)
        except FormatError as e:
            raise ConfigError(str(e)) from e
    if config.interval < MIN_INTERVAL:
        raise ConfigError(f"interval must be at least {MIN_INTERVAL:g} s")
    if not 0 <= config.long_poll <= MAX_LONG_POLL:
        raise ConfigError(f"long_poll must be 0 (off) to {MAX_LONG_POLL} seconds")
    if config.max_age <= 0 or config.max_future_skew < 0:
        raise ConfigError("max_age must be positive")
    if config.token is not None and (not config.token or any(c.isspace() for c in config.token)):
        raise ConfigError("token must be non-empty and contain no whitespace")
    if config.state_dir is not None:
        updates["state_dir"] = Path(config.state_dir).expanduser()
    if config.proxy is not None:
        updates["proxy"] = _check_proxy(config.proxy)
    return replace(config, **updates) if updates else config
