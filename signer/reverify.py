"""Re-verification job: re-check active entries from one or more vantage points.

DESIGN.md part 2, "Safeguards", Re-verification (issue 16 item 4). Run by
the signer's process on a schedule (:class:`api.signer_service.SignerService`
embedded, ``cleanfeed signer run --reverify-config`` as a daemon). For each
active entry (never the canary), from each configured vantage point:

1. DNS: A and AAAA queries of the entry's host through the vantage point's
   resolver (dnspython). NXDOMAIN (RFC 8020) means gone.
2. One HTTP(S) request that reads the status line and the header fields
   only: ``HEAD`` (RFC 9110 section 9.3.2), and, when the origin refuses
   HEAD (405, 501), a ``GET`` whose response is closed right after its
   header section: the body is never iterated, stored or logged (the
   connection is dropped with it, so an origin streaming an endless body
   sends no more than the socket buffers hold). Redirects are not followed
   (a redirect to another host is the ``moved`` verdict itself).

Through the vantage point's egress proxy when one is configured (the
proxy resolves the name itself; docs/reverification.md gives the Squid
egress configuration), else straight to the first address DNS returned,
with the entry's host in ``Host`` and in TLS SNI.

Limits (each a named constant and a setting): a timeout per DNS query and
per connect/read, an overall deadline per request (a listed site may drip
its headers a byte per read timeout), at most ``concurrency`` checks at once (each check holds
one connection at a time, so the origins see at most that many), and at
most one request per ``per_host_interval`` seconds to one host across all
vantage points.

SSRF: a listed name may point at the hotline's own networks. Direct checks
connect only to globally routable addresses unless
``allow_private_addresses`` is set (loopback tests); a proxy applies its
own ACL (docs/reverification.md).

Privacy: log lines and metrics name entries by id and carry verdicts, never
a URL, a host or a body.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import dns.exception
import dns.rdatatype
import dns.resolver
import httpx

from blocklist.httpdeadline import deadline, install_deadline
from blocklist.store import lists as store_lists
from blocklist.store import verification as store_verification
from blocklist.store.db import Database
from blocklist.verification import (
    DNS_NOADDRESS,
    DNS_NXDOMAIN,
    DNS_OK,
    DNS_UNREACHABLE,
    Observation,
    VerificationState,
    advance,
)
from signer.errors import SignerError

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE_SECONDS",
    "DEFAULT_GONE_THRESHOLD",
    "DEFAULT_INTERVAL_SECONDS",
    "DEFAULT_MAX_UNVERIFIED_DAYS",
    "DEFAULT_PER_HOST_INTERVAL_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "HEAD_REFUSED_STATUSES",
    "MAX_CONCURRENCY",
    "USER_AGENT",
    "Checker",
    "HostPacer",
    "ListRun",
    "Reverifier",
    "ReverifyConfig",
    "ReverifyConfigError",
    "VantagePoint",
    "load_config",
    "parse_config",
]

log = logging.getLogger("cleanfeed.reverify")

#: Seconds between runs: daily. Content that went yesterday can wait a day;
#: checking more often only adds load on origins the hotline does not own.
DEFAULT_INTERVAL_SECONDS: Final = 86_400.0
#: ``k``: gone this many consecutive checks before the analysts are asked
#: (one 404 is often a blip: a deploy, a moved page).
DEFAULT_GONE_THRESHOLD: Final = 3
#: Flag an entry not seen live for this many days (stale lists: Denmark
#: 2008, ACMA 2009).
DEFAULT_MAX_UNVERIFIED_DAYS: Final = 30
#: Checks at once: enough to cover a large list in a day at the per-host
#: rate, few enough not to look like a scan from the egress address.
DEFAULT_CONCURRENCY: Final = 4
#: Upper bound of ``concurrency`` (threads of the signer process).
MAX_CONCURRENCY: Final = 64
#: Fewest seconds between two requests to one host: a list often holds
#: many pages of one site, and the checks must never load it.
DEFAULT_PER_HOST_INTERVAL_SECONDS: Final = 10.0
#: Seconds for a DNS query, a connect, or one read (the status line and the
#: header section; h11 caps the header section at 64 KiB).
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
#: Seconds one request may take in all (connect, TLS, status line and
#: headers): httpx's timeouts are per read, and a listed site is an
#: adversary that can drip one header byte per read timeout to hold a
#: worker for days (h11 allows 64 KiB of header section).
DEFAULT_DEADLINE_SECONDS: Final = 30.0
#: Entries checked per list per run, least recently checked first, so one
#: run stays bounded whatever the list's size.
DEFAULT_BATCH: Final = 1000
#: Statuses with which an origin refuses HEAD (RFC 9110 sections 15.5.6,
#: 15.6.2): retry with a GET closed after its header section.
HEAD_REFUSED_STATUSES: Final = frozenset({405, 501})
#: Sent with every check; names the purpose so operators can ask.
USER_AGENT: Final = "cleanfeed-reverify/1 (blocklist re-verification; headers only)"


class ReverifyConfigError(SignerError):
    """The re-verification configuration cannot be used; the message says what to fix."""

    code = "invalid_reverify_config"


@dataclass(frozen=True)
class VantagePoint:
    """Where checks are made from: an egress proxy and/or a resolver.

    ``proxy``: ``http://host:port`` of an egress proxy (None: direct).
    ``resolver``: ``address`` or ``address:port`` (``[v6]:port``) of the
    DNS resolver to ask (None: the system's ``/etc/resolv.conf``).
    """

    name: str
    proxy: str | None = None
    resolver: str | None = None


@dataclass(frozen=True)
class ReverifyConfig:
    """Everything the job is configured by (docs/reverification.md)."""

    vantage_points: tuple[VantagePoint, ...] = (VantagePoint("default"),)
    interval: float = DEFAULT_INTERVAL_SECONDS
    gone_threshold: int = DEFAULT_GONE_THRESHOLD
    max_unverified_days: int = DEFAULT_MAX_UNVERIFIED_DAYS
    auto_expire_gone: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    per_host_interval: float = DEFAULT_PER_HOST_INTERVAL_SECONDS
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    deadline: float = DEFAULT_DEADLINE_SECONDS
    batch: int = DEFAULT_BATCH
    #: Direct checks (no proxy) may connect to loopback, private, link-local
    #: and other non-global addresses. Off by default: a listed name whose
    #: owner points it at 127.0.0.1 or 10.x would otherwise turn the signer
    #: into a probe of the hotline's own network (SSRF). Tests on loopback
    #: turn it on; a proxy applies its own ACL (docs/reverification.md).
    allow_private_addresses: bool = False


_KEYS: Final = {
    "interval_seconds": ("interval", float, 1.0, 30 * 86_400.0),
    "gone_threshold": ("gone_threshold", int, 1, 100),
    "max_unverified_days": ("max_unverified_days", int, 1, 3650),
    "concurrency": ("concurrency", int, 1, MAX_CONCURRENCY),
    "per_host_interval_seconds": ("per_host_interval", float, 0.0, 86_400.0),
    "timeout_seconds": ("timeout", float, 0.1, 300.0),
    "deadline_seconds": ("deadline", float, 0.1, 3600.0),
    "batch": ("batch", int, 1, 1_000_000),
}


def _number(key: str, value: object, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReverifyConfigError(f"{key}: must be a number, not {value!r}")
    if kind is int and not isinstance(value, int):
        raise ReverifyConfigError(f"{key}: must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise ReverifyConfigError(f"{key}: must be between {low:g} and {high:g}, not {value!r}")
    return kind(value)


def _resolver_address(text: str) -> tuple[str, int]:
    """``address``, ``address:port`` or ``[v6]:port`` -> ``(address, port)``.

    Raises:
        ValueError: not an IP address with an optional port.
    """
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError("port out of range")
    return host, port


def _vantage_point(index: int, item: object) -> VantagePoint:
    where = f"vantage_point[{index}]"
    if not isinstance(item, Mapping):
        raise ReverifyConfigError(f"{where}: must be a table with name, proxy and/or resolver")
    unknown = sorted(set(item) - {"name", "proxy", "resolver"})
    if unknown:
        raise ReverifyConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = item.get("name")
    if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
        raise ReverifyConfigError(f"{where}: name must be 1..64 printable characters")
    proxy = item.get("proxy")
    if proxy is not None:
        if not isinstance(proxy, str) or not proxy.startswith(("http://", "https://")):
            raise ReverifyConfigError(f"{where}: proxy must be an http:// or https:// URL")
        try:
            httpx.URL(proxy)
        except httpx.InvalidURL as e:
            raise ReverifyConfigError(f"{where}: proxy is not a valid URL: {e}") from e
    resolver = item.get("resolver")
    if resolver is not None:
        if not isinstance(resolver, str):
            raise ReverifyConfigError(f"{where}: resolver must be a string")
        try:
            _resolver_address(resolver)
        except ValueError as e:
            raise ReverifyConfigError(
                f"{where}: resolver must be an IP address with an optional port "
                f"(192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53): {e}"
            ) from e
    return VantagePoint(name=name, proxy=proxy, resolver=resolver)


def parse_config(data: Mapping[str, Any]) -> ReverifyConfig:
    """Validate a configuration mapping (the TOML file's content).

    Raises:
        ReverifyConfigError: an unknown key, a value out of range, two
            vantage points with one name, or ``auto_expire_gone`` with fewer
            than two vantage points.
    """
    flags = {"auto_expire_gone", "allow_private_addresses", "vantage_point"}
    unknown = sorted(set(data) - set(_KEYS) - flags)
    if unknown:
        raise ReverifyConfigError(f"unknown key(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, (attr, kind, low, high) in _KEYS.items():
        if key in data:
            values[attr] = _number(key, data[key], kind, low, high)
    auto = data.get("auto_expire_gone", False)
    if not isinstance(auto, bool):
        raise ReverifyConfigError("auto_expire_gone: must be true or false")
    private = data.get("allow_private_addresses", False)
    if not isinstance(private, bool):
        raise ReverifyConfigError("allow_private_addresses: must be true or false")
    values["allow_private_addresses"] = private
    raw = data.get("vantage_point", [])
    if not isinstance(raw, list):
        raise ReverifyConfigError("vantage_point: must be an array of tables ([[vantage_point]])")
    points = tuple(_vantage_point(i, item) for i, item in enumerate(raw))
    if len({p.name for p in points}) != len(points):
        raise ReverifyConfigError("vantage_point: two vantage points have the same name")
    if auto and len(points) < 2:
        # DESIGN.md: a system expiry needs two independent vantage points to
        # agree, since a site can hide from one hotline address.
        raise ReverifyConfigError(
            "auto_expire_gone needs at least two [[vantage_point]] tables (two egress proxies "
            "or resolvers) that must agree before the system expires an entry"
        )
    if points:
        values["vantage_points"] = points
    return ReverifyConfig(auto_expire_gone=auto, **values)


def load_config(path: Path) -> ReverifyConfig:
    """Read and validate a re-verification TOML file.

    Raises:
        ReverifyConfigError: unreadable, not TOML, or invalid (message says
            which key to fix).
    """
    try:
        with Path(path).open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ReverifyConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ReverifyConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        return parse_config(data)
    except ReverifyConfigError as e:
        raise ReverifyConfigError(f"{path}: {e}") from e


class HostPacer:
    """At most one request per ``interval`` seconds to one host (all threads)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        """Block until this thread may send the next request to ``host``."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self.interval
        delay = slot - now
        if delay > 0:
            time.sleep(delay)


def _target_url(raw: str) -> httpx.URL:
    """The entry's URL as a request target (a scheme-less entry is http://)."""
    text = raw if "://" in raw else f"http://{raw}"
    url = httpx.URL(text)
    # The fragment never reaches a server; userinfo must not either.
    return url.copy_with(fragment=None, username=None, password=None)


def _error_name(error: Exception) -> str:
    """A fixed, URL-free description of a transport failure."""
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ProxyError):
        return "proxy"
    if isinstance(error, httpx.ConnectError):
        return "connect"
    if isinstance(error, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)):
        return "reset"
    return "transport"


class Checker:
    """Makes the DNS and HTTP observations of one run (thread-safe)."""

    def __init__(self, config: ReverifyConfig) -> None:
        self.config = config
        self.pacer = HostPacer(config.per_host_interval)
        self._clients: dict[str, httpx.Client] = {}
        self._resolvers: dict[str, dns.resolver.Resolver] = {}
        for point in config.vantage_points:
            self._clients[point.name] = httpx.Client(
                proxy=point.proxy,
                # Only the configured egress: never HTTP(S)_PROXY from the
                # environment, never a .netrc.
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(config.timeout),
                limits=httpx.Limits(
                    max_connections=config.concurrency, max_keepalive_connections=0
                ),
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
            )
            install_deadline(self._clients[point.name])
            self._resolvers[point.name] = self._resolver(point)

    def _resolver(self, point: VantagePoint) -> dns.resolver.Resolver:
        if point.resolver is None:
            resolver = dns.resolver.Resolver()
        else:
            address, port = _resolver_address(point.resolver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address]
            resolver.port = port
        resolver.lifetime = self.config.timeout
        resolver.timeout = self.config.timeout
        return resolver

    def close(self) -> None:
        """Close every HTTP client."""
        for client in self._clients.values():
            client.close()

    def resolve(self, point: VantagePoint, host: str) -> tuple[str, tuple[str, ...]]:
        """``(dns outcome, addresses)`` of ``host`` from ``point``'s resolver."""
        try:
            return DNS_OK, (str(ipaddress.ip_address(host.strip("[]"))),)
        except ValueError:
            pass  # a name, not an address literal
        resolver = self._resolvers[point.name]
        addresses: list[str] = []
        answered = False
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = resolver.resolve(host, rdtype, search=False)
            except dns.resolver.NXDOMAIN:
                # RFC 8020: nothing exists at or below the name.
                return DNS_NXDOMAIN, ()
            except dns.resolver.NoAnswer:
                answered = True
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.exception.DNSException):
                continue
            answered = True
            addresses.extend(str(r) for r in answer)
        if addresses:
            return DNS_OK, tuple(addresses)
        return (DNS_NOADDRESS if answered else DNS_UNREACHABLE), ()

    def _request(
        self, point: VantagePoint, method: str, url: httpx.URL, host: str, address: str
    ) -> tuple[int, str | None]:
        client = self._clients[point.name]
        headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        target = url
        if point.proxy is None:
            # Straight to the address this vantage point's resolver gave,
            # so the check sees what that resolver sees; Host and SNI name
            # the entry's host (RFC 9110 section 7.2, RFC 6066 section 3).
            target = url.copy_with(host=address)
            headers["Host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                extensions["sni_hostname"] = url.host
        self.pacer.wait(host)
        request = client.build_request(method, target, headers=headers, extensions=extensions)
        # The overall deadline (blocklist.httpdeadline): each worker thread
        # has its own, as the deadline is a context variable.
        with deadline(self.config.deadline):
            # stream=True: only the status line and header section are read.
            # Leaving without reading the body closes the response, and with
            # it the connection (keep-alive is off): the body is never read.
            response = client.send(request, stream=True)
            try:
                return response.status_code, response.headers.get("location")
            finally:
                response.close()

    def observe(self, point: VantagePoint, raw_url: str, host: str) -> Observation:
        """One vantage point's observation of one entry (never raises for the network)."""
        dns_outcome, addresses = self.resolve(point, host)
        if dns_outcome != DNS_OK:
            return Observation(point.name, dns_outcome, addresses)
        try:
            url = _target_url(raw_url)
        except httpx.InvalidURL:
            return Observation(point.name, dns_outcome, addresses, error="url")
        usable = addresses
        if point.proxy is None and not self.config.allow_private_addresses:
            # SSRF: never connect into the hotline's own networks because a
            # listed name points there (the proxy's ACL does this for proxied
            # checks).
            usable = tuple(a for a in addresses if ipaddress.ip_address(a).is_global)
            if not usable:
                return Observation(point.name, dns_outcome, addresses, error="private_address")
        try:
            status, location = self._request(point, "HEAD", url, host, usable[0])
            if status in HEAD_REFUSED_STATUSES:
                status, location = self._request(point, "GET", url, host, usable[0])
        except httpx.HTTPError as e:
            return Observation(point.name, dns_outcome, addresses, error=_error_name(e))
        moved_to: str | None = None
        if location is not None and 300 <= status < 400:
            try:
                moved = url.join(location).host.lower()
            except httpx.InvalidURL:
                moved = None
            if moved and moved != url.host.lower():
                moved_to = moved
        return Observation(
            point.name, dns_outcome, addresses, http_status=status, location_host=moved_to
        )

    def check(self, raw_url: str, host: str) -> list[Observation]:
        """Every vantage point's observation of one entry, one after the other."""
        return [self.observe(point, raw_url, host) for point in self.config.vantage_points]

    def check_many(self, items: Iterable[tuple[int, str, str]]) -> dict[int, list[Observation]]:
        """Check ``(key, url, host)`` items, at most ``concurrency`` at once."""
        with ThreadPoolExecutor(
            max_workers=self.config.concurrency, thread_name_prefix="reverify"
        ) as pool:
            futures = {key: pool.submit(self.check, url, host) for key, url, host in items}
            return {key: future.result() for key, future in futures.items()}


@dataclass
class ListRun:
    """What one run did for one list (counts only: no URL)."""

    list_name: str
    checked: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    proposed: int = 0
    expired: int = 0
    referrals: int = 0
    flagged: int = 0
    seconds: float = 0.0


class Reverifier:
    """The scheduled job: check each list's due entries and record the outcomes."""

    def __init__(
        self,
        db: Database,
        config: ReverifyConfig,
        *,
        locate: Callable[[str], str | None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Prepare the job.

        Args:
            db: the database.
            config: the validated configuration.
            locate: address -> ISO country code, None for unknown (a CDN or
                anycast network); enables referral proposals when the list
                has a home country (the safeguards' hosting locator).
            clock: the current time (tests move it forward).
        """
        self.db = db
        self.config = config
        self.locate = locate
        self.clock = clock

    def run_list(self, list_name: str) -> ListRun:
        """Check up to ``batch`` entries of one list and record each outcome.

        Raises:
            NotFound: no such list.
            StoreError: the database refused a write.
        """
        started = self.clock()
        began = time.monotonic()
        with self.db.read() as session:
            lst = store_lists.get_list(session, list_name)
            list_id = lst.id
            home = lst.home_country
            targets = store_verification.targets(session, list_id, limit=self.config.batch)
        run = ListRun(list_name)
        checker = Checker(self.config)
        try:
            observed = checker.check_many((t.entry_id, t.url, t.host) for t in targets)
        finally:
            checker.close()
        for target in targets:
            self._record(run, list_id, home, target, observed[target.entry_id])
        run.seconds = time.monotonic() - began
        with self.db.transaction() as session:
            store_verification.record_run(
                session, list_id, started=started, finished=self.clock(), checked=run.checked
            )
        log.info(
            "re-verification of list %s: %d checked",
            list_name,
            run.checked,
            extra={
                "event": "reverify_run",
                "list": list_name,
                "checked": run.checked,
                "proposed": run.proposed,
                "expired": run.expired,
            },
        )
        return run

    def _record(
        self,
        run: ListRun,
        list_id: int,
        home: str | None,
        target: store_verification.Target,
        observations: list[Observation],
    ) -> None:
        now = self.clock()
        previous: VerificationState = target.state
        outcome = advance(
            previous,
            observations,
            now=now,
            gone_threshold=self.config.gone_threshold,
            max_unverified_days=self.config.max_unverified_days,
            listed_since=target.created_at,
            home_country=home,
            locate=self.locate,
        )
        with self.db.transaction() as session:
            done = store_verification.record(
                session,
                list_id,
                target.entry_id,
                outcome,
                gone_threshold=self.config.gone_threshold,
                auto_expire_gone=self.config.auto_expire_gone,
                now=now,
            )
        if not done.stored:
            return
        run.checked += 1
        status = outcome.state.status
        run.by_status[status] = run.by_status.get(status, 0) + 1
        run.proposed += int(done.proposed)
        run.expired += int(done.expired)
        run.referrals += int(outcome.propose_referral)
        run.flagged += int(outcome.flagged)

    def run_all(self, names: Iterable[str] | None = None) -> list[ListRun]:
        """Scheduled job: run every list (or ``names``); one list's failure spares the others."""
        if names is None:
            with self.db.read() as session:
                names = [row.name for row in store_lists.list_lists(session)]
        runs: list[ListRun] = []
        for name in names:
            try:
                runs.append(self.run_list(name))
            except Exception:
                log.exception(
                    "re-verification of list %s failed",
                    name,
                    extra={"event": "reverify_failed", "list": name},
                )
        return runs
