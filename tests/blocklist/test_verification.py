"""The pure re-verification rules (blocklist/verification.py, issue 16 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from blocklist.verification import (
    DNS_NOADDRESS,
    DNS_NXDOMAIN,
    DNS_OK,
    DNS_UNREACHABLE,
    Observation,
    VerificationState,
    advance,
    classify,
    combine,
    vantage_agreement,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ADDR = ("192.0.2.10",)


def http(code: int, vantage: str = "a", location_host: str | None = None) -> Observation:
    return Observation(vantage, DNS_OK, ADDR, http_status=code, location_host=location_host)


@pytest.mark.parametrize(
    ("observation", "status"),
    [
        (http(200), "live"),
        (http(403), "live"),
        (http(301), "live"),  # same-host redirect
        (http(302, location_host="elsewhere.example.org"), "moved"),
        (http(404), "gone"),
        (http(410), "gone"),
        (http(503), "unreachable"),
        (Observation("a", DNS_NXDOMAIN), "gone"),
        (Observation("a", DNS_NOADDRESS), "unreachable"),
        (Observation("a", DNS_UNREACHABLE), "unreachable"),
        (Observation("a", DNS_OK, ADDR, error="timeout"), "unreachable"),
    ],
)
def test_classify(observation: Observation, status: str) -> None:
    assert classify(observation) == status


def test_any_live_vantage_point_wins() -> None:
    assert combine([http(404, "a"), http(200, "b")]) == "live"
    assert combine([http(404, "a"), Observation("b", DNS_UNREACHABLE)]) == "gone"
    assert combine([Observation("a", DNS_UNREACHABLE)]) == "unreachable"


def test_agreement_needs_two_distinct_gone_vantage_points() -> None:
    a, b = http(404, "a").to_json(), Observation("b", DNS_NXDOMAIN).to_json()
    assert vantage_agreement([a, b])
    assert not vantage_agreement([a])
    assert not vantage_agreement([a, a])
    assert not vantage_agreement([a, http(200, "b").to_json()])
    assert not vantage_agreement([a, "b"])  # type: ignore[list-item]


def _step(state: VerificationState, obs: list[Observation], day: int, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "now": T0 + timedelta(days=day),
        "gone_threshold": 3,
        "max_unverified_days": 30,
        "listed_since": T0,
    }
    args.update(kw)
    return advance(state, obs, **args)  # type: ignore[arg-type]


def test_unreachable_neither_counts_nor_resets_the_run_of_gone() -> None:
    state = VerificationState()
    out = _step(state, [http(404)], 1)
    out = _step(out.state, [http(404)], 2)
    out = _step(out.state, [Observation("a", DNS_OK, ADDR, error="reset")], 3)
    assert (out.state.status, out.state.consecutive_gone) == ("unreachable", 2)
    assert not out.propose_expiry
    out = _step(out.state, [http(410)], 4)
    assert out.state.consecutive_gone == 3
    assert out.propose_expiry
    assert not out.agreed_gone  # one vantage point never agrees
    out = _step(out.state, [http(302, location_host="other.example.org")], 5)
    assert (out.state.status, out.state.consecutive_gone) == ("moved", 0)
    assert out.state.expiry_proposed_at is None


def test_agreed_gone_needs_k_and_every_vantage_point() -> None:
    state = VerificationState()
    both = [http(404, "a"), Observation("b", DNS_NXDOMAIN)]
    out = _step(state, both, 1, gone_threshold=2)
    assert not out.agreed_gone
    out = _step(out.state, both, 2, gone_threshold=2)
    assert out.agreed_gone
    assert out.propose_expiry


def test_flagged_when_not_seen_live_for_max_unverified_days() -> None:
    out = _step(VerificationState(), [http(200)], 1, max_unverified_days=5)
    assert out.state.flagged_at is None
    out = _step(out.state, [http(404)], 7, max_unverified_days=5)
    assert out.flagged
    assert out.state.flagged_at is not None
    out = _step(out.state, [http(200)], 8, max_unverified_days=5)
    assert out.state.flagged_at is None


def test_referral_only_for_a_located_home_country_address() -> None:
    located = {"192.0.2.10": "GB"}.get
    out = _step(VerificationState(), [http(200)], 1, home_country="GB", locate=located)
    assert out.propose_referral
    assert out.state.referral_proposed_at == T0 + timedelta(days=1)
    again = _step(out.state, [http(200)], 2, home_country="GB", locate=located)
    assert not again.propose_referral  # proposed once
    unknown = _step(VerificationState(), [http(200)], 1, home_country="GB", locate=lambda a: None)
    assert not unknown.propose_referral  # a CDN address counts as unknown


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        _step(VerificationState(), [], 1)
    with pytest.raises(ValueError, match="at least 1"):
        _step(VerificationState(), [http(200)], 1, gone_threshold=0)
