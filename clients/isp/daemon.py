"""``cleanfeed isp run``: scheduled syncs with back-off, until SIGTERM/SIGINT.

DESIGN.md "ISP sync", step 7, and Safe Browsing's update discipline:

- the poll interval comes from the configuration but is never shorter than
  the server's ``Cleanfeed-Min-Wait`` hint, with up to 10 % of random
  spread so that many ISPs do not poll in lockstep;
- the first poll is delayed by a random fraction of ``first_poll_jitter``
  (a fleet restarted together does not stampede the server);
- after an error the delay grows exponentially with *full jitter*
  (AWS architecture blog, "Exponential Backoff And Jitter"): uniform in
  ``[0, min(cap, base x 2^failures)]``, never below a floor, never below
  the server's ``Retry-After`` or minimum wait, capped at ``max_backoff``;
- SIGTERM and SIGINT stop the scheduler; a sync in progress finishes (its
  commit is one transaction either way) before the process exits.

- between scheduled syncs, a watcher thread long-polls the checkpoint
  (``long_poll`` seconds, DESIGN.md "Freshness") and moves the next sync to
  now when the server reports another checkpoint; a server that does not
  long-poll (no ``Cleanfeed-Wait`` echo), declines, answers early or fails
  leaves the plain schedule in force until the next sync tries again.

The scheduler is APScheduler's ``BlockingScheduler`` with one one-shot job
rescheduled after every run, so the next delay always depends on the last
outcome. An optional Prometheus text file (node_exporter's textfile
collector) is rewritten atomically after every sync.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Final

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler

from clients.common.files import write_atomic
from clients.isp.config import IspConfig
from clients.isp.records import REPORT_SCOPES, Status
from clients.isp.store import StateStore
from clients.isp.sync import SyncOutcome, WatchOutcome

__all__ = [
    "BACKOFF_BASE",
    "INTERVAL_SPREAD",
    "MIN_ERROR_DELAY",
    "Daemon",
    "log_outcome",
    "next_delay",
    "render_metrics",
    "write_metrics_file",
]

log = logging.getLogger("cleanfeed.isp")

#: First retry delay scale after an error (seconds).
BACKOFF_BASE: Final = 30.0
#: Never retry faster than this after an error, whatever the jitter drew.
MIN_ERROR_DELAY: Final = 5.0
#: Random spread added to the regular interval (fraction of it).
INTERVAL_SPREAD: Final = 0.10
#: Largest exponent used (2^16 x 30 s is far beyond any cap anyway).
_MAX_EXPONENT: Final = 16
_JOB_ID: Final = "cleanfeed-isp-sync"


def next_delay(
    outcome: SyncOutcome | None,
    *,
    failures: int,
    interval: float,
    max_backoff: float,
    min_wait: float | None,
    rng: random.Random,
) -> float:
    """Seconds until the next sync.

    Args:
        outcome: the last sync's outcome.
        failures: consecutive failed syncs, this one included (0 after a
            success).
        interval: the configured poll interval.
        max_backoff: cap of the error back-off.
        min_wait: the server's minimum poll interval, if it sent one.
        rng: random source (injectable for tests).
    """
    floor = max(min_wait or 0.0, 0.0)
    if outcome is not None and outcome.ok:
        base = max(interval, floor)
        return base * rng.uniform(1.0, 1.0 + INTERVAL_SPREAD)
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    ceiling = min(max_backoff, BACKOFF_BASE * 2**exponent)
    delay = max(rng.uniform(0.0, ceiling), MIN_ERROR_DELAY)
    if outcome is not None and outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return max(delay, floor)


def _metric_line(name: str, value: float | None, labels: str = "") -> str:
    if value is None:
        return ""
    text = repr(float(value)) if not float(value).is_integer() else str(int(value))
    return f"{name}{labels} {text}\n"


def render_metrics(status: Status, *, last_ok: bool | None) -> str:
    """Prometheus text exposition of the client's status and counters."""
    out = [
        "# HELP cleanfeed_isp_sync_total Sync outcomes by reason.\n",
        "# TYPE cleanfeed_isp_sync_total counter\n",
    ]
    for reason, count in sorted(status.counters.items()):
        out.append(_metric_line("cleanfeed_isp_sync_total", count, f'{{reason="{reason}"}}'))
    gauges = [
        ("cleanfeed_isp_version", "Version of the list in force.", status.version),
        ("cleanfeed_isp_entries", "Entries in the list in force.", status.count),
        (
            "cleanfeed_isp_checkpoint_timestamp_seconds",
            "Signing time of the held checkpoint.",
            status.checkpoint_time,
        ),
        (
            "cleanfeed_isp_last_success_timestamp_seconds",
            "Time of the last successful sync.",
            status.last_success,
        ),
        (
            "cleanfeed_isp_last_attempt_timestamp_seconds",
            "Time of the last sync attempt.",
            status.last_attempt,
        ),
        (
            "cleanfeed_isp_last_sync_ok",
            "1 when the last sync verified the list, else 0.",
            None if last_ok is None else int(last_ok),
        ),
        (
            "cleanfeed_isp_plaintext_complete",
            "1 when every listed hash has its expression (entitled clients).",
            None if status.plaintext_complete is None else int(status.plaintext_complete),
        ),
    ]
    for name, help_text, value in gauges:
        if value is None:
            continue
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
        out.append(_metric_line(name, value))
    if status.exports:
        name = "cleanfeed_isp_export_not_enforceable_entries"
        out.append(
            f"# HELP {name} Entries an export cannot enforce, by entry scope.\n"
            f"# TYPE {name} gauge\n"
        )
        for report in status.exports:
            for scope in REPORT_SCOPES:
                labels = (
                    f'{{format="{_label_value(report.format)}",'
                    f'output="{_label_value(report.output)}",scope="{scope}"}}'
                )
                out.append(_metric_line(name, report.left_out.get(scope, 0), labels))
    return "".join(out)


def _label_value(text: str) -> str:
    """Escape a label value (Prometheus text exposition format: backslash,
    double quote and line feed)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_metrics_file(path: Path, state_dir: Path, *, last_ok: bool | None) -> None:
    """Rewrite the Prometheus text file atomically from the state directory.

    Raises:
        OSError: the file cannot be written.
        ClientError: the state cannot be read.
    """
    with StateStore(state_dir, create=False) as store:
        text = render_metrics(store.status(), last_ok=last_ok)
    write_atomic(path, text.encode("utf-8"), mode=0o644)


def log_outcome(outcome: SyncOutcome) -> None:
    """Log one sync's outcome once: a line, its post-commit problems, its exports.

    A verified sync without problems logs at INFO (``run -v``), anything
    else at WARNING. An export that cannot enforce every entry (a DNS or
    hosts export and page or prefix entries) is a WARNING when this sync
    rewrote it, so the journal says it without ``-v`` once per list change,
    not every poll; ``cleanfeed isp status`` shows it at any time.
    """
    ok = outcome.ok and not outcome.problems
    log.log(
        logging.INFO if ok else logging.WARNING,
        "sync %s: %s: %s (version %d -> %d)",
        outcome.status,
        outcome.reason,
        outcome.message,
        outcome.version_before,
        outcome.version_after,
    )
    for reason, message in outcome.problems:
        log.warning("after the commit: %s: %s", reason, message)
    for report in outcome.exports:
        if report.not_enforceable or report.partial:
            rewritten = report.output in outcome.exports_changed
            log.log(logging.WARNING if rewritten else logging.INFO, "export %s", report.summary())


class Daemon:
    """Runs :class:`~clients.isp.sync.Syncer` syncs on a schedule.

    Args:
        config: the client configuration.
        sync: runs one sync (``Syncer(...).sync_once``).
        rng: random source for jitter.
        post_hits: posts the completed weeks' hit counts after each sync
            (``[hits]`` opted in; :func:`clients.isp.hits.post_completed_weeks`).
        watch: long-polls for up to N seconds (``Syncer(...).watch``); used
            between syncs when ``config.long_poll`` is positive.
    """

    def __init__(
        self,
        config: IspConfig,
        sync: Callable[[], SyncOutcome],
        *,
        rng: random.Random | None = None,
        post_hits: Callable[[], object] | None = None,
        watch: Callable[[int], WatchOutcome] | None = None,
    ) -> None:
        self.config = config
        self._sync = sync
        self._post_hits = post_hits
        self._watch = watch if config.long_poll > 0 else None
        #: Set after each successful sync: the watcher may long-poll.
        self._watching = threading.Event()
        self._job: Job | None = None
        self._job_lock = threading.Lock()
        #: Long-polls that reported a change (syncs started early).
        self.wakeups = 0
        self._rng = rng or random.SystemRandom()
        self._failures = 0
        self._min_wait: float | None = None
        self._scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._stopping = threading.Event()
        self.runs = 0

    def _schedule(self, delay: float) -> None:
        if self._stopping.is_set():
            return
        when = datetime.now(UTC) + timedelta(seconds=delay)
        # A fresh job id each time: the scheduler removes the finished
        # one-shot job after it ran, which must not remove its successor.
        with self._job_lock:
            self._job = self._scheduler.add_job(
                self._run_once, trigger="date", run_date=when, name=_JOB_ID
            )
        log.info("next sync in %.0f s", delay)

    def _sync_soon(self) -> None:
        """Move the pending sync to now (a long-poll saw a new checkpoint)."""
        with self._job_lock:
            job = self._job
            if job is None or self._stopping.is_set():
                return
            self.wakeups += 1  # before the move: the sync may finish before this thread resumes
            # JobLookupError: it is running or just ran; its successor is
            # scheduled and the watcher resumes after it.
            with contextlib.suppress(JobLookupError):
                job.modify(next_run_time=datetime.now(UTC))

    def _watch_loop(self) -> None:
        """The watcher thread: long-poll between syncs until stopped."""
        watch = self._watch
        assert watch is not None
        while not self._stopping.is_set():
            if not self._watching.wait(timeout=1.0):
                continue
            try:
                outcome = watch(self.config.long_poll)
            except Exception:  # a bug must not end freshness; the schedule still runs
                if self._stopping.is_set():
                    return  # the HTTP client closed under it at exit
                log.exception("long-poll crashed")
                outcome = WatchOutcome.UNAVAILABLE
            if self._stopping.is_set():
                return
            if outcome is WatchOutcome.CHANGED:
                log.info("new checkpoint announced; syncing now")
                self._watching.clear()  # the sync sets it again
                self._sync_soon()
            elif outcome is WatchOutcome.UNAVAILABLE:
                self._watching.clear()  # plain polling until the next sync

    def _run_once(self) -> None:
        outcome: SyncOutcome | None = None
        try:
            outcome = self._sync()
        except Exception:  # a bug must not kill the daemon; it retries with back-off
            log.exception("sync crashed")
        else:
            log_outcome(outcome)
        self.runs += 1
        ok = outcome is not None and outcome.ok
        self._failures = 0 if ok else self._failures + 1
        if outcome is not None and outcome.min_wait is not None:
            self._min_wait = outcome.min_wait
        if self._post_hits is not None:
            try:
                self._post_hits()
            except Exception as e:  # statistics are best effort: never stop syncing
                log.warning("cannot post hit counts: %s", type(e).__name__)
        if self.config.prometheus_textfile is not None:
            try:
                write_metrics_file(
                    self.config.prometheus_textfile, self.config.state_path, last_ok=ok
                )
            except Exception as e:  # metrics are best effort
                log.warning("cannot write metrics file: %s", e)
        delay = next_delay(
            outcome,
            failures=self._failures,
            interval=self.config.interval,
            max_backoff=self.config.max_backoff,
            min_wait=self._min_wait,
            rng=self._rng,
        )
        self._schedule(delay)
        if self._watch is not None and ok:
            self._watching.set()

    def stop(self, *_: object) -> None:
        """Stop after the sync in progress (signal-handler safe)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.info("stopping")
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Run until stopped; returns the process exit status (0).

        Args:
            install_signal_handlers: stop cleanly on SIGTERM and SIGINT.
        """
        if install_signal_handlers:

            def handler(signum: int, frame: FrameType | None) -> None:
                self.stop()

            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)
        first = self._rng.uniform(0.0, max(self.config.first_poll_jitter, 0.0))
        self._schedule(first)
        if self._watch is not None:
            # A daemon thread: a long-poll in progress never delays exit,
            # and it holds nothing that needs finishing (no lock, no write).
            threading.Thread(
                target=self._watch_loop, name="cleanfeed-long-poll", daemon=True
            ).start()
        if self._stopping.is_set():
            return 0
        try:
            self._scheduler.start()
        except JobLookupError:
            # stop() shut the scheduler down while it was dispatching the
            # job that called it; that job is finished, nothing is lost.
            if not self._stopping.is_set():
                raise
        return 0
