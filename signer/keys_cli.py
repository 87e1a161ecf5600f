"""``cleanfeed keys …``: the key ceremony and the online key's lifecycle.

``generate-root``, ``show`` and ``sign-keyring`` handle root keys and run on
the offline ceremony machine: they need neither a database nor a network.
``rotate`` and ``import-keyring`` change a deployment's keyring and need its
data directory and database (:mod:`signer.keyring_ops`). Heavy imports
(PyNaCl, SQLAlchemy, the signer modules) happen inside the commands, so
``cleanfeed --help`` and the other groups stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import click

from signer.publisher_cli import data_dir_option, database_option

__all__ = ["MAX_KEYRING_FILE_BYTES", "keys_group"]

#: Largest keyring file read (signed or not): the format's own limit
#: (blocklist.keyring.MAX_KEYRING_BYTES) plus room for signature lines.
MAX_KEYRING_FILE_BYTES: Final = 1024 * 1024


def _read_passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    raw = path.read_bytes()
    # A passphrase file written with `echo` ends in a newline that is not
    # part of the passphrase.
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if not raw:
        raise click.BadParameter(f"{path} is empty", param_hint="--passphrase-file")
    return raw


_passphrase_option = click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="File holding the passphrase that encrypts the key (first line; "
    "trailing newline ignored).",
)


@click.group(name="keys")
def keys_group() -> None:
    """Key ceremony: generate and show keys, sign keyrings (offline machine)."""


@keys_group.command("generate-root")
@click.option("--name", required=True, help="Key name, e.g. example.com/cleanfeed/root-1.")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key file to create (mode 0600; never overwritten).",
)
@_passphrase_option
def generate_root(name: str, output: Path, passphrase_file: Path | None) -> None:
    """Generate a root key, write it to OUTPUT and print its vkey.

    Run this on the offline ceremony machine; give the printed vkey to
    `cleanfeed init --root-vkey` and to every ISP and auditor to pin.
    """
    from signer.errors import SignerError
    from signer.keys import SecretKey, save_key

    try:
        key = SecretKey.generate(name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--name") from e
    try:
        save_key(output, key, _read_passphrase(passphrase_file))
    except SignerError as e:
        raise click.ClickException(str(e)) from e
    click.echo(key.vkey)


@keys_group.command("show")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@_passphrase_option
def show(key_file: Path, passphrase_file: Path | None) -> None:
    """Print the vkey (public verifier key) of a key file."""
    from signer.errors import SignerError
    from signer.keys import load_key

    try:
        key = load_key(key_file, _read_passphrase(passphrase_file))
    except SignerError as e:
        raise click.ClickException(str(e)) from e
    click.echo(key.vkey)


@keys_group.command("sign-keyring")
@click.option(
    "--keyring",
    "keyring_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Keyring text, or a keyring note already signed by other root holders.",
)
@click.option(
    "--key",
    "key_files",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Root key file to sign with (repeat for several roots).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed keyring note.",
)
@click.option(
    "--passphrase-file",
    "passphrase_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Passphrase for encrypted keys: once for all keys, or once per --key "
    "in the same order. Encrypted keys without one are prompted for.",
)
def sign_keyring_command(
    keyring_file: Path,
    key_files: tuple[Path, ...],
    output: Path,
    passphrase_files: tuple[Path, ...],
) -> None:
    """Sign a keyring with root keys (run on the offline ceremony machine).

    For a root rotation, sign with a threshold of the old roots and a
    threshold of the new ones; signatures already on an input note are kept,
    so root holders on separate machines can sign in turn.
    """
    from blocklist.errors import FormatError
    from blocklist.keyring import Keyring
    from signer.errors import NoteError, PassphraseRequired, SignerError, UnknownKey
    from signer.keyring import parse_verifiers, sign_keyring
    from signer.keys import SecretKey, load_key
    from signer.note import NoteSignature, parse_note, verify_note

    if len(passphrase_files) not in (0, 1, len(key_files)):
        raise click.BadParameter(
            "give one passphrase file for all keys or one per --key", param_hint="--passphrase-file"
        )
    data = keyring_file.read_bytes()
    if len(data) > MAX_KEYRING_FILE_BYTES:
        raise click.ClickException(f"{keyring_file} is too large for a keyring")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise click.ClickException(f"{keyring_file} is not UTF-8") from e
    existing: tuple[NoteSignature, ...] = ()
    text = content
    if "\n\n" in content:  # already a signed note: keep its signatures
        try:
            note = parse_note(content)
        except NoteError as e:
            raise click.ClickException(f"{keyring_file}: {e}") from e
        text, existing = note.text, note.signatures
    try:
        keyring = Keyring.parse(text)
    except FormatError as e:
        raise click.ClickException(f"{keyring_file} is not a valid keyring: {e}") from e

    keys: list[SecretKey] = []
    for i, key_file in enumerate(key_files):
        pass_path = None
        if passphrase_files:
            pass_path = passphrase_files[i if len(passphrase_files) > 1 else 0]
        passphrase = _read_passphrase(pass_path)
        try:
            try:
                keys.append(load_key(key_file, passphrase))
            except PassphraseRequired:
                prompted = click.prompt(f"Passphrase for {key_file}", hide_input=True)
                keys.append(load_key(key_file, prompted))
        except SignerError as e:
            raise click.ClickException(str(e)) from e

    try:
        signed = sign_keyring(keyring, keys, existing=existing)
        total = len(parse_note(signed).signatures)
        try:
            by_roots = len(verify_note(signed, parse_verifiers(keyring.roots)).verifiers)
        except UnknownKey:  # e.g. only old roots have signed a rotation so far
            by_roots = 0
    except SignerError as e:
        raise click.ClickException(str(e)) from e
    try:
        with output.open("x", encoding="utf-8") as f:
            f.write(signed)
    except FileExistsError as e:
        raise click.ClickException(f"{output} already exists; refusing to overwrite") from e
    others = f" and {total - by_roots} by other keys" if total > by_roots else ""
    click.echo(
        f"keyring {keyring.origin} serial {keyring.serial}: {by_roots} signature(s) by its "
        f"{len(keyring.roots)} root(s) (threshold {keyring.threshold}){others}",
        err=True,
    )


@keys_group.command("rotate")
@data_dir_option
@database_option
@click.option("--list", "list_name", default="main", show_default=True)
def rotate_command(data_dir: Path, database_url: str | None, list_name: str) -> None:
    """Rotate the online key (embedded root key only).

    A new keyring serial closes the old key's range at the current version
    and opens the new key's at the next; the checkpoint is re-signed by the
    new key at once. Prints {"list", "serial", "old_vkey", "new_vkey",
    "version"}.
    """
    from blocklist.errors import BlocklistError
    from signer.errors import SignerError
    from signer.keyring_ops import rotate_online_key

    try:
        result = rotate_online_key(data_dir, list_name, database_url=database_url)
    except (SignerError, BlocklistError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(
        json.dumps(
            {
                "list": result.list_name,
                "serial": result.serial,
                "old_vkey": result.old_vkey,
                "new_vkey": result.new_vkey,
                "version": result.version,
            }
        )
    )


@keys_group.command("import-keyring")
@data_dir_option
@database_option
@click.option("--list", "list_name", default="main", show_default=True)
@click.argument("keyring_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_keyring_command(
    data_dir: Path, database_url: str | None, list_name: str, keyring_file: Path
) -> None:
    """Import a keyring note signed on the offline machine (`cleanfeed keys sign-keyring`).

    It must verify as the list's next keyring serial (serial 1: under the
    root vkey given to `cleanfeed init --root-vkey`). Prints {"list", "serial"}.
    """
    from blocklist.errors import BlocklistError
    from signer.errors import SignerError
    from signer.keyring_ops import import_signed_keyring

    data = keyring_file.read_bytes()
    if len(data) > MAX_KEYRING_FILE_BYTES:
        raise click.ClickException(f"{keyring_file} is too large for a keyring")
    try:
        note = data.decode("utf-8")
        keyring = import_signed_keyring(data_dir, list_name, note, database_url=database_url)
    except UnicodeDecodeError as e:
        raise click.ClickException(f"{keyring_file} is not UTF-8") from e
    except (SignerError, BlocklistError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps({"list": list_name, "serial": keyring.serial}))
