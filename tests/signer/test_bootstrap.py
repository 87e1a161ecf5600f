"""Data directory initialisation, keyring renewal, key rotation and keyring import."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from support.log_verifier import verify_checkpoint_note, verify_log
from support.publish_helpers import START, Clock, Deployment, add_active, published

from blocklist.auditlog import Action, Actor
from blocklist.canonical import expression_hash
from blocklist.errors import FormatError
from blocklist.keyring import KeyRange, Keyring, parse_vkey
from blocklist.merkle import EMPTY_ROOT
from blocklist.store import Database
from blocklist.store import audit as store_audit
from blocklist.store import lists as store_lists
from blocklist.store import tokens as store_tokens
from signer.datadir import KEYRING_LIFETIME, ensure_initialised, init_data_dir, keys_dir_of
from signer.errors import AlreadyInitialised, KeyringError, RootKeyOffline, UnknownKey
from signer.highwater import HighWater, HighWaterMark
from signer.keyring import sign_keyring, verifiers_for_statement, verify_keyring_update
from signer.keyring_ops import (
    KEYRING_RENEW_BEFORE,
    import_signed_keyring,
    renew_keyring_if_needed,
    rotate_online_key,
)
from signer.keys import SecretKey, load_key
from signer.note import Verifier, verify_note
from signer.publisher import NoKeyring, OnlineKeyMissing, Publisher

ORIGIN = "example.org/cleanfeed/main"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot_dir(path: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(path)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_init_embedded_default(deployment: Deployment) -> None:
    dep = deployment
    data_dir = dep.data_dir
    key_dir = keys_dir_of(data_dir) / "main"
    assert dep.init.embedded_root is True
    assert dep.init.list == "main"
    assert dep.init.origin == ORIGIN
    assert mode(data_dir) == 0o700
    assert mode(keys_dir_of(data_dir)) == 0o700
    assert mode(key_dir) == 0o700
    root_file = key_dir / "root.key"
    online_files = list(key_dir.glob("online-*.key"))
    assert len(online_files) == 1
    for key_file in [
        root_file,
        *online_files,
        data_dir / "admin-token",
        key_dir / "highwater.json",
    ]:
        assert mode(key_file) == 0o600, key_file
    root = load_key(root_file)
    online = load_key(online_files[0])
    assert root.vkey == dep.init.root_vkey
    assert root.name == f"{ORIGIN}/root"
    assert online.name == ORIGIN
    assert online_files[0].name == f"online-{online.key_id.hex()}.key"
    if dep.db.backend == "sqlite":
        assert mode(data_dir / "cleanfeed.db") == 0o600

    # The admin token in the file is the one returned, and it works.
    token = (data_dir / "admin-token").read_text().strip()
    assert token == dep.init.admin_token
    with dep.db.read() as s:
        principal = store_tokens.lookup_token(s, token, now=START)
    assert principal is not None
    assert principal.role == "admin"

    # Keyring serial 1 verifies under the pinned root; the size-0 checkpoint
    # under its open key; the mark is at size 0.
    pub = published(dep.db)
    keyring = verify_keyring_update(
        pub.keyrings[0], held=None, pinned_roots=[root.vkey], now=START, origin=ORIGIN
    )
    assert keyring.serial == 1
    assert keyring.threshold == 1
    assert keyring.roots == (root.vkey,)
    assert keyring.keys == (KeyRange(online.vkey, 1, None),)
    assert keyring.expires == START + KEYRING_LIFETIME
    checkpoint, timestamp = verify_checkpoint_note(pub.checkpoint, keyring)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 0, EMPTY_ROOT)
    assert timestamp == int(START.timestamp())
    assert pub.statements == []
    assert HighWater.for_list(keys_dir_of(data_dir), "main").read() == HighWaterMark(
        ORIGIN, 0, EMPTY_ROOT
    )


def test_reinit_is_refused_and_changes_nothing(deployment: Deployment) -> None:
    dep = deployment
    before = snapshot_dir(dep.data_dir)
    with pytest.raises(AlreadyInitialised, match="already initialised"):
        init_data_dir(dep.data_dir, database_url=dep.init.database_url)
    assert snapshot_dir(dep.data_dir) == before
    assert ensure_initialised(dep.data_dir, database_url=dep.init.database_url) is None
    assert snapshot_dir(dep.data_dir) == before


def test_second_data_dir_on_a_database_with_the_list_is_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    with pytest.raises(AlreadyInitialised, match="already has a list named 'main'"):
        init_data_dir(other, database_url=deployment.init.database_url)
    # The half-created keys were cleaned up, so the directory can be used.
    assert not (other / "keys").exists()
    assert not (other / "admin-token").exists()


def test_ensure_initialised_on_first_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    result = ensure_initialised(data_dir, now=START)
    assert result is not None
    assert result.database_url == f"sqlite:///{(data_dir / 'cleanfeed.db').resolve()}"
    assert result.origin == "cleanfeed.invalid/main"
    assert ensure_initialised(data_dir, now=START) is None
    db = Database(result.database_url)
    try:
        # The default canary (a whole reserved host) is published with version 1.
        publisher = Publisher(db, "main", keys_dir_of(data_dir), clock=lambda: START)
        assert publisher.publish_once().versions == [1]
        pub = published(db)
        log = verify_log(
            pub.keyrings,
            pub.statements,
            root_vkey=result.root_vkey,
            origin=result.origin,
            now=START,
        )
        assert log.members == {expression_hash("canary.cleanfeed.invalid/")}
    finally:
        db.dispose()


@pytest.mark.parametrize(
    "vkey",
    [
        "not-a-vkey",
        SecretKey.from_seed(ORIGIN, bytes(32)).vkey,
    ],  # malformed; named like the online key
)
def test_bad_root_vkey_creates_nothing(tmp_path: Path, vkey: str) -> None:
    with pytest.raises(FormatError):
        init_data_dir(tmp_path / "d", origin=ORIGIN, root_vkey=vkey)
    assert not (tmp_path / "d").exists()


def _production(tmp_path: Path, database_url: str) -> tuple[Path, SecretKey, Clock]:
    clock = Clock()
    offline_root = SecretKey.generate(f"{ORIGIN}/root-1")
    result = init_data_dir(
        tmp_path / "data",
        database_url=database_url,
        origin=ORIGIN,
        root_vkey=offline_root.vkey,
        now=clock(),
    )
    assert result.embedded_root is False
    assert result.root_vkey == offline_root.vkey
    return result.data_dir, offline_root, clock


def test_root_vkey_mode_keeps_no_root_key_and_needs_an_imported_keyring(
    database_url: str, tmp_path: Path
) -> None:
    data_dir, offline_root, clock = _production(tmp_path, database_url)
    key_dir = keys_dir_of(data_dir) / "main"
    assert not (key_dir / "root.key").exists()
    # No file under the data directory holds the root's secret.
    for path in data_dir.rglob("*.key"):
        assert load_key(path).vkey != offline_root.vkey
    unsigned = key_dir / "keyring-1.txt"
    keyring = Keyring.parse(unsigned.read_text())
    assert keyring.roots == (offline_root.vkey,)
    assert keyring.serial == 1

    db = Database(database_url)
    try:
        add_active(db, "http://example.com/a.html", clock())
        publisher = Publisher(db, "main", keys_dir_of(data_dir), clock=clock)
        with pytest.raises(NoKeyring, match="sign-keyring"):
            publisher.publish_once()

        # The offline ceremony signs the keyring; a wrong root is refused.
        stranger = SecretKey.generate(f"{ORIGIN}/root-1")
        with pytest.raises(KeyringError):
            import_signed_keyring(
                data_dir, "main", sign_keyring(keyring, [stranger]), database_url=database_url
            )
        imported = import_signed_keyring(
            data_dir,
            "main",
            sign_keyring(keyring, [offline_root]),
            database_url=database_url,
            now=clock(),
        )
        assert imported == keyring
        assert publisher.publish_once().versions == [1]
        pub = published(db)
        log = verify_log(
            pub.keyrings, pub.statements, root_vkey=offline_root.vkey, origin=ORIGIN, now=clock()
        )
        verify_checkpoint_note(pub.checkpoint, log.keyring)
        # Rotation needs the root key, which is offline here.
        with pytest.raises(RootKeyOffline):
            rotate_online_key(data_dir, "main", database_url=database_url)
        # Renewal cannot sign either; it only warns.
        clock.advance(days=360)
        assert (
            renew_keyring_if_needed(data_dir, "main", database_url=database_url, now=clock())
            is None
        )
    finally:
        db.dispose()


def test_import_refuses_a_keyring_whose_open_key_is_not_here(
    database_url: str, tmp_path: Path
) -> None:
    data_dir, offline_root, clock = _production(tmp_path, database_url)
    foreign = SecretKey.generate(ORIGIN)
    keyring = Keyring.create(
        origin=ORIGIN,
        serial=1,
        expires=clock() + timedelta(days=30),
        threshold=1,
        roots=[offline_root.vkey],
        keys=[KeyRange(foreign.vkey, 1, None)],
    )
    with pytest.raises(OnlineKeyMissing):
        import_signed_keyring(
            data_dir,
            "main",
            sign_keyring(keyring, [offline_root]),
            database_url=database_url,
            now=clock(),
        )


def test_rotation_statements_verify_under_their_ranges(deployment: Deployment) -> None:
    dep = deployment
    dep.publisher.publish_once()
    add_active(dep.db, "http://example.com/a.html", dep.clock())
    dep.publisher.publish_once()
    mark_before = dep.publisher.highwater.read()

    dep.clock.advance(minutes=1)
    rotated = rotate_online_key(
        dep.data_dir, "main", database_url=dep.init.database_url, now=dep.clock()
    )
    assert (rotated.serial, rotated.version) == (2, 2)
    assert rotated.old_vkey != rotated.new_vkey

    # The checkpoint was re-signed by the new key at once (same tree).
    pub = published(dep.db)
    keyring = verify_log(
        pub.keyrings, pub.statements, root_vkey=dep.init.root_vkey, origin=ORIGIN, now=dep.clock()
    ).keyring
    assert keyring.serial == 2
    assert keyring.keys == (
        KeyRange(rotated.old_vkey, 1, 2),
        KeyRange(rotated.new_vkey, 3, None),
    )
    checkpoint, timestamp = verify_checkpoint_note(pub.checkpoint, keyring)
    assert checkpoint.size == 2
    assert timestamp == int(dep.clock().timestamp())
    with pytest.raises(UnknownKey):
        verify_note(pub.checkpoint, [Verifier.from_vkey(rotated.old_vkey)])
    assert dep.publisher.highwater.read() == mark_before

    # The running publisher picks up the new key from the keyring.
    add_active(dep.db, "http://example.com/b.html", dep.clock())
    assert dep.publisher.publish_once().versions == [3]
    pub = published(dep.db)
    log = verify_log(
        pub.keyrings, pub.statements, root_vkey=dep.init.root_vkey, origin=ORIGIN, now=dep.clock()
    )
    assert log.statements[2].keyring == 2
    assert log.statements[1].keyring == 1
    for version, vkey in ((1, rotated.old_vkey), (2, rotated.old_vkey), (3, rotated.new_vkey)):
        assert [v.vkey for v in verifiers_for_statement(log.keyring, version)] == [vkey]
        verify_note(pub.statements[version - 1], [Verifier.from_vkey(vkey)])
    with pytest.raises(UnknownKey):
        verify_note(pub.statements[2], [Verifier.from_vkey(rotated.old_vkey)])
    with pytest.raises(UnknownKey):
        verify_note(pub.statements[0], [Verifier.from_vkey(rotated.new_vkey)])
    checkpoint, _ = verify_checkpoint_note(pub.checkpoint, log.keyring)
    assert (checkpoint.size, checkpoint.root) == (3, log.root)


def test_rotation_before_any_version_drops_the_unused_key(deployment: Deployment) -> None:
    dep = deployment
    rotated = rotate_online_key(
        dep.data_dir, "main", database_url=dep.init.database_url, now=dep.clock()
    )
    assert rotated.version == 0
    pub = published(dep.db)
    keyring = verify_log(
        pub.keyrings, [], root_vkey=dep.init.root_vkey, origin=ORIGIN, now=dep.clock()
    ).keyring
    assert keyring.keys == (KeyRange(rotated.new_vkey, 1, None),)
    assert dep.publisher.publish_once().versions == [1]
    pub = published(dep.db)
    verify_log(pub.keyrings, pub.statements, root_vkey=dep.init.root_vkey, origin=ORIGIN, now=START)


def test_embedded_keyring_is_renewed_before_it_expires(deployment: Deployment) -> None:
    dep = deployment
    url = dep.init.database_url
    too_early = START + KEYRING_LIFETIME - KEYRING_RENEW_BEFORE - timedelta(seconds=1)
    assert renew_keyring_if_needed(dep.data_dir, "main", database_url=url, now=too_early) is None
    assert len(published(dep.db).keyrings) == 1
    due = START + KEYRING_LIFETIME - timedelta(days=10)
    renewed = renew_keyring_if_needed(dep.data_dir, "main", database_url=url, now=due)
    assert renewed is not None
    pub = published(dep.db)
    first = Keyring.parse(
        verify_note(pub.keyrings[0], [Verifier.from_vkey(dep.init.root_vkey)]).text
    )
    held = verify_keyring_update(
        pub.keyrings[1], held=first, pinned_roots=[dep.init.root_vkey], now=due
    )
    assert held == renewed
    assert (held.serial, held.expires) == (2, due + KEYRING_LIFETIME)
    assert (held.roots, held.keys, held.threshold) == (first.roots, first.keys, first.threshold)
    # Publishing continues under the renewed keyring.
    dep.clock.now = due
    assert dep.publisher.publish_once().versions == [1]
    pub = published(dep.db)
    log = verify_log(
        pub.keyrings, pub.statements, root_vkey=dep.init.root_vkey, origin=ORIGIN, now=due
    )
    assert log.statements[0].keyring == 2


def _keyring_records(db: Database) -> list[tuple[str, str, dict[str, object]]]:
    with db.read() as session:
        list_id = store_lists.get_list(session, "main").id
        return [
            (r.action, r.actor, dict(r.details))
            for r in store_audit.records(session, list_id)
            if r.action.startswith("keyring.")
        ]


def test_rotation_and_renewal_are_audited_with_their_serial(deployment: Deployment) -> None:
    dep = deployment
    url = dep.init.database_url
    rotated = rotate_online_key(dep.data_dir, "main", database_url=url, now=dep.clock())
    due = START + KEYRING_LIFETIME - timedelta(days=10)
    renewed = renew_keyring_if_needed(dep.data_dir, "main", database_url=url, now=due)
    assert renewed is not None
    assert _keyring_records(dep.db) == [
        (
            Action.KEYRING_ROTATE,
            Actor.KEYS,
            {
                "serial": 2,
                "old_key": parse_vkey(rotated.old_vkey).key_id.hex(),
                "new_key": parse_vkey(rotated.new_vkey).key_id.hex(),
                "last_version_of_old_key": 0,
            },
        ),
        (Action.KEYRING_RENEW, Actor.KEYS, {"serial": 3, "expires": renewed.expires.isoformat()}),
    ]


def test_an_imported_keyring_is_audited_with_its_serial(database_url: str, tmp_path: Path) -> None:
    data_dir, offline_root, clock = _production(tmp_path, database_url)
    keyring = Keyring.parse((keys_dir_of(data_dir) / "main" / "keyring-1.txt").read_text())
    note = sign_keyring(keyring, [offline_root])
    import_signed_keyring(data_dir, "main", note, database_url=database_url, now=clock())
    db = Database(database_url)
    try:
        assert _keyring_records(db) == [(Action.KEYRING_IMPORT, Actor.KEYS, {"serial": 1})]
    finally:
        db.dispose()


def test_admin_token_file_is_never_world_readable_even_with_a_loose_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        result = init_data_dir(tmp_path / "loose", now=START)
    finally:
        os.umask(old)
    for path in [result.data_dir / "admin-token", *result.data_dir.rglob("*.key")]:
        assert mode(path) == 0o600, path
    assert mode(result.data_dir) == 0o700
