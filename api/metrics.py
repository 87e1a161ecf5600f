"""Prometheus metrics (prometheus-client), one registry per app.

Public metrics (``GET /metrics``, no admin token) carry no list name, no
version, no count and no per-ISP label: which lists exist (an ISP must not
learn of lists it is not given), how far each one is and how many changes
wait are operator knowledge (issue 12, item 9), and so is which ISP polls
when (DESIGN.md, "Operations": per-ISP labels only behind an admin token).
The per-list gauges and the per-ISP last-seen versions are added only when
``/metrics`` is scraped with an admin token.

Labels are route *templates* (``/v1/lists/{list}/checkpoint``), never
concrete paths, so cardinality stays bounded and no URL reaches the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS",
    "METRICS_MEDIA_TYPE",
    "IspSeen",
    "ListStatus",
    "ListVerification",
    "Metrics",
]

#: Media type of the Prometheus text exposition format 0.0.4.
METRICS_MEDIA_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds): the checkpoint poll is sub-millisecond when
#: cached, publishes and bundles take seconds.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass(frozen=True)
class IspSeen:
    """One ISP token's last fetched version of one list."""

    token_name: str
    list_name: str
    version: int
    at: float


@dataclass(frozen=True)
class ListStatus:
    """What the publish-lag gauges need to know about one list."""

    list_name: str
    version: int
    checkpoint_age_seconds: float | None
    pending_changes: int


@dataclass(frozen=True)
class ListVerification:
    """Re-verification figures of one list (issue 16 item 4; admin scrape only)."""

    list_name: str
    counts: dict[str, int]
    proposals: int
    flagged: int
    last_run_timestamp: float | None
    last_run_seconds: float | None


class _CallbackCollector(Collector):
    """Collects gauges computed at scrape time by a callback."""

    def __init__(self, produce: Callable[[], Iterable[Metric]]) -> None:
        self._produce = produce

    def collect(self) -> Iterator[Metric]:
        yield from self._produce()

    def describe(self) -> Iterable[Metric]:
        # An empty description keeps the registry from calling collect() at
        # registration time (which would hit the database).
        return ()


class Metrics:
    """The API's metrics and the two registries they are exposed through."""

    def __init__(
        self,
        list_status: Callable[[], Iterable[ListStatus]],
        isp_seen: Callable[[], Iterable[IspSeen]],
        verification: Callable[[], Iterable[ListVerification]] | None = None,
        appeals_overdue: Callable[[], int | None] | None = None,
    ) -> None:
        """Create the metrics.

        Args:
            list_status: returns per-list publish state at scrape time (admin
                scrape only).
            isp_seen: returns the per-ISP last-seen versions (admin scrape only).
            verification: returns per-list re-verification figures (admin
                scrape only); None: no such gauges.
            appeals_overdue: returns how many appeal attachments are under
                review past the overdue setting (admin scrape only; None:
                unknown, not exposed).
        """
        self.public = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "cleanfeed_http_requests",
            "HTTP requests handled, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.public,
        )
        self.latency = Histogram(
            "cleanfeed_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.public,
        )
        self.rate_limited = Counter(
            "cleanfeed_rate_limited",
            "Requests refused with 429 because a token polled too fast.",
            registry=self.public,
        )
        self.publishes = Counter(
            "cleanfeed_publish_requests",
            "POST .../publish calls, by outcome.",
            ("outcome",),
            registry=self.public,
        )
        self.started = Gauge(
            "cleanfeed_start_time_seconds",
            "Unix time the API process started.",
            registry=self.public,
        )
        self.started.set(time.time())
        self.waiters = Gauge(
            "cleanfeed_checkpoint_waiters",
            "Checkpoint long-polls (?wait=S) held by this process now.",
            registry=self.public,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._list_status = list_status
        self._isp_seen = isp_seen
        self.admin = CollectorRegistry(auto_describe=False)
        self.admin.register(_CallbackCollector(self._collect_public))
        self.admin.register(_CallbackCollector(self._collect_lists))
        self.admin.register(_CallbackCollector(self._collect_isps))
        self._verification = verification
        if verification is not None:
            self.admin.register(_CallbackCollector(self._collect_verification))
        self._appeals_overdue = appeals_overdue
        self.admin.register(_CallbackCollector(self._collect_appeals))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and record its latency."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds a tuple on every call; the
            # children are resolved once per (method, route, status).
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _collect_public(self) -> Iterator[Metric]:
        yield from self.public.collect()

    def _collect_lists(self) -> Iterator[Metric]:
        version = GaugeMetricFamily(
            "cleanfeed_list_version", "Latest published version of each list.", labels=["list"]
        )
        age = GaugeMetricFamily(
            "cleanfeed_checkpoint_age_seconds",
            "Seconds since the list's checkpoint was last signed (publish lag).",
            labels=["list"],
        )
        pending = GaugeMetricFamily(
            "cleanfeed_pending_changes",
            "Approved changes not yet published in a signed version.",
            labels=["list"],
        )
        for status in self._list_status():
            version.add_metric([status.list_name], status.version)
            pending.add_metric([status.list_name], status.pending_changes)
            if status.checkpoint_age_seconds is not None:
                age.add_metric([status.list_name], status.checkpoint_age_seconds)
        yield version
        yield age
        yield pending

    def _collect_isps(self) -> Iterator[Metric]:
        seen = GaugeMetricFamily(
            "cleanfeed_isp_last_seen_version",
            "Last version each ISP token fetched, per list (admin scrape only).",
            labels=["isp", "list"],
        )
        when = GaugeMetricFamily(
            "cleanfeed_isp_last_seen_timestamp_seconds",
            "Unix time of each ISP token's last fetch, per list (admin scrape only).",
            labels=["isp", "list"],
        )
        for item in self._isp_seen():
            seen.add_metric([item.token_name, item.list_name], item.version)
            when.add_metric([item.token_name, item.list_name], item.at)
        yield seen
        yield when

    def _collect_verification(self) -> Iterator[Metric]:
        # Counts and times only: no URL, host or address (DESIGN.md privacy).
        assert self._verification is not None
        entries = GaugeMetricFamily(
            "cleanfeed_verification_entries",
            "Active entries (canary excluded) by re-verification status.",
            labels=["list", "status"],
        )
        proposals = GaugeMetricFamily(
            "cleanfeed_verification_proposals",
            "Re-verification proposals (expiry, referral) waiting for analysts.",
            labels=["list"],
        )
        flagged = GaugeMetricFamily(
            "cleanfeed_verification_unverified",
            "Active entries not seen live for max_unverified_days.",
            labels=["list"],
        )
        last = GaugeMetricFamily(
            "cleanfeed_verification_last_run_timestamp_seconds",
            "Unix time the latest re-verification run of the list finished.",
            labels=["list"],
        )
        duration = GaugeMetricFamily(
            "cleanfeed_verification_last_run_duration_seconds",
            "Seconds the latest re-verification run of the list took.",
            labels=["list"],
        )
        for item in self._verification():
            for status, count in sorted(item.counts.items()):
                entries.add_metric([item.list_name, status], count)
            proposals.add_metric([item.list_name], item.proposals)
            flagged.add_metric([item.list_name], item.flagged)
            if item.last_run_timestamp is not None:
                last.add_metric([item.list_name], item.last_run_timestamp)
            if item.last_run_seconds is not None:
                duration.add_metric([item.list_name], item.last_run_seconds)
        yield entries
        yield proposals
        yield flagged
        yield last
        yield duration

    def _collect_appeals(self) -> Iterator[Metric]:
        # Issue 17 item 3: appeals waiting longer than appeal_overdue_days.
        if self._appeals_overdue is None:
            return
        count = self._appeals_overdue()
        if count is None:
            return
        overdue = GaugeMetricFamily(
            "cleanfeed_appeals_overdue",
            "Appeals under review longer than the appeal_overdue_days setting.",
        )
        overdue.add_metric([], count)
        yield overdue

    def render(self, *, admin: bool) -> bytes:
        """Render the text exposition; ``admin`` adds the per-list and per-ISP gauges."""
        return generate_latest(self.admin if admin else self.public)
