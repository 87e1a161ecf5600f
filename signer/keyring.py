"""Signing and verifying keyrings (DESIGN.md, "Versions, the log and what is signed", item 1).

A keyring note is accepted only when (checks in this order, each failure a
:class:`KeyringError` with the ``reason`` in brackets):

1. it carries valid signatures from ``threshold`` distinct root keys of the
   keyring the client holds; for the first keyring (nothing held), from the
   pinned roots with the new keyring's own threshold [threshold, signature];
2. its text is a canonical keyring [format];
3. its origin is the held (or pinned) origin [origin_mismatch];
4. its serial is exactly one above the held one, or 1 when nothing is held
   [serial_gap]; the held serial with other content, validly signed, is
   evidence that the roots signed two histories [equivocation];
5. for serial 1, its root set is exactly the pinned root set [root_mismatch];
6. it also carries ``threshold`` signatures of its own roots, so a change of
   roots or threshold is approved by both the old and the new root set
   (TUF specification 5.3.4, root rotation) [rotation_unsigned];
7. ``expires`` is after ``now`` [expired] unless ``expired_ok``.

:func:`verify_keyring_chain` walks serial by serial and, like TUF (5.3.10:
the freeze check applies to the final root only), checks expiry only on the
last keyring: a client that was offline for longer than a keyring's lifetime
must still be able to walk through the expired intermediate ones. Auditors
replaying history pass ``expired_ok=True`` and check separately that each
keyring was unexpired when it was used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from blocklist.errors import FormatError
from blocklist.keyring import KeyRange, Keyring
from signer.errors import BadSignature, KeyringError, MalformedNote, NoteError, UnknownKey
from signer.note import NoteSignature, NoteSigner, Verifier, sign_note, verify_note

__all__ = [
    "check_not_expired",
    "parse_verifiers",
    "rotated_keyring",
    "sign_keyring",
    "verifiers_for_checkpoint",
    "verifiers_for_statement",
    "verify_keyring_chain",
    "verify_keyring_update",
]


def sign_keyring(
    keyring: Keyring,
    root_keys: Sequence[NoteSigner],
    *,
    existing: Sequence[NoteSignature] = (),
) -> str:
    """Sign a keyring's text with root keys (on the offline ceremony machine).

    For a rotation, sign with ``threshold`` keys of the old root set *and*
    ``threshold`` keys of the new one. ``existing`` keeps signatures other
    root holders already made on the same text.

    Raises:
        MalformedNote: no signer, or a key signs twice.
    """
    return sign_note(keyring.to_text(), root_keys, existing=existing)


def rotated_keyring(current: Keyring, version: int, new_vkey: str, expires: datetime) -> Keyring:
    """The next keyring serial of an online key rotation after ``version``.

    The open key's range closes at ``version`` and ``new_vkey``'s opens at
    ``version + 1``; a key that signed nothing is dropped rather than given
    an empty range (blocklist.keyring: first <= last). Roots and threshold
    stay; the caller signs it with the root key.

    Raises:
        FormatError: the new keyring is invalid (e.g. ``new_vkey`` malformed).
    """
    ranges: list[KeyRange] = []
    for rng in current.keys:
        if rng.last is not None:
            ranges.append(rng)
        elif rng.first <= version:
            ranges.append(KeyRange(rng.vkey, rng.first, version))
    ranges.append(KeyRange(new_vkey, version + 1, None))
    return Keyring.create(
        origin=current.origin,
        serial=current.serial + 1,
        expires=expires,
        threshold=current.threshold,
        roots=current.roots,
        keys=ranges,
    )


def parse_verifiers(vkeys: Iterable[str]) -> list[Verifier]:
    """Parse vkeys into verifiers (duplicates removed, order kept).

    Raises:
        KeyringError: a vkey does not parse (reason ``format``).
    """
    out: dict[str, Verifier] = {}
    for vkey in vkeys:
        try:
            out.setdefault(vkey, Verifier.from_vkey(vkey))
        except FormatError as e:
            raise KeyringError("format", f"invalid vkey: {e}") from e
    return list(out.values())


def _signed_by(note: str, roots: Sequence[Verifier]) -> tuple[int, str]:
    """Count the distinct keys of ``roots`` with a valid signature; also the text.

    Raises:
        KeyringError: malformed note or a root's signature fails (``signature``).
    """
    try:
        verified = verify_note(note, roots)
    except UnknownKey:
        return 0, ""
    except (MalformedNote, BadSignature) as e:
        raise KeyringError("signature", str(e)) from e
    except NoteError as e:  # ambiguous trust list: two roots share name and key ID
        raise KeyringError("format", str(e)) from e
    return len({v.public_key for v in verified.verifiers}), verified.text


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    return now


def check_not_expired(keyring: Keyring, now: datetime) -> None:
    """Refuse a keyring whose ``expires`` is not after ``now`` (freeze protection).

    Raises:
        KeyringError: reason ``expired``.
        ValueError: ``now`` is naive.
    """
    if keyring.expires <= _aware(now):
        raise KeyringError(
            "expired", f"keyring serial {keyring.serial} expired at {keyring.expires.isoformat()}"
        )


def verify_keyring_update(
    note: str,
    *,
    held: Keyring | None,
    pinned_roots: Sequence[str],
    now: datetime,
    origin: str | None = None,
    expired_ok: bool = False,
) -> Keyring:
    """Verify the next keyring note against the held keyring (or the pins).

    Args:
        note: the signed keyring note.
        held: the keyring the client holds and trusts; None for the first.
        pinned_roots: root vkeys pinned at install; they anchor serial 1.
        now: the current time (aware).
        origin: the pinned list origin; when given the keyring must carry it.
        expired_ok: skip the expiry check (chain walks, offline audits).

    Returns:
        The new keyring, to be held from now on.

    Raises:
        KeyringError: see the module docstring for the reasons and their order.
        ValueError: ``now`` is naive.
    """
    _aware(now)
    # 1. Threshold of the trusted root set (TUF 5.3.4).
    if held is None:
        if not pinned_roots:
            raise KeyringError("root_mismatch", "no pinned root keys")
        trusted = parse_verifiers(pinned_roots)
    else:
        trusted = parse_verifiers(held.roots)
    signed_by_trusted, text = _signed_by(note, trusted)
    if signed_by_trusted == 0:
        raise KeyringError("threshold", "no valid signature by a trusted root key")

    # 2. The text, read only once a trusted root signed it.
    try:
        keyring = Keyring.parse(text)
    except FormatError as e:
        raise KeyringError("format", str(e)) from e
    required = held.threshold if held is not None else keyring.threshold
    if signed_by_trusted < required:
        raise KeyringError(
            "threshold",
            f"{signed_by_trusted} valid signature(s) by trusted roots, {required} required",
        )

    # 3. Origin: a keyring of another list must never be mixed in.
    expected_origin = held.origin if held is not None else origin
    if expected_origin is not None and keyring.origin != expected_origin:
        raise KeyringError(
            "origin_mismatch", f"keyring origin {keyring.origin!r}, expected {expected_origin!r}"
        )
    if origin is not None and keyring.origin != origin:
        raise KeyringError(
            "origin_mismatch", f"keyring origin {keyring.origin!r}, pinned {origin!r}"
        )

    # 4. Serial: exactly one step (TUF 5.3.5, rollback and skip protection).
    expected_serial = 1 if held is None else held.serial + 1
    if held is not None and keyring.serial == held.serial and keyring != held:
        raise KeyringError(
            "equivocation",
            f"two different keyrings with serial {held.serial} are signed by the roots",
        )
    if keyring.serial != expected_serial:
        raise KeyringError(
            "serial_gap", f"keyring serial {keyring.serial}, expected {expected_serial}"
        )

    # 5. The first keyring's roots are the pinned ones.
    if held is None and keyring.root_set != frozenset(v.vkey for v in trusted):
        raise KeyringError("root_mismatch", "the keyring's root keys are not the pinned ones")

    # 6. The new root set approves itself (TUF 5.3.4): covers root rotation
    #    and a raised threshold.
    signed_by_own, _ = _signed_by(note, parse_verifiers(keyring.roots))
    if signed_by_own < keyring.threshold:
        raise KeyringError(
            "rotation_unsigned",
            f"{signed_by_own} valid signature(s) by the keyring's own roots, "
            f"{keyring.threshold} required",
        )

    # 7. Freeze protection.
    if not expired_ok:
        check_not_expired(keyring, now)
    return keyring


def verify_keyring_chain(
    notes: Sequence[str],
    pinned_roots: Sequence[str],
    now: datetime,
    *,
    held: Keyring | None = None,
    origin: str | None = None,
    expired_ok: bool = False,
) -> Keyring:
    """Walk keyring notes serial by serial from ``held`` (or from serial 1).

    Intermediate keyrings may have expired (TUF 5.3.10 checks the final one
    only); the last one must not, unless ``expired_ok``.

    Returns:
        The last keyring.

    Raises:
        KeyringError: a step fails (see :func:`verify_keyring_update`), or
            there is nothing to walk and nothing held (reason ``format``).
        ValueError: ``now`` is naive.
    """
    current = held
    for note in notes:
        current = verify_keyring_update(
            note,
            held=current,
            pinned_roots=pinned_roots,
            now=now,
            origin=origin,
            expired_ok=True,
        )
    if current is None:
        raise KeyringError("format", "no keyring to verify")
    if not expired_ok:
        check_not_expired(current, now)
    return current


def verifiers_for_statement(keyring: Keyring, version: int) -> list[Verifier]:
    """The keys allowed to sign statement ``version``: those whose range contains it.

    Raises:
        KeyringError: a key vkey does not parse (reason ``format``).
    """
    return parse_verifiers(keyring.keys_for_version(version))


def verifiers_for_checkpoint(keyring: Keyring) -> list[Verifier]:
    """The keys allowed to sign checkpoints: those with an open range (``-``).

    Raises:
        KeyringError: a key vkey does not parse (reason ``format``).
    """
    return parse_verifiers(keyring.open_keys())
