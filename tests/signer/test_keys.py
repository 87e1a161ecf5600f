"""Secret keys and key files: format, permissions, atomic writes, passphrases."""

from __future__ import annotations

import base64
import copy
import os
import pickle
import stat
from pathlib import Path

import nacl.signing
import pytest
from click.testing import CliRunner

from signer.errors import InsecureKeyFile, KeyFileError, PassphraseRequired
from signer.keys import KDF_INTERACTIVE, KdfParams, SecretKey, load_key, save_key
from signer.keys_cli import keys_group
from signer.note import Verifier, sign_note, verify_note

SEED = bytes(range(32))
NAME = "example.org/cleanfeed/root-1"


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.from_seed(NAME, SEED)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------
# SecretKey
# --------------------------------------------------------------------------


def test_secret_key_matches_pynacl(key: SecretKey) -> None:
    reference = nacl.signing.SigningKey(SEED)
    assert key.public_key == bytes(reference.verify_key)
    assert key.sign(b"message") == reference.sign(b"message").signature
    assert key.verifier == Verifier.from_vkey(key.vkey)
    assert key.verifier.verify(b"message", key.sign(b"message"))


def test_generate_makes_distinct_working_keys() -> None:
    a, b = SecretKey.generate(NAME), SecretKey.generate(NAME)
    assert a.public_key != b.public_key
    note = sign_note("hello\n", [a])
    assert verify_note(note, [a.verifier]).text == "hello\n"


@pytest.mark.parametrize("name", ["", "a b", "a+b", "x" * 256])
def test_invalid_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid key name"):
        SecretKey.from_seed(name, SEED)


def test_bad_seed_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecretKey.from_seed(NAME, SEED[:31])


def test_no_secret_in_repr_and_no_copies(key: SecretKey) -> None:
    secrets = [SEED.hex(), base64.b64encode(SEED).decode(), repr(SEED)]
    for text in (repr(key), str(key), f"{key}", f"{[key]}"):
        assert key.key_id.hex() in text
        assert NAME in text
        for s in secrets:
            assert s not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.copy(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)


# --------------------------------------------------------------------------
# Files: format, mode, atomicity
# --------------------------------------------------------------------------


def test_plain_file_round_trip_and_mode(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "root.key"
    save_key(path, key)
    assert mode(path) == 0o600
    lines = path.read_text().splitlines()
    assert lines == [
        "cleanfeed-secret-key/v1",
        f"name {NAME}",
        f"vkey {key.vkey}",
        f"seed {base64.b64encode(SEED).decode()}",
    ]
    loaded = load_key(path)
    assert loaded.vkey == key.vkey
    assert loaded.sign(b"m") == key.sign(b"m")
    # Nothing but the key file is left in the directory (no temp files).
    assert [p.name for p in tmp_path.iterdir()] == ["root.key"]


def test_mode_is_0600_even_with_an_open_umask(tmp_path: Path, key: SecretKey) -> None:
    old = os.umask(0)
    try:
        save_key(tmp_path / "k", key)
    finally:
        os.umask(old)
    assert mode(tmp_path / "k") == 0o600


def test_refuses_to_overwrite(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "root.key"
    path.write_text("precious\n")
    with pytest.raises(KeyFileError, match="exists"):
        save_key(path, key)
    assert path.read_text() == "precious\n"
    save_key(path, key, overwrite=True)
    assert load_key(path).vkey == key.vkey
    assert mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root.key"]


def test_refuses_to_write_through_a_dangling_symlink(tmp_path: Path, key: SecretKey) -> None:
    link = tmp_path / "link.key"
    link.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(KeyFileError):
        save_key(link, key)
    assert not (tmp_path / "elsewhere.key").exists()


def test_missing_directory_is_a_key_file_error(tmp_path: Path, key: SecretKey) -> None:
    with pytest.raises(KeyFileError):
        save_key(tmp_path / "no" / "such" / "k", key)


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o610, 0o601])
def test_load_refuses_group_or_other_access(tmp_path: Path, key: SecretKey, bad_mode: int) -> None:
    path = tmp_path / "root.key"
    save_key(path, key)
    path.chmod(bad_mode)
    with pytest.raises(InsecureKeyFile) as info:
        load_key(path)
    assert f"chmod 600 {path}" in str(info.value)
    assert f"{bad_mode:04o}" in str(info.value)
    path.chmod(0o600)
    assert load_key(path).vkey == key.vkey
    path.chmod(0o400)  # read-only for the owner is fine
    assert load_key(path).vkey == key.vkey


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_load_refuses_a_file_owned_by_someone_else(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "root.key"
    save_key(path, key)
    os.chown(path, 65534, -1)
    with pytest.raises(InsecureKeyFile) as info:
        load_key(path)
    assert "chown" in str(info.value)
    assert "65534" in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe\n",
        b"cleanfeed-secret-key/v2\nname a\nvkey b\nseed c\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
        b"x" * 5000,
    ],
)
def test_load_rejects_non_key_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        load_key(path)


def test_load_rejects_tampered_plain_files(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "k"
    save_key(path, key)
    good = path.read_text()
    other = SecretKey.from_seed(NAME, bytes(32))
    tampered = [
        good.replace(f"vkey {key.vkey}", f"vkey {other.vkey}"),  # vkey of another key
        good.replace(f"name {NAME}", "name example.org/renamed"),  # name no longer matches vkey
        good.replace("seed ", "seed  "),
        good + "extra line\n",
        good.rstrip("\n"),
        good.replace("\n", "\r\n"),
    ]
    for text in tampered:
        path.write_text(text)
        with pytest.raises(KeyFileError):
            load_key(path)


def test_load_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        load_key(tmp_path / "missing")
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_key(d)


# --------------------------------------------------------------------------
# Passphrases
# --------------------------------------------------------------------------


def test_passphrase_round_trip(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "root.key"
    save_key(path, key, "correct horse", kdf=KDF_INTERACTIVE)
    content = path.read_text()
    assert base64.b64encode(SEED).decode() not in content
    assert "secretbox " in content
    assert "argon2id " in content
    assert mode(path) == 0o600
    assert load_key(path, "correct horse").vkey == key.vkey
    # str and its UTF-8 bytes are the same passphrase.
    assert load_key(path, b"correct horse").sign(b"m") == key.sign(b"m")


def test_wrong_or_missing_passphrase(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "root.key"
    save_key(path, key, "correct horse", kdf=KDF_INTERACTIVE)
    with pytest.raises(KeyFileError, match="wrong passphrase") as info:
        load_key(path, "battery staple")
    assert not isinstance(info.value, InsecureKeyFile | PassphraseRequired)
    with pytest.raises(PassphraseRequired):
        load_key(path)
    plain = tmp_path / "plain.key"
    save_key(plain, key)
    with pytest.raises(KeyFileError, match="not encrypted"):
        load_key(plain, "correct horse")
    with pytest.raises(KeyFileError, match="empty"):
        save_key(tmp_path / "empty.key", key, "")


def test_encrypted_file_binds_the_name(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = SecretKey.from_seed(NAME, SEED)
    save_key(path, key, "pw", kdf=KDF_INTERACTIVE)
    renamed = SecretKey.from_seed("example.org/renamed", SEED)
    text = path.read_text().replace(f"name {NAME}", f"name {renamed.name}")
    path.write_text(text.replace(key.vkey, renamed.vkey))
    with pytest.raises(KeyFileError, match="name"):
        load_key(path, "pw")


def test_kdf_parameters_are_bounded(tmp_path: Path, key: SecretKey) -> None:
    with pytest.raises(KeyFileError, match="argon2id"):
        save_key(tmp_path / "weak", key, "pw", kdf=KdfParams(1, 8192))
    path = tmp_path / "k"
    save_key(path, key, "pw", kdf=KDF_INTERACTIVE)
    greedy = path.read_text().replace(
        f"argon2id {KDF_INTERACTIVE.opslimit} {KDF_INTERACTIVE.memlimit} ",
        f"argon2id {KDF_INTERACTIVE.opslimit} {2**40} ",
    )
    path.write_text(greedy)
    with pytest.raises(KeyFileError, match="argon2id"):
        load_key(path, "pw")


def test_default_kdf_round_trip(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "k"
    save_key(path, key, "pw")  # libsodium "moderate": 256 MiB, once
    assert "argon2id 3 268435456 " in path.read_text()
    assert load_key(path, "pw").vkey == key.vkey


# --------------------------------------------------------------------------
# CLI: cleanfeed keys generate-root / show
# --------------------------------------------------------------------------


def test_cli_generate_root_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "root.key"
    result = runner.invoke(keys_group, ["generate-root", "--name", NAME, "--output", str(out)])
    assert result.exit_code == 0, result.output
    vkey = result.output.strip()
    assert Verifier.from_vkey(vkey).name == NAME
    assert mode(out) == 0o600
    assert load_key(out).vkey == vkey
    shown = runner.invoke(keys_group, ["show", str(out)])
    assert shown.exit_code == 0
    assert shown.output.strip() == vkey
    again = runner.invoke(keys_group, ["generate-root", "--name", NAME, "--output", str(out)])
    assert again.exit_code != 0
    assert "exists" in again.output
    assert load_key(out).vkey == vkey


def test_cli_generate_root_with_passphrase_file(tmp_path: Path) -> None:
    runner = CliRunner()
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    out = tmp_path / "root.key"
    result = runner.invoke(
        keys_group,
        ["generate-root", "--name", NAME, "--output", str(out), "--passphrase-file", str(pw)],
    )
    assert result.exit_code == 0, result.output
    # The trailing newline of the passphrase file is not part of the passphrase.
    assert load_key(out, "s3cret").vkey == result.output.strip()
    assert runner.invoke(keys_group, ["show", str(out)]).exit_code != 0
    shown = runner.invoke(keys_group, ["show", str(out), "--passphrase-file", str(pw)])
    assert shown.output.strip() == result.output.strip()


def test_cli_rejects_bad_name_and_insecure_file(tmp_path: Path, key: SecretKey) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        keys_group, ["generate-root", "--name", "has space", "--output", str(tmp_path / "k")]
    )
    assert bad.exit_code != 0
    assert not (tmp_path / "k").exists()
    path = tmp_path / "open.key"
    save_key(path, key)
    path.chmod(0o644)
    shown = runner.invoke(keys_group, ["show", str(path)])
    assert shown.exit_code != 0
    assert "chmod 600" in shown.output
