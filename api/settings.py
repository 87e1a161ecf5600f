"""Server settings: pydantic-settings with the ``CLEANFEED_`` prefix.

Precedence, highest first: values passed by the caller (the CLI's flags),
``CLEANFEED_*`` environment variables, ``DATA_DIR/settings.toml``
(docs/architecture.md, "Data directory"), then the defaults below.

The defaults are those of the embedded, zero-configuration mode
(``cleanfeed serve`` with no arguments: SQLite under the data directory, the
signer in the same process). ``environment = "production"`` refuses the
defaults that are only safe on a developer's machine, with a message that
says which variable to set (STYLE.md: "a validator that refuses default
secrets outside dev mode").
"""

from __future__ import annotations

import contextvars
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from api.bodygate import DEFAULT_BODY_GRACE_SECONDS, DEFAULT_BODY_MIN_RATE
from blocklist.store.retention import MAX_RETENTION_DAYS, RetentionPolicy
from signer.hosting import DEFAULT_DNS_TIMEOUT_SECONDS

__all__ = [
    "DEFAULT_ADMIN_BURST",
    "DEFAULT_ADMIN_RATE",
    "DEFAULT_ANALYST_BURST",
    "DEFAULT_ANALYST_RATE",
    "DEFAULT_AUDITOR_BURST",
    "DEFAULT_AUDITOR_RATE",
    "MAX_AUTH_CACHE_TTL_SECONDS",
    "SETTINGS_FILE",
    "SQLITE_FILE",
    "Settings",
    "SettingsError",
    "describe_validation_error",
    "load_settings",
    "parse_resolver",
]

#: Upper bound of the authorisation cache's lifetime: DESIGN.md, "API shape":
#: a revoked token must stop working within a few seconds.
MAX_AUTH_CACHE_TTL_SECONDS = 5.0

#: Per-role rate limits (issue 13, item 7). ISPs keep 2/s with a burst of 120
#: (``rate_limit_*``): they poll every minute or so. Analysts script their
#: work: 20/s after a burst of 1,000 lets a loop of single adds run without
#: waiting for its first thousand calls and keeps a runaway script from
#: starving ISPs; bulk routes take 10,000 rows per call. Auditors walk
#: statement pages and proofs of a whole log; admins issue tokens.
DEFAULT_ANALYST_RATE = 20.0
DEFAULT_ANALYST_BURST = 1_000
DEFAULT_AUDITOR_RATE = 10.0
DEFAULT_AUDITOR_BURST = 300
DEFAULT_ADMIN_RATE = 10.0
DEFAULT_ADMIN_BURST = 120

#: Name of the optional settings file inside the data directory.
SETTINGS_FILE = "settings.toml"

#: Name of the SQLite database of the embedded default.
SQLITE_FILE = "cleanfeed.db"

# The TOML file depends on the data directory, which is itself a setting; the
# loader passes the path to the source through this variable.
_TOML_PATH: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "cleanfeed_settings_toml", default=None
)


def parse_resolver(value: str) -> tuple[str, int]:
    """``address[:port]`` (IPv6 in brackets with a port) -> (address, port).

    Raises:
        ValueError: not an IP address with an optional port 1..65535.
    """
    import ipaddress

    host, port = value, 53
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("write an IPv6 resolver as [address]:port")
        if rest:
            port = _port(rest[1:])
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        port = _port(text)
    try:
        ipaddress.ip_address(host)
    except ValueError as e:
        raise ValueError("must be 'system' or a resolver's IP address with an optional port") from e
    return host, port


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("the resolver's port must be 1..65535")
    return int(text)


#: Largest request bucket a role may be given.
_MAX_BUCKET = 1_000_000


def _refill_rate(default: float, role: str) -> Any:
    """The field of one role's refill rate (requests/s; 0 disables that limit)."""
    return Field(
        default=default,
        ge=0,
        description=f"{role} tokens: refill rate (requests/s); 0 disables this limit.",
    )


def _bucket_size(default: int, role: str) -> Any:
    """The field of one role's bucket size (the burst it may send at once)."""
    return Field(default=default, ge=1, le=_MAX_BUCKET, description=f"{role} tokens: bucket size.")


class SettingsError(ValueError):
    """Settings that cannot be used; the message says what to change."""

    code = "invalid_settings"


class Settings(BaseSettings):
    """Everything the API process (and the embedded signer) is configured by.

    Every field can be set as ``CLEANFEED_<FIELD>`` in the environment or as
    ``<field> = ...`` in ``DATA_DIR/settings.toml``.
    """

    model_config = SettingsConfigDict(
        env_prefix="CLEANFEED_",
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    environment: Literal["dev", "production"] = Field(
        default="dev",
        description="'production' refuses the embedded defaults (SQLite, in-process signer).",
    )
    data_dir: Path = Field(
        default=Path("./cleanfeed-data"),
        description="Data directory: database (embedded), keys, admin token, settings.toml.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///DATA_DIR/cleanfeed.db.",
    )
    default_list: str = Field(default="main", min_length=1, max_length=64)
    signer: bool = Field(
        default=True,
        description="Run the publisher in this process (embedded default). "
        "False = --no-signer: the API never reads private keys.",
    )
    schedule: bool = Field(
        default=True,
        description="With the embedded signer: publish and re-sign on a schedule "
        "(false: only POST .../publish cuts versions; tests).",
    )
    publish_interval: float = Field(
        default=60.0, gt=0, le=86_400, description="Seconds between embedded publish runs."
    )
    checkpoint_interval: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Seconds between checkpoint re-signatures (DESIGN.md: default 10 min).",
    )
    snapshot_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="Prune snapshots of versions superseded more than this many days ago "
        "(unset: keep every snapshot). Statements are kept forever.",
    )
    plaintext_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="Erase the plaintext of entries off the list for more than this many "
        "days (unset: keep it). Hashes and decisions are kept forever.",
    )
    publish_wait_timeout: float = Field(
        default=10.0,
        ge=0,
        le=120,
        description="How long POST .../publish waits for an external signer before 202.",
    )
    min_wait_seconds: int = Field(
        default=60,
        ge=0,
        le=86_400,
        description="Minimum poll interval advertised in Cleanfeed-Min-Wait.",
    )
    rate_limit_per_second: float = Field(
        default=2.0,
        ge=0,
        description="ISP tokens (and anonymous reads of a public list, per client address): "
        "refill rate of the request bucket; 0 disables this limit.",
    )
    rate_limit_burst: int = _bucket_size(120, "ISP")
    analyst_rate_limit_per_second: float = _refill_rate(DEFAULT_ANALYST_RATE, "Analyst")
    analyst_rate_limit_burst: int = _bucket_size(DEFAULT_ANALYST_BURST, "Analyst")
    auditor_rate_limit_per_second: float = _refill_rate(DEFAULT_AUDITOR_RATE, "Auditor")
    auditor_rate_limit_burst: int = _bucket_size(DEFAULT_AUDITOR_BURST, "Auditor")
    admin_rate_limit_per_second: float = _refill_rate(DEFAULT_ADMIN_RATE, "Admin")
    admin_rate_limit_burst: int = _bucket_size(DEFAULT_ADMIN_BURST, "Admin")
    auth_cache_ttl: float = Field(
        default=MAX_AUTH_CACHE_TTL_SECONDS,
        ge=0,
        description="Seconds a successful token lookup is reused (at most 5).",
    )
    checkpoint_cache_ttl: float = Field(
        default=1.0,
        ge=0,
        le=5,
        description="Seconds the current checkpoint note is served from memory.",
    )
    flush_interval: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds between batched writes of token last use and ISP versions.",
    )
    hits_min_count: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="Threshold k of posted hit counts: a count below it is refused "
        "(privacy floor, DESIGN.md part 2 'Hit counts').",
    )
    # --- persons' accounts and console sessions (issue 15) ---
    public_url: str | None = Field(
        default=None,
        max_length=255,
        description="Public base URL of this server as people reach it (e.g. "
        "https://hotline.example.org), used in enrolment links; unset: http://127.0.0.1:8080.",
    )
    session_idle_timeout: float = Field(
        default=1800.0,
        gt=0,
        le=86_400,
        description="Seconds a console session may stay unused before it ends (30 min).",
    )
    session_absolute_timeout: float = Field(
        default=43_200.0,
        gt=0,
        le=7 * 86_400,
        description="Seconds after login a console session ends however busy (12 h).",
    )
    enrolment_link_hours: int = Field(
        default=72,
        ge=1,
        le=24 * 31,
        description="Hours an enrolment link (account create, account reset) stays valid.",
    )
    # --- end of accounts ---
    # --- hosting evidence (issue 16 item 3; docs/safeguards.md) ---
    hosting_resolver: str | None = Field(
        default=None,
        max_length=80,
        description="Resolver asked for an entry's host at entry time: 'system' "
        "(/etc/resolv.conf) or an address with an optional port ('192.0.2.53', "
        "'192.0.2.53:5353', '[2001:db8::53]:53'). Unset: hosts are not resolved and the "
        "analyst's hosting_country stands, marked unverified.",
    )
    hosting_dns_timeout: float = Field(
        default=DEFAULT_DNS_TIMEOUT_SECONDS,
        gt=0,
        le=30,
        description="Seconds the resolution of one host may take before it counts as "
        "failed (unverified).",
    )
    hosting_country_db: Path | None = Field(
        default=None,
        description="MaxMind-format (MMDB) country database file; unset: the RIR "
        "delegation data shipped in the iptocc package.",
    )
    hosting_cdn_networks: Path | None = Field(
        default=None,
        description="File of CDN and anycast networks (one CIDR per line) whose "
        "addresses count as unknown; unset: the shipped list.",
    )
    # --- end hosting evidence ---
    # --- appeals (issue 17; docs/appeals.md) ---
    appeal_burst: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="Appeals one client address may file in a burst (token bucket; whole "
        "ISPs share proxy addresses, so this limits bursts, not the daily total).",
    )
    appeal_refill_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="Seconds for one address's appeal bucket to regain one appeal.",
    )
    appeal_cap_per_hour: int = Field(
        default=200,
        ge=0,
        le=10_000_000,
        description="Most new appeals per hour across the service (0: no cap); beyond it "
        "the intake answers 429 and keeps every appeal already filed.",
    )
    appeal_cap_per_day: int = Field(
        default=2000,
        ge=0,
        le=100_000_000,
        description="Most new appeals per day across the service (0: no cap).",
    )
    appeal_dedup_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 365,
        description="An appeal with the same reference or URL and message filed within "
        "this many hours collapses onto the earlier one.",
    )
    appeal_overdue_days: int = Field(
        default=14,
        ge=1,
        le=3650,
        description="Appeals under review longer than this stand out (field 'overdue', "
        "metric cleanfeed_appeals_overdue).",
    )
    appeal_retention_days: int = Field(
        default=365,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="Days after an appeal is closed that its appellant's message, contact "
        "and URL are kept (the audit records, by id, stay).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_logs: bool = True
    docs: bool | None = Field(
        default=None,
        description="Serve OpenAPI at /docs and /openapi.json (unset: on in dev, off when "
        "environment is 'production', where admins would paste tokens into it).",
    )
    body_min_rate: int = Field(
        default=DEFAULT_BODY_MIN_RATE,
        ge=0,
        le=1 << 30,
        description="Minimum average bytes/second of a request body after "
        "body_grace_seconds; slower bodies are cut off with 408 (0 disables).",
    )
    body_grace_seconds: float = Field(
        default=DEFAULT_BODY_GRACE_SECONDS,
        gt=0,
        le=600,
        description="Seconds a request body may take before body_min_rate applies.",
    )

    # --- re-verification (issue 16 item 4; docs/reverification.md) ---
    reverify_config: Path | None = Field(
        default=None,
        description="TOML file configuring re-verification of active entries (vantage points: "
        "egress proxies and resolvers, cadence, limits, auto_expire_gone); unset: off. "
        "Read by the embedded signer; `cleanfeed signer run --reverify-config` for a daemon.",
    )
    # --- end re-verification ---

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Caller values, then environment, then ``DATA_DIR/settings.toml``."""
        toml = _TOML_PATH.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @field_validator("auth_cache_ttl")
    @classmethod
    def _auth_cache_bound(cls, value: float) -> float:
        if value > MAX_AUTH_CACHE_TTL_SECONDS:
            raise ValueError(
                f"must be at most {MAX_AUTH_CACHE_TTL_SECONDS:g} seconds so a revoked token "
                "stops working quickly; set CLEANFEED_AUTH_CACHE_TTL to 5 or less"
            )
        return value

    @field_validator("reverify_config")
    @classmethod
    def _reverify_config_valid(cls, value: Path | None) -> Path | None:
        # Refused at start with the key to fix, not at the first scheduled run.
        if value is not None:
            from signer.reverify import ReverifyConfigError, load_config

            try:
                load_config(value)
            except ReverifyConfigError as e:
                raise ValueError(str(e)) from e
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if (
            scheme not in ("http", "https")
            or not sep
            or not rest
            or any(c.isspace() or c in "?#" for c in value)
        ):
            raise ValueError(
                "use an http(s) URL without query or fragment, e.g. https://hotline.example.org"
            )
        return value.rstrip("/")

    @field_validator("hosting_resolver")
    @classmethod
    def _hosting_resolver(cls, value: str | None) -> str | None:
        if value is None or value == "system":
            return value
        parse_resolver(value)
        return value

    @field_validator("default_list")
    @classmethod
    def _list_name(cls, value: str) -> str:
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
            raise ValueError("use only ASCII letters, digits, '-' and '_' (e.g. 'main')")
        return value

    @model_validator(mode="after")
    def _refuse_dev_defaults(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if self.database_url is None:
            problems.append(
                "the embedded SQLite database is a development default: set "
                "CLEANFEED_DATABASE_URL (e.g. postgresql+psycopg://user@db/cleanfeed)"
            )
        if self.signer:
            problems.append(
                "the in-process signer would make the API hold the private signing key: "
                "set CLEANFEED_SIGNER=false (or pass --no-signer) and run `cleanfeed signer run`"
            )
        if problems:
            raise ValueError("environment=production: " + "; ".join(problems))
        return self

    @property
    def docs_enabled(self) -> bool:
        """Whether ``/docs`` and ``/openapi.json`` are served (issue 12, item 12)."""
        if self.docs is not None:
            return self.docs
        return self.environment != "production"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.data_dir / SQLITE_FILE).resolve()}"

    @property
    def retention(self) -> RetentionPolicy:
        """The retention policy of :mod:`blocklist.store.retention` these settings give."""
        return RetentionPolicy(
            snapshot_days=self.snapshot_retention_days,
            plaintext_days=self.plaintext_retention_days,
        )

    def rate_limit_for(self, role: str) -> tuple[float, int]:
        """``(requests per second, burst)`` of a role; ISP's for anything else."""
        if role == "analyst":
            return self.analyst_rate_limit_per_second, self.analyst_rate_limit_burst
        if role == "auditor":
            return self.auditor_rate_limit_per_second, self.auditor_rate_limit_burst
        if role == "admin":
            return self.admin_rate_limit_per_second, self.admin_rate_limit_burst
        return self.rate_limit_per_second, self.rate_limit_burst

    @property
    def keys_dir(self) -> Path:
        """``DATA_DIR/keys`` (docs/architecture.md, "Data directory")."""
        return self.data_dir / "keys"

    @property
    def account_secrets_file(self) -> Path:
        """``DATA_DIR/account-secrets.key``: seals TOTP secrets (mode 0600, issue 15)."""
        return self.data_dir / "account-secrets.key"

    @property
    def enrol_base_url(self) -> str:
        """Base of enrolment links: ``public_url``, else the local default server."""
        return self.public_url or "http://127.0.0.1:8080"

    @property
    def admin_token_file(self) -> Path:
        """``DATA_DIR/admin-token``, the first admin token (mode 0600)."""
        return self.data_dir / "admin-token"


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build validated settings for a data directory.

    Args:
        data_dir: the data directory; ``None`` uses ``CLEANFEED_DATA_DIR`` or
            the default. Its ``settings.toml``, if present, is read.
        **overrides: values that win over the environment and the file
            (the CLI passes only the flags the user actually gave).

    Raises:
        SettingsError: a value is invalid; the message names each offending
            setting, its environment variable and what to change.
    """
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    probe_dir = data_dir
    if probe_dir is None:
        try:
            probe_dir = Settings(**values).data_dir
        except ValidationError:
            probe_dir = None
    toml_path = probe_dir / SETTINGS_FILE if probe_dir is not None else None
    if toml_path is not None and toml_path.exists():
        try:
            with toml_path.open("rb") as f:
                tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{toml_path}: not valid TOML: {e}") from e
    token = _TOML_PATH.set(toml_path if toml_path is not None and toml_path.exists() else None)
    try:
        return Settings(**values)
    except ValidationError as e:
        raise SettingsError(describe_validation_error(e)) from e
    finally:
        _TOML_PATH.reset(token)


def describe_validation_error(error: ValidationError) -> str:
    """Turn a pydantic error into lines naming the variable to fix."""
    lines = ["invalid settings:"]
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "settings"
        env = f"CLEANFEED_{loc.upper()}" if item["loc"] else "settings"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc} ({env}): {message}")
    return "\n".join(lines)
