"""``cleanfeed signer …``: the publisher daemon, and publish, prune and adopt-highwater.

``cleanfeed signer run`` is the separate signer process of DESIGN.md,
"Processes": it holds the online key (the API, started with
``--no-signer``, never does), cuts versions on a schedule, serves the API's
publish requests within about a second, and re-signs the checkpoint so it
stays fresh. Any number of them may run against one database: the list
lock makes the others wait, never fork the log.

Database URL precedence: ``--database-url``, then ``CLEANFEED_DATABASE_URL``,
then ``database_url`` in ``DATA_DIR/settings.toml``, then SQLite in the data
directory. Log lines are JSON objects on stderr, one per published version
batch, re-signed checkpoint or error; command results are JSON on stdout.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final

import click

from blocklist.encoding import b64encode
from blocklist.jsonlog import JsonFormatter

__all__ = ["data_dir_option", "database_option", "signer_group"]

logger = logging.getLogger("cleanfeed.signer")

#: How often the daemon looks for publish requests left by an API started
#: with --no-signer: the API waits for the new version, so about a second.
REQUEST_POLL_SECONDS: Final = 1.0

#: Longest pause between checkpoint freshness checks: the checkpoint is
#: re-signed at most this much later than its interval says.
MAX_CHECKPOINT_CHECK_SECONDS: Final = 60.0

#: How often the embedded default checks whether its keyring needs renewing.
KEYRING_CHECK_SECONDS: Final = 3600.0

#: How often the daemon applies the retention policy (periods are in days).
RETENTION_CHECK_SECONDS: Final = 3600.0


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # The daemon logs an error's message, not its traceback: one line per failed job.
    handler.setFormatter(JsonFormatter(traceback=False))
    root = logging.getLogger("cleanfeed")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


data_dir_option = click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory holding keys/<list>/ (and the SQLite database by default).",
)
database_option = click.option(
    "--database-url",
    envvar="CLEANFEED_DATABASE_URL",
    default=None,
    help="SQLAlchemy database URL [env CLEANFEED_DATABASE_URL; default: SQLite in DATA_DIR].",
)


# No envvar here: the environment and settings.toml are read by
# signer.datadir.resolve_retention, the signer's one reader of these settings,
# so an option left out falls back exactly as the API's settings do.
_snapshot_days_option = click.option(
    "--snapshot-retention-days",
    "snapshot_days",
    type=int,
    default=None,
    help="Prune snapshots of versions superseded more than N days ago "
    "[else CLEANFEED_SNAPSHOT_RETENTION_DAYS, else snapshot_retention_days in "
    "DATA_DIR/settings.toml; default: keep all]. Statements stay forever.",
)
_plaintext_days_option = click.option(
    "--plaintext-retention-days",
    "plaintext_days",
    type=int,
    default=None,
    help="Erase the plaintext of entries off the list for more than N days "
    "[else CLEANFEED_PLAINTEXT_RETENTION_DAYS, else plaintext_retention_days in "
    "DATA_DIR/settings.toml; default: keep it]. Hashes and decisions stay.",
)


def _retention(data_dir: Path, snapshot_days: int | None, plaintext_days: int | None) -> Any:
    from signer.datadir import resolve_retention
    from signer.errors import SignerError

    try:
        return resolve_retention(data_dir, snapshot_days, plaintext_days)
    except SignerError as e:
        raise click.UsageError(str(e)) from e


def _database(data_dir: Path, database_url: str | None) -> Any:
    from blocklist.store import Database
    from signer.datadir import keys_dir_of, resolve_database_url
    from signer.errors import NotInitialised, SignerError

    if not keys_dir_of(data_dir).is_dir():
        raise click.ClickException(
            str(NotInitialised(f"{data_dir} is not initialised: run `cleanfeed init` first"))
        )
    try:
        return Database(resolve_database_url(data_dir, database_url))
    except SignerError as e:
        raise click.ClickException(str(e)) from e


def _list_names(db: Any, wanted: Sequence[str]) -> list[str]:
    from blocklist.store.lists import list_lists

    if wanted:
        return list(dict.fromkeys(wanted))
    with db.read() as session:
        names = [row.name for row in list_lists(session)]
    if not names:
        raise click.ClickException("the database has no list: run `cleanfeed init` first")
    return names


@click.group(name="signer")
def signer_group() -> None:
    """Run the publisher that cuts and signs versions."""


@signer_group.command("run")
@data_dir_option
@database_option
@click.option("--list", "lists", multiple=True, help="List to publish (repeat; default: all).")
@click.option(
    "--publish-interval",
    type=click.FloatRange(min=1.0, max=86_400.0),
    default=60.0,
    show_default=True,
    help="Seconds between publish runs.",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=1.0, max=86_400.0),
    default=600.0,
    show_default=True,
    help="Re-sign the checkpoint when older than this many seconds.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
)
@_snapshot_days_option
@_plaintext_days_option
@click.option(
    "--reverify-config",
    envvar="CLEANFEED_REVERIFY_CONFIG",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Re-verify active entries as configured by this TOML file (vantage points, cadence, "
    "limits; docs/reverification.md) [env CLEANFEED_REVERIFY_CONFIG; default: off].",
)
def run_command(
    data_dir: Path,
    database_url: str | None,
    lists: tuple[str, ...],
    publish_interval: float,
    checkpoint_interval: float,
    log_level: str,
    snapshot_days: int | None,
    plaintext_days: int | None,
    reverify_config: Path | None,
) -> None:
    """Run the signer daemon until SIGTERM or SIGINT.

    Publishes pending changes every --publish-interval seconds, serves
    publish requests of an API started with --no-signer within about a
    second, and keeps each list's checkpoint fresh. With a retention period
    set, prunes old snapshots and off-list plaintext hourly (see `cleanfeed
    signer prune`). With --reverify-config, re-checks active entries on the
    configured cadence (docs/reverification.md). A second signer against
    the same database waits on the list lock and never forks the log.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler

    from blocklist.store.retention import prune_database
    from signer.datadir import keys_dir_of
    from signer.keyring_ops import renew_keyring_if_needed
    from signer.publisher import Publisher

    policy = _retention(data_dir, snapshot_days, plaintext_days)

    _configure_logging(log_level)
    db = _database(data_dir, database_url)
    names = _list_names(db, lists)
    keys_dir = keys_dir_of(data_dir)
    # An insecure key stops the daemon at start, with the fix (chmod/chown).
    from signer.errors import KeyFileError
    from signer.keys import check_key_files

    try:
        check_key_files(keys_dir)
    except KeyFileError as e:
        db.dispose()
        raise click.ClickException(str(e)) from e
    publishers: dict[str, tuple[Publisher, threading.Lock]] = {}

    def current() -> list[tuple[Publisher, threading.Lock]]:
        # Without --list, lists created while the daemon runs are picked up.
        wanted = list(lists) if lists else _list_names(db, ())
        for name in wanted:
            if name not in publishers:
                publisher = Publisher(db, name, keys_dir, checkpoint_interval=checkpoint_interval)
                publishers[name] = (publisher, threading.Lock())
        return [publishers[name] for name in wanted]

    def each_list(what: str, action: Callable[[Publisher], object]) -> Callable[[], None]:
        def job() -> None:
            try:
                targets = current()
            except Exception:
                logger.exception("cannot read the lists", extra={"event": f"{what}_failed"})
                return
            for publisher, lock in targets:
                try:
                    # One job at a time per list in this process; the
                    # database lock serialises processes.
                    with lock:
                        action(publisher)
                except Exception:
                    # Keep the daemon alive: a refused fork or an unreachable
                    # database is logged each time and retried on the next run.
                    logger.exception(
                        "%s of %s failed",
                        what,
                        publisher.list_name,
                        extra={"event": f"{what}_failed", "list": publisher.list_name},
                    )

        return job

    def refresh(publisher: Publisher) -> object:
        result = publisher.refresh_checkpoint()
        if result is not None:
            logger.info(
                "re-signed checkpoint of %s",
                result.list_name,
                extra={
                    "event": "checkpoint",
                    "list": result.list_name,
                    "size": result.size,
                    "root": b64encode(result.root),
                },
            )
        return result

    def renew(publisher: Publisher) -> object:
        return renew_keyring_if_needed(data_dir, publisher.list_name, database_url=database_url)

    scheduler = BlockingScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
    start = datetime.now(UTC)
    check_every = min(MAX_CHECKPOINT_CHECK_SECONDS, checkpoint_interval / 4)
    scheduler.add_job(
        each_list("keyring_renewal", renew),
        "interval",
        seconds=KEYRING_CHECK_SECONDS,
        next_run_time=start,
        id="renew",
    )
    scheduler.add_job(
        each_list("publish", lambda p: p.publish_once()),
        "interval",
        seconds=publish_interval,
        next_run_time=start,
        id="publish",
    )
    scheduler.add_job(
        each_list("checkpoint", refresh),
        "interval",
        seconds=check_every,
        next_run_time=start + timedelta(seconds=1),
        id="checkpoint",
    )
    scheduler.add_job(
        each_list("publish_request", lambda p: p.serve_requests()),
        "interval",
        seconds=REQUEST_POLL_SECONDS,
        id="requests",
    )

    def prune() -> None:
        try:
            results = prune_database(db, policy, lists=list(lists) or None)
        except Exception:
            logger.exception("retention failed", extra={"event": "retention_failed"})
            return
        for name, result in results.items():
            if result.changed:
                logger.info("retention pruned list %s", name, extra=result.summary(name))

    if reverify_config is not None:
        # Issue 16 item 4: re-verification in the signer's process.
        from signer.reverify import Reverifier, ReverifyConfigError, load_config

        try:
            from signer.hosting import address_locator

            reverifier = Reverifier(db, load_config(reverify_config), locate=address_locator())
        except ReverifyConfigError as e:
            db.dispose()
            raise click.ClickException(str(e)) from e
        scheduler.add_job(
            lambda: reverifier.run_all(list(lists) or None),
            "interval",
            seconds=reverifier.config.interval,
            next_run_time=start + timedelta(seconds=3),
            id="reverify",
        )

    if policy.enabled:
        scheduler.add_job(
            prune,
            "interval",
            seconds=RETENTION_CHECK_SECONDS,
            next_run_time=start + timedelta(seconds=2),
            id="retention",
        )

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        logger.info(
            "stopping on %s", signal.Signals(signum).name, extra={"event": "signer_stopping"}
        )
        # Waits for running jobs: a publish in progress commits or rolls back.
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(
        "signer started",
        extra={"event": "signer_started", "lists": names},
    )
    try:
        scheduler.start()
    finally:
        db.dispose()
        logger.info("signer stopped", extra={"event": "signer_stopped"})


@signer_group.command("publish")
@data_dir_option
@database_option
@click.option("--list", "lists", multiple=True, help="List to publish (repeat; default: all).")
@click.option("--once", is_flag=True, help="Publish what is pending now and exit.")
def publish_command(
    data_dir: Path, database_url: str | None, lists: tuple[str, ...], once: bool
) -> None:
    """Publish pending changes once; print {"list", "version_before", "version"} per list."""
    from blocklist.errors import BlocklistError
    from signer.datadir import keys_dir_of
    from signer.errors import SignerError
    from signer.publisher import Publisher

    if not once:
        raise click.UsageError("use --once (or `cleanfeed signer run` for the daemon)")
    db = _database(data_dir, database_url)
    try:
        try:
            names = _list_names(db, lists)
        except BlocklistError as e:
            raise click.ClickException(str(e)) from e
        for name in names:
            try:
                result = Publisher(db, name, keys_dir_of(data_dir)).publish_once()
            except (SignerError, BlocklistError) as e:
                raise click.ClickException(f"{name}: {e}") from e
            click.echo(
                json.dumps(
                    {
                        "list": result.list_name,
                        "version_before": result.version_before,
                        "version": result.version_after,
                    }
                )
            )
    finally:
        db.dispose()


@signer_group.command("reverify")
@data_dir_option
@database_option
@click.option("--list", "lists", multiple=True, help="List to check (repeat; default: all).")
@click.option(
    "--reverify-config",
    envvar="CLEANFEED_REVERIFY_CONFIG",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The re-verification TOML file (docs/reverification.md) [env CLEANFEED_REVERIFY_CONFIG].",
)
def reverify_command(
    data_dir: Path, database_url: str | None, lists: tuple[str, ...], reverify_config: Path
) -> None:
    """Re-verify active entries once, as `cleanfeed signer run --reverify-config` does on
    its cadence.

    Checks up to `batch` entries per list (least recently checked first;
    never the canary) by DNS and one headers-only HTTP(S) request per
    vantage point, records each verdict, proposes expiries and, with
    auto_expire_gone, expires what every vantage point saw gone. Prints one
    JSON object of counts per list on stdout (no URL, no host).
    """
    from signer.reverify import Reverifier, ReverifyConfigError, load_config

    try:
        config = load_config(reverify_config)
    except ReverifyConfigError as e:
        raise click.ClickException(str(e)) from e
    db = _database(data_dir, database_url)
    try:
        from signer.hosting import address_locator

        runs = Reverifier(db, config, locate=address_locator()).run_all(_list_names(db, lists))
    finally:
        db.dispose()
    for run in runs:
        click.echo(
            json.dumps(
                {
                    "list": run.list_name,
                    "checked": run.checked,
                    "by_status": run.by_status,
                    "proposed": run.proposed,
                    "expired": run.expired,
                    "referrals": run.referrals,
                    "flagged": run.flagged,
                    "seconds": round(run.seconds, 3),
                },
                sort_keys=True,
            )
        )


@signer_group.command("prune")
@data_dir_option
@database_option
@click.option("--list", "lists", multiple=True, help="List to prune (repeat; default: all).")
@_snapshot_days_option
@_plaintext_days_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="Count what would be pruned (plaintext: one batch); change nothing.",
)
def prune_command(
    data_dir: Path,
    database_url: str | None,
    lists: tuple[str, ...],
    snapshot_days: int | None,
    plaintext_days: int | None,
    dry_run: bool,
) -> None:
    """Apply the retention policy once: prune old snapshots and off-list plaintext.

    Statements, checkpoints, keyrings, the audit log and every entry's hash
    and decisions are never pruned: they are the audit trail. Snapshots of
    versions superseded more than --snapshot-retention-days ago are deleted
    (requests for them get 410 `pruned`); entries off the list for more than
    --plaintext-retention-days lose their expression and URL (each erasure
    is an `entry.prune_plaintext` audit record; adding the URL again
    restores it). Runs in bounded transactions, printing progress on
    stderr and one JSON object per list on stdout. `cleanfeed signer run`
    does the same hourly when given the same options.
    """
    from blocklist.errors import BlocklistError
    from blocklist.store.retention import PruneResult, prune_database

    policy = _retention(data_dir, snapshot_days, plaintext_days)
    if not policy.enabled:
        raise click.UsageError(
            "nothing to prune: give --snapshot-retention-days and/or --plaintext-retention-days "
            "(or their CLEANFEED_* environment variables or settings.toml keys)"
        )
    db = _database(data_dir, database_url)

    def progress(name: str, total: PruneResult) -> None:
        if total.more and not dry_run:
            click.echo(
                f"{name}: {total.plaintext_pruned:,} entries' plaintext pruned so far ...",
                err=True,
            )

    try:
        results = prune_database(
            db, policy, lists=list(lists) or None, dry_run=dry_run, progress=progress
        )
    except BlocklistError as e:
        raise click.ClickException(str(e)) from e
    finally:
        db.dispose()
    for name, result in results.items():
        click.echo(json.dumps(result.summary(name)))


@signer_group.command("adopt-highwater")
@data_dir_option
@database_option
@click.option("--list", "list_name", default="main", show_default=True)
def adopt_highwater_command(data_dir: Path, database_url: str | None, list_name: str) -> None:
    """Recreate a lost high-water mark from the database's signed checkpoint.

    Only when this signer's highwater.json is lost and you have checked that
    the database is the latest one (not a backup, not a replica).
    """
    from blocklist.errors import BlocklistError
    from signer.datadir import keys_dir_of
    from signer.errors import SignerError
    from signer.publisher import Publisher

    db = _database(data_dir, database_url)
    try:
        mark = Publisher(db, list_name, keys_dir_of(data_dir)).adopt_highwater()
    except (SignerError, BlocklistError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        db.dispose()
    click.echo(
        json.dumps(
            {
                "list": list_name,
                "origin": mark.origin,
                "size": mark.size,
                "root": b64encode(mark.root),
            }
        )
    )
