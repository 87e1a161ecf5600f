"""Models of the analysts' routes: entries, preview, search, bulk add and approval, publish."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from api.models.auditor import AuditRecordOut
from api.models.common import (
    MAX_INT,
    Category,
    Country,
    Forbid,
    HashText,
    Out,
    Reason,
    Reference,
    Scope,
    Status,
    Url,
    UtcTime,
)
from api.models.safeguards import GuardOut, SafeguardsOut
from blocklist.encoding import b64encode
from blocklist.entries import Reach
from blocklist.store import guards as store_guards
from blocklist.store.imports import MAX_APPROVE_ROWS, MAX_BULK_ROWS, ApproveResult, BulkResult
from blocklist.store.models import ApprovalRow, EntryRow
from blocklist.store.search import DEFAULT_PAGE_SIZE, MAX_HOST_CHARS, MAX_PAGE_SIZE
from blocklist.verification import VerificationState

__all__ = [
    "ApprovalOut",
    "ApproveIn",
    "ApproveManyIn",
    "ApproveManyOut",
    "ApproveResultOut",
    "BulkIn",
    "BulkOut",
    "BulkResultOut",
    "EntryHistoryOut",
    "EntryIn",
    "EntryOut",
    "EntryPageOut",
    "ExpireIn",
    "PreviewIn",
    "PreviewOut",
    "PublishIn",
    "PublishOut",
    "ReachOut",
    "ReferralsOut",
    "RefusalOut",
    "ReinstateIn",
    "SearchIn",
    "VerificationOut",
    "approval_out",
    "approve_many_out",
    "bulk_out",
    "bulk_result_out",
    "entry_out",
    "reach_out",
    "verification_out",
]


class EntryIn(Forbid):
    """One URL to add (DESIGN.md, "Entries")."""

    url: Url
    scope: Scope
    reason: Reason
    reference: Reference | None = None
    category: Category | None = None
    hosting_country: Country | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country where the material is hosted."
    )
    expires_at: UtcTime | None = Field(
        default=None, description="Optional future expiry (RFC 3339 with offset)."
    )


class PreviewIn(Forbid):
    """A URL whose reach to show before adding it."""

    url: Url
    scope: Scope = "page"
    hosting_country: Country | None = None


class RefusalOut(Out):
    """Why an entry would be refused."""

    code: str
    detail: str


class ReachOut(Out):
    """What an expression blocks, as lookups really match it."""

    expression: str
    hash: str = Field(description="base64 SHA-256 of the expression")
    scope: Scope
    host: str
    path: str
    covers_subdomains: bool
    explanation: str
    problem: str | None
    matches: list[str]
    does_not_match: list[str]


class PreviewOut(Out):
    """The reach of the expression the URL would be stored as, and the verdict."""

    accepted: bool
    requested_scope: Scope
    reach: ReachOut | None
    refusal: RefusalOut | None
    safeguards: SafeguardsOut | None = None


class ApprovalOut(Out):
    """One analyst's approval of one round."""

    actor: str
    round: int
    at: datetime


class EntryOut(Out):
    """An entry as analysts see it."""

    id: int
    list: str
    expression: str | None = Field(description="null once retention pruned the plaintext")
    hash: str = Field(description="base64 SHA-256 of the expression")
    url: str | None = Field(description="null once retention pruned the plaintext")
    scope: Scope
    reason: str
    reference: str | None
    category: str | None
    hosting_country: str | None
    status: Status
    listed: bool
    expires_at: datetime | None
    created_by: str
    created_at: datetime
    added_version: int | None
    removed_version: int | None
    approval_round: int
    submitted_by: str
    plaintext_pruned_at: datetime | None = Field(
        description="when retention erased expression and url (add the URL again to restore)"
    )
    guard: GuardOut | None = Field(
        default=None, description="the guard rule and its approval; null if unguarded"
    )
    hosting: dict[str, Any] | None = Field(
        default=None,
        description="the latest hosting evidence (addresses, countries, database, resolver, "
        "time; verified false when resolution failed)",
    )
    referral: str | None = Field(
        default=None, description="'proposed' (held off the list) or 'overridden'; null if none"
    )
    awaiting: builtins.list[str] = Field(
        default_factory=builtins.list,
        description="safeguards a pending entry waits for besides four-eyes: 'guard', 'referral'",
    )


class ReferralsOut(Out):
    """The open referral proposals of a list (the analysts' queue)."""

    entries: list[EntryOut]


class VerificationOut(Out):
    """An entry's re-verification state (DESIGN.md part 2; docs/reverification.md)."""

    status: Literal["live", "gone", "unreachable", "moved", "unchecked"]
    checked_at: datetime | None = Field(description="time of the latest check")
    consecutive_gone: int = Field(description="consecutive checks that found it gone")
    hosting: list[str] = Field(description="addresses observed by the latest check")
    last_live_at: datetime | None = Field(description="last check that found it live")
    vantage_points: list[dict[str, Any]] = Field(
        description="each vantage point's verdict in the latest check (name, status, dns, "
        "http_status, error)"
    )
    expiry_proposed_at: datetime | None = Field(
        description="proposed for expiry (gone for k consecutive checks) since"
    )
    referral_proposed_at: datetime | None = Field(
        description="proposed for referral (observed hosting in the home country) since"
    )
    flagged_at: datetime | None = Field(
        description="flagged: not seen live for max_unverified_days, since"
    )


class EntryHistoryOut(EntryOut):
    """An entry with every approval and every audit record naming it."""

    approvals: list[ApprovalOut]
    history: list[AuditRecordOut]
    verification: VerificationOut | None = Field(
        default=None, description="re-verification state; null for the canary (never checked)"
    )


class ExpireIn(Forbid):
    """Take an entry off now (``{}``) or schedule it (``{"at": ...}``)."""

    at: UtcTime | None = None
    reason: Reason = "expired without a stated reason"


class ReinstateIn(Forbid):
    """Bring an expired entry back to pending (needs fresh approvals)."""

    reason: Reason = "reinstated without a stated reason"


class ApproveIn(Forbid):
    """Approve an entry (no fields; the body may be omitted)."""


class PublishIn(Forbid):
    """Publish now (no fields; the body may be omitted). Mass-assignment
    protection: a body such as ``{"version": 99}`` is refused, not ignored."""


class SearchIn(Forbid):
    """Search filters (AND-combined), sent in a POST body so URLs stay out of logs."""

    url: Url | None = Field(default=None, description="entries whose lookups this URL hits")
    host: Annotated[str, StringConstraints(min_length=1, max_length=MAX_HOST_CHARS)] | None = None
    hash: HashText | None = Field(default=None, description="base64 or 64 hex digits")
    status: Status | None = None
    reference: Reference | None = None
    cursor: Annotated[int, Field(ge=0, le=MAX_INT)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE


class EntryPageOut(Out):
    """A page of entries; pass ``next`` as ``cursor`` for the next page."""

    entries: list[EntryOut]
    next: int | None


class BulkResultOut(Out):
    """Outcome of one bulk row."""

    index: int
    status: Literal["added", "existing", "failed", "skipped"]
    id: int | None = None
    hash: str | None = None
    code: str | None = None
    message: str | None = None


class BulkOut(Out):
    """Per-row results of a bulk add, with counts and the import id."""

    results: list[BulkResultOut]
    added: int
    existing: int
    failed: int
    skipped: int
    import_id: int | None = Field(
        default=None,
        serialization_alias="import",
        description="the import the added entries belong to: pass it as ?import= to add "
        'further batches to it, and approve them together with {"import": id}; null when '
        "nothing was added",
    )


class ApproveManyIn(Forbid):
    """Approve many entries: ``{"ids": [...]}`` or ``{"import": id}`` (one of the two)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ids: (
        Annotated[
            list[Annotated[int, Field(ge=1, le=MAX_INT)]],
            Field(min_length=1, max_length=MAX_APPROVE_ROWS),
        ]
        | None
    ) = Field(default=None, description=f"entry ids, at most {MAX_APPROVE_ROWS}, no repeats")
    import_id: Annotated[int, Field(ge=1, le=MAX_INT)] | None = Field(
        default=None, alias="import", description="approve the entries this import added"
    )
    cursor: Annotated[int, Field(ge=0, le=MAX_INT)] | None = Field(
        default=None,
        description="with import: the previous answer's next (imports over "
        f"{MAX_APPROVE_ROWS} entries take several calls)",
    )

    @model_validator(mode="after")
    def _one_of(self) -> ApproveManyIn:
        if (self.ids is None) == (self.import_id is None):
            raise ValueError('send exactly one of "ids" and "import"')
        if self.ids is not None and len(set(self.ids)) != len(self.ids):
            raise ValueError("ids must not repeat")
        if self.cursor is not None and self.import_id is None:
            raise ValueError('"cursor" goes with "import"')
        return self


class ApproveResultOut(Out):
    """Outcome of one entry of a bulk approval."""

    id: int
    status: Literal["approved", "refused"]
    entry_status: Status | None = Field(
        default=None, description="the entry's status after the call (null: no such entry)"
    )
    approvals: int | None = Field(default=None, description="approvals of this round so far")
    required: int | None = None
    code: str | None = Field(default=None, description="why it was refused (a problem code)")
    message: str | None = None


class ApproveManyOut(Out):
    """Per-entry results of a bulk approval, with counts."""

    results: list[ApproveResultOut]
    approved: int = Field(description="approvals recorded")
    activated: int = Field(description="entries that became active (published at the next version)")
    refused: int = Field(description="entries refused, each with its code")
    import_id: int | None = Field(default=None, serialization_alias="import")
    next: int | None = Field(
        default=None, description="with import: pass as cursor for the rest; null when done"
    )


BulkIn = Annotated[list[EntryIn], Field(min_length=1, max_length=MAX_BULK_ROWS)]


class PublishOut(Out):
    """Result of a publish-now request."""

    version: int = Field(description="latest version after the call (unchanged if nothing pending)")
    published: bool = Field(description="whether this call cut at least one new version")
    versions: list[int] = Field(description="versions cut by this call")
    count: int | None = Field(default=None, description="entries in the latest version")
    pending: bool = Field(default=False, description="true when answered 202 (still queued)")
    request: int | None = Field(default=None, description="publish request id (--no-signer)")


def verification_out(state: VerificationState) -> VerificationOut:
    """Serialise an entry's re-verification state."""
    return VerificationOut(
        status=state.status,  # type: ignore[arg-type]
        checked_at=state.checked_at,
        consecutive_gone=state.consecutive_gone,
        hosting=list(state.hosting),
        last_live_at=state.last_live_at,
        vantage_points=[dict(v) for v in state.vantage_points],
        expiry_proposed_at=state.expiry_proposed_at,
        referral_proposed_at=state.referral_proposed_at,
        flagged_at=state.flagged_at,
    )


def entry_out(entry: EntryRow, list_name: str) -> EntryOut:
    """Serialise an entry row (``null`` plaintext once retention pruned it)."""
    pruned = entry.plaintext_pruned_at is not None
    return EntryOut(
        id=entry.id,
        list=list_name,
        expression=None if pruned else entry.expression,
        hash=b64encode(entry.hash),
        url=None if pruned else entry.url,
        scope=entry.scope,  # type: ignore[arg-type]
        reason=entry.reason,
        reference=entry.reference,
        category=entry.category,
        hosting_country=entry.hosting_country,
        status=entry.status,  # type: ignore[arg-type]
        listed=entry.listed,
        expires_at=entry.expires_at,
        created_by=entry.created_by,
        created_at=entry.created_at,
        added_version=entry.added_version,
        removed_version=entry.removed_version,
        approval_round=entry.approval_round,
        submitted_by=entry.submitted_by,
        plaintext_pruned_at=entry.plaintext_pruned_at,
        guard=None
        if entry.guard is None
        else GuardOut(
            rule=entry.guard,
            approved_by=entry.guard_approved_by,
            approved_at=entry.guard_approved_at,
            justification=entry.guard_justification,
        ),
        hosting=entry.hosting,
        referral=entry.referral,
        awaiting=store_guards.blockers(entry) if entry.status == "pending" else [],
    )


def approval_out(row: ApprovalRow) -> ApprovalOut:
    """Serialise an approval row."""
    return ApprovalOut(actor=row.actor, round=row.round, at=row.at)


def reach_out(reach: Reach, digest: bytes) -> ReachOut:
    """Serialise a reach description."""
    return ReachOut(
        expression=reach.expression,
        hash=b64encode(digest),
        scope=reach.scope,
        host=reach.host,
        path=reach.path,
        covers_subdomains=reach.covers_subdomains,
        explanation=reach.explanation,
        problem=reach.problem,
        matches=list(reach.matches),
        does_not_match=list(reach.does_not_match),
    )


def bulk_result_out(result: BulkResult) -> BulkResultOut:
    """Serialise one bulk row result."""
    return BulkResultOut(
        index=result.index,
        status=result.status,  # type: ignore[arg-type]
        id=result.entry_id,
        hash=b64encode(result.hash) if result.hash is not None else None,
        code=result.code,
        message=result.message,
    )


def bulk_out(results: list[BulkResult], import_id: int | None = None) -> BulkOut:
    """Serialise a bulk add's results with per-status counts."""
    rows = [bulk_result_out(r) for r in results]
    counts = {"added": 0, "existing": 0, "failed": 0, "skipped": 0}
    for row in rows:
        counts[row.status] += 1
    return BulkOut(results=rows, import_id=import_id, **counts)


def approve_many_out(
    results: list[ApproveResult], *, import_id: int | None = None, next_cursor: int | None = None
) -> ApproveManyOut:
    """Serialise a bulk approval's results with counts."""
    rows = [
        ApproveResultOut(
            id=r.entry_id,
            status=r.status,  # type: ignore[arg-type]
            entry_status=r.entry_status,  # type: ignore[arg-type]
            approvals=r.approvals,
            required=r.required,
            code=r.code,
            message=r.message,
        )
        for r in results
    ]
    approved = sum(1 for r in rows if r.status == "approved")
    return ApproveManyOut(
        results=rows,
        approved=approved,
        activated=sum(1 for r in rows if r.status == "approved" and r.entry_status == "active"),
        refused=len(rows) - approved,
        import_id=import_id,
        next=next_cursor,
    )
