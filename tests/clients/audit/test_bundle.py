"""The bundle file: one meaning per document, strict shape, size caps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.audit_helpers import T0, hash_only, small_log, story

from blocklist.auditlog import Action, AuditRecord
from clients.audit.bundle import (
    BUNDLE_FORMAT,
    Bundle,
    dumps,
    load,
    loads,
    record_from_json,
    record_to_json,
)
from clients.errors import BundleError, BundleTooLarge


@pytest.fixture(scope="module")
def full_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dumps(story().bundle()))
    return doc


def test_round_trip_of_both_kinds() -> None:
    for bundle in (hash_only(small_log()), story().bundle()):
        assert loads(dumps(bundle)) == bundle
        assert loads(dumps(bundle).decode()) == bundle
    doc = json.loads(dumps(story().bundle()))
    assert list(doc)[:3] == ["format", "kind", "list"]
    assert doc["format"] == BUNDLE_FORMAT


def mutate(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> str:
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(copy)


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("format",), "cleanfeed-bundle/v2", "not a cleanfeed-bundle/v1"),
        (("kind",), "partial", "unknown bundle kind"),
        (("origin",), _DELETE, "missing origin"),
        (("extra",), 1, "unknown key(s) extra"),
        (("approvals_required",), True, "expected an integer"),
        (("approvals_required",), "2", "expected an integer"),
        (("statements",), "note", "expected a list of notes"),
        (("statements", 0), 5, "expected a string"),
        (("audit_log", 0, "seq"), 1.0, "non-integer number"),
        (("audit_log", 0, "seq"), "1", "expected an integer"),
        (("audit_log", 0, "time"), "2024-01-01T00:00:00+00:00", "not UTC RFC 3339"),
        (("audit_log", 0, "hash"), "AAAA", "expected 32 bytes"),
        (("audit_log", 0, "details"), [], "'details' must be an object"),
        (("audit_log", 0, "extra"), None, "unknown key(s) extra"),
        (("entries", 0, "hash"), "iuno1XO041fZxpzesA1XGwDCrhpaqfewOCue/k6WPlJ=", "non-canonical"),
        (("entries", 0, "reference"), 7, "expected a string"),
        (("entries", 0, "url"), _DELETE, "missing url"),
    ],
)
def test_shape_violations(
    full_doc: dict[str, Any], path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(BundleError) as e:
        loads(mutate(full_doc, path, value))
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "a", "format": "b"}', "duplicate JSON key 'format'"),
        ('{"format": 1.5}', "non-integer number"),
        ('{"format": NaN}', "NaN, which is not JSON"),
        ('{"format": ', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ("[]", "a bundle is a JSON object"),
        ('{"format": 1' + "0" * 5000 + "}", "not valid JSON"),
    ],
)
def test_json_that_has_two_meanings_or_none(text: str, message: str) -> None:
    with pytest.raises(BundleError) as e:
        loads(text)
    assert message in str(e.value)


def test_hash_only_bundle_must_not_carry_plaintext(full_doc: dict[str, Any]) -> None:
    doc = dict(full_doc, kind="hash-only")
    with pytest.raises(BundleError, match="unknown key"):
        loads(json.dumps(doc))
    with pytest.raises(BundleError, match="must not carry"):
        Bundle("hash-only", "main", "o", 1, (), (), (), audit_log=())
    with pytest.raises(BundleError, match="needs 'audit_log' and 'entries'"):
        Bundle("full", "main", "o", 1, (), (), ())


def test_not_utf8() -> None:
    with pytest.raises(BundleError, match="not UTF-8"):
        loads(b'{"format": "\xff"}')


def test_size_caps(tmp_path: Path) -> None:
    data = dumps(hash_only(small_log()))
    with pytest.raises(BundleTooLarge):
        loads(data, max_bytes=len(data) - 1)
    path = tmp_path / "b.json"
    path.write_bytes(data)
    with pytest.raises(BundleTooLarge, match="exceed the cap"):
        load(path, max_bytes=len(data) - 1)
    assert load(path, max_bytes=len(data)) == loads(data)


@settings(max_examples=50, deadline=None)
@given(
    details=st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        max_size=5,
    ),
    actor=st.text(min_size=1, max_size=10),
)
def test_audit_record_json_round_trip(details: dict[str, Any], actor: str) -> None:
    record = AuditRecord(
        seq=3,
        time=T0,
        actor=actor,
        action=Action.ENTRY_ADD,
        list_name="main",
        entry_id=None,
        details=details,
        hash=bytes(range(32)),
    )
    assert record_from_json(json.loads(json.dumps(record_to_json(record)))) == record
