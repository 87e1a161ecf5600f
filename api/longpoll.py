"""Long-poll of the checkpoint: ``GET …/checkpoint?wait=S`` (DESIGN.md, "Freshness").

An ISP that holds the current checkpoint asks with ``If-None-Match`` and
``wait=S``; the API holds the request until the list's served checkpoint
differs from the one named, or S seconds pass, then answers as the plain
route does (200 with the new note, or 304). A new version thus reaches ISPs
within a second or so of its publish, while an idle ISP sends one request
per S seconds instead of one per poll interval.

How waiters are held: no thread each. Every waiting request is a coroutine
parked on one :class:`asyncio.Event` per list; a publish sets that event
(one wake-up per list, however many waiters), and the waiters read the new
checkpoint from the in-memory :class:`~api.context.CheckpointCache`. A
waiter costs its connection and request state (about 60 KiB); at most
:data:`MAX_WAITERS_PER_WORKER` are held per worker, beyond which requests
are answered at once with ``Cleanfeed-Wait: 0`` (the client then polls on
its regular schedule).

How every worker learns of a publish (several uvicorn workers, or several
API hosts on one database):

- **PostgreSQL**: the publish transaction sends ``NOTIFY cleanfeed_publish,
  '<list id>'`` (:func:`blocklist.store.versions.notify_checkpoint_changed`),
  delivered at commit; each worker holds one psycopg async connection that
  ``LISTEN``s (:class:`PublishListener`), reloads the named list's
  checkpoint and wakes its waiters. After a lost connection it reconnects
  with back-off and reloads every waited-on list (a notification may have
  been missed meanwhile).
- **SQLite** (one host): no notification channel, so one task per worker
  (:class:`CheckpointPoller`) re-reads the checkpoints of the lists that
  have waiters every :data:`SQLITE_POLL_SECONDS` (one indexed one-row read
  per list, and only while someone waits).

Either way the wake-up is driven by the cache: whenever a reload finds an
ETag other than the last one seen for that list,
:meth:`CheckpointWaiters.changed` runs (also for the periodic refresh and
for the embedded signer's own publishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

from starlette.concurrency import run_in_threadpool

from blocklist.store.db import Database
from blocklist.store.versions import PUBLISH_CHANNEL

__all__ = [
    "LISTEN_BACKOFF_MAX_SECONDS",
    "MAX_WAITERS_PER_WORKER",
    "MAX_WAIT_SECONDS",
    "SQLITE_POLL_SECONDS",
    "WAIT_HEADER",
    "CheckpointPoller",
    "CheckpointWaiters",
    "PublishListener",
    "clamp_wait",
    "psycopg_conninfo",
]

log = logging.getLogger("cleanfeed.api")

#: Header echoing the seconds a checkpoint request may be held (DESIGN.md).
WAIT_HEADER: Final = "Cleanfeed-Wait"

#: Longest hold, in seconds (DESIGN.md: S <= 55). Below the 60 s read
#: timeout that proxies and load balancers use by default (nginx
#: ``proxy_read_timeout``, AWS ALB idle timeout), so an intermediary never
#: cuts a held request; larger requests are capped to it, not refused, so a
#: client built for a larger cap still works.
MAX_WAIT_SECONDS: Final = 55

#: Most requests held at once by one worker. Each holds a connection (a file
#: descriptor: raise ``LimitNOFILE`` above this) and about 60 KiB of server
#: RSS (connection, request and coroutine state, token and limiter entries:
#: bench/freshness.py measured 58 MB for 1,000), so the cap bounds a
#: worker's extra memory near 300 MB even under a flood of tokens, while
#: one worker still serves several thousand ISPs. Beyond it, requests are
#: answered at once (``Cleanfeed-Wait: 0``) and those ISPs poll on their
#: schedule.
MAX_WAITERS_PER_WORKER: Final = 5_000

#: SQLite has no LISTEN/NOTIFY: period of the re-read of waited-on lists'
#: checkpoints (one indexed one-row read each, only while someone waits).
SQLITE_POLL_SECONDS: Final = 0.25

#: Cap of the reconnect back-off of the PostgreSQL listener (seconds); the
#: periodic cache refresh keeps waking waiters meanwhile, only later.
LISTEN_BACKOFF_MAX_SECONDS: Final = 30.0


def clamp_wait(wait: int | None) -> int:
    """Seconds to hold a request that asked for ``wait`` (0: answer at once)."""
    if wait is None or wait <= 0:
        return 0
    return min(wait, MAX_WAIT_SECONDS)


class CheckpointWaiters:
    """Requests waiting for a list's checkpoint to change, per list, on one event loop.

    :meth:`changed` may be called from any thread (the embedded signer's,
    the cache refresher's); everything else runs on the event loop.
    """

    def __init__(self, limit: int = MAX_WAITERS_PER_WORKER) -> None:
        """Hold at most ``limit`` requests at once."""
        self.limit = limit
        self._events: dict[int, asyncio.Event] = {}
        self._counts: dict[int, int] = {}
        self._active = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._closing = False

    @property
    def active(self) -> int:
        """Requests held now (any thread: the metrics scrape reads it)."""
        return self._active

    def waited_lists(self) -> list[int]:
        """Lists with at least one request held now (event loop only)."""
        return list(self._counts)

    @contextlib.contextmanager
    def slot(self, list_id: int) -> Iterator[bool]:
        """Take a waiter's place for ``list_id``; yields False when the cap is reached."""
        if self._closing or self.active >= self.limit:
            yield False
            return
        self._loop = asyncio.get_running_loop()
        self._counts[list_id] = self._counts.get(list_id, 0) + 1
        self._active += 1
        try:
            yield True
        finally:
            self._active -= 1
            left = self._counts[list_id] - 1
            if left:
                self._counts[list_id] = left
            else:
                del self._counts[list_id]

    def event(self, list_id: int) -> asyncio.Event:
        """The event the next change of ``list_id`` sets.

        Take it *before* reading the checkpoint: a change that lands between
        the read and the wait then still sets this very event.
        """
        event = self._events.get(list_id)
        if event is None:
            event = self._events[list_id] = asyncio.Event()
        return event

    @property
    def closing(self) -> bool:
        """Whether the worker is shutting down (no new holds)."""
        return self._closing

    def changed(self, list_id: int) -> None:
        """``list_id``'s served checkpoint changed: wake its waiters (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake(list_id)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake, list_id)

    def _wake(self, list_id: int) -> None:
        event = self._events.pop(list_id, None)
        if event is not None:
            event.set()

    def release_all(self) -> None:
        """Answer every held request now and hold no more (shutdown; any thread)."""
        self._closing = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def wake_all() -> None:
            events, self._events = self._events, {}
            for event in events.values():
                event.set()

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake_all)


class CheckpointPoller:
    """SQLite: re-read waited-on lists' checkpoints every :data:`SQLITE_POLL_SECONDS`.

    Args:
        waiters: whose lists to re-read.
        reload: reloads one list's checkpoint into the cache (blocking; the
            cache calls :meth:`CheckpointWaiters.changed` on a new ETag).
        period: seconds between rounds.
    """

    def __init__(
        self,
        waiters: CheckpointWaiters,
        reload: Callable[[int], object],
        period: float = SQLITE_POLL_SECONDS,
    ) -> None:
        self.waiters = waiters
        self.reload = reload
        self.period = period

    def _round(self, list_ids: list[int]) -> None:
        for list_id in list_ids:
            self.reload(list_id)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            waited = self.waiters.waited_lists()  # on the loop, where the counts change
            if not waited:
                continue
            try:
                await run_in_threadpool(self._round, waited)
            except Exception:
                log.warning("could not re-read checkpoints for waiting ISPs", exc_info=True)


def psycopg_conninfo(db: Database) -> str:
    """The libpq connection string of a PostgreSQL :class:`Database` (no driver prefix)."""
    return db.url.set(drivername="postgresql").render_as_string(hide_password=False)


class PublishListener:
    """PostgreSQL: ``LISTEN cleanfeed_publish`` on one async connection per worker.

    Each notification names a list id; its checkpoint is reloaded (which
    wakes its waiters when the ETag changed). On connect and after every
    reconnect, the lists with waiters are reloaded too: notifications sent
    while no connection listened are lost (PostgreSQL NOTIFY is not queued
    for absent listeners).

    Args:
        conninfo: libpq connection string (:func:`psycopg_conninfo`).
        reload: async callable reloading one list's checkpoint.
        waiters: whose lists to reload after a (re)connect.
    """

    def __init__(
        self,
        conninfo: str,
        reload: Callable[[int], Awaitable[object]],
        waiters: CheckpointWaiters,
    ) -> None:
        self._conninfo = conninfo
        self._reload = reload
        self._waiters = waiters
        #: Set once LISTEN is in force (tests wait for it).
        self.listening = asyncio.Event()

    async def _listen_once(self) -> None:
        import psycopg  # the postgres extra; only PostgreSQL deployments get here

        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {PUBLISH_CHANNEL}")
            self.listening.set()
            for list_id in self._waiters.waited_lists():
                await self._reload(list_id)
            async for notify in conn.notifies():
                try:
                    list_id = int(notify.payload)
                except ValueError:
                    continue  # not ours: the channel name is fixed, the payload is a list id
                await self._reload(list_id)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with capped, jittered back-off."""
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                self.listening.clear()
                delay = random.uniform(0, min(LISTEN_BACKOFF_MAX_SECONDS, 0.5 * 2**failures))
                log.warning(
                    "publish listener lost its PostgreSQL connection (%s); retrying in %.1f s",
                    type(e).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
