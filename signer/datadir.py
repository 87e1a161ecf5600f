"""The data directory: its layout, and provisioning a list's keys and first log state.

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

:func:`provision_list` is the one place a list gets its keys and first log
state, for ``cleanfeed init`` and ``POST /v1/lists`` alike: the key
directory, the keys (the embedded default generates the root key too; a
production deployment passes the public half of a root key kept offline,
DESIGN.md "Processes"), then in ONE transaction the list (with its canary
entry), keyring serial 1 (embedded: signed at once) and the size-0
checkpoint (root SHA-256 of the empty string, RFC 6962 2.1); after commit,
the high-water mark (size 0).

:func:`init_data_dir` does, in order: refuse an initialised directory;
create the directory; migrate the database; provision the first list, with
the first admin token issued in the same transaction; after commit, write
``admin-token`` (0600, not only printed, DESIGN.md "Operations").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from blocklist.auditlog import Actor
from blocklist.checkpoint import validate_origin
from blocklist.entries import plan_entry
from blocklist.errors import BlocklistError, FormatError, InvalidEntry
from blocklist.keyring import KeyRange, Keyring, parse_vkey
from blocklist.merkle import EMPTY_ROOT
from blocklist.store import Database
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from blocklist.store import versions as store_versions
from blocklist.store.errors import Conflict, InvalidField, NotFound
from blocklist.store.models import ListRow
from blocklist.store.retention import RetentionPolicy
from blocklist.tempfiles import write_new_file
from signer.errors import AlreadyInitialised, SignerError
from signer.highwater import HighWater, HighWaterMark
from signer.keyring import sign_keyring
from signer.keys import SecretKey, save_key
from signer.log import DEFAULT_KEYRING_LIFETIME, empty_checkpoint, utc_seconds
from signer.note import Verifier

__all__ = [
    "ADMIN_TOKEN_FILE",
    "DATABASE_URL_ENV",
    "KEYRING_LIFETIME",
    "ROOT_KEY_FILE",
    "ROOT_VKEY_FILE",
    "InitResult",
    "ProvisionedList",
    "canary_scope",
    "default_origin",
    "ensure_initialised",
    "init_data_dir",
    "is_initialised",
    "keys_dir_of",
    "list_key_dir",
    "online_key_path",
    "provision_list",
    "resolve_database_url",
    "resolve_retention",
    "root_key_path",
    "signer_setting",
]

#: Lifetime of every keyring the signer writes: a year. Clients refuse an
#: expired keyring (TUF freeze protection), so an abandoned deployment stops
#: being trusted within a year; the embedded default renews automatically.
KEYRING_LIFETIME = DEFAULT_KEYRING_LIFETIME

#: The first admin token, mode 0600 (DESIGN.md, "Operations").
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret

#: The embedded SQLite database.
SQLITE_FILE = "cleanfeed.db"

#: Optional settings file; only ``database_url`` is read here.
SETTINGS_FILE = "settings.toml"

#: Environment variable naming the database (wins over settings.toml).
DATABASE_URL_ENV = "CLEANFEED_DATABASE_URL"

#: Root key file of the embedded default (production keeps it offline).
ROOT_KEY_FILE = "root.key"

#: Public half of the root key, kept beside the keys for ``init --json`` and
#: for checking imported keyrings.
ROOT_VKEY_FILE = "root.vkey"

#: Production only: keyring serial 1, unsigned, for the offline root to sign.
UNSIGNED_KEYRING_FILE = "keyring-1.txt"

#: Actor recorded in the audit log for what ``init`` does.
ACTOR_INIT = Actor.INIT

_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


# --- the layout ---------------------------------------------------------------


def default_origin(list_name: str) -> str:
    """The default list origin ``cleanfeed.invalid/<list>`` (deployments set their own)."""
    return f"cleanfeed.invalid/{list_name}"


def keys_dir_of(data_dir: Path) -> Path:
    """``DATA_DIR/keys``."""
    return Path(data_dir) / "keys"


def list_key_dir(keys_dir: Path, list_name: str) -> Path:
    """``keys/<list>``: the list's key files and high-water mark."""
    return Path(keys_dir) / list_name


def root_key_path(keys_dir: Path, list_name: str) -> Path:
    """``keys/<list>/root.key`` (embedded default only)."""
    return list_key_dir(keys_dir, list_name) / ROOT_KEY_FILE


def online_key_path(keys_dir: Path, list_name: str, vkey: str) -> Path:
    """``keys/<list>/online-<keyid>.key`` for the online key with ``vkey``.

    Raises:
        FormatError: a malformed vkey.
    """
    return list_key_dir(keys_dir, list_name) / f"online-{parse_vkey(vkey).key_id.hex()}.key"


def _settings_file_values(data_dir: Path) -> dict[str, object]:
    """The top-level values of ``DATA_DIR/settings.toml`` (empty when there is none).

    Raises:
        SignerError: settings.toml is unreadable or not valid TOML.
    """
    settings = Path(data_dir) / SETTINGS_FILE
    if not settings.exists():
        return {}
    try:
        with settings.open("rb") as f:
            return dict(tomllib.load(f))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SignerError(f"{settings}: cannot read settings: {e}") from e


def signer_setting(data_dir: Path, name: str) -> str | int | None:
    """One setting the signer's process reads, with the API's precedence.

    ``CLEANFEED_<NAME>`` in the environment, else ``<name>`` in
    ``DATA_DIR/settings.toml``, else ``None``: the order
    :func:`api.settings.load_settings` uses, so a signer started with
    ``cleanfeed signer run`` and an API with its embedded signer read a
    deployment's settings alike. Environment values are strings; file
    values are returned as TOML typed them (string or integer).

    Raises:
        SignerError: settings.toml is unreadable, or the value is neither a
            string nor an integer.
    """
    env = os.environ.get(f"CLEANFEED_{name.upper()}", "").strip()
    if env:
        return env
    value = _settings_file_values(data_dir).get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SignerError(f"{Path(data_dir) / SETTINGS_FILE}: {name} must be a string or a number")
    return value


def resolve_database_url(data_dir: Path, database_url: str | None = None) -> str:
    """The database URL: explicit, else ``CLEANFEED_DATABASE_URL``, else
    ``database_url`` in ``DATA_DIR/settings.toml``, else SQLite in the data directory.

    Raises:
        SignerError: settings.toml is not valid TOML or its value not a string.
    """
    if database_url:
        return database_url
    value = signer_setting(data_dir, "database_url")
    if value is not None:
        if not isinstance(value, str):
            raise SignerError(f"{Path(data_dir) / SETTINGS_FILE}: database_url must be a string")
        return value
    return f"sqlite:///{(Path(data_dir) / SQLITE_FILE).resolve()}"


def _retention_days(data_dir: Path, name: str, given: int | None) -> int | None:
    if given is not None:
        return given
    value = signer_setting(data_dir, name)
    if value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise SignerError(
            f"CLEANFEED_{name.upper()} must be a whole number of days, not {value!r}"
        ) from None


def resolve_retention(
    data_dir: Path, snapshot_days: int | None = None, plaintext_days: int | None = None
) -> RetentionPolicy:
    """The retention policy of the signer's process: options, else environment, else file.

    The one reader of the retention settings outside the API's settings
    object, with its precedence (:func:`signer_setting`) and the
    validation of :class:`blocklist.store.retention.RetentionPolicy`.

    Raises:
        SignerError: a value that is not a whole number of days, or out of range.
    """
    try:
        return RetentionPolicy(
            snapshot_days=_retention_days(data_dir, "snapshot_retention_days", snapshot_days),
            plaintext_days=_retention_days(data_dir, "plaintext_retention_days", plaintext_days),
        )
    except InvalidField as e:
        raise SignerError(f"retention settings: {e}") from e


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
    write_new_file(path, content.encode("utf-8"), mode=_PRIVATE_FILE)


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
            plan_entry(url, scope, canary=True)
        except InvalidEntry as e:
            error = e
            continue
        return scope
    assert error is not None
    raise error


# --- provisioning a list --------------------------------------------------------


@dataclass(frozen=True)
class ProvisionedList:
    """A list with its keys, keyring serial 1, size-0 checkpoint and high-water mark."""

    row: ListRow
    #: The root vkey its ISPs and auditors pin.
    root_vkey: str
    #: The embedded default: the root key is in ``keys/<list>/root.key``.
    embedded_root: bool
    #: Production (offline root) only: keyring serial 1 waiting for the root.
    unsigned_keyring: Path | None


def provision_list(
    db: Database,
    keys_dir: Path,
    *,
    name: str,
    origin: str,
    canary_url: str,
    approvals_required: int,
    home_country: str | None,
    public: bool,
    actor: str,
    now: datetime,
    offline_root: Verifier | None = None,
    before: Callable[[Session], None] | None = None,
    after: Callable[[Session, ListRow], None] | None = None,
) -> ProvisionedList:
    """Create a list with its keys, keyring serial 1, size-0 checkpoint and high-water mark.

    The key files are written first, so the list never exists without the
    keys its keyring names. ``before`` and ``after`` run inside the list's
    transaction, before and after the list row is created (``init`` checks
    the name and issues the first admin token there). Nothing is left
    behind on failure: the list's key directory is removed and the
    transaction rolls back.

    Args:
        db: the (migrated) database.
        keys_dir: ``DATA_DIR/keys``; created (0700) when missing.
        name: the list's name.
        origin: its origin (also the online key's name).
        canary_url: its reserved canary entry.
        approvals_required: four-eyes setting (1 or 2).
        home_country: ISO country whose hosting is refused.
        public: expose hash-only documents without a token.
        actor: who creates it, for the audit log.
        now: the creation time, to the second (UTC).
        offline_root: production key ceremony: the root key kept offline;
            keyring serial 1 is written unsigned to ``keys/<list>/keyring-1.txt``.
            None: the embedded default generates the root key and signs at once.
        before: run in the transaction before the list is created.
        after: run in the transaction after the list is created.

    Raises:
        Conflict: the list's key directory exists already, or the store has
            the name or origin.
        InvalidField, InvalidURL, InvalidEntry, FormatError: bad values.
    """
    scope = canary_scope(canary_url)
    key_dir = list_key_dir(keys_dir, name)
    if key_dir.exists():
        raise Conflict(f"keys for a list named {name!r} exist already")
    Path(keys_dir).mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    key_dir.mkdir(mode=_PRIVATE_DIR)
    os.chmod(key_dir, _PRIVATE_DIR)
    try:
        online = SecretKey.generate(origin)
        root: SecretKey | None = None
        if offline_root is None:
            root = SecretKey.generate(f"{origin}/root")
            save_key(root_key_path(keys_dir, name), root)
            root_verifier = root.verifier
        else:
            root_verifier = offline_root
        save_key(online_key_path(keys_dir, name, online.vkey), online)
        root_vkey = root_verifier.vkey
        _write_private_file(key_dir / ROOT_VKEY_FILE, root_vkey + "\n")
        keyring = Keyring.create(
            origin=origin,
            serial=1,
            expires=now + KEYRING_LIFETIME,
            threshold=1,
            roots=[root_vkey],
            keys=[KeyRange(online.vkey, 1, None)],
        )
        unsigned: Path | None = None
        if root is None:
            unsigned = key_dir / UNSIGNED_KEYRING_FILE
            _write_private_file(unsigned, keyring.to_text())

        with db.transaction() as session:
            if before is not None:
                before(session)
            row = store_lists.create_list(
                session,
                name=name,
                origin=origin,
                canary_url=canary_url,
                home_country=home_country,
                approvals_required=approvals_required,
                public=public,
                canary_scope=scope,
                actor=actor,
                now=now,
            )
            if root is not None:
                store_versions.put_keyring(
                    session, row.id, serial=1, note=sign_keyring(keyring, [root]), now=now
                )
            # RFC 6962 2.1: the empty tree's root is SHA-256 of "".
            store_versions.put_checkpoint(
                session,
                row.id,
                size=0,
                root=EMPTY_ROOT,
                note=empty_checkpoint(origin, online, now),
                signed_at=now,
            )
            if after is not None:
                after(session, row)
        HighWater.for_list(keys_dir, name).initialise(HighWaterMark(origin, 0, EMPTY_ROOT))
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(key_dir)
        raise
    return ProvisionedList(
        row=row, root_vkey=root_vkey, embedded_root=root is not None, unsigned_keyring=unsigned
    )


# --- initialising a data directory ------------------------------------------------


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
            :func:`signer.keyring_ops.import_signed_keyring`. None: the
            embedded default generates the root key too and signs the
            keyring at once.
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
    now = utc_seconds(now)
    marker = _initialised_marker(data_dir)
    if marker is not None:
        raise AlreadyInitialised(
            f"{data_dir} is already initialised (found {marker}); refusing to overwrite its "
            "keys, database or admin token. Use it as it is, or move it away to start over"
        )
    origin = origin or default_origin(list_name)
    # Checked before anything is created: FormatError on a bad origin or vkey.
    validate_origin(origin)
    offline_root = Verifier.from_vkey(root_vkey) if root_vkey is not None else None
    if offline_root is not None and offline_root.name == origin:
        raise FormatError(
            "the root key must not be named like the online key (the origin): "
            f"use a name such as {origin}/root"
        )
    canary_scope(canary_url)
    url = resolve_database_url(data_dir, database_url)

    _mkdir_private(data_dir)
    keys_dir = keys_dir_of(data_dir)
    tokens: list[str] = []
    try:
        _mkdir_private(keys_dir)
        db = Database(url)
        try:
            db.migrate()
            sqlite_file = data_dir / SQLITE_FILE
            if sqlite_file.exists():
                # The list's history and tokens' hashes: owner only.
                os.chmod(sqlite_file, _PRIVATE_FILE)

            def refuse_existing(session: Session) -> None:
                try:
                    store_lists.get_list(session, list_name)
                except NotFound:
                    return
                raise AlreadyInitialised(
                    f"the database at {db.url.render_as_string(hide_password=True)} already "
                    f"has a list named {list_name!r}"
                )

            def issue_admin_token(session: Session, row: ListRow) -> None:
                token, _ = store_tokens.create_token(
                    session, name="admin", role="admin", actor=ACTOR_INIT, now=now
                )
                tokens.append(token)

            provisioned = provision_list(
                db,
                keys_dir,
                name=list_name,
                origin=origin,
                canary_url=canary_url,
                approvals_required=approvals_required,
                home_country=home_country,
                public=public,
                actor=ACTOR_INIT,
                now=now,
                offline_root=offline_root,
                before=refuse_existing,
                after=issue_admin_token,
            )
        finally:
            db.dispose()
        _write_private_file(data_dir / ADMIN_TOKEN_FILE, tokens[0] + "\n")
    except BaseException:
        # Leave no half-initialised directory that would refuse the next try.
        # (A PostgreSQL database keeps nothing: the transaction rolled back.)
        _remove_tree(keys_dir)
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
        root_vkey=provisioned.root_vkey,
        admin_token=tokens[0],
        database_url=url,
        embedded_root=provisioned.embedded_root,
        unsigned_keyring=provisioned.unsigned_keyring,
    )


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
