"""The audit-log replay (full bundles): the chains and the decisions in them.

:class:`AuditReplay` runs the audit checks of
:func:`clients.audit.verify.verify_bundle`:

- ``audit.chain`` / ``audit.records``: the list's hash chain
  (docs/architecture.md, "Audit log hash chain") is recomputed record by
  record; every record belongs to the bundle's list; the ``list.create``
  record fixes ``approvals_required``.
- ``global.chain`` / ``global.head``: the deployment's global chain
  (``global_log``: token management; who minted which identity) is
  recomputed, every record names no list; each ``global.head`` record of the
  list's chain must name a record of that chain and its exact chain hash,
  never moving back.
- ``audit.persons``: from the global ``accounts.start`` record on, every
  approval came from a distinct, enabled person holding the analyst role
  on the list at that time (:mod:`clients.audit.persons`, issue 15).
- ``audit.head``, ``audit.addition`` / ``audit.removal``, per statement:
  the ``audit`` line is the chain head after some record, never moving
  back, and every change is backed by the decisions recorded up to it.
- ``entries``: each entry matches its ``entry.add`` record, and its
  plaintext is present exactly when no ``entry.prune_plaintext`` record in
  force names it.

The decisions behind ``audit.addition`` / ``audit.removal`` (four-eyes
rounds, backed expiries, safeguards, appeals, the canary) are replayed by
:class:`clients.audit.decisions.Decisions`.

The action and actor names are :class:`blocklist.auditlog.Action` and
:class:`blocklist.auditlog.Actor`, the names the store writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import NoReturn

from blocklist.auditlog import (
    AUDIT_ZERO,
    Action,
    AuditChainError,
    AuditRecord,
    verify_chain,
)
from blocklist.canonical import expression as canonical_expression
from blocklist.encoding import b64decode, b64encode, format_time
from blocklist.errors import BlocklistError, FormatError
from blocklist.statement import Statement
from clients.audit.bundle import Bundle, BundleEntry
from clients.audit.decisions import Decisions, EntryState
from clients.audit.persons import check_persons
from clients.audit.report import (
    CHECK_AUDIT_CHAIN,
    CHECK_AUDIT_HEAD,
    CHECK_AUDIT_RECORDS,
    CHECK_ENTRIES,
    CHECK_GLOBAL_CHAIN,
    CHECK_GLOBAL_HEAD,
    AuditReport,
    fail,
)

__all__ = ["AuditReplay"]


class AuditReplay:
    """The bundle's audit logs, verified, replayed beside its statements.

    :meth:`check_logs` first; then :meth:`check_statement` for each statement
    in order; then :meth:`check_entries`. Every check stops the pass with
    :func:`clients.audit.report.fail` at the first failure and counts what
    it verified in the report.
    """

    def __init__(self, bundle: Bundle, report: AuditReport) -> None:
        self.bundle = bundle
        self.report = report
        #: The chain head after each record -> that record's seq (0: empty).
        self.positions: dict[bytes, int] = {}
        self.decisions = Decisions((), bundle.approvals_required, None)

    # -- the chains --

    def check_logs(self) -> None:
        """Check the list's chain, then the global one (checks 2)."""
        records = self.bundle.audit_log or ()
        head = AUDIT_ZERO
        positions = {AUDIT_ZERO: 0}
        for i, record in enumerate(records):
            try:
                head = verify_chain([record], prev=head, first_seq=i + 1)
            except AuditChainError as e:
                fail(CHECK_AUDIT_CHAIN, str(e), audit_seq=record.seq)
            if record.list_name != self.bundle.list_name:
                fail(
                    CHECK_AUDIT_RECORDS,
                    f"record of list {record.list_name!r} in the bundle of "
                    f"{self.bundle.list_name!r}",
                    audit_seq=record.seq,
                )
            positions[head] = record.seq
            self.report.counts.audit_records += 1
        self.positions = positions
        creates = [r for r in records if r.action == Action.LIST_CREATE]
        required = self.bundle.approvals_required
        create_seq: int | None = None
        if len(creates) > 1:
            fail(CHECK_AUDIT_RECORDS, "the list is created twice", audit_seq=creates[1].seq)
        if creates:
            create = creates[0]
            create_seq = create.seq
            claimed = create.details.get("approvals_required")
            if claimed != required:
                fail(
                    CHECK_AUDIT_RECORDS,
                    f"the bundle says approvals_required {required}, the list.create record "
                    f"says {claimed!r}",
                    audit_seq=create.seq,
                )
            for key, value in (("name", self.bundle.list_name), ("origin", self.bundle.origin)):
                if key in create.details and create.details[key] != value:
                    fail(
                        CHECK_AUDIT_RECORDS,
                        f"the list.create record gives {key} {create.details[key]!r}, "
                        f"the bundle {value!r}",
                        audit_seq=create.seq,
                    )
            self.report.approvals_required = required
        else:
            self.report.warn(
                "no list.create record: approvals_required comes from the bundle, unauthenticated"
            )
        self.decisions = Decisions(records, required, create_seq)
        self._global_log(records)
        if self.bundle.global_log is not None:
            # Issue 15 item 6: from accounts.start on, approvals by persons.
            self.report.counts.person_approvals = check_persons(records, self.bundle.global_log)
        self.decisions.admins = self._admins()

    def _global_log(self, records: Sequence[AuditRecord]) -> None:
        """Check the global chain and every global head the list's chain recorded."""
        heads = [r for r in records if r.action == Action.GLOBAL_HEAD]
        global_log = self.bundle.global_log
        if global_log is None:
            if heads:
                fail(
                    CHECK_GLOBAL_HEAD,
                    "the list's audit log records global heads, but the bundle carries no "
                    "global_log",
                    audit_seq=heads[0].seq,
                )
            self.report.warn(
                "the bundle carries no global audit records (a server before issue 12): "
                "who minted which token is not verified"
            )
            return
        chain = AUDIT_ZERO
        after: dict[int, bytes] = {}
        counts = self.report.counts
        for i, record in enumerate(global_log):
            try:
                chain = verify_chain([record], prev=chain, first_seq=i + 1)
            except AuditChainError as e:
                fail(CHECK_GLOBAL_CHAIN, str(e), global_seq=record.seq)
            if record.list_name is not None:
                fail(
                    CHECK_GLOBAL_CHAIN,
                    f"a global record names list {record.list_name!r}",
                    global_seq=record.seq,
                )
            after[record.seq] = chain
            counts.global_records += 1
        last = 0
        for r in heads:
            seq, digest = r.details.get("seq"), r.details.get("hash")
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
                fail(CHECK_GLOBAL_HEAD, "malformed global.head record", audit_seq=r.seq)
            try:
                claimed = b64decode(digest, length=32, what="hash")
            except FormatError as e:
                fail(CHECK_GLOBAL_HEAD, f"global.head record: {e}", audit_seq=r.seq)
            if seq < last:
                fail(
                    CHECK_GLOBAL_HEAD,
                    f"records global head {seq} after {last}: the global chain moved back",
                    audit_seq=r.seq,
                )
            if seq not in after:
                fail(
                    CHECK_GLOBAL_HEAD,
                    f"records global head {seq}, the bundle's global log has "
                    f"{len(global_log)} record(s)",
                    audit_seq=r.seq,
                )
            if after[seq] != claimed:
                fail(
                    CHECK_GLOBAL_HEAD,
                    f"records global head {b64encode(claimed)} after global record {seq}, "
                    "the global "
                    f"log gives {b64encode(after[seq])}: the global records were rewritten",
                    audit_seq=r.seq,
                    global_seq=seq,
                )
            last = seq
        counts.global_committed = last
        if len(global_log) > last:
            self.report.warn(
                f"{len(global_log) - last} global audit record(s) after the last recorded head "
                "are not committed by a statement yet (they will be at the next publish)"
            )

    def _admins(self) -> frozenset[str] | None:
        """Names of administrator tokens minted in the (verified) global chain."""
        if self.bundle.global_log is None:
            return None
        return frozenset(
            name
            for r in self.bundle.global_log
            if r.action == Action.TOKEN_CREATE
            and r.details.get("role") == "admin"
            and isinstance(name := r.details.get("name"), str)
        )

    # -- each statement --

    def check_statement(self, st: Statement, last_position: int) -> int:
        """Check the statement's audit head and that its changes are backed.

        Returns:
            The position of the statement's audit head (the record seq).
        """
        n = st.version
        decisions = self.decisions
        position = self.positions.get(st.audit)
        if position is None:
            fail(
                CHECK_AUDIT_HEAD,
                f"audit line {b64encode(st.audit)} is not the audit log's head after any record",
                version=n,
            )
        if position < last_position:
            fail(
                CHECK_AUDIT_HEAD,
                f"audit head is record {position}, before version {n - 1}'s record "
                f"{last_position} (the log went back)",
                version=n,
            )
        decisions.advance(position)
        counts = self.report.counts
        for h in st.removes:
            decisions.check_removal(n, h, position)
        for h in st.adds:
            decisions.check_addition(n, h, position)
        counts.backed_additions += len(st.adds)
        counts.backed_removals += len(st.removes)
        return position

    # -- the entries --

    def check_entries(self) -> None:
        """Check every entry against the whole replayed log (check 5)."""
        decisions = self.decisions
        decisions.advance(len(decisions.records))
        entries = self.bundle.entries or ()
        seen_ids: set[int] = set()
        for e in entries:
            if e.id in seen_ids:
                fail(CHECK_ENTRIES, "entry listed twice", entry_id=e.id)
            seen_ids.add(e.id)
            self._entry(e, decisions.entries.get(e.id))
            self.report.counts.entries += 1
        missing = sorted(decisions.entries.keys() - seen_ids)
        if missing:
            fail(
                CHECK_ENTRIES,
                "has audit records but is missing from the bundle's entries",
                entry_id=missing[0],
            )

    def _entry(self, e: BundleEntry, state: EntryState | None) -> None:
        def bad(reason: str) -> NoReturn:
            fail(CHECK_ENTRIES, reason, entry_id=e.id)

        if state is None:
            bad("no entry.add record names this entry")
        if e.expression is None or e.url is None:
            if state.pruned_seq is None:
                bad("has no plaintext, but no entry.prune_plaintext record in force names it")
        elif state.pruned_seq is not None:
            bad(
                f"carries plaintext that audit record {state.pruned_seq} says retention pruned "
                "(the server kept what it recorded as erased)"
            )
        elif hashlib.sha256(e.expression.encode("utf-8")).digest() != e.hash:
            bad(f"expression does not hash (SHA-256) to the entry's hash {b64encode(e.hash)}")
        if e.hash != state.hash:
            bad(
                f"hash {b64encode(e.hash)} differs from its entry.add record's "
                f"{b64encode(state.hash)}"
            )
        add = state.record
        fields: Iterable[tuple[str, object, object]] = (
            ("created_by", e.created_by, add.actor),
            ("scope", e.scope, add.details.get("scope")),
            ("reason", e.reason, add.details.get("reason")),
            ("reference", e.reference, add.details.get("reference")),
            ("category", e.category, add.details.get("category")),
            ("status", e.status, state.claimed_status),
        )
        for name, value, recorded in fields:
            if value != recorded:
                bad(f"{name} {value!r} differs from the audit log's {recorded!r}")
        try:
            created = datetime.fromisoformat(e.created_at)
        except ValueError:
            bad(f"created_at {e.created_at[:40]!r} is not an RFC 3339 time")
        if created.tzinfo is None:
            bad("created_at has no time zone")
        if created.astimezone(UTC).replace(microsecond=0) != add.time:
            bad(
                f"created_at {e.created_at} differs from the entry.add record's "
                f"{format_time(add.time)}"
            )
        if e.expression is None or e.url is None:
            self.report.counts.entries_pruned += 1
            return
        try:
            canonical = canonical_expression(e.url, e.scope)
        except BlocklistError as err:
            bad(f"url does not canonicalise: {err}")
        if canonical != e.expression:
            bad(f"url canonicalises to another expression at scope {e.scope!r}")
