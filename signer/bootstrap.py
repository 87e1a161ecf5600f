"""Initialising a data directory, and the key operations that need the root key.

docs/architecture.md, "Data directory"::

    DATA_DIR/                         (0700)
      cleanfeed.db                    SQLite database (embedded default only)
      admin-token                     the first admin token (0600)
      keys/<list>/root.key            root key: embedded default only (0600)
      keys/<list>/root.vkey           its public vkey (what clients pin)
      keys/<list>/online-<keyid>.key  online signing keys (0600)
      keys/<list>/highwater.json      the signer's high-water mark
      keys/<list>/keyring-1.txt       production only: the unsigned keyring
                                      serial 1, for the offline root to sign

:func:`init_data_dir` does, in order: refuse an initialised directory; create
the directory; migrate the database; generate the keys (the embedded default
generates the root key too; ``root_vkey`` takes the public half of a root key
kept offline, DESIGN.md "Processes"); then in ONE transaction create the list
(with its canary entry), store keyring serial 1 (embedded: signed at once),
sign the size-0 checkpoint (root SHA-256 of the empty string, RFC 6962) and
issue the first admin token; after commit, write the high-water mark (size 0)
and ``admin-token`` (0600, not only printed, DESIGN.md "Operations").

Keyrings expire (:data:`KEYRING_LIFETIME`, freeze protection); the embedded
default holds the root key and renews them before they do
(:func:`renew_keyring_if_needed`). :func:`rotate_online_key` replaces the
online key: a new keyring serial closes the old key's range at the current
version and opens the new key's at the next one, and the current checkpoint
is re-signed by the new key in the same transaction, since a checkpoint
verifies only under a key with an open range (DESIGN.md item 1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from blocklist.auditlog import Action, Actor
from blocklist.entries import plan_entry
from blocklist.errors import BlocklistError, FormatError, InvalidEntry
from blocklist.keyring import KeyRange, Keyring, parse_vkey
from blocklist.merkle import EMPTY_ROOT
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.errors import NotFound
from signer.errors import KeyringError, SignerError
from signer.highwater import HighWater, HighWaterMark
from signer.keyring import sign_keyring, verify_keyring_update
from signer.keys import SecretKey, load_key, save_key
from signer.log import DEFAULT_KEYRING_LIFETIME, empty_checkpoint
from signer.note import Verifier, parse_note
from signer.publisher import (
    Publisher,
    list_key_dir,
    online_key_path,
    root_key_path,
)

__all__ = [
    "ADMIN_TOKEN_FILE",
    "DATABASE_URL_ENV",
    "KEYRING_LIFETIME",
    "KEYRING_RENEW_BEFORE",
    "AlreadyInitialised",
    "InitResult",
    "NotInitialised",
    "RootKeyOffline",
    "RotateResult",
    "default_origin",
    "ensure_initialised",
    "import_signed_keyring",
    "init_data_dir",
    "is_initialised",
    "keys_dir_of",
    "renew_keyring_if_needed",
    "resolve_database_url",
    "rotate_online_key",
]

logger = logging.getLogger("cleanfeed.signer")

#: Lifetime of every keyring the signer writes: a year. Clients refuse an
#: expired keyring (TUF freeze protection), so an abandoned deployment stops
#: being trusted within a year; the embedded default renews automatically.
KEYRING_LIFETIME = DEFAULT_KEYRING_LIFETIME

#: Renew a keyring this long before it expires, so clients that poll rarely
#: still fetch the renewal in time; production operators get the same
#: warning period to sign one offline.
KEYRING_RENEW_BEFORE = timedelta(days=30)

#: The first admin token, mode 0600 (DESIGN.md, "Operations").
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret

#: The embedded SQLite database.
SQLITE_FILE = "cleanfeed.db"

#: Optional settings file; only ``database_url`` is read here.
SETTINGS_FILE = "settings.toml"

#: Environment variable naming the database (wins over settings.toml).
DATABASE_URL_ENV = "CLEANFEED_DATABASE_URL"

#: Public half of the root key, kept beside the keys for ``init --json`` and
#: for checking imported keyrings.
ROOT_VKEY_FILE = "root.vkey"

#: Actors recorded in the audit log for what this module does.
ACTOR_INIT = Actor.INIT
ACTOR_KEYS = Actor.KEYS

_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


class AlreadyInitialised(SignerError):
    """The data directory (or list) is initialised already; nothing was changed."""

    code = "already_initialised"


class NotInitialised(SignerError):
    """The data directory has not been initialised (run ``cleanfeed init``)."""

    code = "not_initialised"


class RootKeyOffline(SignerError):
    """The operation needs the root key, which this deployment keeps offline."""

    code = "root_key_offline"


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_data_dir` created."""

    data_dir: Path
    list: str
    origin: str
    root_vkey: str
    admin_token: str
    database_url: str
    embedded_root: bool
    #: Production (``root_vkey``) only: keyring serial 1 waiting for the offline root.
    unsigned_keyring: Path | None = None


@dataclass(frozen=True)
class RotateResult:
    """What :func:`rotate_online_key` changed."""

    list_name: str
    serial: int
    old_vkey: str
    new_vkey: str
    #: Last version of the old key; the new key signs from ``version + 1``.
    version: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _seconds(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return when.astimezone(UTC).replace(microsecond=0)


def default_origin(list_name: str) -> str:
    """The default list origin ``cleanfeed.invalid/<list>`` (deployments set their own)."""
    return f"cleanfeed.invalid/{list_name}"


def keys_dir_of(data_dir: Path) -> Path:
    """``DATA_DIR/keys``."""
    return Path(data_dir) / "keys"


def resolve_database_url(data_dir: Path, database_url: str | None = None) -> str:
    """The database URL: explicit, else ``CLEANFEED_DATABASE_URL``, else
    ``database_url`` in ``DATA_DIR/settings.toml``, else SQLite in the data directory.

    Raises:
        SignerError: settings.toml is not valid TOML or its value not a string.
    """
    if database_url:
        return database_url
    env = os.environ.get(DATABASE_URL_ENV, "").strip()
    if env:
        return env
    settings = Path(data_dir) / SETTINGS_FILE
    if settings.exists():
        try:
            with settings.open("rb") as f:
                value = tomllib.load(f).get("database_url")
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SignerError(f"{settings}: cannot read settings: {e}") from e
        if value is not None:
            if not isinstance(value, str):
                raise SignerError(f"{settings}: database_url must be a string")
            return value
    return f"sqlite:///{(Path(data_dir) / SQLITE_FILE).resolve()}"


def _initialised_marker(data_dir: Path) -> Path | None:
    for name in (ADMIN_TOKEN_FILE, "keys", SQLITE_FILE):
        if (data_dir / name).exists():
            return data_dir / name
    return None


def is_initialised(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an initialised deployment (keys, token or database)."""
    return _initialised_marker(Path(data_dir)) is not None


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    # mkdir's mode is narrowed by the umask but may also be wider on an
    # existing empty directory: make it exactly 0700.
    os.chmod(path, _PRIVATE_DIR)


def _write_private_file(path: Path, content: str) -> None:
    """Create ``path`` with mode 0600, never replacing an existing file, and fsync it."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, _PRIVATE_FILE
    )
    try:
        os.fchmod(fd, _PRIVATE_FILE)
        data = memoryview(content.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def init_data_dir(
    data_dir: Path,
    *,
    list_name: str = "main",
    origin: str | None = None,
    root_vkey: str | None = None,
    database_url: str | None = None,
    approvals_required: int = 1,
    home_country: str | None = None,
    canary_url: str = "http://canary.cleanfeed.invalid/",
    public: bool = False,
    now: datetime | None = None,
) -> InitResult:
    """Initialise a data directory: database, list, keys, keyring, checkpoint, admin token.

    Args:
        data_dir: the directory (created with mode 0700).
        list_name: the first list's name.
        origin: the list origin (default ``cleanfeed.invalid/<list>``).
        root_vkey: production key ceremony: the vkey of a root key kept
            offline. Only the online key is generated; keyring serial 1 is
            written unsigned to ``keys/<list>/keyring-1.txt`` for
            ``cleanfeed keys sign-keyring``, then imported with
            :func:`import_signed_keyring`. None: the embedded default
            generates the root key too and signs the keyring at once.
        database_url: the database (default: see :func:`resolve_database_url`).
        approvals_required: four-eyes setting of the list (1 or 2).
        home_country: ISO country whose hosting is refused (takedown instead).
        canary_url: the list's reserved canary entry.
        public: expose hash-only documents without a token.
        now: the current time (tests).

    Raises:
        AlreadyInitialised: the directory holds keys, a token or a database,
            or the database already has this list. Nothing is changed.
        FormatError: a bad origin or root vkey.
        BlocklistError: the store refused the list (bad name, canary...).
    """
    data_dir = Path(data_dir)
    now = _seconds(now or _utcnow())
    marker = _initialised_marker(data_dir)
    if marker is not None:
        raise AlreadyInitialised(
            f"{data_dir} is already initialised (found {marker}); refusing to overwrite its "
            "keys, database or admin token. Use it as it is, or move it away to start over"
        )
    origin = origin or default_origin(list_name)
    # Checked before anything is created: FormatError on a bad vkey.
    offline_root = Verifier.from_vkey(root_vkey) if root_vkey is not None else None
    if offline_root is not None and offline_root.name == origin:
        raise FormatError(
            "the root key must not be named like the online key (the origin): "
            f"use a name such as {origin}/root"
        )
    scope_of_canary = canary_scope(canary_url)
    url = resolve_database_url(data_dir, database_url)

    _mkdir_private(data_dir)
    created: list[Path] = []
    try:
        keys_dir = keys_dir_of(data_dir)
        _mkdir_private(keys_dir)
        created.append(keys_dir)
        key_dir = list_key_dir(keys_dir, list_name)
        _mkdir_private(key_dir)

        online = SecretKey.generate(origin)
        root: SecretKey | None = None
        if offline_root is None:
            root = SecretKey.generate(f"{origin}/root")
            save_key(root_key_path(keys_dir, list_name), root)
            root_verifier = root.verifier
        else:
            root_verifier = offline_root
        save_key(online_key_path(keys_dir, list_name, online.vkey), online)
        root_vkey_text = root_verifier.vkey
        _write_private_file(key_dir / ROOT_VKEY_FILE, root_vkey_text + "\n")

        keyring = Keyring.create(
            origin=origin,
            serial=1,
            expires=now + KEYRING_LIFETIME,
            threshold=1,
            roots=[root_vkey_text],
            keys=[KeyRange(online.vkey, 1, None)],
        )
        unsigned: Path | None = None
        if root is None:
            unsigned = key_dir / "keyring-1.txt"
            _write_private_file(unsigned, keyring.to_text())

        db = Database(url)
        try:
            db.migrate()
            sqlite_file = data_dir / SQLITE_FILE
            if sqlite_file.exists():
                # The list's history and tokens' hashes: owner only.
                os.chmod(sqlite_file, _PRIVATE_FILE)
            with db.transaction() as session:
                try:
                    store_lists.get_list(session, list_name)
                except NotFound:
                    pass
                else:
                    raise AlreadyInitialised(
                        f"the database at {db.url.render_as_string(hide_password=True)} already "
                        f"has a list named {list_name!r}"
                    )
                lst = store_lists.create_list(
                    session,
                    name=list_name,
                    origin=origin,
                    canary_url=canary_url,
                    home_country=home_country,
                    approvals_required=approvals_required,
                    public=public,
                    canary_scope=scope_of_canary,
                    actor=ACTOR_INIT,
                    now=now,
                )
                if root is not None:
                    note = sign_keyring(keyring, [root])
                    store_versions.put_keyring(session, lst.id, serial=1, note=note, now=now)
                # RFC 6962 2.1: the empty tree's root is SHA-256 of "".
                store_versions.put_checkpoint(
                    session,
                    lst.id,
                    size=0,
                    root=EMPTY_ROOT,
                    note=empty_checkpoint(origin, online, now),
                    signed_at=now,
                )
                token, _ = store_tokens.create_token(
                    session, name="admin", role="admin", actor=ACTOR_INIT, now=now
                )
        finally:
            db.dispose()
        HighWater.for_list(keys_dir, list_name).initialise(HighWaterMark(origin, 0, EMPTY_ROOT))
        _write_private_file(data_dir / ADMIN_TOKEN_FILE, token + "\n")
    except BaseException:
        # Leave no half-initialised directory that would refuse the next try.
        # (A PostgreSQL database keeps nothing: the transaction rolled back.)
        for path in created:
            _remove_tree(path)
        sqlite = data_dir / SQLITE_FILE
        if url.startswith("sqlite") and sqlite.exists():
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (data_dir / (SQLITE_FILE + suffix)).unlink()
        raise
    return InitResult(
        data_dir=data_dir,
        list=list_name,
        origin=origin,
        root_vkey=root_vkey_text,
        admin_token=token,
        database_url=url,
        embedded_root=root is not None,
        unsigned_keyring=unsigned,
    )


def canary_scope(url: str) -> str:
    """The narrowest scope that states what the canary URL really blocks.

    A canary such as ``http://canary.example.test/`` is a whole (reserved)
    host; one with a path is a page or a directory (DESIGN.md, "Entries").

    Raises:
        InvalidURL, InvalidEntry: the URL fits no scope.
    """
    error: BlocklistError | None = None
    for scope in ("page", "prefix", "host"):
        try:
            plan_entry(url, scope)
        except InvalidEntry as e:
            error = e
            continue
        return scope
    assert error is not None
    raise error


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir() and not child.is_symlink():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


def ensure_initialised(
    data_dir: Path,
    *,
    list_name: str = "main",
    origin: str | None = None,
    root_vkey: str | None = None,
    database_url: str | None = None,
    approvals_required: int = 1,
    home_country: str | None = None,
    canary_url: str = "http://canary.cleanfeed.invalid/",
    public: bool = False,
    now: datetime | None = None,
) -> InitResult | None:
    """Initialise ``data_dir`` on first start (``cleanfeed serve``); else do nothing.

    Takes the arguments of :func:`init_data_dir`, used on first start only.

    Returns:
        The init result on first start, None when already initialised.

    Raises:
        See :func:`init_data_dir`.
    """
    if is_initialised(Path(data_dir)):
        return None
    return init_data_dir(
        Path(data_dir),
        list_name=list_name,
        origin=origin,
        root_vkey=root_vkey,
        database_url=database_url,
        approvals_required=approvals_required,
        home_country=home_country,
        canary_url=canary_url,
        public=public,
        now=now,
    )


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
    now = _seconds(now or _utcnow())
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
            store_versions.put_keyring(
                session,
                lst.id,
                serial=renewed.serial,
                note=sign_keyring(renewed, [root]),
                now=now,
            )
            store_audit.append(
                session,
                list_id=lst.id,
                actor=ACTOR_KEYS,
                action=Action.KEYRING_RENEW,
                details={"serial": renewed.serial, "expires": renewed.expires.isoformat()},
                now=now,
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
    now = _seconds(now or _utcnow())
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
            ranges: list[KeyRange] = []
            for rng in current.keys:
                if rng.last is not None:
                    ranges.append(rng)
                elif rng.first <= version:
                    ranges.append(KeyRange(rng.vkey, rng.first, version))
                # else: the old key signed nothing; drop it (first <= last).
            ranges.append(KeyRange(new_key.vkey, version + 1, None))
            rotated = Keyring.create(
                origin=current.origin,
                serial=current.serial + 1,
                expires=now + KEYRING_LIFETIME,
                threshold=current.threshold,
                roots=current.roots,
                keys=ranges,
            )
            store_versions.put_keyring(
                session,
                lst.id,
                serial=rotated.serial,
                note=sign_keyring(rotated, [root]),
                now=now,
            )
            store_audit.append(
                session,
                list_id=lst.id,
                actor=ACTOR_KEYS,
                action=Action.KEYRING_ROTATE,
                details={
                    "serial": rotated.serial,
                    "old_key": parse_vkey(old_vkey).key_id.hex(),
                    "new_key": new_key.key_id.hex(),
                    "last_version_of_old_key": version,
                },
                now=now,
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
    now = _seconds(now or _utcnow())
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
            store_versions.put_keyring(session, lst.id, serial=keyring.serial, note=note, now=now)
            store_audit.append(
                session,
                list_id=lst.id,
                actor=ACTOR_KEYS,
                action=Action.KEYRING_IMPORT,
                details={"serial": keyring.serial},
                now=now,
            )
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
