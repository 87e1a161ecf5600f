"""The four-eyes rules (blocklist.foureyes), the one statement the store enforces."""

from __future__ import annotations

import pytest

from blocklist import foureyes
from blocklist.foureyes import Refusal


@pytest.mark.parametrize(
    ("role", "refusal"),
    [
        ("analyst", None),
        ("admin", Refusal.ADMIN),
        ("auditor", Refusal.NOT_ANALYST),
        ("isp", Refusal.NOT_ANALYST),
        ("", Refusal.NOT_ANALYST),
    ],
)
def test_only_analysts_approve(role: str, refusal: Refusal | None) -> None:
    assert foureyes.role_refusal(role) is refusal


def test_the_opener_of_a_round_never_approves_it() -> None:
    assert foureyes.round_refusal("alice", opener="alice", approvers=set()) is Refusal.OWN_ROUND
    # Even when the opener is somehow listed among the approvers already.
    assert foureyes.round_refusal("alice", opener="alice", approvers={"alice"}) is (
        Refusal.OWN_ROUND
    )


def test_an_analyst_approves_a_round_once() -> None:
    assert foureyes.round_refusal("bob", opener="alice", approvers={"bob"}) is (
        Refusal.ALREADY_APPROVED
    )
    assert foureyes.round_refusal("bob", opener="alice", approvers={"carol"}) is None


@pytest.mark.parametrize(
    ("approvals", "required", "approved"),
    [(0, 1, False), (1, 1, True), (1, 2, False), (2, 2, True), (3, 2, True)],
)
def test_a_round_is_approved_once_approvals_reach_the_requirement(
    approvals: int, required: int, approved: bool
) -> None:
    assert foureyes.is_approved(approvals, required) is approved


@pytest.mark.parametrize(
    ("value", "valid"),
    [(1, True), (2, True), (0, False), (3, False), (True, False), ("2", False), (None, False)],
)
def test_approvals_required_is_one_or_two(value: object, valid: bool) -> None:
    assert foureyes.valid_approvals_required(value) is valid
