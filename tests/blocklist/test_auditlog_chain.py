"""The audit log hash chain (docs/architecture.md, "Audit log hash chain")."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocklist.auditlog import (
    AUDIT_DOMAIN,
    AUDIT_ZERO,
    Action,
    AuditChainError,
    AuditRecord,
    canonical_json,
    chain_hash,
    verify_chain,
)
from blocklist.errors import FormatError

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def naive_hash(prev: bytes, record: AuditRecord) -> bytes:
    """The spec written out independently: sorted keys, no spaces, UTF-8."""
    body = {
        "seq": record.seq,
        "time": record.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "actor": record.actor,
        "action": record.action,
        "list": record.list_name,
        "entry": record.entry_id,
        "details": record.details,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"cleanfeed-audit/v1\n" + prev + text.encode("utf-8")).digest()


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
records_strategy = st.lists(
    st.builds(
        lambda actor, action, lst, entry, details, minutes: (
            actor,
            action,
            lst,
            entry,
            details,
            minutes,
        ),
        st.text(min_size=1, max_size=12),
        st.sampled_from(
            [Action.ENTRY_ADD, Action.ENTRY_APPROVE, Action.ENTRY_EXPIRE, Action.TOKEN_CREATE]
        ),
        st.none() | st.text(min_size=1, max_size=8),
        st.none() | st.integers(1, 10**9),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=8,
)


def build_chain(items: list[tuple[object, ...]]) -> list[AuditRecord]:
    chain = []
    prev = AUDIT_ZERO
    for seq, (actor, action, lst, entry, details, minutes) in enumerate(items, start=1):
        record = AuditRecord(
            seq=seq,
            time=T0 + timedelta(minutes=minutes),  # type: ignore[operator]
            actor=actor,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
            list_name=lst,  # type: ignore[arg-type]
            entry_id=entry,  # type: ignore[arg-type]
            details=details,  # type: ignore[arg-type]
        )
        prev = chain_hash(prev, record)
        chain.append(dataclasses.replace(record, hash=prev))
    return chain


@given(records_strategy)
def test_chain_hash_equals_the_naive_computation(items: list[tuple[object, ...]]) -> None:
    chain = build_chain(items)
    prev = AUDIT_ZERO
    for record in chain:
        prev = naive_hash(prev, record)
        assert record.hash == prev
    assert verify_chain(chain) == prev


@given(records_strategy, st.data())
def test_any_altered_field_breaks_the_chain(
    items: list[tuple[object, ...]], data: st.DataObject
) -> None:
    chain = build_chain(items)
    i = data.draw(st.integers(0, len(chain) - 1))
    field = data.draw(
        st.sampled_from(["time", "actor", "action", "list_name", "entry_id", "details"])
    )
    original = chain[i]
    altered_value: object = {
        "time": original.time + timedelta(seconds=1),
        "actor": original.actor + "x",
        "action": original.action + "x",
        "list_name": (original.list_name or "") + "x",
        "entry_id": (original.entry_id or 0) + 1,
        "details": {**original.details, "tampered": True},
    }[field]
    chain[i] = dataclasses.replace(original, **{field: altered_value})
    with pytest.raises(AuditChainError):
        verify_chain(chain)


@given(records_strategy.filter(lambda items: len(items) >= 2), st.data())
def test_removed_or_swapped_records_break_the_chain(
    items: list[tuple[object, ...]], data: st.DataObject
) -> None:
    chain = build_chain(items)
    i = data.draw(st.integers(0, len(chain) - 2))
    with pytest.raises(AuditChainError):
        verify_chain(chain[:i] + chain[i + 1 :])
    swapped = [*chain[:i], chain[i + 1], chain[i], *chain[i + 2 :]]
    with pytest.raises(AuditChainError):
        verify_chain(swapped)
    # Renumbering after a removal still fails: the later hashes commit to it.
    renumbered = chain[:i] + [dataclasses.replace(r, seq=r.seq - 1) for r in chain[i + 1 :]]
    with pytest.raises(AuditChainError):
        verify_chain(renumbered)


def test_verification_continues_from_a_verified_head() -> None:
    chain = build_chain([("a", Action.ENTRY_ADD, "main", 1, {}, m) for m in range(6)])
    middle = verify_chain(chain[:3])
    assert verify_chain(chain[3:], prev=middle, first_seq=4) == verify_chain(chain)
    with pytest.raises(AuditChainError):
        verify_chain(chain[3:])  # from the zero head, seq 4 is out of place


def test_empty_log_head_is_32_zero_bytes() -> None:
    assert bytes(32) == AUDIT_ZERO
    assert verify_chain([]) == AUDIT_ZERO
    assert AUDIT_DOMAIN == b"cleanfeed-audit/v1\n"


def test_records_without_claimed_hashes_still_give_the_head() -> None:
    chain = build_chain([("a", Action.ENTRY_ADD, None, None, {"k": "v"}, 0)])
    bare = [dataclasses.replace(r, hash=None) for r in chain]
    assert verify_chain(bare) == chain[-1].hash


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )


@pytest.mark.parametrize(
    "details",
    [
        {"x": 1.0},
        {"x": float("nan")},
        {1: "non-string key"},
        {"x": object()},
        {"x": "\ud800"},  # lone surrogate: no UTF-8 form
        {"x": [[[[[[[[[["too deep"]]]]]]]]]]},
    ],
)
def test_values_without_a_canonical_form_are_refused(details: dict[object, object]) -> None:
    record = AuditRecord(
        seq=1,
        time=T0,
        actor="a",
        action=Action.ENTRY_ADD,
        list_name=None,
        entry_id=None,
        details=details,  # type: ignore[arg-type]
    )
    with pytest.raises(FormatError):
        record.to_json()
    with pytest.raises(AuditChainError):
        verify_chain([record])


def test_naive_times_and_bad_previous_hashes_are_refused() -> None:
    record = AuditRecord(
        seq=1, time=T0.replace(tzinfo=None), actor="a", action="x", list_name=None, entry_id=None
    )
    with pytest.raises(FormatError):
        record.to_json()
    good = dataclasses.replace(record, time=T0)
    with pytest.raises(FormatError):
        chain_hash(b"short", good)
