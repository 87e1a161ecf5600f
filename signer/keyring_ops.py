"""Keyring operations on an initialised data directory: renew, rotate, import.

Keyrings expire (:data:`signer.datadir.KEYRING_LIFETIME`, freeze
protection); the embedded default holds the root key and renews them before
they do (:func:`renew_keyring_if_needed`). :func:`rotate_online_key`
replaces the online key: a new keyring serial closes the old key's range at
the current version and opens the new key's at the next one, and the current
checkpoint is re-signed by the new key in the same transaction, since a
checkpoint verifies only under a key with an open range (DESIGN.md item 1).
:func:`import_signed_keyring` stores a keyring signed on the offline
ceremony machine (production).

The data directory's layout and the first keyring are
:mod:`signer.datadir`'s.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from blocklist.auditlog import Action, Actor
from blocklist.keyring import Keyring, parse_vkey
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import lists as store_lists
from blocklist.store import versions as store_versions
from signer.datadir import (
    KEYRING_LIFETIME,
    ROOT_VKEY_FILE,
    keys_dir_of,
    list_key_dir,
    online_key_path,
    resolve_database_url,
    root_key_path,
)
from signer.errors import KeyringError, NotInitialised, RootKeyOffline
from signer.keyring import rotated_keyring, sign_keyring, verify_keyring_update
from signer.keys import SecretKey, load_key, save_key
from signer.log import utc_seconds
from signer.note import parse_note
from signer.publisher import Publisher

__all__ = [
    "KEYRING_RENEW_BEFORE",
    "RotateResult",
    "import_signed_keyring",
    "renew_keyring_if_needed",
    "rotate_online_key",
]

logger = logging.getLogger("cleanfeed.signer")

#: Renew a keyring this long before it expires, so clients that poll rarely
#: still fetch the renewal in time; production operators get the same
#: warning period to sign one offline.
KEYRING_RENEW_BEFORE = timedelta(days=30)

#: Actor recorded in the audit log for what this module does.
ACTOR_KEYS = Actor.KEYS


@dataclass(frozen=True)
class RotateResult:
    """What :func:`rotate_online_key` changed."""

    list_name: str
    serial: int
    old_vkey: str
    new_vkey: str
    #: Last version of the old key; the new key signs from ``version + 1``.
    version: int


def _open(data_dir: Path, database_url: str | None) -> Database:
    data_dir = Path(data_dir)
    if not keys_dir_of(data_dir).is_dir():
        raise NotInitialised(f"{data_dir} is not initialised: run `cleanfeed init` first")
    return Database(resolve_database_url(data_dir, database_url))


def _latest_keyring(session: Session, list_id: int) -> tuple[Keyring, str]:
    row = store_versions.get_keyring(session, list_id)
    if row is None:
        raise KeyringError("format", "the list has no keyring yet")
    return Keyring.parse(parse_note(row.note).text), row.note


def _store_keyring(
    session: Session,
    list_id: int,
    serial: int,
    note: str,
    action: str,
    details: dict[str, object],
    now: datetime,
) -> None:
    """Store keyring ``serial`` and its audit record in the caller's transaction.

    Renewal, rotation and import all end this way; the record's details are
    ``{"serial": serial, **details}``, so every keyring record names the
    serial it stored.
    """
    store_versions.put_keyring(session, list_id, serial=serial, note=note, now=now)
    store_audit.append(
        session,
        list_id=list_id,
        actor=ACTOR_KEYS,
        action=action,
        details={"serial": serial, **details},
        now=now,
    )


def renew_keyring_if_needed(
    data_dir: Path,
    list_name: str,
    *,
    database_url: str | None = None,
    now: datetime | None = None,
    renew_before: timedelta = KEYRING_RENEW_BEFORE,
) -> Keyring | None:
    """Embedded default: re-sign the keyring with a later expiry before it expires.

    The new serial carries the same roots, threshold and key ranges and
    expires :data:`KEYRING_LIFETIME` from now. Without the root key
    (production) nothing is signed; a warning is logged once the keyring
    is within ``renew_before`` of expiring, since the offline root must sign
    the next serial.

    Returns:
        The new keyring, or None when none was needed or possible.

    Raises:
        NotInitialised: no data directory.
        KeyringError: the list has no keyring.
        NotFound: no such list.
    """
    now = utc_seconds(now)
    keys_dir = keys_dir_of(data_dir)
    db = _open(data_dir, database_url)
    try:
        with db.read() as session:
            lst = store_lists.get_list(session, list_name)
            current, _ = _latest_keyring(session, lst.id)
        if current.expires - now > renew_before:
            return None
        root_path = root_key_path(keys_dir, list_name)
        if not root_path.exists():
            logger.warning(
                "keyring serial %d of %s expires at %s: sign serial %d with the offline root "
                "key and import it",
                current.serial,
                list_name,
                current.expires.isoformat(),
                current.serial + 1,
            )
            return None
        root = load_key(root_path)
        with db.transaction() as session:
            lst = store_lists.get_list(session, list_name)
            store_versions.lock_list(session, lst.id)
            current, _ = _latest_keyring(session, lst.id)
            if current.expires - now > renew_before:
                return None  # renewed by another process meanwhile
            renewed = replace(current, serial=current.serial + 1, expires=now + KEYRING_LIFETIME)
            _store_keyring(
                session,
                lst.id,
                renewed.serial,
                sign_keyring(renewed, [root]),
                Action.KEYRING_RENEW,
                {"expires": renewed.expires.isoformat()},
                now,
            )
        logger.info("renewed keyring of %s: serial %d", list_name, renewed.serial)
        return renewed
    finally:
        db.dispose()


def rotate_online_key(
    data_dir: Path,
    list_name: str,
    *,
    database_url: str | None = None,
    now: datetime | None = None,
) -> RotateResult:
    """Replace the online key (embedded root only).

    In one transaction holding the list lock (so no version is cut
    meanwhile): a new keyring serial closes the old key's range at the
    current version V and opens the new key's at V+1 (a key that signed
    nothing is dropped), and the current checkpoint is re-signed by the new
    key, because a checkpoint verifies only under an open-range key.
    Statements up to V stay valid under the old key's closed range.

    Raises:
        RootKeyOffline: the root key is kept offline (production).
        NotInitialised: no data directory.
        KeyringError: the list has no keyring.
        ForkRefused: the database is behind the high-water mark.
        NotFound: no such list.
    """
    now = utc_seconds(now)
    keys_dir = keys_dir_of(data_dir)
    root_path = root_key_path(keys_dir, list_name)
    if not root_path.exists():
        raise RootKeyOffline(
            f"{root_path} does not exist: the root key is offline, so the new keyring must be "
            "signed on the ceremony machine (`cleanfeed keys sign-keyring`) and imported"
        )
    root = load_key(root_path)
    db = _open(data_dir, database_url)
    new_path: Path | None = None
    try:
        with db.read() as session:
            origin = store_lists.get_list(session, list_name).origin
        new_key = SecretKey.generate(origin)
        new_path = online_key_path(keys_dir, list_name, new_key.vkey)
        # The key file exists before the keyring naming it is committed, so
        # the publisher always finds the key the latest keyring opens.
        save_key(new_path, new_key)
        publisher = Publisher(db, list_name, keys_dir, clock=lambda: now)
        with db.transaction() as session:
            lst = store_lists.get_list(session, list_name)
            store_versions.lock_list(session, lst.id)
            current, _ = _latest_keyring(session, lst.id)
            version = store_versions.current_version(session, lst.id)
            open_keys = current.open_keys()
            if len(open_keys) != 1:
                raise KeyringError("format", "the keyring has no open online key to rotate")
            old_vkey = open_keys[0]
            rotated = rotated_keyring(current, version, new_key.vkey, now + KEYRING_LIFETIME)
            _store_keyring(
                session,
                lst.id,
                rotated.serial,
                sign_keyring(rotated, [root]),
                Action.KEYRING_ROTATE,
                {
                    "old_key": parse_vkey(old_vkey).key_id.hex(),
                    "new_key": new_key.key_id.hex(),
                    "last_version_of_old_key": version,
                },
                now,
            )
            # Checkpoints verify only under an open range: re-sign now.
            publisher.sign_current_checkpoint(session, lst, now)
        new_path = None  # committed: keep the key
    finally:
        if new_path is not None:
            with contextlib.suppress(FileNotFoundError):
                new_path.unlink()
        db.dispose()
    return RotateResult(list_name, rotated.serial, old_vkey, new_key.vkey, version)


def import_signed_keyring(
    data_dir: Path,
    list_name: str,
    note: str,
    *,
    database_url: str | None = None,
    now: datetime | None = None,
) -> Keyring:
    """Store a keyring signed on the offline machine (production key ceremony).

    The note must verify as the next serial of the list's keyring chain
    (serial 1: under the root vkey given at ``init``), and its open key must
    be an online key this signer holds. When it changes the open key, the
    current checkpoint is re-signed with it at once.

    Raises:
        KeyringError: the keyring does not verify as the next serial.
        OnlineKeyMissing: its open key has no key file here.
        NotInitialised: no data directory.
        NotFound: no such list.
    """
    now = utc_seconds(now)
    keys_dir = keys_dir_of(data_dir)
    db = _open(data_dir, database_url)
    try:
        vkey_file = list_key_dir(keys_dir, list_name) / ROOT_VKEY_FILE
        try:
            pinned = vkey_file.read_text("utf-8").split()
        except OSError as e:
            raise NotInitialised(
                f"{vkey_file} is missing: list {list_name!r} was not initialised here"
            ) from e
        publisher = Publisher(db, list_name, keys_dir, clock=lambda: now)
        with db.transaction() as session:
            lst = store_lists.get_list(session, list_name)
            store_versions.lock_list(session, lst.id)
            held_row = store_versions.get_keyring(session, lst.id)
            held = Keyring.parse(parse_note(held_row.note).text) if held_row else None
            keyring = verify_keyring_update(
                note, held=held, pinned_roots=pinned, now=now, origin=lst.origin
            )
            # Refuse a keyring this signer could not sign under.
            publisher.online_key_for(keyring)
            version = store_versions.current_version(session, lst.id)
            for rng in keyring.keys:
                if rng.is_open and rng.first > version + 1:
                    raise KeyringError(
                        "format",
                        f"the open key starts at version {rng.first}, but the next version "
                        f"is {version + 1}",
                    )
            # Published statements must keep verifying under the key that signed them.
            if held is not None and _ranges_upto(held, version) != _ranges_upto(keyring, version):
                raise KeyringError(
                    "format",
                    f"the keyring changes which key signed versions 1..{version}; "
                    "published statements would stop verifying",
                )
            _store_keyring(session, lst.id, keyring.serial, note, Action.KEYRING_IMPORT, {}, now)
            if held is None or held.open_keys() != keyring.open_keys():
                publisher.sign_current_checkpoint(session, lst, now)
        return keyring
    finally:
        db.dispose()


def _ranges_upto(keyring: Keyring, version: int) -> list[tuple[str, int, int]]:
    """The key ranges of ``keyring`` cut to versions 1..``version``."""
    out = []
    for rng in keyring.keys:
        if rng.first > version:
            continue
        last = version if rng.last is None else min(rng.last, version)
        out.append((rng.vkey, rng.first, last))
    return out
