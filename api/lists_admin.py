"""Creating a further list in an initialised embedded deployment.

``cleanfeed init`` (:func:`signer.datadir.init_data_dir`) creates the first
list. ``POST /v1/lists`` creates more, and a list is only usable with its
keys, keyring serial 1, size-0 checkpoint and high-water mark; the signer
provisions them (:func:`signer.datadir.provision_list`, the same code
``init`` runs), so no private key is written here. This needs the signing
keys, so it is available only where the signer runs in this process; with
``--no-signer`` the API refuses (the signer host creates lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blocklist.checkpoint import validate_origin
from blocklist.errors import FormatError
from blocklist.store.db import Database
from blocklist.store.errors import InvalidField
from blocklist.store.models import ListRow
from signer.datadir import default_origin, provision_list
from signer.log import utc_seconds

__all__ = [
    "DEFAULT_CANARY_TEMPLATE",
    "CreatedList",
    "create_list_with_keys",
    "default_canary_url",
]

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
    provisioned = provision_list(
        db,
        keys_dir,
        name=name,
        origin=origin,
        canary_url=canary_url or default_canary_url(name),
        approvals_required=approvals_required,
        home_country=home_country,
        public=public,
        actor=actor,
        now=utc_seconds(),
    )
    return CreatedList(row=provisioned.row, root_vkey=provisioned.root_vkey)
