"""Models of the safeguards (issue 16): guard list, guard approval, referrals.

A guarded entry's rule (:class:`GuardOut`) and a preview's safeguards
(:class:`SafeguardsOut`) are also parts of the entry answers in
:mod:`api.models.entries`; the referral queue's answer is
:class:`api.models.entries.ReferralsOut`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from api.models.common import Forbid, Out, Reason

__all__ = [
    "GuardApproveIn",
    "GuardHostOut",
    "GuardIn",
    "GuardListOut",
    "GuardOut",
    "GuardRemoveIn",
    "ReferIn",
    "SafeguardsOut",
]


class SafeguardsOut(Out):
    """Which safeguard rules apply to a previewed entry (issue 16)."""

    public_suffix: bool = Field(description="the host is a public suffix (refused)")
    rules: list[str] = Field(
        description="each safeguard rule that applies, in words (public suffix, guard)"
    )
    guard: str | None = Field(
        description="the guard rule: a guarded host, or 'ip-address'; null if unguarded"
    )
    subsumes: int = Field(description="listed entries the new one would cover (blast radius)")
    subsumes_capped: bool = Field(description="the count stopped at its scan limit")


class GuardOut(Out):
    """A guarded entry's rule and the administrator's approval (issue 16 item 2)."""

    rule: str = Field(description="the guarded host, or 'ip-address'")
    approved_by: str | None
    approved_at: datetime | None
    justification: str | None


class GuardApproveIn(Forbid):
    """An administrator's approval of a guarded entry."""

    justification: Reason


class ReferIn(Forbid):
    """Refer an entry (analysts) or override a referral proposal (administrators)."""

    reason: Reason


class GuardIn(Forbid):
    """A host to guard."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class GuardRemoveIn(Forbid):
    """A guarded host and why its guard is lifted."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    reason: Reason


class GuardHostOut(Out):
    """One guarded host."""

    host: str
    note: str | None
    created_by: str
    created_at: datetime


class GuardListOut(Out):
    """The guard list."""

    guards: list[GuardHostOut]
