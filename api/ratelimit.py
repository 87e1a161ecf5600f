"""Per-token request rate limiting (token bucket) per role, and the poll-interval hint.

DESIGN.md, "ISP sync" step 7 and docs/architecture.md, "Wire details": every
``/v1`` response carries ``Cleanfeed-Min-Wait: <seconds>``, and a token that
polls faster than its limit gets 429 with ``Retry-After``. Safe Browsing's
``minimumWaitDuration`` plays the same role: it keeps thousands of ISPs from
hammering the service in lock-step.

Each role has its own limiter and defaults that fit its work (issue 13,
item 7): ISPs poll (a low rate; the 429 tells them about their poll
interval), analysts script bulk work (a higher rate and a large burst; the
429 tells them when to retry and how to batch), auditors walk statement
pages and proofs, administrators manage tokens. Anonymous reads of a public
list share the ISP limiter, keyed by client address.

The limiter is in memory, per process: with several workers each enforces
the limit on its own share of the traffic, which bounds abuse to (workers x
limit) without a shared store on the hot path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LIMITED_ROLES",
    "MAX_BUCKETS",
    "MIN_WAIT_HEADER",
    "RateLimiter",
    "limited_detail",
    "retry_after_header",
]

#: Header naming the minimum seconds between polls (docs/architecture.md).
MIN_WAIT_HEADER: Final = "Cleanfeed-Min-Wait"

#: Most buckets kept at once. Each is a few dozen bytes; beyond this, full
#: (idle) buckets are dropped first, so memory stays bounded when many
#: anonymous clients hit a public list.
MAX_BUCKETS: Final = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key (token id, or client address for anonymous reads).

    ``rate`` tokens are added per second up to ``burst``; each request takes
    one. ``rate == 0`` disables the limiter.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        """Create a limiter refilling ``rate`` tokens per second up to ``burst``."""
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when configured with a zero rate."""
        return self.rate > 0

    def acquire(self, key: str) -> float:
        """Take one token for ``key``.

        Returns:
            0.0 when the request may proceed, otherwise the seconds until a
            token is available (the ``Retry-After`` to send with 429).
        """
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_buckets:
                    self._evict(now)
                bucket = _Bucket(tokens=self.burst, updated=now)
                self._buckets[key] = bucket
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict(self, now: float) -> None:
        # Drop buckets that have refilled completely: forgetting them changes
        # nothing, since a new bucket also starts full.
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_buckets:
            # Still full of busy clients: drop the oldest half rather than
            # grow without bound.
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in by_age[: len(by_age) // 2]:
                del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds (RFC 9110 10.2.3), at least 1."""
    return str(max(1, math.ceil(seconds)))


#: Roles with their own limiter; anything else (and anonymous reads of a
#: public list) uses the ISP limiter.
LIMITED_ROLES: Final = ("isp", "analyst", "auditor", "admin")


def limited_detail(
    role: str | None, wait: float, *, rate: float, burst: float, min_wait: int
) -> str:
    """The ``detail`` of a 429, worded for the caller's role.

    Args:
        role: the token's role, or None for an anonymous read of a public list.
        wait: seconds until the next request may pass.
        rate: the role's refill rate (requests per second).
        burst: the role's bucket size.
        min_wait: the advertised ``Cleanfeed-Min-Wait`` seconds.
    """
    retry = retry_after_header(wait)
    limit = f"{rate:g} requests/s after a burst of {burst:g}"
    if role == "analyst":
        return (
            f"this analyst token sent more than {limit}; retry after {retry} s. "
            "Batch instead of looping: POST .../entries/bulk (JSON) or .../entries/bulk.csv "
            "takes up to 10,000 rows per call, POST .../entries/approve takes up to 10,000 "
            'ids or an {"import": id}; `cleanfeed entries import FILE.csv` does both'
        )
    if role == "auditor":
        return (
            f"this auditor token sent more than {limit}; retry after {retry} s "
            "(`cleanfeed audit fetch` downloads a whole bundle and paces itself)"
        )
    if role == "admin":
        return f"this admin token sent more than {limit}; retry after {retry} s"
    who = "this ISP token polls" if role == "isp" else "this client address reads"
    return (
        f"{who} faster than allowed ({limit}); retry after {retry} s and poll no more "
        f"often than every {min_wait} s (Cleanfeed-Min-Wait); `cleanfeed isp run` "
        "keeps to it on its own"
    )
