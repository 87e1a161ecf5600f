"""Creating a further list in an initialised embedded deployment.

``cleanfeed init`` (:func:`signer.bootstrap.init_data_dir`) creates the
first list. ``POST /v1/lists`` creates more, and a list is only usable with
its keys: a root key (embedded default), an online key, keyring serial 1,
the size-0 checkpoint and the high-water mark, laid out exactly as
``init`` lays them out (docs/architecture.md, "Data directory"). This needs
the signing keys, so it is available only where the signer runs in this
process; with ``--no-signer`` the API refuses (the signer host creates
lists).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from blocklist.checkpoint import validate_origin
from blocklist.errors import FormatError
from blocklist.keyring import KeyRange, Keyring
from blocklist.merkle import EMPTY_ROOT
from blocklist.store import lists as store_lists
from blocklist.store import versions as store_versions
from blocklist.store.db import Database
from blocklist.store.errors import Conflict, InvalidField
from blocklist.store.models import ListRow
from signer.bootstrap import KEYRING_LIFETIME, ROOT_VKEY_FILE, canary_scope, default_origin
from signer.highwater import HighWater, HighWaterMark
from signer.keyring import sign_keyring
from signer.keys import SecretKey, save_key
from signer.log import empty_checkpoint
from signer.publisher import list_key_dir, online_key_path, root_key_path

#: Canary URL of a new list when none is given: a reserved .invalid host, so
#: the canary can never block a real site.
DEFAULT_CANARY_TEMPLATE = "http://canary-{name}.cleanfeed.invalid/"


def default_canary_url(name: str) -> str:
    """The default canary URL of list ``name`` (:data:`DEFAULT_CANARY_TEMPLATE`).

    A list name may end in '-' (``LIST_NAME_RE``) but a host label may not
    (entry hosts are checked, issue 12 item 16), so trailing hyphens of the
    label are dropped: list ``a-`` gets ``canary-a``, list ``-`` ``canary``.
    """
    host = DEFAULT_CANARY_TEMPLATE.format(name=name)
    label, dot, rest = host.removeprefix("http://").partition(".")
    return f"http://{label.rstrip('-')}{dot}{rest}"


_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class CreatedList:
    """A new list and the root vkey its ISPs must pin."""

    row: ListRow
    root_vkey: str


def create_list_with_keys(
    db: Database,
    keys_dir: Path,
    *,
    name: str,
    origin: str | None,
    approvals_required: int,
    home_country: str | None,
    canary_url: str | None,
    public: bool,
    actor: str,
) -> CreatedList:
    """Create a list with its keys, keyring serial 1 and size-0 checkpoint.

    Nothing is left behind on failure: the key directory is removed and the
    transaction rolls back.

    Raises:
        Conflict: the list (or its key directory) exists already.
        InvalidField, InvalidURL, InvalidEntry, FormatError: bad values.
    """
    origin = origin or default_origin(name)
    # The origin names the keys too: refuse a bad one before any key exists.
    try:
        validate_origin(origin)
    except FormatError as e:
        raise InvalidField(str(e)) from e
    canary = canary_url or default_canary_url(name)
    scope = canary_scope(canary)
    key_dir = list_key_dir(keys_dir, name)
    if key_dir.exists():
        raise Conflict(f"keys for a list named {name!r} exist already")
    now = datetime.now(UTC).replace(microsecond=0)
    keys_dir.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    key_dir.mkdir(mode=_PRIVATE_DIR)
    os.chmod(key_dir, _PRIVATE_DIR)
    try:
        root = SecretKey.generate(f"{origin}/root")
        online = SecretKey.generate(origin)
        save_key(root_key_path(keys_dir, name), root)
        save_key(online_key_path(keys_dir, name, online.vkey), online)
        vkey_file = key_dir / ROOT_VKEY_FILE
        vkey_file.write_text(root.vkey + "\n", encoding="utf-8")
        os.chmod(vkey_file, _PRIVATE_FILE)
        keyring = Keyring.create(
            origin=origin,
            serial=1,
            expires=now + KEYRING_LIFETIME,
            threshold=1,
            roots=[root.vkey],
            keys=[KeyRange(online.vkey, 1, None)],
        )
        with db.transaction() as session:
            row = store_lists.create_list(
                session,
                name=name,
                origin=origin,
                canary_url=canary,
                home_country=home_country,
                approvals_required=approvals_required,
                public=public,
                canary_scope=scope,
                actor=actor,
                now=now,
            )
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
        HighWater.for_list(keys_dir, name).initialise(HighWaterMark(origin, 0, EMPTY_ROOT))
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(key_dir)
        raise
    return CreatedList(row=row, root_vkey=root.vkey)
