"""One ISP sync: fetch, verify, commit, then plaintext and exports.

DESIGN.md "ISP sync, fail closed", steps 1-8, with the roles split as in
python-tuf's ``Updater``: :class:`~clients.common.fetcher.Fetcher` fetches,
:class:`~clients.isp.trusted.TrustedState` decides, and
:class:`~clients.isp.store.StateStore` commits. The syncer only sequences
them:

1. walk keyrings from the held serial (``?serial=h+1 …``, then the latest);
2. fetch the checkpoint (``If-None-Match``); verify; rollback and
   equivocation are rejected and equivocation evidence is stored;
3. + 4. fetch statements held+1..N and verify each (chain, delta, state
   digest), then the compact range root;
5. commit in one transaction; then fetch plaintext (entitled tokens) and
   write exports atomically, running an export's reload hook only when it
   changed;
6. the snapshot path for a first sync, or when the local set no longer
   matches the held statement (local corruption, established by
   recomputing its digest), never to "repair" rejected server data;
7. transport errors are returned with the server's ``Retry-After`` so the
   daemon backs off (:mod:`clients.isp.daemon`).

Every outcome is counted by reason in the store (status and metrics).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Final, Literal

import httpx

from clients.common.http import check_etag, check_server_url, insecure_http_warning
from clients.errors import (
    BadData,
    ClientError,
    DeltaInvalid,
    Equivocation,
    LocalCorruption,
    MalformedData,
    NotFound,
    PlaintextMismatch,
    RequestRejected,
    StateMismatch,
    TransportError,
)
from clients.isp import steps
from clients.isp.config import ExportSpec, IspConfig
from clients.isp.exports.formats import ExportInput, ExportResult
from clients.isp.exports.hashlog import apply_hashes_log
from clients.isp.exports.output import write_export
from clients.isp.exports.sharded import SHARDED_FORMATS, ShardedSource, apply_sharded
from clients.isp.fetcher import Fetcher, fetcher_for
from clients.isp.records import ExportReport
from clients.isp.store import DB_NAME, StateStore
from clients.isp.trusted import CheckpointOutcome, TrustedState

__all__ = [
    "HOOK_TIMEOUT",
    "MAX_PLAINTEXT_PAGES",
    "SUCCESS",
    "UP_TO_DATE",
    "HookFailed",
    "Status",
    "SyncOutcome",
    "Syncer",
    "WatchOutcome",
    "export_report",
    "run_hook",
]

log = logging.getLogger("cleanfeed.isp")

#: Reason of a sync that applied something (metrics label).
SUCCESS: Final = "success"
#: Reason of a sync that found nothing new (metrics label).
UP_TO_DATE: Final = "up_to_date"
#: A reload hook gets this long before it is killed (a hung hook must not
#: stop the next sync).
HOOK_TIMEOUT: Final = 120.0
#: Most plaintext pages fetched in one sync (endless-data protection).
MAX_PLAINTEXT_PAGES: Final = 100_000

Status = Literal["updated", "current", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """The result of :meth:`Syncer.sync_once`.

    Attributes:
        status: ``updated`` (a new version or a repaired state committed),
            ``current`` (nothing new), ``rejected`` (bad data from the
            server: the last good list stays), ``failed`` (transport, access
            or local problem: the last good list stays).
        version_before: the version held before.
        version_after: the version held after (== before unless updated).
        reason: ``success``, ``up_to_date`` or the error's stable reason.
        message: one line for humans.
        retry_after: the server's ``Retry-After`` on transport errors.
        min_wait: the server's ``Cleanfeed-Min-Wait`` hint, if seen.
        problems: post-commit problems (plaintext, exports, hooks) as
            (reason, message); the list itself was committed.
        exports_changed: export outputs rewritten by this sync.
        exports: after a verified sync, what each configured export
            enforces and cannot enforce (its last write; an unchanged list
            rewrites nothing, the report still holds).
    """

    status: Status
    version_before: int
    version_after: int
    reason: str
    message: str
    retry_after: float | None = None
    min_wait: float | None = None
    problems: tuple[tuple[str, str], ...] = ()
    exports_changed: tuple[str, ...] = field(default_factory=tuple)
    exports: tuple[ExportReport, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the list is verified and current (updated or already current)."""
        return self.status in ("updated", "current")


class WatchOutcome(Enum):
    """What a long-poll between syncs (:meth:`Syncer.watch`) found."""

    #: The server answered another checkpoint: sync now.
    CHANGED = "changed"
    #: The server held the request for the whole wait; nothing new: ask again.
    HELD = "held"
    #: No long-poll here (the server does not echo ``Cleanfeed-Wait``, or
    #: declined, or answered early, or an error): plain polling until the
    #: next scheduled sync, which tries again.
    UNAVAILABLE = "unavailable"


def run_hook(command: str) -> int:
    """Run an export's reload command (no shell), returning its exit status.

    Raises:
        OSError: the command cannot be started.
        subprocess.TimeoutExpired: it ran longer than :data:`HOOK_TIMEOUT`.
    """
    return subprocess.run(shlex.split(command), check=False, timeout=HOOK_TIMEOUT).returncode


class Syncer:
    """Runs syncs of one list into one state directory.

    Args:
        config: the client configuration (server, list, roots, state dir...).
        http_client: the HTTP client (production:
            :func:`clients.isp.fetcher.build_http_client`; tests: one over an
            ASGI or mock transport).
        clock: POSIX seconds (injectable: freshness is judged against it).
        hook_runner: runs an export's ``on_change`` command.
    """

    def __init__(
        self,
        config: IspConfig,
        http_client: httpx.Client,
        clock: Callable[[], float] = time.time,
        *,
        hook_runner: Callable[[str], int] = run_hook,
    ) -> None:
        config.require_sync()
        assert config.server is not None  # require_sync checked it
        # The URL policy holds however the configuration was built (issue 12,
        # item 5): a refused URL is a configuration error, before any request.
        check_server_url(config.server, allow_insecure_http=config.allow_insecure_http)
        self.config = config
        self._client = http_client
        self._clock = clock
        self._hook_runner = hook_runner

    def _fetcher(self) -> Fetcher:
        return fetcher_for(self.config, self._client)

    def _trusted(self, store: StateStore) -> tuple[TrustedState, bool]:
        """Load the trusted state; a damaged record restarts from the snapshot path."""
        c = self.config

        def make(with_record: bool) -> TrustedState:
            return TrustedState(
                c.root_keys,
                origin=c.origin,
                record=store.load_record() if with_record else None,
                hashes=store.hash_table(),
                max_age=c.max_age,
                max_future_skew=c.max_future_skew,
                witnesses=c.witnesses,
                witness_quorum=c.witness_quorum,
                digest_workers=os.cpu_count() or 1,
            )

        try:
            return make(True), False
        except LocalCorruption as e:
            log.error("local state is damaged (%s); resynchronising from a snapshot", e)
            trusted = make(False)
            trusted.mark_corrupt()
            return trusted, True

    def check_state(self) -> None:
        """Refuse, before any request, a configuration the existing state contradicts.

        The pinned roots and origin are part of the state
        (:func:`clients.isp.trusted.check_pins`); ``run`` calls this first so
        that a wrong ``--root-key`` stops the daemon at once (exit 2) instead
        of failing every sync. A missing or damaged state is left to the
        sync (first sync, or resynchronisation from a snapshot).

        Raises:
            RootKeyMismatch: a root key the state never trusted.
            ConfigError: an origin other than the state's.
            LocalStateError: the state directory cannot be opened.
        """
        if not (self.config.state_path / DB_NAME).exists():
            return
        c = self.config
        with StateStore(c.state_path, create=False) as store:
            try:
                TrustedState(c.root_keys, origin=c.origin, record=store.load_record())
            except LocalCorruption:
                return

    # --- long-poll between syncs --------------------------------------------------

    def watch(self, seconds: int) -> WatchOutcome:
        """Wait up to ``seconds`` for the server to have another checkpoint.

        A trigger only: nothing fetched here is verified or kept, and the
        state directory's lock is not taken (a sync or ``status`` may run
        meanwhile). The next :meth:`sync_once` fetches and verifies as
        always, so fail-closed behaviour is the sync's.

        Returns:
            :class:`WatchOutcome`; never raises a :class:`ClientError`.
        """
        if seconds <= 0 or not (self.config.state_path / DB_NAME).exists():
            return WatchOutcome.UNAVAILABLE
        try:
            with StateStore(self.config.state_path, create=False) as store:
                etag = check_etag(store.etag())
            if etag is None:
                return WatchOutcome.UNAVAILABLE  # nothing to name: the sync fetches plainly
            started = time.monotonic()
            response = self._fetcher().checkpoint(etag, wait=seconds)
        except ClientError as e:
            log.info("long-poll failed (%s); polling on schedule", e.reason)
            return WatchOutcome.UNAVAILABLE
        if not response.wait:
            # No echo: a server without long-poll answered at once. 0: it
            # holds its most waiters. Either way: the regular schedule.
            return WatchOutcome.UNAVAILABLE
        if response.note is not None:
            return WatchOutcome.CHANGED
        if time.monotonic() - started < response.wait / 2:
            # A 304 long before the hold ended (a proxy answering from its
            # cache, a restarting server): asking again at once could spin.
            return WatchOutcome.UNAVAILABLE
        return WatchOutcome.HELD

    # --- the sync -----------------------------------------------------------------

    def sync_once(self) -> SyncOutcome:
        """Run one sync under the state directory's lock.

        Never raises a :class:`ClientError`: every failure becomes an outcome
        (and is counted); the last good list stays in force. Nothing is
        logged here: the caller reports the outcome once (``sync --once``
        prints it, ``run`` logs it).
        """
        fetcher = self._fetcher()
        assert self.config.server is not None  # require_sync checked it
        insecure = insecure_http_warning(self.config.server)
        if insecure is not None:
            # allow_insecure_http was set on purpose; say so on every sync so
            # it cannot be forgotten in production (docs/isp.md).
            log.warning("%s", insecure)
        before = 0
        try:
            store = StateStore(self.config.state_path)
        except ClientError as e:
            return SyncOutcome("failed", 0, 0, e.reason, str(e))
        with store:
            try:
                with store.lock(self.config.lock_timeout):
                    status = store.status()
                    before = status.version or 0
                    outcome = self._sync_locked(store, fetcher, before)
            except Equivocation as e:
                now = self._clock()
                store.record_evidence(e.kind, e.held_note, e.new_note, str(e), now=now)
                outcome = self._failure(e, before, fetcher)
            except ClientError as e:
                outcome = self._failure(e, before, fetcher)
            now = self._clock()
            store.record_outcome(
                outcome.reason,
                success=outcome.ok,
                message=outcome.message,
                now=now,
                min_wait=fetcher.min_wait,
            )
            for reason, message in outcome.problems:
                store.record_outcome(reason, success=False, message=message, now=now, min_wait=None)
        return outcome

    def _failure(self, e: ClientError, before: int, fetcher: Fetcher) -> SyncOutcome:
        status: Status = "rejected" if isinstance(e, BadData) else "failed"
        retry_after = e.retry_after if isinstance(e, TransportError) else None
        message = str(e).splitlines()[0] if str(e) else e.reason
        if isinstance(e, NotFound):
            # The server's 404 cannot say which name it did not find (it
            # answers alike for "no such list" and "not yours"): name it.
            message = f"list {self.config.list_name!r} on {self.config.server}: {message}"
        return SyncOutcome(
            status,
            before,
            before,
            e.reason,
            message,
            retry_after=retry_after,
            min_wait=fetcher.min_wait,
        )

    def _sync_locked(self, store: StateStore, fetcher: Fetcher, before: int) -> SyncOutcome:
        now = self._clock()
        trusted, damaged = self._trusted(store)
        record = None if damaged else store.load_record()
        corrupt = damaged
        if record is not None and self._full_check_due(store, now):
            # Silent local corruption (a lost row) is invisible to the
            # O(changes) checks; recompute the digest once in a while.
            if store.verify_local(record):
                store.mark_full_check(now)
            else:
                log.error("local hash set does not match statement %d", record.version)
                trusted.mark_corrupt()
                corrupt = True
        first_sync = record is None

        # Step 1: keyrings.
        self._walk_keyrings(trusted, fetcher, now)

        # Step 2: checkpoint.
        # A stored validator is checked again: one stored by an older client
        # (before validators were checked) must not be sent back either.
        etag = check_etag(store.etag()) if trusted.initialised and not corrupt else None
        try:
            response = fetcher.checkpoint(etag)
        except RequestRejected:
            if etag is not None:
                # A validator that meets a 4xx may be what the server (or a
                # proxy) refuses: drop it so the next poll is unconditional
                # (issue 12, item 3), instead of repeating it forever.
                store.set_etag(None)
            raise
        note = response.note
        if note is None:
            trusted.check_fresh(now)
            result = CheckpointOutcome.CURRENT
            note = trusted.checkpoint_note
        else:
            result = trusted.update_checkpoint(note, now)
        assert note is not None
        steps.reached("sync:checkpoint")

        repaired = False
        if corrupt or (first_sync and result is CheckpointOutcome.NEWER):
            # Step 6: first sync or local corruption.
            self._snapshot_path(trusted, fetcher, note, now)
            repaired = True
        elif result is CheckpointOutcome.NEWER:
            target = trusted.target
            assert target is not None
            try:
                # Steps 3 and 4, verified lazily page by page.
                trusted.apply_statements(fetcher.iter_statements(trusted.version, target.size))
            except (DeltaInvalid, StateMismatch) as e:
                # Bad server data, or our own set no longer matches what we
                # verified? Only the latter may take the snapshot path.
                assert record is not None
                if store.verify_local(record):
                    raise
                log.error("local hash set is corrupt (%s); resynchronising from a snapshot", e)
                trusted.mark_corrupt()
                self._snapshot_path(trusted, fetcher, note, now)
                repaired = True

        # Step 5: commit atomically.
        # The net changes, kept for incremental exports (issue 19 item 4); a
        # snapshot replaces the set, so those exports are rewritten whole.
        delta: _Delta | None = None
        if trusted.dirty:
            changes = trusted.changes()
            if changes.replace is None and not corrupt:
                delta = _Delta(before, changes.added, changes.removed)
            steps.reached("sync:verified")
            store.commit(trusted.record(), trusted.changes(), etag=response.etag, now=now)
            trusted.mark_persisted(store.hash_table())
            if repaired:
                store.mark_full_check(now)
        elif response.etag is not None and response.etag != etag:
            store.set_etag(response.etag)
        steps.reached("sync:committed")

        after = trusted.version
        updated = after != before or repaired or first_sync
        problems = self._after_commit(store, fetcher, trusted, force=updated, delta=delta)
        configured = {str(spec.output) for spec in self.config.exports}
        reports = tuple(r for r in store.export_reports() if r.output in configured)
        if updated:
            message = f"updated to version {after} ({trusted.count} entries)"
            if repaired and after == before and not first_sync:
                message = f"local state repaired from the snapshot at version {after}"
            return SyncOutcome(
                "updated",
                before,
                after,
                SUCCESS,
                message,
                min_wait=fetcher.min_wait,
                problems=problems[0],
                exports_changed=problems[1],
                exports=reports,
            )
        return SyncOutcome(
            "current",
            before,
            after,
            UP_TO_DATE,
            f"already at version {after}",
            min_wait=fetcher.min_wait,
            problems=problems[0],
            exports_changed=problems[1],
            exports=reports,
        )

    def _full_check_due(self, store: StateStore, now: float) -> bool:
        last = store.last_full_check()
        return last is None or now - last >= self.config.full_check_interval

    def _walk_keyrings(self, trusted: TrustedState, fetcher: Fetcher, now: float) -> None:
        """Step 1: from the held serial to the latest, one serial at a time."""
        latest = fetcher.keyring()
        held = trusted.keyring
        held_serial = held.serial if held is not None else 0
        latest_serial = _peek_serial(latest)
        if latest_serial is None or latest_serial <= held_serial + 1:
            # The held one, the next one, or garbage: the trusted state decides.
            trusted.update_keyring(latest, now, final=True)
            return
        if latest_serial - held_serial > self.config.limits.keyring_walk:
            raise MalformedData(
                f"keyring serial {latest_serial} is more than "
                f"{self.config.limits.keyring_walk} steps ahead of the held {held_serial}"
            )
        for serial in range(held_serial + 1, latest_serial):
            trusted.update_keyring(fetcher.keyring(serial), now, final=False)
        trusted.update_keyring(latest, now, final=True)

    def _snapshot_path(
        self, trusted: TrustedState, fetcher: Fetcher, checkpoint_note: str, now: float
    ) -> None:
        """Step 6: checkpoint N, statement N + inclusion, compact range, snapshot."""
        target = trusted.target or trusted.checkpoint
        assert target is not None
        size = target.size
        held = trusted.checkpoint
        consistency = None
        if held is not None and 0 < held.size < size:
            consistency = fetcher.consistency_proof(held.size, size)
        if size == 0:
            trusted.apply_snapshot(checkpoint_note, None, [], [], b"", now=now)
            return
        statement_note = fetcher.statement(size)
        # The snapshot has no signature of its own: its size is bounded by
        # the count in the *verified* statement (endless-data protection).
        statement = trusted.verify_statement(statement_note)
        proof = fetcher.inclusion_proof(size, size)
        range_hashes = fetcher.range_hashes(size)
        snapshot = fetcher.snapshot(size, statement.count * 32)
        trusted.apply_snapshot(
            checkpoint_note,
            statement_note,
            proof,
            range_hashes,
            snapshot,
            now=now,
            consistency_proof=consistency,
        )

    # --- after the commit: plaintext and exports --------------------------------------

    def _after_commit(
        self,
        store: StateStore,
        fetcher: Fetcher,
        trusted: TrustedState,
        *,
        force: bool,
        delta: _Delta | None = None,
    ) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
        problems: list[tuple[str, str]] = []
        if self.config.plaintext:
            try:
                self._fetch_plaintext(store, fetcher, trusted.version)
            except ClientError as e:
                store.set_plaintext_status(complete=False, error=f"{e.reason}: {e}")
                problems.append((e.reason, f"plaintext: {e}"))
        changed: list[str] = []
        if self.config.exports:
            export_key = self._export_key(store, trusted.version)
            missing_output = any(not spec.output.exists() for spec in self.config.exports)
            if force or missing_output or store.get_meta("exports_done") != export_key:
                ok = True
                # A failed export keeps its previous files, so its previous
                # report still tells what is enforced.
                reports = {r.output: r for r in store.export_reports()}
                for spec in self.config.exports:
                    try:
                        if self._write_export(store, trusted, spec, reports, delta):
                            changed.append(str(spec.output))
                    except ClientError as e:
                        ok = False
                        problems.append((e.reason, f"export {spec.format} {spec.output}: {e}"))
                    except HookFailed as e:
                        ok = False
                        problems.append(("hook_failed", str(e)))
                try:
                    store.set_export_reports(
                        [
                            reports[str(spec.output)]
                            for spec in self.config.exports
                            if str(spec.output) in reports
                        ]
                    )
                except ClientError as e:
                    ok = False
                    problems.append((e.reason, f"export report: {e}"))
                if ok:
                    store.set_meta({"exports_done": export_key})
        return tuple(problems), tuple(changed)

    def _export_key(self, store: StateStore, version: int) -> str:
        specs = repr(
            sorted(
                (s.format, str(s.output), s.on_change or "", s.incremental)
                for s in self.config.exports
            )
        )
        plain = store.get_meta("plaintext_since")
        return hashlib.sha256(f"{version}|{plain}|{specs}".encode()).hexdigest()

    def _fetch_plaintext(self, store: StateStore, fetcher: Fetcher, version: int) -> None:
        """Fetch expressions; accept one only if its SHA-256 is its hash and is listed."""
        since = store.plaintext_since()
        if since > version:
            since = 0
        pairs = self._plaintext_pairs(store, fetcher, since, version)
        missing_before = None
        store.save_plaintext(pairs, since=version, complete=False, error=None)
        missing = store.missing_plaintext()
        if missing and since != 0:
            # Incremental fetch left gaps (e.g. after a snapshot): fetch all once.
            missing_before = missing
            store.save_plaintext(
                self._plaintext_pairs(store, fetcher, 0, version),
                since=version,
                complete=False,
                error=None,
            )
            missing = store.missing_plaintext()
        error = None
        if missing:
            error = f"{missing} listed hash(es) have no expression from the server"
            log.warning("plaintext incomplete: %s (was %s)", error, missing_before)
        store.set_plaintext_status(complete=missing == 0, error=error)

    def _plaintext_pairs(
        self, store: StateStore, fetcher: Fetcher, since: int, version: int
    ) -> list[tuple[bytes, str]]:
        listed = store.hash_table()
        accepted: list[tuple[bytes, str]] = []
        cursor = since
        for _ in range(MAX_PLAINTEXT_PAGES):
            page = fetcher.plaintext_page(cursor)
            for h, expression in page.expressions:
                if hashlib.sha256(expression.encode("utf-8")).digest() != h:
                    raise PlaintextMismatch("an expression does not hash to the hash it came with")
                if h in listed:
                    accepted.append((h, expression))
                # A hash we do not list (yet) is ignored: never stored.
            # Endless-data protection: pages end on version boundaries, so
            # nothing past the verified version can be listed here; stop there
            # whatever the server says comes next.
            if page.next is None or page.next >= version:
                return accepted
            if page.next <= cursor:
                raise MalformedData("plaintext: 'next' does not advance")
            cursor = page.next
        raise MalformedData(f"plaintext: more than {MAX_PLAINTEXT_PAGES} pages")

    def _write_export(
        self,
        store: StateStore,
        trusted: TrustedState,
        spec: ExportSpec,
        reports: dict[str, ExportReport],
        delta: _Delta | None = None,
    ) -> bool:
        if spec.incremental:
            result = _write_incremental(
                store, spec, delta, trusted.version, self.config.list_name, trusted.origin or ""
            )
            reports[str(spec.output)] = export_report(spec, trusted.version, result)
            return self._run_hook(store, spec, result)
        expressions = None
        if spec.format != "hashes":
            expressions = dict(store.expressions())
        data = ExportInput(
            version=trusted.version,
            hashes=list(store.iter_hashes()),
            expressions=expressions,
            list_name=self.config.list_name,
            origin=trusted.origin or "",
            generated=datetime.fromtimestamp(self._clock(), tz=UTC),
        )
        steps.reached("sync:export")
        result = write_export(
            spec.format, data, spec.output, blockpage=spec.blockpage, ede=spec.ede
        )
        reports[str(spec.output)] = export_report(spec, trusted.version, result)
        return self._run_hook(store, spec, result)

    def _run_hook(self, store: StateStore, spec: ExportSpec, result: ExportResult) -> bool:
        # A hook that failed once is retried on every sync until it succeeds:
        # the export file is already new, so "changed" alone would never fire
        # again and the filter would keep enforcing the old list.
        pending_key = f"hook_pending:{spec.output}"
        pending = store.get_meta(pending_key) == 1
        if (result.changed or pending) and spec.on_change:
            try:
                code = self._hook_runner(spec.on_change)
            except (OSError, subprocess.TimeoutExpired, ValueError) as e:
                store.set_meta({pending_key: 1})
                raise HookFailed(f"reload hook {spec.on_change!r} failed: {e}") from e
            if code != 0:
                store.set_meta({pending_key: 1})
                raise HookFailed(f"reload hook {spec.on_change!r} exited with status {code}")
            if pending:
                store.set_meta({pending_key: 0})
        return result.changed


def export_report(spec: ExportSpec, version: int, result: ExportResult) -> ExportReport:
    """The report of one written export (kept in the state for ``status``)."""
    return ExportReport(
        format=spec.format,
        output=str(spec.output),
        version=version,
        enforced=result.enforced,
        not_enforceable=result.not_enforceable,
        left_out=dict(result.left_out),
        partial=result.partial,
        notes=tuple(result.notes),
    )


@dataclass(frozen=True, slots=True)
class _Delta:
    """The hashes one sync's commit added and removed, from version ``before``."""

    before: int
    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]


def _write_incremental(
    store: StateStore,
    spec: ExportSpec,
    delta: _Delta | None,
    version: int,
    list_name: str,
    origin: str,
) -> ExportResult:
    """Bring an ``incremental`` export to ``version`` (:mod:`clients.isp.exports.hashlog`)."""

    def listed() -> list[bytes]:
        # Only for a compaction: every hash, as one blob when possible.
        blob = store.hash_blob()
        if blob is None:
            return list(store.iter_hashes())
        return [blob[i : i + 32] for i in range(0, len(blob), 32)]

    steps.reached("sync:export")
    if spec.format in SHARDED_FORMATS:
        count = store.status().count or 0
        name = hashlib.sha256(str(spec.output).encode()).hexdigest()[:16]
        return apply_sharded(
            spec.format,
            spec.output,
            store.state_dir / "exports" / f"{name}.db",
            ExportInput(version, (), None, list_name, origin, datetime.now(UTC)),
            ShardedSource(store.expression_of, store.expressions, lambda: count),
            before=None if delta is None else delta.before,
            added=() if delta is None else delta.added,
            removed=() if delta is None else delta.removed,
            blockpage=spec.blockpage,
        )
    written = apply_hashes_log(
        spec.output,
        version=version,
        hashes=listed,
        before=None if delta is None else delta.before,
        added=() if delta is None else delta.added,
        removed=() if delta is None else delta.removed,
    )
    count = store.status().count or 0
    return ExportResult(
        {}, count, 0, [], written={p: written.changed for p in written.paths or (spec.output,)}
    )


class HookFailed(Exception):
    """An export's reload hook failed (the export itself was written)."""


def _peek_serial(note: str) -> int | None:
    """The ``serial`` line of an unverified keyring note (to plan the walk).

    Only used to know which serials to fetch; every note is verified.
    """
    for line in _lines(note, 8):
        if line.startswith("serial "):
            value = line[len("serial ") :]
            if value.isdigit() and len(value) <= 19 and (value == "0" or value[0] != "0"):
                return int(value)
            return None
    return None


def _lines(text: str, limit: int) -> Iterator[str]:
    for i, line in enumerate(text.split("\n", limit)):
        if i >= limit:
            return
        yield line
