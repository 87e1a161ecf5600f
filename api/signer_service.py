"""The embedded signer: the publisher run inside ``cleanfeed serve``.

DESIGN.md, "Processes": in the embedded, zero-configuration default the API
and the signer share one process. This module wraps
:class:`signer.publisher.Publisher` (one per list) with

- a lock per list, so a publish-now request and the scheduled publish never
  run at once in this process (the database lock already serialises
  processes);
- an APScheduler ``BackgroundScheduler`` with these jobs: publish every
  ``publish_interval``; keep each checkpoint fresh (re-signed once older
  than ``checkpoint_interval``, DESIGN.md item 4); renew keyrings; apply the
  retention policy hourly when one is configured
  (:mod:`blocklist.store.retention`); re-verify active entries when
  configured (:mod:`signer.reverify`); and, when other processes record
  publish requests (``--workers`` > 1, or separate API hosts), serve them
  every second.

Exactly one process may run the scheduler for a data directory; the serve
command guarantees it (with several workers the parent runs it and the
workers run with ``signer = false``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from blocklist.store import appeals as store_appeals
from blocklist.store import lists as store_lists
from blocklist.store.db import Database
from blocklist.store.retention import RetentionPolicy, prune_database
from signer.keyring_ops import renew_keyring_if_needed
from signer.publisher import Publisher, PublishResult, SignedCheckpoint
from signer.reverify import Reverifier, load_config

if TYPE_CHECKING:
    from api.settings import Settings

__all__ = [
    "KEYRING_CHECK_SECONDS",
    "MIN_CHECKPOINT_CHECK_SECONDS",
    "REQUEST_POLL_SECONDS",
    "RETENTION_CHECK_SECONDS",
    "SignerService",
    "embedded_signer",
    "reverifier_for",
]

log = logging.getLogger("cleanfeed.signer")

T = TypeVar("T")

#: Seconds between polls for publish requests left by other processes: the
#: API waits up to its publish timeout (10 s by default) for an answer.
REQUEST_POLL_SECONDS: Final = 1.0

#: Seconds between keyring expiry checks (keyrings last a year and are
#: renewed a month before they expire).
KEYRING_CHECK_SECONDS: Final = 3600.0

#: Seconds between retention runs (periods are in days; an hour late is nothing).
RETENTION_CHECK_SECONDS: Final = 3600.0

#: Fewest seconds between checkpoint freshness checks (each is one cheap read).
MIN_CHECKPOINT_CHECK_SECONDS: Final = 1.0


def reverifier_for(
    db: Database,
    config: Path | None,
    *,
    country_db: Path | None = None,
    cdn_file: Path | None = None,
) -> Reverifier | None:
    """The re-verification job a ``reverify_config`` file describes (None: off).

    Addresses are located with the country database and CDN list of the
    hosting settings (``signer.hosting``), so a host that moved into the
    home country is proposed for referral (issue 16 item 4).

    Raises:
        ReverifyConfigError: the file is unreadable or invalid.
        OSError, ValueError: the country database or CDN file cannot be read.
    """
    if config is None:
        return None
    from signer.hosting import address_locator

    return Reverifier(db, load_config(config), locate=address_locator(country_db, cdn_file))


def embedded_signer(settings: Settings, db: Database) -> SignerService:
    """The signer ``cleanfeed serve`` runs beside the API, configured by ``settings``.

    One home for both places that start it: the app's own lifespan (one
    worker) and the parent process of ``serve --workers N`` (its workers
    run without a signer), so both schedule the same jobs: publishing,
    checkpoints, keyring renewal, retention, re-verification and appeal
    retention.

    Raises:
        ReverifyConfigError: the ``reverify_config`` file is unreadable or invalid.
        OSError, ValueError: the hosting country database or CDN file cannot be read.
    """
    return SignerService(
        db,
        settings.keys_dir,
        publish_interval=settings.publish_interval,
        checkpoint_interval=settings.checkpoint_interval,
        serve_requests=True,
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        retention=settings.retention,
        reverifier=reverifier_for(
            db,
            settings.reverify_config,
            country_db=settings.hosting_country_db,
            cdn_file=settings.hosting_cdn_networks,
        ),
        appeal_retention_days=settings.appeal_retention_days,
    )


class SignerService:
    """Publishers for every list of one database, plus their schedule."""

    def __init__(
        self,
        db: Database,
        keys_dir: Path,
        *,
        publish_interval: float,
        checkpoint_interval: float,
        serve_requests: bool = False,
        data_dir: Path | None = None,
        database_url: str | None = None,
        retention: RetentionPolicy | None = None,
        reverifier: Reverifier | None = None,
        appeal_retention_days: int | None = None,
    ) -> None:
        """Prepare publishers (keys are read on first use, not here).

        Args:
            db: the database.
            keys_dir: ``DATA_DIR/keys``.
            publish_interval: seconds between scheduled publishes.
            checkpoint_interval: re-sign a checkpoint once it is this old.
            serve_requests: also serve publish requests other processes record.
            data_dir: the data directory; when given, keyrings are renewed
                before they expire (embedded root key only).
            database_url: the database URL, for keyring renewal.
            retention: what to prune hourly (``None`` or nothing enabled:
                keep everything).
            reverifier: the re-verification job (issue 16 item 4), run every
                ``reverifier.config.interval`` seconds; ``None``: off.
            appeal_retention_days: erase appellants' data this many days
                after their appeal closed, hourly (``None``: never).
        """
        self.db = db
        self.keys_dir = Path(keys_dir)
        self.publish_interval = publish_interval
        self.checkpoint_interval = checkpoint_interval
        self.serve_requests = serve_requests
        self.data_dir = data_dir
        self.database_url = database_url
        self.retention = retention
        self.reverifier = reverifier
        self.appeal_retention_days = appeal_retention_days
        self._publishers: dict[str, Publisher] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        #: Called with a list name after it was published or re-signed
        #: (the app drops its cached checkpoint).
        self.listeners: list[Callable[[str], None]] = []
        #: list name -> (operation, error code) of its last failed operation,
        #: until one succeeds: /readyz reports it (disk full, read-only
        #: database, missing key...).
        self._failures: dict[str, tuple[str, str]] = {}

    def _publisher(self, list_name: str) -> tuple[Publisher, threading.Lock]:
        with self._guard:
            publisher = self._publishers.get(list_name)
            if publisher is None:
                publisher = Publisher(
                    self.db,
                    list_name,
                    self.keys_dir,
                    checkpoint_interval=self.checkpoint_interval,
                )
                self._publishers[list_name] = publisher
                self._locks[list_name] = threading.Lock()
            return publisher, self._locks[list_name]

    def _changed(self, list_name: str) -> None:
        for listener in self.listeners:
            listener(list_name)

    def _run(self, list_name: str, operation: str, action: Callable[[Publisher], T]) -> T:
        publisher, lock = self._publisher(list_name)
        with lock:
            try:
                result = action(publisher)
            except Exception as e:
                self._failures[list_name] = (operation, str(getattr(e, "code", type(e).__name__)))
                raise
            self._failures.pop(list_name, None)
        return result

    def publish_now(self, list_name: str) -> PublishResult:
        """Cut a version from everything pending on ``list_name`` now.

        Raises:
            NotFound: no such list.
            SignerError: keys, keyring or high-water mark trouble
                (see :meth:`signer.publisher.Publisher.publish_once`).
            StoreError: the database refused the write (disk full, read-only).
        """
        result = self._run(list_name, "publish", lambda p: p.publish_once())
        if result.versions:
            self._changed(list_name)
        return result

    def refresh(self, list_name: str, *, force: bool = False) -> SignedCheckpoint | None:
        """Re-sign ``list_name``'s checkpoint if it is due (or ``force``).

        Raises:
            NotFound: no such list.
            SignerError, StoreError: as :meth:`publish_now`.
        """
        result = self._run(list_name, "refresh", lambda p: p.refresh_checkpoint(force=force))
        if result is not None:
            self._changed(list_name)
        return result

    def serve(self, list_name: str) -> PublishResult | None:
        """Serve publish requests recorded for ``list_name`` by other processes.

        Raises:
            NotFound: no such list.
            SignerError, StoreError: as :meth:`publish_now`.
        """
        result = self._run(list_name, "serve", lambda p: p.serve_requests())
        if result is not None:
            self._changed(list_name)
        return result

    def failures(self) -> dict[str, tuple[str, str]]:
        """Lists whose last signer operation failed: ``{list: (operation, code)}``."""
        return dict(self._failures)

    def retry_failed(self) -> dict[str, str]:
        """Retry each list's failed operation once; return the lists still failing.

        Readiness calls this, so a fault that cleared (disk space freed, the
        database writable again) is noticed at once rather than at the next
        scheduled run.
        """
        still: dict[str, str] = {}
        retry: dict[str, Callable[[str], object]] = {
            "publish": self.publish_now,
            "refresh": self.refresh,
            "serve": self.serve,
        }
        for name, (operation, _) in self.failures().items():
            try:
                retry[operation](name)
            except Exception:
                still[name] = self._failures.get(name, (operation, "error"))[1]
        return still

    def list_names(self) -> list[str]:
        """Every list of the database."""
        with self.db.read() as session:
            return [row.name for row in store_lists.list_lists(session)]

    def _each_list(self, action: Callable[[str], object], what: str) -> None:
        try:
            names = self.list_names()
        except Exception:
            log.exception("signer: cannot read the lists to %s", what)
            return
        for name in names:
            try:
                action(name)
            except Exception:
                # One list's trouble (a missing key, a refused fork) must not
                # stop the others; the error is logged and /readyz reports
                # the stale checkpoint.
                log.exception("signer: %s failed for list %s", what, name)

    def publish_all(self) -> None:
        """Scheduled job: publish every list."""
        self._each_list(self.publish_now, "publish")

    def refresh_all(self) -> None:
        """Scheduled job: keep every checkpoint fresh."""
        self._each_list(self.refresh, "refresh the checkpoint")

    def serve_all(self) -> None:
        """Scheduled job: serve other processes' publish requests."""
        self._each_list(self.serve, "serve publish requests")

    def renew_all(self) -> None:
        """Scheduled job: renew keyrings before they expire (embedded root only)."""
        data_dir = self.data_dir
        if data_dir is None:
            return

        def renew(name: str) -> None:
            renew_keyring_if_needed(data_dir, name, database_url=self.database_url)

        self._each_list(renew, "renew the keyring")

    def prune_all(self) -> None:
        """Scheduled job: apply the retention policy to every list."""
        policy = self.retention
        if policy is None or not policy.enabled:
            return
        try:
            results = prune_database(self.db, policy)
        except Exception:
            log.exception("signer: retention failed")
            return
        for name, result in results.items():
            if result.changed:
                log.info("retention pruned list %s", name, extra=result.summary(name))

    def prune_appeals(self) -> None:
        """Scheduled job: erase appellants' data past its retention (issue 17 item 4)."""
        days = self.appeal_retention_days
        if days is None:
            return
        try:
            with self.db.transaction() as session:
                erased = store_appeals.erase_expired(session, days=days)
        except Exception:
            log.exception("signer: appeal retention failed")
            return
        if erased:
            log.info("appeal retention erased %d appellant record(s)", len(erased))

    def start(self) -> None:
        """Start the background schedule (idempotent)."""
        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone=UTC)
        now = datetime.now(UTC)
        common = {"max_instances": 1, "coalesce": True, "next_run_time": now}
        scheduler.add_job(
            self.refresh_all,
            "interval",
            seconds=max(MIN_CHECKPOINT_CHECK_SECONDS, self.checkpoint_interval / 10),
            id="refresh",
            **common,
        )
        scheduler.add_job(
            self.publish_all, "interval", seconds=self.publish_interval, id="publish", **common
        )
        scheduler.add_job(
            self.renew_all, "interval", seconds=KEYRING_CHECK_SECONDS, id="renew", **common
        )
        if self.retention is not None and self.retention.enabled:
            scheduler.add_job(
                self.prune_all,
                "interval",
                seconds=RETENTION_CHECK_SECONDS,
                id="retention",
                **common,
            )
        if self.reverifier is not None:
            scheduler.add_job(
                self.reverifier.run_all,
                "interval",
                seconds=self.reverifier.config.interval,
                id="reverify",
                **common,
            )
        if self.appeal_retention_days is not None:
            scheduler.add_job(
                self.prune_appeals,
                "interval",
                seconds=RETENTION_CHECK_SECONDS,
                id="appeal-retention",
                **common,
            )
        if self.serve_requests:
            scheduler.add_job(
                self.serve_all, "interval", seconds=REQUEST_POLL_SECONDS, id="requests", **common
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "embedded signer started",
            extra={
                "event": "signer_start",
                "publish_interval": self.publish_interval,
                "checkpoint_interval": self.checkpoint_interval,
            },
        )

    def shutdown(self) -> None:
        """Stop the schedule, waiting for a running job to finish."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
