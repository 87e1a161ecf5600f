"""Opt-in hit counts at the ISP: counted by the block page, posted by ``isp run``.

DESIGN.md part 2, "Enforcement at the ISP", hit counts (issue 18 item 5).
Off by default; an ISP opts in with ``[hits] enabled = true`` in its
configuration file.

**Where hits are counted: the block page only.** Squid's external ACL
helper is not a place to count: Squid caches helper answers (``ttl=``,
``negative_ttl=``), so the helper sees one lookup per URL per cache period,
not one per request, and it runs as many concurrent children, each of which
would need its own writer. The helper also answers every URL a subscriber
fetches, listed or not, so a counter there would sit on the path of every
request. The block page answers exactly the requests that were blocked,
once each, in one process. Counting in one place also means a request that
passes through both (a DNS export sends the host to the block page, and
Squid would then never see it) is never counted twice. The Squid helper
therefore does not count, whatever the configuration says.

**What is stored** (``STATE_DIR/hits.db``, SQLite, mode 0600, a separate
file so that the block page's small writes never wait for a sync's long
transaction on ``state.db``): rows ``(week, block_ref, count)``, the ISO
week in UTC (``YYYY-Www``), the matched entry's block reference, and the
number of 451 answers to ``GET`` requests. Nothing else: no client
address, no ``Host``, no path or URL, no time finer than the week, no
per-request row. The canary entry is never counted.

**What leaves the ISP**: after the week ends, ``cleanfeed isp run`` posts
the week's counts of at least k (``[hits] k``, default 10) to ``POST
/v1/lists/{list}/hits`` and then forgets the week, posted or refused;
counts below k never leave the machine and are forgotten with their week.
Weeks that could not be posted (network, server errors) are kept for at
most :data:`MAX_WEEKS_KEPT` weeks, then forgotten unposted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx

from blocklist.blockref import block_ref
from blocklist.canonical import expressions
from blocklist.encoding import format_week, parse_week
from blocklist.errors import InvalidURL
from clients.errors import ConfigError, LocalStateError
from clients.isp.localdb import write_transaction

if TYPE_CHECKING:
    from clients.isp.config import IspConfig

log = logging.getLogger("cleanfeed.hits")

#: The hit counts' own database in the state directory.
HITS_DB: Final = "hits.db"
#: Default threshold k: counts below it never leave the ISP. Small counts
#: of a rare reference in a small ISP could single out one subscriber.
DEFAULT_K: Final = 10
#: The project's default canary URL (``cleanfeed init --canary``).
DEFAULT_CANARY: Final = "http://canary.cleanfeed.invalid/"
#: Seconds between writes of the block page's in-memory counts: one small
#: transaction every few seconds instead of a synchronous disk write per
#: answer (the page must answer 1,000 requests/s on one core). A crash
#: loses at most this many seconds of counts.
FLUSH_INTERVAL: Final = 10.0
#: Weeks an unposted count is kept before it is forgotten unposted
#: (data minimisation: a server that is never reached gets nothing).
MAX_WEEKS_KEPT: Final = 8
#: Most rows posted for one week: the server's cap
#: (blocklist.store.hits.MAX_HITS_PER_POST, about 600 KB of JSON). More
#: references above k in one week: the most hit are posted.
MAX_HITS_PER_POST: Final = 10_000
#: Bytes of a refusal's problem document read for the log line.
MAX_ANSWER_BYTES: Final = 64 * 1024
#: SQLite waits this long for the other writer (block page or ``isp run``).
_BUSY_TIMEOUT_MS: Final = 10_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS hits (
    week TEXT NOT NULL, block_ref TEXT NOT NULL, count INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (week, block_ref)) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class HitsConfig:
    """``[hits]`` in the ISP client's configuration file."""

    #: Count at all (off by default: DESIGN.md part 2, opt-in).
    enabled: bool = False
    #: Threshold k: counts below it are dropped before anything is posted.
    k: int = DEFAULT_K
    #: Whether ``isp run`` posts completed weeks (false: count locally only).
    post: bool = True
    #: The list's canary URL: its hits are never counted.
    canary: str = DEFAULT_CANARY


def parse_hits_table(table: object) -> HitsConfig:
    """Read the ``[hits]`` table.

    Raises:
        ConfigError: not a table, an unknown key, a value of the wrong type,
            k below 1, a canary that is not a URL.
    """
    if not isinstance(table, dict):
        raise ConfigError("[hits] must be a table")
    known = {"enabled", "k", "post", "canary"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[hits]: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key in ("enabled", "post"):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(f"hits.{key}: expected true or false")
            values[key] = table[key]
    if "k" in table:
        k = table["k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError("hits.k: expected an integer of at least 1")
        values["k"] = k
    if "canary" in table:
        canary = table["canary"]
        if not isinstance(canary, str):
            raise ConfigError("hits.canary: expected the canary URL")
        canary_hash(canary)  # refuse a bad URL at start
        values["canary"] = canary
    return HitsConfig(**values)


def canary_hash(url: str) -> bytes:
    """The entry hash of a canary URL: its most specific expression.

    ``cleanfeed init`` gives the canary the narrowest scope its URL states
    (signer/datadir.py, ``canary_scope``), whose expression is the first
    Safe Browsing expression of the URL (``host/`` for a URL with path ``/``).

    Raises:
        ConfigError: the URL cannot be an entry.
    """
    try:
        exprs = expressions(url)
    except InvalidURL as e:
        raise ConfigError(f"hits.canary: not a URL that can be listed: {e}") from e
    if not exprs:
        raise ConfigError("hits.canary: not a URL that can be listed")
    return hashlib.sha256(exprs[0].encode("utf-8")).digest()


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of a ``YYYY-Www`` week.

    Raises:
        ValueError: not a week (:class:`blocklist.errors.FormatError`).
    """
    monday = parse_week(week)
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


class HitStore:
    """``STATE_DIR/hits.db``: (week, block_ref, count), nothing else.

    Every change is one ``BEGIN IMMEDIATE … COMMIT`` (WAL, ``synchronous
    = FULL``): a crash keeps the last committed counts, never half a flush.

    Args:
        state_dir: the ISP client's state directory (must exist).

    Raises:
        LocalStateError: the database cannot be opened.
    """

    def __init__(self, state_dir: Path) -> None:
        path = Path(state_dir) / HITS_DB
        try:
            # Owner-only before SQLite writes a byte (its -wal and -shm
            # files take the database file's permissions).
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            self._conn = sqlite3.connect(
                path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000
            )
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(_SCHEMA)
        except OSError as e:
            raise LocalStateError(f"cannot open hit counts {path}: {e.strerror}") from e
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot open hit counts {path}: {e}") from e

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> HitStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn)

    def add(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add ``{(week, block_ref): n}`` to the stored counts (one transaction).

        Raises:
            LocalStateError: SQLite failed; nothing was added.
        """
        rows = [(w, r, n) for (w, r), n in counts.items() if n > 0]
        if not rows:
            return
        try:
            with self._transaction() as c:
                c.executemany(
                    "INSERT INTO hits (week, block_ref, count) VALUES (?, ?, ?) "
                    "ON CONFLICT (week, block_ref) DO UPDATE SET count = count + excluded.count",
                    rows,
                )
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot store hit counts: {e}") from e

    def rows(self) -> list[tuple[str, str, int]]:
        """Every stored row, ``(week, block_ref, count)``, by week then reference."""
        cur = self._conn.execute("SELECT week, block_ref, count FROM hits ORDER BY week, block_ref")
        return [(str(w), str(r), int(n)) for w, r, n in cur]

    def weeks(self) -> list[str]:
        """The weeks that have counts, oldest first."""
        cur = self._conn.execute("SELECT DISTINCT week FROM hits ORDER BY week")
        return [str(w) for (w,) in cur]

    def week_counts(self, week: str) -> list[tuple[str, int]]:
        """(block_ref, count) of one week, most hit first."""
        cur = self._conn.execute(
            "SELECT block_ref, count FROM hits WHERE week = ? ORDER BY count DESC, block_ref",
            (week,),
        )
        return [(str(r), int(n)) for r, n in cur]

    def forget(self, week: str) -> None:
        """Delete one week's counts.

        Raises:
            LocalStateError: SQLite failed.
        """
        try:
            with self._transaction() as c:
                c.execute("DELETE FROM hits WHERE week = ?", (week,))
        except sqlite3.Error as e:
            raise LocalStateError(f"cannot forget hit counts: {e}") from e


class HitCounter:
    """The block page's counter: in memory per answer, to disk every few seconds.

    Args:
        state_dir: where ``hits.db`` lives.
        config: the ``[hits]`` settings (nothing is counted unless enabled).
    """

    def __init__(self, state_dir: Path, config: HitsConfig) -> None:
        self.config = config
        self._dir = state_dir
        self._canary = canary_hash(config.canary)
        self._pending: Counter[tuple[str, str]] = Counter()
        self._store: HitStore | None = None

    def hit(self, h: bytes, now: datetime | None = None) -> None:
        """Count one block-page answer for the entry hash ``h`` (canary excluded)."""
        if not self.config.enabled or h == self._canary:
            return
        # The week and the reference are all that is kept of the request.
        self._pending[(format_week(now or datetime.now(UTC)), block_ref(h))] += 1

    def flush(self) -> None:
        """Write the counts held in memory (one transaction) and clear them.

        Raises:
            LocalStateError: the database cannot be written; the counts stay
                in memory for the next flush.
        """
        if not self._pending:
            return
        if self._store is None:
            self._store = HitStore(self._dir)
        self._store.add(self._pending)
        self._pending.clear()

    def close(self) -> None:
        """Flush (best effort) and close."""
        try:
            self.flush()
        except LocalStateError as e:
            log.warning("hit counts not saved: %s", e)
        if self._store is not None:
            self._store.close()
            self._store = None


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """What happened to one week."""

    week: str
    #: "posted", "empty" (nothing of at least k), "refused" (4xx: forgotten
    #: unposted), "expired" (too old: forgotten unposted), "failed" (kept).
    result: str
    posted: int = 0
    detail: str = ""


def post_completed_weeks(
    store: HitStore,
    client: httpx.Client,
    *,
    server: str,
    list_name: str,
    token: str | None,
    k: int,
    now: datetime | None = None,
) -> list[PostOutcome]:
    """Post every completed week's counts of at least ``k``, then forget the week.

    A week is forgotten once the server took it (2xx) or refused it for
    good (a 4xx other than 401/403/404/408/429: a body that cannot become
    valid by retrying); on a network error, a 5xx or an authorisation
    problem it is kept for the next run, at most :data:`MAX_WEEKS_KEPT`
    weeks. Posting stops at the first failure (the server is unwell).

    The server replaces an earlier post of the same week by the same token,
    so a retry after a lost answer never counts twice.
    """
    now = now or datetime.now(UTC)
    current = format_week(now)
    url = f"{server.rstrip('/')}/v1/lists/{quote(list_name, safe='')}/hits"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out: list[PostOutcome] = []
    for week in store.weeks():
        if week >= current:
            continue  # ISO week strings sort in time order: not over yet
        try:
            started = week_start(week)
        except ValueError:
            store.forget(week)  # not a week this module wrote
            continue
        if started + timedelta(weeks=MAX_WEEKS_KEPT) < now:
            store.forget(week)
            out.append(PostOutcome(week, "expired"))
            log.warning("hit counts of %s were never posted; forgotten", week)
            continue
        # Threshold k before anything leaves the ISP (DESIGN.md part 2).
        counts = [(r, n) for r, n in store.week_counts(week) if n >= k][:MAX_HITS_PER_POST]
        if not counts:
            store.forget(week)
            out.append(PostOutcome(week, "empty"))
            continue
        body = {"week": week, "counts": [{"block_ref": r, "count": n} for r, n in counts]}
        try:
            r = client.post(url, content=json.dumps(body).encode(), headers=headers)
            status, text = r.status_code, r.content[:MAX_ANSWER_BYTES]
        except httpx.HTTPError as e:
            out.append(PostOutcome(week, "failed", detail=type(e).__name__))
            log.warning("cannot post hit counts of %s: %s", week, type(e).__name__)
            break
        if 200 <= status < 300:
            store.forget(week)
            out.append(PostOutcome(week, "posted", posted=len(counts)))
            log.info("posted hit counts of %s: %d references", week, len(counts))
            continue
        detail = f"HTTP {status}{_problem_code(text)}"
        if 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
            store.forget(week)
            out.append(PostOutcome(week, "refused", detail=detail))
            log.warning("the server refused the hit counts of %s (%s); forgotten", week, detail)
            continue
        out.append(PostOutcome(week, "failed", detail=detail))
        log.warning("cannot post hit counts of %s (%s); kept for the next run", week, detail)
        break
    return out


def hits_poster(config: IspConfig, client: httpx.Client) -> Callable[[], list[PostOutcome]] | None:
    """What ``isp run`` calls after each sync: post the completed weeks, if opted in.

    None unless ``[hits]`` is enabled with ``post = true``.
    """
    if not (config.hits.enabled and config.hits.post):
        return None
    state_dir = config.state_path

    def post() -> list[PostOutcome]:
        with HitStore(state_dir) as store:
            return post_completed_weeks(
                store,
                client,
                server=config.server or "",
                list_name=config.list_name,
                token=config.token,
                k=config.hits.k,
            )

    return post


def _problem_code(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("code"), str):
        detail = doc.get("detail")
        extra = f": {str(detail)[:200]}" if isinstance(detail, str) else ""
        return f", {doc['code'][:40]}{extra}"
    return ""


__all__: Sequence[str] = (
    "DEFAULT_K",
    "HITS_DB",
    "HitCounter",
    "HitStore",
    "HitsConfig",
    "PostOutcome",
    "canary_hash",
    "hits_poster",
    "parse_hits_table",
    "post_completed_weeks",
)
