"""Keyring updates (DESIGN.md item 1): threshold, serial walk, rotation, expiry, origin.

Attack names follow python-tuf's tests: rollback, freeze (expired), mix and
match (another list's keyring), root rotation signed by the old roots only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from blocklist.keyring import KeyRange, Keyring
from signer.errors import KeyringError, UnknownKey
from signer.keyring import (
    check_not_expired,
    sign_keyring,
    verifiers_for_checkpoint,
    verifiers_for_statement,
    verify_keyring_chain,
    verify_keyring_update,
)
from signer.keys import SecretKey, load_key, save_key
from signer.keys_cli import keys_group
from signer.note import parse_note, sign_note, verify_note

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
ORIGIN = "example.org/cleanfeed/main"


def key(label: str) -> SecretKey:
    return SecretKey.from_seed(f"example.org/{label}", hashlib.sha256(label.encode()).digest())


ROOTS = [key(f"root-{i}") for i in range(3)]
NEW_ROOTS = [key(f"new-root-{i}") for i in range(3)]
ONLINE = [key(f"online-{i}") for i in range(3)]


def keyring(
    serial: int,
    *,
    roots: Sequence[SecretKey] = ROOTS[:1],
    threshold: int = 1,
    keys: Sequence[KeyRange] | None = None,
    expires: datetime = NOW + timedelta(days=365),
    origin: str = ORIGIN,
) -> Keyring:
    return Keyring.create(
        origin=origin,
        serial=serial,
        expires=expires,
        threshold=threshold,
        roots=[r.vkey for r in roots],
        keys=keys if keys is not None else [KeyRange(ONLINE[0].vkey, 1, None)],
    )


def pins(roots: Sequence[SecretKey] = ROOTS[:1]) -> list[str]:
    return [r.vkey for r in roots]


def reason(note: str, **kwargs: object) -> str:
    args: dict[str, object] = {"pinned_roots": pins(), "now": NOW, "held": None}
    args.update(kwargs)
    with pytest.raises(KeyringError) as info:
        verify_keyring_update(note, **args)  # type: ignore[arg-type]
    return info.value.reason


# --------------------------------------------------------------------------
# Serial 1 and the pinned roots
# --------------------------------------------------------------------------


def test_first_keyring_verified_by_pinned_root() -> None:
    kr1 = keyring(1)
    got = verify_keyring_update(
        sign_keyring(kr1, ROOTS[:1]), held=None, pinned_roots=pins(), now=NOW, origin=ORIGIN
    )
    assert got == kr1


def test_first_keyring_needs_the_pinned_key() -> None:
    assert reason(sign_keyring(keyring(1), [ROOTS[1]])) == "threshold"


def test_first_keyring_must_list_the_pinned_roots() -> None:
    # Signed by the pinned root, but it names another root set.
    other = keyring(1, roots=[ROOTS[0], ROOTS[1]])
    assert reason(sign_keyring(other, ROOTS[:2])) == "root_mismatch"


def test_first_keyring_must_be_serial_1() -> None:
    assert reason(sign_keyring(keyring(2), ROOTS[:1])) == "serial_gap"


def test_first_keyring_of_another_list_rejected() -> None:
    # mix-and-match: a keyring of another list signed by the same root.
    other = keyring(1, origin="example.com/other-list")
    assert reason(sign_keyring(other, ROOTS[:1]), origin=ORIGIN) == "origin_mismatch"


def test_malformed_and_unparsable() -> None:
    assert reason("not a note") == "signature"
    assert reason(sign_note("not a keyring\n", ROOTS[:1])) == "format"
    bad_sig = sign_keyring(keyring(1), ROOTS[:1]).replace("\n\n— ", "\n\n— x")
    assert reason(bad_sig) in {"threshold", "signature"}
    with pytest.raises(ValueError, match="aware"):
        verify_keyring_update(
            sign_keyring(keyring(1), ROOTS[:1]),
            held=None,
            pinned_roots=pins(),
            now=NOW.replace(tzinfo=None),
        )


# --------------------------------------------------------------------------
# Walking serials
# --------------------------------------------------------------------------


def held1() -> Keyring:
    return keyring(1)


def test_next_serial_accepted() -> None:
    kr2 = keyring(2, keys=[KeyRange(ONLINE[0].vkey, 1, 9), KeyRange(ONLINE[1].vkey, 10, None)])
    assert (
        verify_keyring_update(
            sign_keyring(kr2, ROOTS[:1]), held=held1(), pinned_roots=pins(), now=NOW
        )
        == kr2
    )


def test_skipped_serial_rejected() -> None:
    assert reason(sign_keyring(keyring(3), ROOTS[:1]), held=held1()) == "serial_gap"


def test_rollback_rejected() -> None:
    held = keyring(5)
    assert reason(sign_keyring(keyring(4), ROOTS[:1]), held=held) == "serial_gap"
    # Replaying the held keyring is not an update either.
    assert reason(sign_keyring(held, ROOTS[:1]), held=held) == "serial_gap"


def test_same_serial_other_content_is_equivocation() -> None:
    held = keyring(2)
    fork = keyring(2, keys=[KeyRange(ONLINE[2].vkey, 1, None)])
    assert reason(sign_keyring(fork, ROOTS[:1]), held=held) == "equivocation"


def test_different_origin_rejected() -> None:
    other = keyring(2, origin="example.com/other-list")
    assert reason(sign_keyring(other, ROOTS[:1]), held=held1()) == "origin_mismatch"


def test_expired_rejected_unless_expired_ok() -> None:
    stale = keyring(2, expires=NOW)
    note = sign_keyring(stale, ROOTS[:1])
    assert reason(note, held=held1()) == "expired"
    assert (
        verify_keyring_update(note, held=held1(), pinned_roots=pins(), now=NOW, expired_ok=True)
        == stale
    )
    with pytest.raises(KeyringError):
        check_not_expired(stale, NOW)
    check_not_expired(stale, NOW - timedelta(seconds=1))


def test_chain_walk_skips_expiry_of_intermediate_keyrings_only() -> None:
    kr1 = keyring(1, expires=NOW - timedelta(days=30))
    kr2 = keyring(2, expires=NOW - timedelta(days=1))
    kr3 = keyring(3)
    notes = [sign_keyring(k, ROOTS[:1]) for k in (kr1, kr2, kr3)]
    assert verify_keyring_chain(notes, pins(), NOW, origin=ORIGIN) == kr3
    with pytest.raises(KeyringError) as info:
        verify_keyring_chain(notes[:2], pins(), NOW)
    assert info.value.reason == "expired"
    assert verify_keyring_chain(notes[:2], pins(), NOW, expired_ok=True) == kr2
    assert verify_keyring_chain(notes[1:], pins(), NOW, held=kr1) == kr3
    with pytest.raises(KeyringError) as info:
        verify_keyring_chain([notes[0], notes[2]], pins(), NOW)
    assert info.value.reason == "serial_gap"
    with pytest.raises(KeyringError):
        verify_keyring_chain([], pins(), NOW)


# --------------------------------------------------------------------------
# Thresholds and root rotation
# --------------------------------------------------------------------------


def test_threshold_two_of_three() -> None:
    kr1 = keyring(1, roots=ROOTS, threshold=2)
    p = pins(ROOTS)
    assert reason(sign_keyring(kr1, ROOTS[:1]), pinned_roots=p) == "threshold"
    for signers in (ROOTS[:2], ROOTS[1:], [ROOTS[0], ROOTS[2]], ROOTS):
        got = verify_keyring_update(sign_keyring(kr1, signers), held=None, pinned_roots=p, now=NOW)
        assert got == kr1
    # A signature by a non-root does not count.
    assert reason(sign_keyring(kr1, [ROOTS[0], ONLINE[0]]), pinned_roots=p) == "threshold"
    # One repeated signer does not count twice.
    note = sign_keyring(kr1, ROOTS[:1])
    doubled = note + note.split("\n\n", 1)[1]
    assert reason(doubled, pinned_roots=p) == "threshold"
    # Next serial: the held keyring's threshold applies.
    kr2 = keyring(2, roots=ROOTS, threshold=2)
    assert reason(sign_keyring(kr2, [ROOTS[2]]), held=kr1) == "threshold"
    assert (
        verify_keyring_update(sign_keyring(kr2, ROOTS[1:]), held=kr1, pinned_roots=p, now=NOW)
        == kr2
    )


def test_a_bad_root_signature_rejects_the_keyring() -> None:
    kr1 = keyring(1, roots=ROOTS, threshold=2)
    note = sign_keyring(kr1, ROOTS)
    lines = note.split("\n")
    # Corrupt the third root's signature: a known key's bad signature rejects
    # the note even though two valid ones remain (c2sp.org/signed-note).
    victim = next(i for i, line in enumerate(lines) if line.startswith(f"— {ROOTS[2].name} "))
    sig = lines[victim].rsplit(" ", 1)[1]
    lines[victim] = (
        lines[victim][: -len(sig)] + sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    )
    assert reason("\n".join(lines), pinned_roots=pins(ROOTS)) == "signature"


def test_rotation_signed_by_old_roots_only_rejected() -> None:
    kr1 = keyring(1, roots=ROOTS[:1])
    rotated = keyring(2, roots=NEW_ROOTS, threshold=2)
    assert reason(sign_keyring(rotated, ROOTS[:1]), held=kr1) == "rotation_unsigned"
    # New roots alone: the held roots never approved them.
    assert reason(sign_keyring(rotated, NEW_ROOTS), held=kr1) == "threshold"
    # New roots below their threshold.
    assert reason(sign_keyring(rotated, [ROOTS[0], NEW_ROOTS[0]]), held=kr1) == "rotation_unsigned"


def test_rotation_signed_by_both_root_sets_accepted_and_then_trusted() -> None:
    kr1 = keyring(1, roots=ROOTS[:1])
    rotated = keyring(2, roots=NEW_ROOTS, threshold=2)
    note = sign_keyring(rotated, [ROOTS[0], *NEW_ROOTS[:2]])
    assert verify_keyring_update(note, held=kr1, pinned_roots=pins(), now=NOW) == rotated
    # From now on the new roots sign, the old ones no longer count.
    kr3 = keyring(3, roots=NEW_ROOTS, threshold=2)
    assert (
        verify_keyring_update(
            sign_keyring(kr3, NEW_ROOTS[1:]), held=rotated, pinned_roots=pins(), now=NOW
        )
        == kr3
    )
    assert reason(sign_keyring(kr3, [ROOTS[0], NEW_ROOTS[0]]), held=rotated) == "threshold"


def test_raising_the_threshold_needs_the_new_threshold() -> None:
    kr1 = keyring(1, roots=ROOTS, threshold=1)
    raised = keyring(2, roots=ROOTS, threshold=2)
    assert reason(sign_keyring(raised, ROOTS[:1]), held=kr1) == "rotation_unsigned"
    assert (
        verify_keyring_update(
            sign_keyring(raised, ROOTS[:2]), held=kr1, pinned_roots=pins(ROOTS), now=NOW
        )
        == raised
    )


# --------------------------------------------------------------------------
# Which keys sign statements and checkpoints
# --------------------------------------------------------------------------


def test_statement_and_checkpoint_keys_follow_the_ranges() -> None:
    kr = keyring(
        2,
        keys=[KeyRange(ONLINE[0].vkey, 1, 10), KeyRange(ONLINE[1].vkey, 11, None)],
    )
    old_statement = sign_note("statement 10\n", [ONLINE[0]])
    new_statement = sign_note("statement 11\n", [ONLINE[1]])
    assert verify_note(old_statement, verifiers_for_statement(kr, 10)).text == "statement 10\n"
    assert verify_note(new_statement, verifiers_for_statement(kr, 11)).text == "statement 11\n"
    # A rotated-out key cannot sign later versions, a new key not earlier ones.
    with pytest.raises(UnknownKey):
        verify_note(sign_note("statement 11\n", [ONLINE[0]]), verifiers_for_statement(kr, 11))
    with pytest.raises(UnknownKey):
        verify_note(sign_note("statement 5\n", [ONLINE[1]]), verifiers_for_statement(kr, 5))
    assert verifiers_for_statement(kr, 0) == []
    # Checkpoints: only the open-range key.
    assert [v.vkey for v in verifiers_for_checkpoint(kr)] == [ONLINE[1].vkey]
    with pytest.raises(UnknownKey):
        verify_note(sign_note("cp\n", [ONLINE[0]]), verifiers_for_checkpoint(kr))
    closed = keyring(3, keys=[KeyRange(ONLINE[0].vkey, 1, 10)])
    assert verifiers_for_checkpoint(closed) == []


# --------------------------------------------------------------------------
# CLI: cleanfeed keys sign-keyring
# --------------------------------------------------------------------------


def test_cli_sign_keyring_in_two_ceremonies(tmp_path: Path) -> None:
    kr1 = keyring(1, roots=ROOTS, threshold=2)
    for i, r in enumerate(ROOTS):
        save_key(tmp_path / f"root{i}.key", r)
    (tmp_path / "keyring.txt").write_text(kr1.to_text())
    runner = CliRunner()
    first = runner.invoke(
        keys_group,
        [
            "sign-keyring",
            "--keyring",
            str(tmp_path / "keyring.txt"),
            "--key",
            str(tmp_path / "root0.key"),
            "--output",
            str(tmp_path / "partial.note"),
        ],
    )
    assert first.exit_code == 0, first.output
    assert "1 signature(s)" in first.output
    partial = (tmp_path / "partial.note").read_text()
    assert reason(partial, pinned_roots=pins(ROOTS)) == "threshold"
    # A second root holder adds a signature to the partially signed note.
    second = runner.invoke(
        keys_group,
        [
            "sign-keyring",
            "--keyring",
            str(tmp_path / "partial.note"),
            "--key",
            str(tmp_path / "root2.key"),
            "--output",
            str(tmp_path / "keyring.note"),
        ],
    )
    assert second.exit_code == 0, second.output
    final = (tmp_path / "keyring.note").read_text()
    assert len(parse_note(final).signatures) == 2
    assert verify_keyring_update(final, held=None, pinned_roots=pins(ROOTS), now=NOW) == kr1
    again = runner.invoke(
        keys_group,
        [
            "sign-keyring",
            "--keyring",
            str(tmp_path / "keyring.txt"),
            "--key",
            str(tmp_path / "root1.key"),
            "--output",
            str(tmp_path / "keyring.note"),
        ],
    )
    assert again.exit_code != 0
    assert "exists" in again.output
    assert (tmp_path / "keyring.note").read_text() == final


def test_cli_sign_keyring_prompts_for_encrypted_keys(tmp_path: Path) -> None:
    from signer.keys import KDF_INTERACTIVE

    kr1 = keyring(1)
    save_key(tmp_path / "root.key", ROOTS[0], "pw", kdf=KDF_INTERACTIVE)
    assert load_key(tmp_path / "root.key", "pw").vkey == ROOTS[0].vkey
    (tmp_path / "keyring.txt").write_text(kr1.to_text())
    args = [
        "sign-keyring",
        "--keyring",
        str(tmp_path / "keyring.txt"),
        "--key",
        str(tmp_path / "root.key"),
        "--output",
        str(tmp_path / "out.note"),
    ]
    result = CliRunner().invoke(keys_group, args, input="pw\n")
    assert result.exit_code == 0, result.output
    note = (tmp_path / "out.note").read_text()
    assert verify_keyring_update(note, held=None, pinned_roots=pins(), now=NOW) == kr1


def test_cli_sign_keyring_refuses_invalid_keyring(tmp_path: Path) -> None:
    save_key(tmp_path / "root.key", ROOTS[0])
    bad = dataclasses.replace(keyring(1)).to_text().replace("serial 1", "serial 01")
    (tmp_path / "keyring.txt").write_text(bad)
    result = CliRunner().invoke(
        keys_group,
        [
            "sign-keyring",
            "--keyring",
            str(tmp_path / "keyring.txt"),
            "--key",
            str(tmp_path / "root.key"),
            "--output",
            str(tmp_path / "out.note"),
        ],
    )
    assert result.exit_code != 0
    assert "not a valid keyring" in result.output
    assert not (tmp_path / "out.note").exists()
