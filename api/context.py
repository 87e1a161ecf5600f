"""Per-app state: database, caches, usage buffers, limiter, metrics, signer.

One :class:`AppContext` lives on ``app.state.cf``; nothing here is a module
global, so tests can build several apps side by side (STYLE.md:
"Configuration is passed in, never imported").

Caches and why each is safe:

- :class:`TokenCache`: a successful token lookup is reused for at most
  :data:`api.settings.MAX_AUTH_CACHE_TTL_SECONDS` after the database read
  that confirmed it (DESIGN.md, "API shape": a revoked token stops working
  within that bound; revocation through this API also evicts at once).
  Busy entries are looked up again in the background before they expire
  (refresh-ahead), so a popular token never stampedes the database.
- :class:`ListCache`: list configuration (id, public flag, ...) for the same
  few seconds, with the same refresh-ahead; lists are never renamed.
- :class:`CheckpointCache`: the current checkpoint note and its ETag for
  ``checkpoint_cache_ttl`` seconds, reloaded in the background while it is
  polled and dropped at once when this process publishes. ISPs poll the
  checkpoint far more often than anything else, so this is what keeps a
  poll cheap.
- :class:`StatementPageCache`: full pages of statements, which never change.

Writes that do not need to be on the request path (token last use, the
version each ISP fetched) are buffered by :class:`UsageRecorder` and written
in one transaction every ``flush_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from starlette.concurrency import run_in_threadpool

from api.longpoll import CheckpointWaiters, PublishListener
from api.ratelimit import RateLimiter
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.db import Database
from blocklist.store.errors import NotFound
from blocklist.store.tokens import Principal
from signer.hosting import (
    CdnNetworks,
    CountryDatabase,
    HostingLocator,
    MaxMindCountries,
    ResolverConfig,
    ShippedCountries,
)

if TYPE_CHECKING:
    from blocklist.store.accounts import AccountSecrets

if TYPE_CHECKING:
    from api.metrics import Metrics
    from api.settings import Settings
    from api.signer_service import SignerService
    from api.witness import WitnessStore

__all__ = [
    "MAX_BUFFERED_USES",
    "MAX_CACHED_PAGE_BYTES",
    "MAX_CACHED_TOKENS",
    "REFRESH_AHEAD_FRACTION",
    "AppContext",
    "CachedCheckpoint",
    "CachedPage",
    "CheckpointCache",
    "ListCache",
    "ListInfo",
    "StatementPageCache",
    "TokenCache",
    "UsageRecorder",
    "checkpoint_etag",
]

log = logging.getLogger("cleanfeed.api")

#: Most cached token lookups kept: beyond it the cache is cleared (a burst of
#: distinct valid tokens is rare; clearing costs only re-lookups).
MAX_CACHED_TOKENS: Final = 50_000

#: Share of a cache entry's lifetime after which a busy entry is looked up
#: again in the background (refresh-ahead), before it expires.
REFRESH_AHEAD_FRACTION: Final = 0.5

#: Bytes of full statement pages kept in memory (they never change; ISPs
#: catching up ask for the same pages).
MAX_CACHED_PAGE_BYTES: Final = 64 * 1024 * 1024

#: Most buffered ISP/version pairs between flushes (bounded memory).
MAX_BUFFERED_USES: Final = 100_000


@dataclass(frozen=True)
class ListInfo:
    """What the API needs to know about a list on the request path."""

    id: int
    name: str
    origin: str
    public: bool
    approvals_required: int
    home_country: str | None


class TokenCache:
    """Token hash -> principal, for at most ``ttl`` seconds after its lookup.

    Refresh-ahead: once an entry has lived past
    :data:`REFRESH_AHEAD_FRACTION` of its lifetime, :meth:`claim_refresh`
    lets one caller look it up again in the background while the entry is
    still served, so busy tokens never fall out of the cache (and never
    stampede the database). Every entry is still at most ``ttl`` seconds
    older than the database read that confirmed it.
    """

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Cache lookups for ``ttl`` seconds (0 disables the cache)."""
        self.ttl = ttl
        self._clock = clock
        self._items: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[bytes] = set()
        #: Bumped by every eviction, so a lookup that started before a
        #: revocation cannot put the revoked token back.
        self.generation = 0

    def claim_refresh(self, key: bytes) -> bool:
        """True (once) when ``key``'s entry is due for a background lookup."""
        item = self._items.get(key)
        if item is None or key in self._refreshing:
            return False
        if item[0] - self._clock() > self.ttl * (1 - REFRESH_AHEAD_FRACTION):
            return False
        with self._lock:
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
        return True

    def release(self, key: bytes) -> None:
        """Give up a claimed refresh (the lookup failed); the entry expires on time."""
        with self._lock:
            self._refreshing.discard(key)

    def refreshed(self, key: bytes, principal: Principal | None, generation: int) -> None:
        """Store a background lookup's answer (None: the token is no longer valid)."""
        with self._lock:
            self._refreshing.discard(key)
            if generation != self.generation:
                return  # something was evicted meanwhile: let the next request decide
            if principal is None:
                self._items.pop(key, None)
            elif self.ttl > 0:
                self._items[key] = (self._clock() + self.ttl, principal)

    def get(self, key: bytes) -> Principal | None:
        """The cached principal for a token hash, if still fresh."""
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            with self._lock:
                self._items.pop(key, None)
            return None
        return item[1]

    def put(self, key: bytes, principal: Principal) -> None:
        """Remember a successful lookup."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= MAX_CACHED_TOKENS:
                self._items.clear()
            self._items[key] = (self._clock() + self.ttl, principal)

    def evict_token(self, token_id: int) -> None:
        """Forget every cached lookup of ``token_id`` (on revocation)."""
        with self._lock:
            self.generation += 1
            for key in [k for k, (_, p) in self._items.items() if p.token_id == token_id]:
                del self._items[key]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self.generation += 1
            self._items.clear()


class ListCache:
    """List name -> :class:`ListInfo` for a few seconds (``None`` = no such list)."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Cache list lookups for ``ttl`` seconds."""
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, tuple[float, ListInfo]] = {}
        self._refreshing: set[str] = set()

    def get(self, name: str) -> ListInfo | None:
        """A fresh cached list, or ``None``."""
        item = self._items.get(name)
        if item is None or item[0] <= self._clock():
            return None
        return item[1]

    def claim_refresh(self, name: str) -> bool:
        """True (once) when ``name``'s entry is due for a background lookup."""
        item = self._items.get(name)
        if item is None or name in self._refreshing:
            return False
        if item[0] - self._clock() > self.ttl * (1 - REFRESH_AHEAD_FRACTION):
            return False
        self._refreshing.add(name)
        return True

    def refreshed(self, name: str) -> None:
        """A background lookup of ``name`` finished."""
        self._refreshing.discard(name)

    def put(self, info: ListInfo) -> None:
        """Remember a list."""
        if self.ttl > 0:
            self._items[info.name] = (self._clock() + self.ttl, info)

    def clear(self) -> None:
        """Forget everything (after creating a list)."""
        self._items.clear()


@dataclass(frozen=True)
class CachedCheckpoint:
    """A checkpoint note as served: body bytes, strong ETag, tree size."""

    body: bytes
    etag: str
    size: int
    signed_at: datetime
    expires: float


def checkpoint_etag(body: bytes) -> str:
    """Strong ETag over the whole served note, signatures included (DESIGN.md)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class CheckpointCache:
    """list id -> :class:`CachedCheckpoint`, for ``ttl`` seconds or until publish."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Cache checkpoints for ``ttl`` seconds (0 disables the cache)."""
        self.ttl = ttl
        self._clock = clock
        self._items: dict[int, CachedCheckpoint] = {}
        #: ETag of the last note loaded per list (kept across invalidation
        #: and with the cache disabled): a load that differs is a change.
        self._etags: dict[int, str] = {}
        #: Called with a list id (from the loading thread) when a load finds
        #: a note other than the previous one: wakes long-polls.
        self.on_change: Callable[[int], None] | None = None

    def get(self, list_id: int) -> CachedCheckpoint | None:
        """A fresh cached checkpoint, or ``None``."""
        item = self._items.get(list_id)
        if item is None or item.expires <= self._clock():
            return None
        return item

    def put(self, list_id: int, body: bytes, size: int, signed_at: datetime) -> CachedCheckpoint:
        """Remember the served form of a list's checkpoint; return it."""
        item = CachedCheckpoint(
            body=body,
            etag=checkpoint_etag(body),
            size=size,
            signed_at=signed_at,
            expires=self._clock() + self.ttl,
        )
        if self.ttl > 0:
            self._items[list_id] = item
        previous = self._etags.get(list_id)
        self._etags[list_id] = item.etag
        if previous is not None and previous != item.etag and self.on_change is not None:
            self.on_change(list_id)
        return item

    def list_ids(self) -> list[int]:
        """Lists with a cached checkpoint (fresh or not): the ones being polled."""
        return list(self._items)

    def invalidate(self, list_id: int | None = None) -> None:
        """Drop one list's checkpoint (or all) after a publish or cosignature."""
        if list_id is None:
            self._items.clear()
        else:
            self._items.pop(list_id, None)


@dataclass(frozen=True)
class CachedPage:
    """A full (immutable) page of statements as served: JSON, and gzip of it."""

    body: bytes
    gzipped: bytes | None
    last: int


class StatementPageCache:
    """(list id, since, limit) -> :class:`CachedPage`, least recently used out.

    Only full pages are kept: their content never changes (DESIGN.md, "API
    shape": full pages of statements are immutable), so no invalidation is
    needed; the byte bound keeps memory in check.
    """

    def __init__(self, max_bytes: int = MAX_CACHED_PAGE_BYTES) -> None:
        """Keep at most ``max_bytes`` of page bodies."""
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, int, int], CachedPage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> CachedPage | None:
        """The cached page, if any (marks it recently used)."""
        item = self._items.get(key)
        if item is not None:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
        return item

    def put(self, key: tuple[int, int, int], page: CachedPage) -> None:
        """Remember a full page."""
        size = len(page.body) + len(page.gzipped or b"")
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body) + len(old.gzipped or b"")
            self._items[key] = page
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body) + len(dropped.gzipped or b"")


class UsageRecorder:
    """Buffers token last use and per-ISP fetched versions; flushes in batches."""

    def __init__(self) -> None:
        """Start with empty buffers."""
        self._lock = threading.Lock()
        self._last_use: dict[int, datetime] = {}
        self._isp_seen: dict[tuple[int, int], tuple[int, datetime]] = {}

    def token_used(self, token_id: int) -> None:
        """Note that a token was used now."""
        now = datetime.now(UTC)
        # A plain dict store is atomic under the GIL; the lock is only
        # needed when swapping buffers in flush().
        self._last_use[token_id] = now

    def isp_fetched(self, token_id: int, list_id: int, version: int) -> None:
        """Note the version an ISP token fetched (never moves backwards)."""
        key = (token_id, list_id)
        # Called from the event loop and from route threads: the
        # read-compare-write must not interleave.
        with self._lock:
            current = self._isp_seen.get(key)
            if current is None and len(self._isp_seen) >= MAX_BUFFERED_USES:
                return  # bounded memory; the next flush makes room
            if current is None or version >= current[0]:
                self._isp_seen[key] = (version, datetime.now(UTC))

    def pending_isp_seen(self) -> dict[tuple[int, int], tuple[int, datetime]]:
        """A copy of the unflushed ISP versions (for admin views)."""
        with self._lock:
            return dict(self._isp_seen)

    def flush(self, db: Database) -> None:
        """Write buffered uses in one transaction; keep them if it fails."""
        with self._lock:
            last_use, self._last_use = self._last_use, {}
            isp_seen, self._isp_seen = self._isp_seen, {}
        if not last_use and not isp_seen:
            return
        try:
            with db.transaction() as session:
                if last_use:
                    store_tokens.record_last_use(session, last_use)
                for (token_id, list_id), (version, at) in sorted(isp_seen.items()):
                    store_versions.record_isp_seen(
                        session, token_id=token_id, list_id=list_id, version=version, at=at
                    )
        except Exception:
            log.warning("could not record token use; will retry", exc_info=True)
            with self._lock:
                for token_id, at in last_use.items():
                    self._last_use.setdefault(token_id, at)
                for key, value in isp_seen.items():
                    self._isp_seen.setdefault(key, value)
            raise


class AppContext:
    """Everything a request handler needs, built once per app."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        limiter: RateLimiter,
        metrics: Metrics,
        signer: SignerService | None,
        witnesses: WitnessStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Assemble the context (the app factory does this)."""
        self.settings = settings
        self.db = db
        # ``limiter``: ISP tokens and anonymous reads; ``role_limiters``: the
        # other roles' own buckets (api.ratelimit, per-role defaults).
        self.limiter = limiter
        self.role_limiters: dict[str, RateLimiter] = {
            role: RateLimiter(*settings.rate_limit_for(role))
            for role in ("analyst", "auditor", "admin")
        }
        self.metrics = metrics
        self.signer = signer
        self.witnesses = witnesses
        self.tokens = TokenCache(settings.auth_cache_ttl, clock=clock)
        self.lists = ListCache(settings.auth_cache_ttl, clock=clock)
        self.checkpoints = CheckpointCache(settings.checkpoint_cache_ttl, clock=clock)
        self.pages = StatementPageCache()
        self._checkpoint_locks: dict[int, asyncio.Lock] = {}
        # Long-polls of the checkpoint (api.longpoll): woken whenever a load
        # of a list's checkpoint finds a new note, whoever loaded it.
        self.waiters = CheckpointWaiters()
        self.checkpoints.on_change = self.waiters.changed
        #: PostgreSQL: the worker's LISTEN connection (the app sets it).
        self.publish_listener: PublishListener | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.usage = UsageRecorder()
        #: Wall clock of persons' sessions and logins (issue 15); tests
        #: replace it to expire a session without sleeping.
        self.wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        #: The account-secrets key, loaded at first need (:mod:`api.accounts`).
        self.account_secrets: AccountSecrets | None = None
        self._hosting: HostingLocator | None = None
        # Appeal intake (issue 17 item 2): a burst limit per client address.
        # The bucket key is an HMAC of the address under a key that lives
        # only in this process, so no address is kept in the clear even in
        # memory, and nothing about it reaches the database or the logs.
        self.appeal_limiter = RateLimiter(
            1.0 / settings.appeal_refill_seconds, settings.appeal_burst
        )
        self.appeal_address_key = secrets.token_bytes(32)

    @property
    def hosting(self) -> HostingLocator | None:
        """The hosting locator (issue 16 item 3), or None when resolution is off.

        Built on first use: opening the country database costs a moment and
        most processes (ISP reads) never need it.

        Raises:
            OSError, ValueError: the configured database or CDN file cannot be read.
        """
        from api.settings import parse_resolver

        configured = self.settings.hosting_resolver
        if configured is None:
            return None
        if self._hosting is None:
            if configured == "system":
                resolver = ResolverConfig(timeout=self.settings.hosting_dns_timeout)
            else:
                address, port = parse_resolver(configured)
                resolver = ResolverConfig(address, port, self.settings.hosting_dns_timeout)
            db_path = self.settings.hosting_country_db
            countries: CountryDatabase = (
                MaxMindCountries(db_path) if db_path is not None else ShippedCountries()
            )
            cdn_path = self.settings.hosting_cdn_networks
            cdn = None if cdn_path is None else CdnNetworks.parse(cdn_path.read_text("utf-8"))
            self._hosting = HostingLocator(resolver, countries, cdn)
        return self._hosting

    def limiter_for(self, role: str | None) -> RateLimiter:
        """The rate limiter of a role (ISPs' for ISP tokens and anonymous reads)."""
        if role is None:
            return self.limiter
        return self.role_limiters.get(role, self.limiter)

    def rate_limit(self, key: str, role: str | None) -> float:
        """Take one request from ``key``'s bucket in its role's limiter.

        Returns:
            0.0 when the request may proceed, otherwise the seconds to wait.
        """
        return self.limiter_for(role).acquire(key)

    def load_checkpoint(self, list_id: int) -> CachedCheckpoint | None:
        """Read a list's checkpoint (plus matching witness lines) and cache it.

        Returns:
            The served form, or None when the list has no checkpoint yet.
        """
        with self.db.read() as session:
            row = store_versions.get_checkpoint(session, list_id)
            if row is None:
                return None
            lines = self.witnesses.lines_for(session, list_id, row.note)
        body = row.note if not lines else row.note + "".join(line + "\n" for line in lines)
        return self.checkpoints.put(list_id, body.encode("utf-8"), row.size, row.signed_at)

    async def checkpoint(self, list_id: int) -> CachedCheckpoint | None:
        """The cached checkpoint, loading it once however many requests miss at once."""
        cached = self.checkpoints.get(list_id)
        if cached is not None:
            return cached
        # Single flight: when the entry expires under load, one request reads
        # the database and the others wait for its answer.
        lock = self._checkpoint_locks.setdefault(list_id, asyncio.Lock())
        async with lock:
            cached = self.checkpoints.get(list_id)
            if cached is not None:
                return cached
            return await run_in_threadpool(self.load_checkpoint, list_id)

    def refresh_checkpoints(self) -> None:
        """Reload every cached checkpoint (the lifespan runs this twice per TTL).

        Keeps polled checkpoints in memory, so a poll never waits for the
        database just because the cache entry aged out.
        """
        for list_id in self.checkpoints.list_ids():
            self.load_checkpoint(list_id)

    def lookup_token(self, token: str) -> Principal | None:
        """Principal of a presented token, via the cache (may hit the database)."""
        key = store_tokens.token_hash(token)
        principal = self.tokens.get(key)
        if principal is None:
            with self.db.read() as session:
                principal = store_tokens.lookup_token(session, token)
            if principal is None:
                return None
            self.tokens.put(key, principal)
        if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
            return None  # expired while cached
        return principal

    def cached_token(self, token: str) -> tuple[bytes, Principal | None]:
        """Cache-only lookup (no I/O): ``(hash, principal or None)``.

        A hit on an entry due for refresh starts its background lookup.
        """
        key = store_tokens.token_hash(token)
        principal = self.tokens.get(key)
        if principal is None:
            return key, None
        expires = principal.expires_at
        if expires is not None and expires <= datetime.now(UTC):
            return key, None
        if self.tokens.claim_refresh(key):
            self._spawn(self._refresh_token(token, key, self.tokens.generation))
        return key, principal

    async def _refresh_token(self, token: str, key: bytes, generation: int) -> None:
        principal: Principal | None = None
        try:
            principal = await run_in_threadpool(self._read_token, token)
        except Exception:
            log.warning("background token lookup failed", exc_info=True)
            self.tokens.release(key)  # keep the entry: it still expires on time
            return
        self.tokens.refreshed(key, principal, generation)

    def _read_token(self, token: str) -> Principal | None:
        with self.db.read() as session:
            return store_tokens.lookup_token(session, token)

    def cached_list(self, name: str) -> ListInfo | None:
        """Cache-only list lookup; a hit due for refresh starts its background lookup."""
        info = self.lists.get(name)
        if info is not None and self.lists.claim_refresh(name):
            self._spawn(self._refresh_list(name))
        return info

    async def _refresh_list(self, name: str) -> None:
        try:
            info = await run_in_threadpool(self._read_list, name)
            if info is not None:
                self.lists.put(info)
        except Exception:
            log.warning("background list lookup failed", exc_info=True)
        finally:
            self.lists.refreshed(name)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background on the running event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coroutine.close()  # no loop (a synchronous caller): no refresh-ahead
            return
        task = loop.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def resolve_list(self, name: str) -> ListInfo | None:
        """The list called ``name`` (cached), or ``None`` when there is none."""
        info = self.lists.get(name)
        if info is not None:
            return info
        info = self._read_list(name)
        if info is not None:
            self.lists.put(info)
        return info

    def _read_list(self, name: str) -> ListInfo | None:
        with self.db.read() as session:
            try:
                row = store_lists.get_list(session, name)
            except NotFound:
                return None
            return ListInfo(
                id=row.id,
                name=row.name,
                origin=row.origin,
                public=row.public,
                approvals_required=row.approvals_required,
                home_country=row.home_country,
            )
