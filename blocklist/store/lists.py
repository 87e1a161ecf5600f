"""Lists: creation (with the canary entry), lookup, enumeration."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from blocklist import foureyes
from blocklist.auditlog import Action, Actor
from blocklist.canonical import split_expression
from blocklist.checkpoint import validate_origin
from blocklist.encoding import b64encode
from blocklist.entries import plan_entry
from blocklist.errors import FormatError
from blocklist.store import audit
from blocklist.store.db import get_row, one_row
from blocklist.store.errors import Conflict, InvalidField
from blocklist.store.models import (
    ORIGIN_LENGTH,
    STATUS_ACTIVE,
    ApprovalRow,
    EntryRow,
    ListRow,
)

__all__ = [
    "CANARY_REASON",
    "COUNTRY_RE",
    "LIST_NAME_RE",
    "MAX_LIST_ORIGIN",
    "SYSTEM_CANARY",
    "create_list",
    "get_list",
    "get_list_by_id",
    "list_lists",
    "normalise_country",
]

#: List names appear in URL paths (/v1/lists/{list}/...): lower-case
#: letters, digits and hyphens only, so they never need escaping.
LIST_NAME_RE = re.compile(r"\A[a-z0-9-]{1,64}\Z")

#: Origins are the first line of checkpoints and a line of every statement
#: and keyring: printable ASCII without spaces, so they cannot break a line
#: format (c2sp.org/tlog-checkpoint recommends a schema-less URL).
#: Longest list origin: the root key is named "<origin>/root" and key names
#: are capped at ORIGIN_LENGTH bytes, so five characters stay free.
MAX_LIST_ORIGIN = ORIGIN_LENGTH - len("/root")

COUNTRY_RE = re.compile(r"\A[A-Z]{2}\Z")

#: Actor recorded for the canary's creation and approval.
SYSTEM_CANARY = Actor.CANARY

#: Reason stored on every canary entry.
CANARY_REASON = "canary"


def normalise_country(value: str | None, what: str) -> str | None:
    """Upper-case an ISO 3166-1 alpha-2 code, or ``None``.

    Raises:
        InvalidField: not two ASCII letters.
    """
    if value is None:
        return None
    upper = value.upper() if isinstance(value, str) else ""
    if not COUNTRY_RE.match(upper):
        raise InvalidField(f"{what} must be an ISO 3166-1 alpha-2 code such as 'GB'")
    return upper


def create_list(
    session: Session,
    *,
    name: str,
    origin: str,
    canary_url: str,
    home_country: str | None = None,
    approvals_required: int = 2,
    public: bool = False,
    canary_scope: str = "page",
    actor: str = Actor.INIT,
    now: datetime | None = None,
) -> ListRow:
    """Create a list and its canary entry (active, approved by the system).

    The canary is a reserved entry each ISP uses to test that its blocking
    works (DESIGN.md, "Entries"); it is published with the first version.

    Raises:
        InvalidField: a bad name, origin, country or approvals count.
        InvalidURL, InvalidEntry: the canary URL cannot be an entry of
            ``canary_scope``.
        Conflict: the name or origin is taken.
    """
    if not isinstance(name, str) or not LIST_NAME_RE.match(name):
        raise InvalidField("list name must be 1..64 of a-z, 0-9 and '-'")
    # The origin names the log in every statement, checkpoint and keyring, so
    # it must pass the same rule those formats enforce (no "+", which would
    # break vkeys; room for the "/root" key name suffix).
    try:
        if not isinstance(origin, str) or len(origin) > MAX_LIST_ORIGIN:
            raise FormatError("too long")
        validate_origin(origin)
    except FormatError as e:
        raise InvalidField(
            f"origin must be 1..{MAX_LIST_ORIGIN} printable ASCII characters without '+'"
        ) from e
    if not foureyes.valid_approvals_required(approvals_required):
        raise InvalidField("approvals_required must be 1 or 2")
    country = normalise_country(home_country, "home_country")
    audit.check_actor(actor)
    plan = plan_entry(canary_url, canary_scope, canary=True)
    now = audit.resolve_now(now)
    taken = session.scalar(
        select(ListRow.name).where((ListRow.name == name) | (ListRow.origin == origin)).limit(1)
    )
    if taken is not None:
        raise Conflict(f"a list with name {name!r} or origin {origin!r} already exists")

    # Every column is given a value, NULLs included: attributes never set
    # are not refreshed by ORM bulk UPDATEs later in the same session.
    row = ListRow(
        name=name,
        origin=origin,
        home_country=country,
        canary_url=canary_url,
        canary_entry_id=None,
        approvals_required=approvals_required,
        public=bool(public),
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as e:  # a concurrent create_list won the race
        raise Conflict(f"a list with name {name!r} or origin {origin!r} already exists") from e
    audit.lock_list(session, row.id)
    canary = EntryRow(
        list_id=row.id,
        expression=plan.expression,
        hash=plan.hash,
        host=split_expression(plan.expression)[0],
        url=canary_url,
        scope=plan.scope,
        reason=CANARY_REASON,
        reference=None,
        category=None,
        hosting_country=None,
        created_by=SYSTEM_CANARY,
        created_at=now,
        status=STATUS_ACTIVE,
        expires_at=None,
        listed=False,
        needs_publish=True,
        added_version=None,
        removed_version=None,
        approval_round=1,
        submitted_by=SYSTEM_CANARY,
    )
    session.add(canary)
    session.flush()
    session.add(ApprovalRow(entry_id=canary.id, round=1, actor=SYSTEM_CANARY, at=now))
    row.canary_entry_id = canary.id
    session.flush()
    audit.append_many(
        session,
        row.id,
        [
            audit.AuditEvent(
                actor=actor,
                action=Action.LIST_CREATE,
                details={
                    "name": name,
                    "origin": origin,
                    "home_country": country,
                    "approvals_required": approvals_required,
                    "public": bool(public),
                },
            ),
            audit.AuditEvent(
                actor=SYSTEM_CANARY,
                action=Action.ENTRY_ADD,
                entry_id=canary.id,
                details={
                    "hash": b64encode(plan.hash),
                    "scope": plan.scope,
                    "reason": CANARY_REASON,
                    "canary": True,
                    "status": STATUS_ACTIVE,
                },
            ),
        ],
        now=now,
    )
    return row


def get_list(session: Session, name: str) -> ListRow:
    """Return the list called ``name``.

    Raises:
        NotFound: no such list.
    """
    return one_row(session, select(ListRow).where(ListRow.name == name), f"no list named {name!r}")


def get_list_by_id(session: Session, list_id: int) -> ListRow:
    """Return the list with ``list_id``.

    Raises:
        NotFound: no such list.
    """
    return get_row(session, ListRow, list_id, f"no list with id {list_id}")


def list_lists(session: Session) -> list[ListRow]:
    """Return every list, by name."""
    return list(session.scalars(select(ListRow).order_by(ListRow.name)).all())
