"""Building audit bundles for tests, without a server.

:class:`FullLog` is a small, independent model of what the service does for
one list: the hash-chained audit log of analyst decisions (add, four-eyes
approval, expiry, scheduled expiry, reinstatement), the entries with their
plaintext, and a :class:`support.memory_log.MemoryLog` that cuts and signs versions
whose ``audit`` line is the head of that log. Its ``force_*`` switches
publish what the decisions do not allow, to play a misbehaving server.

Test data uses reserved names only (example.com, example.org, *.test,
*.invalid).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from blocklist.auditlog import AUDIT_ZERO, Action, Actor, AuditRecord, chain_hash
from blocklist.canonical import expression as canonical_expression
from blocklist.checkpoint import Checkpoint
from blocklist.encoding import b64encode, format_time
from blocklist.merkle import MemoryHashStore, tree_root
from blocklist.statedigest import StateDigest
from blocklist.statement import Statement
from clients.audit.bundle import KIND_FULL, KIND_HASH_ONLY, Bundle, BundleEntry
from clients.audit.verify import AuditReport, verify_bundle
from signer.keys import SecretKey
from signer.log import sign_checkpoint
from signer.note import sign_note
from support.memory_log import MemoryLog

T0 = datetime(2024, 1, 1, tzinfo=UTC)
#: When the verification tests audit (after every story's last checkpoint).
LATER = T0 + timedelta(days=2)
ORIGIN = "cleanfeed.invalid/audit-test"
LIST = "main"
CANARY_URL = "http://canary.cleanfeed.invalid/"


def sha(expr: str) -> bytes:
    """The entry hash of an expression (SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(expr.encode("utf-8")).digest()


def page(i: int) -> str:
    """A page URL on a reserved name."""
    return f"http://example.org/abuse/page-{i}.html"


def hash_only(log: MemoryLog, *, at: datetime | None = None, list_name: str = LIST) -> Bundle:
    """A hash-only bundle of ``log`` with one checkpoint signed at ``at``."""
    when = at or T0 + timedelta(days=1)
    return Bundle(
        kind=KIND_HASH_ONLY,
        list_name=list_name,
        origin=log.origin,
        approvals_required=1,
        keyrings=tuple(log.keyrings),
        statements=tuple(log.statements),
        checkpoints=(log.checkpoint(now=when),),
    )


def small_log(versions: int = 6, per_version: int = 4, *, rotate_at: int | None = 3) -> MemoryLog:
    """A log with additions and removals, optionally an online key rotation."""
    log = MemoryLog(ORIGIN, now=T0)
    counter = 0
    listed: list[bytes] = []
    for v in range(versions):
        adds = [sha(f"example.org/p{counter + i}.html") for i in range(per_version)]
        counter += per_version
        removes = listed[:1] if v % 2 else []
        listed = listed[len(removes) :] + adds
        log.publish(adds, removes, now=T0 + timedelta(minutes=v))
        if rotate_at is not None and v + 1 == rotate_at:
            log.rotate_online_key(now=T0 + timedelta(minutes=v))
    return log


def statement_of(note: str) -> Statement:
    """Parse the statement text of a signed note."""
    return Statement.parse(note[: note.rindex("\n\n") + 1])


def text_hash(note: str) -> bytes:
    """SHA-256 of a statement note's text (the next version's ``previous``)."""
    return hashlib.sha256(note[: note.rindex("\n\n") + 1].encode()).digest()


def replay(notes: list[str]) -> set[bytes]:
    """The set after applying every statement's delta (no checks)."""
    current: set[bytes] = set()
    for note in notes:
        st = statement_of(note)
        current.difference_update(st.removes)
        current.update(st.adds)
    return current


def forge_next(
    log: MemoryLog,
    notes: list[str],
    *,
    key: SecretKey | None = None,
    adds: tuple[bytes, ...] = (),
    removes: tuple[bytes, ...] = (),
    when: datetime | None = None,
    **overrides: Any,
) -> str:
    """Sign (with the log's online key, by default) the statement after ``notes``.

    Every field is computed honestly from ``notes`` (previous, state as a
    multiset sum, count) unless given in ``overrides``, so a test breaks
    exactly one rule.
    """
    previous_set = replay(notes)
    state = StateDigest.from_hashes(previous_set)
    state.update(list(adds), list(removes))
    last = statement_of(notes[-1]) if notes else None
    fields: dict[str, Any] = {
        "origin": log.origin,
        "version": len(notes) + 1,
        "previous": text_hash(notes[-1]) if notes else bytes(32),
        "keyring": log.keyring.serial,
        "audit": last.audit if last else AUDIT_ZERO,
        "state": state.digest(),
        "count": len(previous_set) + len(adds) - len(removes),
        "time": (when or (last.time if last else T0) + timedelta(minutes=1)),
        "adds": tuple(sorted(adds)),
        "removes": tuple(sorted(removes)),
    }
    fields.update(overrides)
    return sign_note(Statement(**fields).to_text(), [key or log.online_key])


def checkpoint_for(
    notes: list[str], key: SecretKey, origin: str = ORIGIN, at: datetime | None = None
) -> str:
    """A checkpoint over exactly ``notes``, signed by ``key`` (0x01 and 0x04)."""
    store = MemoryHashStore()
    for note in notes:
        store.append(note[: note.rindex("\n\n") + 1].encode())
    return sign_checkpoint(
        origin, len(notes), tree_root(len(notes), store), key, at or T0 + timedelta(days=1)
    )


def with_statements(bundle: Bundle, notes: list[str], key: SecretKey) -> Bundle:
    """The bundle with other statements and a checkpoint that covers them."""
    return Bundle(
        kind=bundle.kind,
        list_name=bundle.list_name,
        origin=bundle.origin,
        approvals_required=bundle.approvals_required,
        keyrings=bundle.keyrings,
        statements=tuple(notes),
        checkpoints=(checkpoint_for(notes, key, bundle.origin),),
        audit_log=bundle.audit_log,
        entries=bundle.entries,
    )


def rechain(records: list[AuditRecord]) -> list[AuditRecord]:
    """Renumber and re-hash records as a rewriting attacker would."""
    out = []
    prev = AUDIT_ZERO
    for i, r in enumerate(records, start=1):
        plain = AuditRecord(
            seq=i,
            time=r.time,
            actor=r.actor,
            action=r.action,
            list_name=r.list_name,
            entry_id=r.entry_id,
            details=dict(r.details),
        )
        prev = chain_hash(prev, plain)
        out.append(
            AuditRecord(
                seq=i,
                time=r.time,
                actor=r.actor,
                action=r.action,
                list_name=r.list_name,
                entry_id=r.entry_id,
                details=dict(r.details),
                hash=prev,
            )
        )
    return out


def pretty(bundle_bytes: bytes) -> bytes:
    """The same document pretty-printed (JSON whitespace between tokens)."""
    return json.dumps(json.loads(bundle_bytes), indent=1, ensure_ascii=False).encode()


# --- a model of the service's decisions ---------------------------------------------


@dataclass
class _Entry:
    id: int
    expression: str
    url: str
    scope: str
    reason: str
    reference: str | None
    category: str | None
    created_by: str
    created_at: datetime
    status: str = "pending"
    listed: bool = False
    ever_listed: bool = False
    round: int = 1
    opener: str = ""
    approvers: set[str] = field(default_factory=set)
    expires_at: datetime | None = None
    #: retention erased the plaintext (blocklist.store.retention)
    pruned: bool = False

    @property
    def hash(self) -> bytes:
        return sha(self.expression)


class FullLog:
    """One list as the service runs it: decisions, audit log, entries, signed log.

    Args:
        approvals_required: the list's four-eyes setting (1 or 2).
        canary: create the canary entry with the list, as the service does.
    """

    def __init__(self, approvals_required: int = 2, *, canary: bool = True) -> None:
        self.now = T0
        self.log = MemoryLog(ORIGIN, now=T0)
        self.required = approvals_required
        self.records: list[AuditRecord] = []
        self.head = AUDIT_ZERO
        self.entries: dict[int, _Entry] = {}
        self._next_id = 1
        #: Publish an approved-looking change set regardless of decisions.
        self.force_adds: list[int] = []
        self.force_removes: list[int] = []
        self.record(
            "admin",
            Action.LIST_CREATE,
            details={
                "name": LIST,
                "origin": ORIGIN,
                "home_country": None,
                "approvals_required": approvals_required,
                "public": False,
            },
        )
        if canary:
            eid = self._new_entry(
                canonical_expression(CANARY_URL, "host"),
                CANARY_URL,
                "host",
                "canary",
                None,
                None,
                Actor.CANARY,
            )
            e = self.entries[eid]
            e.status = "active"
            self.record(
                Actor.CANARY,
                Action.ENTRY_ADD,
                eid,
                {
                    "hash": b64encode(e.hash),
                    "scope": "host",
                    "reason": "canary",
                    "canary": True,
                    "status": "active",
                },
            )

    # -- plumbing --

    def tick(self, seconds: int = 60) -> datetime:
        """Advance the clock."""
        self.now += timedelta(seconds=seconds)
        return self.now

    def record(
        self,
        actor: str,
        action: str,
        entry_id: int | None = None,
        details: dict[str, Any] | None = None,
        *,
        when: datetime | None = None,
    ) -> AuditRecord:
        """Append one chained record."""
        plain = AuditRecord(
            seq=len(self.records) + 1,
            time=(when or self.now).replace(microsecond=0),
            actor=actor,
            action=action,
            list_name=LIST,
            entry_id=entry_id,
            details=details or {},
        )
        self.head = chain_hash(self.head, plain)
        record = AuditRecord(
            seq=plain.seq,
            time=plain.time,
            actor=actor,
            action=action,
            list_name=LIST,
            entry_id=entry_id,
            details=plain.details,
            hash=self.head,
        )
        self.records.append(record)
        return record

    def _new_entry(
        self,
        expression: str,
        url: str,
        scope: str,
        reason: str,
        reference: str | None,
        category: str | None,
        actor: str,
    ) -> int:
        eid = self._next_id
        self._next_id += 1
        # Stores keep microseconds in created_at; records are to the second.
        created = self.now.replace(microsecond=123456)
        self.entries[eid] = _Entry(
            eid, expression, url, scope, reason, reference, category, actor, created, opener=actor
        )
        return eid

    # -- analyst actions --

    def add(
        self,
        url: str,
        *,
        actor: str = "alice",
        scope: str = "page",
        reason: str = "abuse material",
        reference: str | None = "case-1",
        category: str | None = "test",
        expires_at: datetime | None = None,
    ) -> int:
        """Add a pending entry; return its id."""
        expression = canonical_expression(url, scope)
        eid = self._new_entry(expression, url, scope, reason, reference, category, actor)
        e = self.entries[eid]
        e.expires_at = expires_at
        self.record(
            actor,
            Action.ENTRY_ADD,
            eid,
            {
                "hash": b64encode(e.hash),
                "scope": scope,
                "reason": reason,
                "reference": reference,
                "category": category,
                "hosting_country": None,
                "expires_at": format_time(expires_at) if expires_at else None,
                "status": "pending",
            },
        )
        return eid

    def approve(self, eid: int, actor: str, *, record_only: bool = False) -> None:
        """Approve (the service refuses self and repeated approvals; the model counts them)."""
        e = self.entries[eid]
        if not record_only and actor != e.opener:
            e.approvers.add(actor)
            if len(e.approvers) >= self.required and e.status == "pending":
                e.status = "active"
        self.record(
            actor,
            Action.ENTRY_APPROVE,
            eid,
            {
                "hash": b64encode(e.hash),
                "round": e.round,
                "approvals": len(e.approvers),
                "required": self.required,
                "status": e.status,
            },
        )

    def add_approved(self, url: str, *, approvers: tuple[str, ...] = ("bob", "carol")) -> int:
        """Add an entry and approve it by ``approvers``."""
        eid = self.add(url)
        for a in approvers[: self.required]:
            self.approve(eid, a)
        return eid

    def expire(self, eid: int, *, actor: str = "alice", at: datetime | None = None) -> None:
        """Expire now, or schedule for ``at``."""
        e = self.entries[eid]
        if at is None or at <= self.now:
            e.status = "expired" if e.ever_listed else "removed"
            e.expires_at = self.now
            action, effective = Action.ENTRY_EXPIRE, self.now
        else:
            e.expires_at = at
            action, effective = Action.ENTRY_SCHEDULE_EXPIRY, at
        self.record(
            actor,
            action,
            eid,
            {
                "hash": b64encode(e.hash),
                "reason": "wrong block",
                "at": format_time(effective),
                "status": e.status,
            },
        )

    def reinstate(self, eid: int, *, actor: str = "alice") -> None:
        """Back to pending in a new approval round opened by ``actor``."""
        e = self.entries[eid]
        e.status = "pending"
        e.round += 1
        e.opener = actor
        e.approvers = set()
        e.expires_at = None
        self.record(
            actor,
            Action.ENTRY_REINSTATE,
            eid,
            {"hash": b64encode(e.hash), "reason": "back", "round": e.round, "status": e.status},
        )

    def prune(self, eid: int, *, erase: bool = True, record: bool = True) -> None:
        """Retention erases an entry's plaintext (``erase``) and logs it (``record``)."""
        e = self.entries[eid]
        e.pruned = erase
        if record:
            self.record(
                Actor.RETENTION,
                Action.ENTRY_PRUNE_PLAINTEXT,
                eid,
                {
                    "hash": b64encode(e.hash),
                    "off_since": format_time(e.expires_at) if e.expires_at else None,
                    "days": 30,
                },
            )

    def restore(self, eid: int, *, actor: str = "alice") -> None:
        """An analyst adds the URL again: the plaintext comes back."""
        e = self.entries[eid]
        e.pruned = False
        self.record(actor, Action.ENTRY_RESTORE_PLAINTEXT, eid, {"hash": b64encode(e.hash)})

    def publish(self) -> list[int]:
        """Expire due entries, then cut versions of what changed."""
        for e in self.entries.values():
            due = e.expires_at is not None and e.expires_at <= self.now
            if due and e.status in ("active", "pending"):
                e.status = "expired" if e.ever_listed else "removed"
                assert e.expires_at is not None
                self.record(
                    Actor.EXPIRY,
                    Action.ENTRY_EXPIRE,
                    e.id,
                    {
                        "hash": b64encode(e.hash),
                        "reason": "scheduled expiry",
                        "at": format_time(e.expires_at),
                        "status": e.status,
                    },
                )
        adds = [
            e
            for e in self.entries.values()
            if (not e.listed and e.status == "active") or e.id in self.force_adds
        ]
        removes = [
            e
            for e in self.entries.values()
            if (e.listed and e.status != "active") or e.id in self.force_removes
        ]
        self.force_adds, self.force_removes = [], []
        self.log.set_audit_head(self.head)
        versions = self.log.publish([e.hash for e in adds], [e.hash for e in removes], now=self.now)
        for e in adds:
            e.listed = e.ever_listed = True
        for e in removes:
            e.listed = False
        return versions

    # -- bundles --

    def bundle_entries(self) -> tuple[BundleEntry, ...]:
        """The entries as a full bundle serves them."""
        return tuple(
            BundleEntry(
                id=e.id,
                hash=e.hash,
                expression=None if e.pruned else e.expression,
                url=None if e.pruned else e.url,
                scope=e.scope,
                reason=e.reason,
                reference=e.reference,
                category=e.category,
                created_by=e.created_by,
                created_at=e.created_at.isoformat().replace("+00:00", "Z"),
                status=e.status,
            )
            for e in sorted(self.entries.values(), key=lambda e: e.id)
        )

    def bundle(self, *, at: datetime | None = None) -> Bundle:
        """The full bundle now (one checkpoint signed at ``at``)."""
        return Bundle(
            kind=KIND_FULL,
            list_name=LIST,
            origin=ORIGIN,
            approvals_required=self.required,
            keyrings=tuple(self.log.keyrings),
            statements=tuple(self.log.statements),
            checkpoints=(self.log.checkpoint(now=at or self.now + timedelta(minutes=5)),),
            audit_log=tuple(self.records),
            entries=self.bundle_entries(),
        )


def story(required: int = 2) -> FullLog:
    """A list with a realistic history.

    Version 1: the canary and two approved pages. Version 2: a third page;
    page 1 expired by an analyst. Version 3: page 1 reinstated and
    re-approved; page 2 scheduled to expire and expired by the system. Also
    an entry still pending and one withdrawn before it was ever listed.
    """
    f = FullLog(required)
    p1 = f.add_approved(page(1))
    p2 = f.add_approved(page(2))
    f.tick()
    f.publish()
    f.tick()
    f.add_approved(page(3))
    f.expire(p1)
    f.tick()
    f.publish()
    f.tick()
    f.reinstate(p1, actor="bob")
    f.approve(p1, "alice")
    if required == 2:
        f.approve(p1, "carol")
    f.expire(p2, actor="carol", at=f.now + timedelta(minutes=30))
    f.add(page(4), actor="carol")  # stays pending
    withdrawn = f.add(page(5))
    f.expire(withdrawn)
    f.tick(3600)
    f.publish()
    f.tick()
    return f


def public_checkpoint_text(note: str) -> Checkpoint:
    """The checkpoint a note carries (unverified)."""
    return Checkpoint.parse(note[: note.rindex("\n\n") + 1])


# --- a log server for the witness (httpx.MockTransport) ------------------------------


class LogServer:
    """Serves a MemoryLog's keyring, checkpoint and proofs; records cosignatures.

    ``checkpoint`` (when set) replaces the served checkpoint note, to play a
    server that rolls back or forks; ``keyring`` replaces the latest keyring.
    """

    def __init__(self, log: MemoryLog, list_name: str = LIST) -> None:
        self.log = log
        self.list_name = list_name
        self.now = T0 + timedelta(days=1)
        self.checkpoint: str | None = None
        self.keyring: str | None = None
        self.proof_log: MemoryLog | None = None
        self.posted: list[dict[str, Any]] = []
        self.requests: list[Any] = []

    def handler(self, request: Any) -> Any:
        import httpx

        self.requests.append(request)
        prefix = f"/v1/lists/{self.list_name}"
        path = request.url.path
        if not path.startswith(prefix):
            return httpx.Response(404, json={"code": "not_found"})
        rest = path[len(prefix) :]
        q = request.url.params
        if rest == "/keyring":
            if "serial" in q:
                return httpx.Response(200, text=self.log.keyrings[int(q["serial"]) - 1])
            return httpx.Response(200, text=self.keyring or self.log.keyrings[-1])
        if rest == "/checkpoint":
            return httpx.Response(200, text=self.checkpoint or self.log.checkpoint(now=self.now))
        if rest == "/proofs/consistency":
            source = self.proof_log or self.log
            proof = source.consistency_proof(int(q["from"]), int(q["to"]))
            return httpx.Response(200, json={"hashes": [b64encode(h) for h in proof]})
        if rest == "/checkpoint/cosignatures" and request.method == "POST":
            self.posted.append(json.loads(request.content))
            return httpx.Response(201, json={"size": self.log.version, "timestamp": 0, "line": ""})
        return httpx.Response(404, json={"code": "not_found"})

    def client(self) -> Any:
        import httpx

        return httpx.Client(transport=httpx.MockTransport(self.handler), base_url="http://log.test")


# --- running the auditor ------------------------------------------------------------


def run(bundle: Bundle, log: MemoryLog | FullLog, **kwargs: Any) -> AuditReport:
    memory = log.log if isinstance(log, FullLog) else log
    kwargs.setdefault("now", LATER)
    kwargs.setdefault("workers", 1)
    return verify_bundle(bundle, [memory.root_vkey], **kwargs)


def assert_failed(
    report: AuditReport, check: str, contains: str, **where: int | str | None
) -> None:
    assert report.failure is not None, "tampering was not detected"
    assert not report.ok
    assert report.failure.check == check, str(report.failure)
    assert contains in report.failure.reason, str(report.failure)
    for key, value in where.items():
        assert getattr(report.failure, key) == value, str(report.failure)


def assert_audit_failed(f: FullLog, check: str, contains: str, **where: int | str | None) -> None:
    """Audit ``f``'s bundle at ``f.now``: it fails ``check`` saying ``contains``.

    ``where``: fields of the failure to match, as :func:`assert_failed`.
    """
    assert_failed(run(f.bundle(), f, now=f.now), check, contains, **where)
