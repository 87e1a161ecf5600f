"""Re-verification: what one check observed, and what follows from it.

DESIGN.md part 2, "Safeguards", Re-verification: a scheduled job re-checks
every active entry (never the canary) with a DNS query and one HTTP(S)
request that reads only the status line and headers, from one or more
*vantage points* (an egress proxy and/or a resolver). This module is pure:
it classifies one vantage point's answer (:func:`classify`), combines the
vantage points of one check (:func:`combine`) and moves an entry's
verification state (:func:`advance`). The fetching lives in
:mod:`signer.reverify`, the table in :mod:`blocklist.store.verification`.

Statuses:

- ``live``: a server answered with something other than 404/410, a 5xx or a
  redirect to another host;
- ``gone``: NXDOMAIN (RFC 8020: nothing exists at or under the name), or
  HTTP 404 / 410 (RFC 9110 sections 15.5.5, 15.5.11);
- ``moved``: a redirect (RFC 9110 section 15.4) whose ``Location`` names
  another host;
- ``unreachable``: no answer to build on (DNS failure other than
  NXDOMAIN, no address, connection refused or reset, timeout, a 5xx);
- ``unchecked``: never checked yet.

Why these consequences:

- Leaked lists full of entries whose content had long gone (Denmark 2008,
  ACMA 2009) are what this answers: ``gone`` for ``k`` consecutive checks
  proposes the entry for expiry to the analysts.
- ``unreachable`` says nothing either way (the hotline's own network may be
  at fault), so it neither counts towards nor resets the run of ``gone``.
- A site can hide from one hotline address (serve 404 to it alone), so an
  expiry without analysts (``auto_expire_gone``) needs every one of at
  least :data:`MIN_AGREEING_VANTAGE_POINTS` vantage points to say ``gone``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = [
    "DNS_NOADDRESS",
    "DNS_NXDOMAIN",
    "DNS_OK",
    "DNS_UNREACHABLE",
    "GONE_HTTP_STATUSES",
    "MIN_AGREEING_VANTAGE_POINTS",
    "STATUSES",
    "STATUS_GONE",
    "STATUS_LIVE",
    "STATUS_MOVED",
    "STATUS_UNCHECKED",
    "STATUS_UNREACHABLE",
    "Observation",
    "Outcome",
    "VerificationState",
    "advance",
    "classify",
    "combine",
    "vantage_agreement",
]

STATUS_LIVE: Final = "live"
STATUS_GONE: Final = "gone"
STATUS_UNREACHABLE: Final = "unreachable"
STATUS_MOVED: Final = "moved"
STATUS_UNCHECKED: Final = "unchecked"
#: Every value of ``verification.status`` (DESIGN.md).
STATUSES: Final = (STATUS_LIVE, STATUS_GONE, STATUS_UNREACHABLE, STATUS_MOVED, STATUS_UNCHECKED)

#: DNS outcomes of one vantage point.
DNS_OK: Final = "ok"
DNS_NXDOMAIN: Final = "nxdomain"
#: The name exists but has no A/AAAA record (or a CNAME chain leads nowhere).
DNS_NOADDRESS: Final = "noaddress"
#: SERVFAIL, REFUSED, timeout: the resolver gave no usable answer.
DNS_UNREACHABLE: Final = "unreachable"

#: HTTP statuses that mean the content is gone: 404 Not Found, 410 Gone
#: (RFC 9110 sections 15.5.5 and 15.5.11).
GONE_HTTP_STATUSES: Final = frozenset({404, 410})

#: Vantage points that must all say ``gone`` before the system may expire an
#: entry on its own: one hotline address can be served a fake 404 (a site
#: hiding from its watchers), two independent egress paths rarely both are.
MIN_AGREEING_VANTAGE_POINTS: Final = 2


@dataclass(frozen=True)
class Observation:
    """What one vantage point saw of one entry in one check.

    ``http_status`` is ``None`` when no HTTP answer came (DNS said no, or
    the connection failed); ``location_host`` is the host a redirect
    pointed at (lower case), ``None`` for a same-host or relative one.
    ``error`` is a short, fixed description of a failure (never a URL).
    """

    vantage: str
    dns: str
    addresses: tuple[str, ...] = ()
    http_status: int | None = None
    location_host: str | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """This vantage point's verdict (:func:`classify`)."""
        return classify(self)

    def to_json(self) -> dict[str, Any]:
        """The record stored with the entry and in an audit record's details."""
        out: dict[str, Any] = {"name": self.vantage, "status": self.status, "dns": self.dns}
        if self.http_status is not None:
            out["http_status"] = self.http_status
        if self.error is not None:
            out["error"] = self.error
        return out


def classify(observation: Observation) -> str:
    """The status one vantage point's observation means (module docstring)."""
    if observation.dns == DNS_NXDOMAIN:
        return STATUS_GONE
    if observation.dns != DNS_OK:
        return STATUS_UNREACHABLE
    code = observation.http_status
    if code is None:
        return STATUS_UNREACHABLE
    if code in GONE_HTTP_STATUSES:
        return STATUS_GONE
    if 300 <= code < 400 and observation.location_host is not None:
        return STATUS_MOVED
    if code >= 500:
        # A server error says the site is in trouble, not that the content
        # is there; it must not reset the run of "gone" (nor extend it).
        return STATUS_UNREACHABLE
    return STATUS_LIVE


def combine(observations: Sequence[Observation]) -> str:
    """One status for a check from every vantage point's verdict.

    Any ``live`` wins (the content is still served somewhere, so it must
    not be proposed for expiry), then ``moved``, then ``gone``; only when
    nothing answered is the check ``unreachable``.
    """
    verdicts = {o.status for o in observations}
    for status in (STATUS_LIVE, STATUS_MOVED, STATUS_GONE):
        if status in verdicts:
            return status
    return STATUS_UNREACHABLE


def vantage_agreement(observations: Sequence[Mapping[str, Any]]) -> bool:
    """Whether recorded vantage points agree the content is gone.

    ``observations`` are :meth:`Observation.to_json` records (as in an
    ``entry.expire`` record by ``system:reverify``): at least
    :data:`MIN_AGREEING_VANTAGE_POINTS` distinct names, every one ``gone``.
    The offline auditor calls this on the audit record, so a forged system
    expiry without that agreement fails verification.
    """
    names: set[str] = set()
    for item in observations:
        if not isinstance(item, Mapping):
            return False
        name = item.get("name")
        if not isinstance(name, str) or not name or name in names:
            return False
        if item.get("status") != STATUS_GONE:
            return False
        names.add(name)
    return len(names) >= MIN_AGREEING_VANTAGE_POINTS


@dataclass(frozen=True)
class VerificationState:
    """An entry's re-verification state (one row of ``entry_verification``).

    ``hosting`` holds the latest addresses observed (every vantage point,
    de-duplicated, sorted). ``expiry_proposed_at`` / ``referral_proposed_at``
    are set while a proposal waits in the analysts' queue; ``flagged_at``
    while the entry has not been seen live for ``max_unverified_days``.
    """

    status: str = STATUS_UNCHECKED
    checked_at: datetime | None = None
    consecutive_gone: int = 0
    last_live_at: datetime | None = None
    hosting: tuple[str, ...] = ()
    vantage_points: tuple[Mapping[str, Any], ...] = ()
    expiry_proposed_at: datetime | None = None
    referral_proposed_at: datetime | None = None
    flagged_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """The new state and what the job must do about it."""

    state: VerificationState
    #: Newly proposed for expiry this check (write the audit record).
    propose_expiry: bool = False
    #: Every vantage point (at least two) agreed on ``gone`` and the run
    #: reached ``k``: ``auto_expire_gone`` may expire the entry.
    agreed_gone: bool = False
    #: Newly proposed for referral (observed hosting in the home country).
    propose_referral: bool = False
    #: Newly flagged as not seen live for ``max_unverified_days``.
    flagged: bool = False
    countries: Mapping[str, str | None] = field(default_factory=dict)


def advance(
    previous: VerificationState,
    observations: Sequence[Observation],
    *,
    now: datetime,
    gone_threshold: int,
    max_unverified_days: int,
    listed_since: datetime,
    home_country: str | None = None,
    locate: Callable[[str], str | None] | None = None,
) -> Outcome:
    """Apply one check's observations to an entry's state.

    Args:
        previous: the state before this check.
        observations: one per vantage point (at least one).
        now: the time of the check.
        gone_threshold: ``k``, consecutive ``gone`` checks before the entry
            is proposed for expiry (at least 1).
        max_unverified_days: flag an entry not seen live for this long
            (counted from ``listed_since`` when it was never live).
        listed_since: when the entry was created.
        home_country: the list's home country (ISO 3166-1 alpha-2) or None.
        locate: address -> country code, ``None`` for unknown (a CDN or
            anycast network counts as unknown); without it no referral is
            proposed.

    Raises:
        ValueError: no observation, or a threshold below 1.
    """
    if not observations:
        raise ValueError("a check needs at least one vantage point's observation")
    if gone_threshold < 1 or max_unverified_days < 1:
        raise ValueError("gone_threshold and max_unverified_days must be at least 1")
    status = combine(observations)
    addresses = tuple(sorted({a for o in observations for a in o.addresses}))
    consecutive = previous.consecutive_gone
    last_live = previous.last_live_at
    expiry_proposed = previous.expiry_proposed_at
    if status == STATUS_LIVE:
        # Back from gone: the run restarts and a waiting proposal is
        # withdrawn (the content is served again).
        consecutive = 0
        last_live = now
        expiry_proposed = None
    elif status == STATUS_MOVED:
        consecutive = 0
        expiry_proposed = None
    elif status == STATUS_GONE:
        consecutive += 1
    # unreachable: neither counts nor resets (the fault may be ours).
    propose_expiry = (
        status == STATUS_GONE and consecutive >= gone_threshold and expiry_proposed is None
    )
    if propose_expiry:
        expiry_proposed = now
    agreed = (
        status == STATUS_GONE
        and consecutive >= gone_threshold
        and vantage_agreement([o.to_json() for o in observations])
    )
    countries: dict[str, str | None] = {}
    if locate is not None:
        countries = {address: locate(address) for address in addresses}
    referral_proposed = previous.referral_proposed_at
    propose_referral = (
        home_country is not None
        and referral_proposed is None
        and any(c == home_country for c in countries.values())
    )
    if propose_referral:
        referral_proposed = now
    seen = last_live if last_live is not None else listed_since
    flagged_at = previous.flagged_at
    overdue = now - seen > timedelta(days=max_unverified_days)
    newly_flagged = overdue and flagged_at is None
    if newly_flagged:
        flagged_at = now
    elif not overdue:
        flagged_at = None
    state = replace(
        previous,
        status=status,
        checked_at=now,
        consecutive_gone=consecutive,
        last_live_at=last_live,
        hosting=addresses,
        vantage_points=tuple(o.to_json() for o in observations),
        expiry_proposed_at=expiry_proposed,
        referral_proposed_at=referral_proposed,
        flagged_at=flagged_at,
    )
    return Outcome(
        state=state,
        propose_expiry=propose_expiry,
        agreed_gone=agreed,
        propose_referral=propose_referral,
        flagged=newly_flagged,
        countries=countries,
    )
