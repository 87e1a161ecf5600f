"""What a submitted entry must be, and the row and audit record a new one gets.

Shared by the single add (:func:`blocklist.store.entries.add_entry`) and the
bulk add (:func:`blocklist.store.imports.bulk_add`), so both judge a row
alike: the same caps, the same refused control characters, the same plan
(:func:`blocklist.entries.plan_entry`), the same ``entry.add`` record.
Nothing here reads or writes the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from blocklist.auditlog import Action
from blocklist.canonical import (
    MAX_URL_BYTES,
    split_expression,
)
from blocklist.encoding import b64encode, format_time
from blocklist.entries import PlannedEntry, plan_entry
from blocklist.errors import InvalidEntry
from blocklist.store import audit
from blocklist.store.errors import (
    InvalidField,
)
from blocklist.store.lists import normalise_country
from blocklist.store.models import (
    CATEGORY_LENGTH,
    REFERENCE_LENGTH,
    STATUS_PENDING,
)

__all__ = [
    "LINE_CONTROLS",
    "MAX_CATEGORY_CHARS",
    "MAX_REASON_CHARS",
    "MAX_REFERENCE_CHARS",
    "MAX_URL_CHARS",
    "BulkRow",
    "Validated",
    "add_event",
    "check_text",
    "new_entry_values",
    "validate",
]

#: Longest submitted URL stored (characters): canonicalisation refuses more
#: than MAX_URL_BYTES anyway; checked first so oversized input costs nothing.
MAX_URL_CHARS = MAX_URL_BYTES

#: Longest reason (characters): a few paragraphs of analyst justification.
MAX_REASON_CHARS = 2000

#: Longest reference and category: short case numbers and labels.
MAX_REFERENCE_CHARS = REFERENCE_LENGTH
MAX_CATEGORY_CHARS = CATEGORY_LENGTH

#: Single-line text: no control characters at all.
LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
#: Multi-line text (reasons): tabs and newlines allowed, other controls not
#: (PostgreSQL cannot store NUL in text at all).
_MULTILINE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: URLs as submitted: canonicalisation strips tab/CR/LF and escapes other
#: control bytes (Safe Browsing's rules), so only NUL, which PostgreSQL
#: cannot store in text, is refused (it can be written as %00).
_URL_RE = re.compile(r"\x00")


@dataclass(frozen=True)
class BulkRow:
    """One submitted entry: a bulk add row, or the fields of :func:`.entries.add_entry`."""

    url: str
    scope: str
    reason: str
    reference: str | None = None
    category: str | None = None
    hosting_country: str | None = None
    expires_at: datetime | None = None


def check_text(
    value: str | None,
    what: str,
    cap: int,
    *,
    required: bool,
    multiline: bool = False,
    forbidden: re.Pattern[str] | None = None,
) -> str | None:
    if value is None:
        if required:
            raise InvalidEntry(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEntry(f"{what} must be text")
    if required and not value.strip():
        raise InvalidEntry(f"{what} must not be empty")
    if len(value) > cap:
        raise InvalidEntry(f"{what} is longer than {cap} characters")
    if (forbidden or (_MULTILINE_RE if multiline else LINE_CONTROLS)).search(value):
        raise InvalidEntry(f"{what} contains control characters it may not hold")
    return value


@dataclass(frozen=True)
class Validated:
    plan: PlannedEntry
    host: str
    url: str
    reason: str
    reference: str | None
    category: str | None
    hosting_country: str | None
    expires_at: datetime | None


def validate(row: BulkRow, home_country: str | None, now: datetime) -> Validated:
    """Check every field and plan the entry; raises a BlocklistError."""
    check_text(row.url, "url", MAX_URL_CHARS, required=True, forbidden=_URL_RE)
    reason = check_text(row.reason, "reason", MAX_REASON_CHARS, required=True, multiline=True)
    reference = check_text(row.reference, "reference", MAX_REFERENCE_CHARS, required=False)
    category = check_text(row.category, "category", MAX_CATEGORY_CHARS, required=False)
    try:
        country = normalise_country(row.hosting_country, "hosting_country")
    except InvalidField as e:
        raise InvalidEntry(str(e)) from e
    if row.expires_at is not None:
        if row.expires_at.tzinfo is None:
            raise InvalidEntry("expires_at must be timezone-aware")
        if row.expires_at <= now:
            raise InvalidEntry("expires_at must be in the future")
    plan = plan_entry(row.url, row.scope, hosting_country=country, home_country=home_country)
    assert reason is not None  # required=True
    return Validated(
        plan=plan,
        host=split_expression(plan.expression)[0],
        url=row.url,
        reason=reason,
        reference=reference,
        category=category,
        hosting_country=country,
        expires_at=row.expires_at.astimezone(UTC) if row.expires_at else None,
    )


def new_entry_values(
    list_id: int,
    v: Validated,
    actor: str,
    now: datetime,
    import_id: int | None = None,
    person: int | None = None,
    guard: str | None = None,
) -> dict[str, object]:
    return {
        "list_id": list_id,
        "expression": v.plan.expression,
        "hash": v.plan.hash,
        "host": v.host,
        "url": v.url,
        "scope": v.plan.scope,
        "reason": v.reason,
        "reference": v.reference,
        "category": v.category,
        "hosting_country": v.hosting_country,
        "created_by": actor,
        "created_at": now,
        "status": STATUS_PENDING,
        "expires_at": v.expires_at,
        "listed": False,
        "needs_publish": False,
        "added_version": None,
        "removed_version": None,
        "approval_round": 1,
        "submitted_by": actor,
        "submitted_person": person,
        "import_id": import_id,
        "guard": guard,
        "guard_approved_by": None,
        "guard_approved_at": None,
        "guard_justification": None,
        "hosting": None,
        "referral": None,
    }


def add_event(
    entry_id: int,
    v: Validated,
    actor: str,
    import_id: int | None = None,
    person: int | None = None,
    guard: str | None = None,
) -> audit.AuditEvent:
    # The import id, the person (issue 15) and the guard rule (issue 16) are
    # recorded only when there is one, so other entries keep exactly the
    # details they always had.
    extra: dict[str, object] = {} if import_id is None else {"import": import_id}
    if person is not None:
        extra["person"] = person
    if guard is not None:
        # The auditor requires an eligible entry.guard_approve before listing.
        extra["guard"] = guard
    return audit.AuditEvent(
        actor=actor,
        action=Action.ENTRY_ADD,
        entry_id=entry_id,
        details={
            **extra,
            "hash": b64encode(v.plan.hash),
            "scope": v.plan.scope,
            "reason": v.reason,
            "reference": v.reference,
            "category": v.category,
            "hosting_country": v.hosting_country,
            "expires_at": format_time(v.expires_at) if v.expires_at else None,
            "status": STATUS_PENDING,
        },
    )
