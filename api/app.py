"""The FastAPI application factory.

``create_app(settings)`` builds one independent application: its own
database engine, caches, limiter, metrics registry and (embedded default)
signer. Nothing is built at import time (STYLE.md: "a ``create_app``
factory, not a module global app").

Middleware, outermost first: :class:`api.console.ConsoleHeaders` (security
headers on the console's pages), :class:`api.middleware.CleanfeedMiddleware`
(query-token refusal, body caps, ``Cleanfeed-Min-Wait``, metrics, logs),
then gzip for responses of at least :data:`GZIP_MINIMUM_SIZE` bytes (the
checkpoint and 304s are smaller and go out as they are).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Final

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware

from api.accounts import admin as accounts_admin
from api.bodygate import BodyGate
from api.console import ConsoleHeaders, install_console
from api.console import router as console_router
from api.context import AppContext
from api.docs_ui import install_docs
from api.errors import install_error_handlers
from api.logging import configure_logging, flush_logs
from api.longpoll import CheckpointPoller, PublishListener, psycopg_conninfo
from api.metrics import IspSeen, ListStatus, ListVerification, Metrics
from api.middleware import CleanfeedMiddleware
from api.ratelimit import RateLimiter
from api.routes import (
    admin,
    analyst,
    appeals,
    auditor,
    hits,
    isp,
    ops,
    reverify,
    safeguards,
    transparency,
)
from api.routes.common import GZIP_MINIMUM_SIZE
from api.settings import Settings, load_settings
from api.signer_service import SignerService, embedded_signer
from api.witness import WitnessStore
from blocklist.store import appeals as store_appeals
from blocklist.store import lists as store_lists
from blocklist.store import verification as store_verification
from blocklist.store import versions as store_versions
from blocklist.store.db import Database
from cleanfeed import __version__

__all__ = [
    "API_DESCRIPTION",
    "GZIP_EXCLUDED",
    "MIN_REFRESH_SECONDS",
    "app_from_env",
    "create_app",
]

log = logging.getLogger("cleanfeed.api")

#: Shortest period of the checkpoint refresher (seconds).
MIN_REFRESH_SECONDS: Final = 0.25

#: Content types never gzipped: raw hashes do not compress.
GZIP_EXCLUDED: Final = ("application/octet-stream", "text/event-stream")

API_DESCRIPTION: Final = """\
Signed, append-only URL blocklists for hotlines and the ISPs that enforce
them. Analysts curate a list; a signer turns each change set into a signed
version in a Merkle log; ISPs verify every version before applying it;
auditors verify the whole history offline.

Authenticate with `Authorization: Bearer <token>` (never in the query
string). Errors are `application/problem+json` (RFC 9457) with a stable
`code`; see docs/api-errors.md. Every `/v1` response carries
`Cleanfeed-Min-Wait`, the minimum seconds between polls.
"""


def _list_status(ctx: AppContext) -> Iterable[ListStatus]:
    try:
        with ctx.db.read() as session:
            states = store_versions.list_states(session)
    except Exception:
        log.warning("metrics: cannot read list states", exc_info=True)
        return []
    now = datetime.now(UTC)
    return [
        ListStatus(
            list_name=s.name,
            version=s.version,
            checkpoint_age_seconds=s.checkpoint_age_seconds(now),
            pending_changes=s.pending_changes,
        )
        for s in states
    ]


def _appeals_overdue(ctx: AppContext) -> int | None:
    before = datetime.now(UTC) - timedelta(days=ctx.settings.appeal_overdue_days)
    try:
        with ctx.db.read() as session:
            return store_appeals.overdue_count(session, before)
    except Exception:
        log.warning("metrics: cannot count overdue appeals", exc_info=True)
        return None


def _isp_seen(ctx: AppContext) -> Iterable[IspSeen]:
    seen: dict[tuple[str, str], IspSeen] = {}
    try:
        with ctx.db.read() as session:
            names = {row.id: row.name for row in store_lists.list_lists(session)}
            for list_id, list_name in names.items():
                for row in store_versions.isp_versions(session, list_id):
                    seen[(row.token_name, list_name)] = IspSeen(
                        row.token_name, list_name, row.version, row.at.timestamp()
                    )
    except Exception:
        log.warning("metrics: cannot read ISP versions", exc_info=True)
    return list(seen.values())


def _verification(ctx: AppContext) -> Iterable[ListVerification]:
    """Re-verification figures per list (issue 16 item 4), for the admin scrape."""
    try:
        with ctx.db.read() as session:
            summaries = store_verification.summaries(session)
    except Exception:
        log.warning("metrics: cannot read re-verification state", exc_info=True)
        return []
    return [
        ListVerification(
            list_name=s.list_name,
            counts=s.counts,
            proposals=s.proposals,
            flagged=s.flagged,
            last_run_timestamp=s.last_run_at.timestamp() if s.last_run_at else None,
            last_run_seconds=s.last_run_seconds,
        )
        for s in summaries
    ]


async def _refresh_loop(ctx: AppContext) -> None:
    """Keep polled checkpoints cached: reload them twice per cache lifetime."""
    period = max(MIN_REFRESH_SECONDS, ctx.settings.checkpoint_cache_ttl / 2)
    while True:
        await asyncio.sleep(period)
        try:
            await run_in_threadpool(ctx.refresh_checkpoints)
        except Exception:
            log.warning("could not refresh cached checkpoints", exc_info=True)


async def _flush_loop(ctx: AppContext) -> None:
    """Write buffered token uses and ISP versions every ``flush_interval`` seconds."""
    while True:
        await asyncio.sleep(ctx.settings.flush_interval)
        flush_logs()
        with contextlib.suppress(Exception):  # logged by flush(); retried next time
            await run_in_threadpool(ctx.usage.flush, ctx.db)


def create_app(settings: Settings, *, db: Database | None = None) -> FastAPI:
    """Build the API application.

    Args:
        settings: validated settings (:func:`api.settings.load_settings`).
        db: an existing database handle to use (tests); by default one is
            created from ``settings`` and disposed at shutdown.

    Returns:
        The application. Its lifespan starts the usage flusher and, when
        ``settings.signer`` and ``settings.schedule`` are set, the embedded
        signer's schedule.
    """
    configure_logging(settings.log_level, json_logs=settings.json_logs)
    owns_db = db is None
    database = db if db is not None else Database(settings.resolved_database_url)
    signer: SignerService | None = None
    if settings.signer:
        signer = embedded_signer(settings, database)
    holder: dict[str, AppContext] = {}
    metrics = Metrics(
        list_status=lambda: _list_status(holder["ctx"]),
        isp_seen=lambda: _isp_seen(holder["ctx"]),
        verification=lambda: _verification(holder["ctx"]),
        appeals_overdue=lambda: _appeals_overdue(holder["ctx"]),
    )
    ctx = AppContext(
        settings=settings,
        db=database,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        metrics=metrics,
        signer=signer,
        witnesses=WitnessStore(database),
    )
    holder["ctx"] = ctx
    metrics.waiters.set_function(lambda: ctx.waiters.active)
    watch = _publish_watch(ctx)
    if isinstance(watch, PublishListener):
        ctx.publish_listener = watch
    if signer is not None:
        signer.listeners.append(lambda name: _reload_by_name(ctx, name))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_flush_loop(ctx))]
        if settings.checkpoint_cache_ttl > 0:
            tasks.append(asyncio.create_task(_refresh_loop(ctx)))
        tasks.append(asyncio.create_task(watch.run()))
        restore_signals = _release_waiters_on_signal(ctx)
        if signer is not None and settings.schedule:
            signer.start()
        try:
            yield
        finally:
            restore_signals()
            ctx.waiters.release_all()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if signer is not None:
                await run_in_threadpool(signer.shutdown)
            with contextlib.suppress(Exception):
                await run_in_threadpool(ctx.usage.flush, ctx.db)
            if owns_db:
                database.dispose()
            flush_logs()

    app = FastAPI(
        title="cleanfeed",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # /docs is ours (api.docs_ui): assets from a package, not a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.cf = ctx
    install_error_handlers(app)
    if settings.docs_enabled:
        install_docs(app, "/openapi.json")
    modules = (
        analyst,
        isp,
        auditor,
        admin,
        ops,
        hits,
        reverify,
        safeguards,
        accounts_admin,
        appeals,
        transparency,
    )
    for module in modules:
        app.include_router(module.router)
    # The analysts' console (/console/): pages, static files, and its
    # security headers on every response under it (outermost, so refusals
    # by the middleware below carry them too).
    install_console(app)
    # The routers' own routes (their paths carry the prefix): what the body
    # gate matches a request against before routing.
    body_routes = tuple(route for module in modules for route in module.router.routes) + tuple(
        console_router.routes
    )
    app.add_middleware(GZipMiddleware, **_gzip_options())
    app.add_middleware(
        CleanfeedMiddleware,
        metrics=metrics,
        min_wait_seconds=settings.min_wait_seconds,
        fast_path=functools.partial(isp.fast_isp, ctx),
        body_gate=BodyGate(ctx, body_routes),
        body_min_rate=settings.body_min_rate,
        body_grace_seconds=settings.body_grace_seconds,
    )
    app.add_middleware(ConsoleHeaders)
    return app


def _gzip_options() -> dict[str, Any]:
    options: dict[str, Any] = {"minimum_size": GZIP_MINIMUM_SIZE, "compresslevel": 6}
    if "exclude_content_types" in inspect.signature(GZipMiddleware.__init__).parameters:
        options["exclude_content_types"] = GZIP_EXCLUDED
    return options


def _reload_by_name(ctx: AppContext, list_name: str) -> None:
    """The embedded signer changed ``list_name``'s checkpoint: reload it now.

    Runs in the signer's thread. Loading (rather than only dropping) the
    note wakes this worker's long-polls at once (the cache reports the new
    ETag to :class:`~api.longpoll.CheckpointWaiters`).
    """
    info = ctx.lists.get(list_name)
    if info is None:
        ctx.checkpoints.invalidate()
        return
    ctx.checkpoints.invalidate(info.id)
    try:
        ctx.load_checkpoint(info.id)
    except Exception:
        # The next request or refresh loads it; waiters wake then.
        log.warning("could not reload the checkpoint after a publish", exc_info=True)


def _publish_watch(ctx: AppContext) -> PublishListener | CheckpointPoller:
    """How this worker learns of other processes' publishes (api.longpoll).

    PostgreSQL: LISTEN for the publish transaction's NOTIFY; SQLite: poll.
    """
    if ctx.db.backend == "postgresql":

        async def reload(list_id: int) -> object:
            return await run_in_threadpool(ctx.load_checkpoint, list_id)

        return PublishListener(psycopg_conninfo(ctx.db), reload, ctx.waiters)
    return CheckpointPoller(ctx.waiters, ctx.load_checkpoint)


def _release_waiters_on_signal(ctx: AppContext) -> Callable[[], None]:
    """Answer held long-polls as soon as the server is asked to stop.

    uvicorn waits for in-flight requests before it runs the lifespan's
    shutdown, so without this a SIGTERM would wait up to
    :data:`~api.longpoll.MAX_WAIT_SECONDS` for idle long-polls. The
    handlers uvicorn installed are chained, not replaced. Returns the
    function restoring them.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers live on the main thread only
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        ctx.waiters.release_all()
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)

    for signum in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.SIG_IGN, None):
            continue  # nobody handles it gracefully: leave the default alone
        previous[signum] = current
        signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, old)

    return restore


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (``--workers`` > 1): settings from the environment.

    Raises:
        SettingsError: invalid settings.
    """
    return create_app(load_settings())
