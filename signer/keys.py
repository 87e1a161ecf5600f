"""Secret Ed25519 keys and their files: the only module touching PyNaCl signing keys.

Key file format (text, versioned, one field per line, ``\\n`` line ends)::

    cleanfeed-secret-key/v1
    name <key name>
    vkey <vkey of the public key>
    seed <base64 of the 32-byte Ed25519 seed>

or, protected by a passphrase::

    cleanfeed-secret-key/v1
    name <key name>
    vkey <vkey of the public key>
    argon2id <opslimit> <memlimit bytes> <base64 16-byte salt>
    secretbox <base64 of 24-byte nonce || XSalsa20-Poly1305 box>

The box key is Argon2id(passphrase, salt, opslimit, memlimit) (libsodium
``crypto_pwhash``); the boxed plaintext is the seed followed by the UTF-8 key
name, so a file whose ``name`` line was edited does not decrypt to a key under
another name. The ``vkey`` line lets an operator see which key a file holds;
on load it must match the key derived from the seed.

Files are written atomically with mode 0600 and refused on load when other
users could read or replace them (as OpenSSH refuses private keys).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

import nacl.exceptions
import nacl.pwhash.argon2id
import nacl.secret
import nacl.signing
import nacl.utils

from blocklist.encoding import b64decode, b64encode, parse_decimal
from blocklist.errors import FormatError
from blocklist.keyring import SIG_TYPE_ED25519, format_vkey, is_valid_key_name
from blocklist.tempfiles import (
    fsync_directory,
    remove_stale_temporaries,
    temporary_path,
    write_new_file,
)
from signer.errors import InsecureKeyFile, KeyFileError, PassphraseRequired
from signer.note import CosignatureVerifier, Verifier, cosigner_key_id, ed25519_key_id

__all__ = [
    "KDF_INTERACTIVE",
    "KDF_MODERATE",
    "KEY_FILE_HEADER",
    "KdfParams",
    "SecretKey",
    "check_key_files",
    "load_key",
    "save_key",
]

#: First line of every key file; a new format gets a new version line.
KEY_FILE_HEADER: Final = "cleanfeed-secret-key/v1"

#: Bytes of an Ed25519 seed (RFC 8032 private key).
SEED_SIZE: Final = 32

#: Largest key file read: a valid one is under 400 bytes; refusing more keeps
#: a wrong path (a log file, a device) from being read into memory.
MAX_KEY_FILE_BYTES: Final = 4096

#: Group and other permission bits: any of them set means another user may
#: read or replace the key (OpenSSH refuses such private keys too).
_GROUP_OTHER_BITS: Final = 0o077


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters (libsodium ``crypto_pwhash``)."""

    opslimit: int
    memlimit: int


#: Default for saved keys: libsodium's "moderate" (3 passes, 256 MiB), about
#: a second on a laptop; slows offline guessing of a stolen file.
KDF_MODERATE: Final = KdfParams(
    nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE
)
#: libsodium's "interactive" (2 passes, 64 MiB): the weakest accepted on load.
KDF_INTERACTIVE: Final = KdfParams(
    nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
)
#: Strongest accepted on load, libsodium's "sensitive" (4 passes, 1 GiB): a
#: file asking for more would exhaust memory or time before any check (DoS).
KDF_MAX: Final = KdfParams(
    nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
)

_SALT_SIZE: Final = nacl.pwhash.argon2id.SALTBYTES
#: Smallest sealed box: nonce, MAC and the seed (the name follows the seed).
_MIN_BOX_SIZE: Final = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + SEED_SIZE


class SecretKey:
    """A named Ed25519 signing key; implements :class:`signer.note.NoteSigner`.

    The seed never appears in ``repr``/``str`` (only name and key ID), and
    instances refuse to be pickled or copied, so secret material cannot slip
    into logs, caches or task queues by accident.
    """

    __slots__ = ("_name", "_public_key", "_signing_key")

    def __init__(self, name: str, signing_key: nacl.signing.SigningKey) -> None:
        """Wrap a PyNaCl signing key; prefer :meth:`generate` or :meth:`from_seed`.

        Raises:
            ValueError: the name is not a valid signed-note key name.
        """
        if not is_valid_key_name(name):
            raise ValueError(f"invalid key name {name[:60]!r}: no spaces, no '+', 1..255 bytes")
        self._name = name
        self._signing_key = signing_key
        self._public_key = bytes(signing_key.verify_key)

    @classmethod
    def generate(cls, name: str) -> SecretKey:
        """Generate a new key from the operating system's CSPRNG.

        Raises:
            ValueError: invalid key name.
        """
        return cls(name, nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> SecretKey:
        """Rebuild a key from its 32-byte seed.

        Raises:
            ValueError: invalid key name or seed size.
        """
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise ValueError(f"an Ed25519 seed is {SEED_SIZE} bytes")
        return cls(name, nacl.signing.SigningKey(seed))

    @property
    def name(self) -> str:
        """The key name written on signature lines."""
        return self._name

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public_key

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID of plain (0x01) signatures."""
        return ed25519_key_id(self._name, self._public_key)

    @property
    def cosigner_key_id(self) -> bytes:
        """The 4-byte key ID of timestamped (0x04) cosignatures."""
        return cosigner_key_id(self._name, self._public_key)

    @property
    def vkey(self) -> str:
        """The public vkey ``<name>+<key ID>+<base64(0x01 || public key)>``."""
        return format_vkey(self._name, SIG_TYPE_ED25519, self._public_key)

    @property
    def verifier(self) -> Verifier:
        """The public verifier of this key."""
        return Verifier.from_public_key(self._name, self._public_key)

    @property
    def cosignature_verifier(self) -> CosignatureVerifier:
        """The public 0x04 cosigner of this key."""
        return CosignatureVerifier.from_public_key(self._name, self._public_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message`` (RFC 8032)."""
        return bytes(self._signing_key.sign(message).signature)

    def _seed(self) -> bytes:
        return bytes(self._signing_key)

    def __repr__(self) -> str:
        return f"SecretKey(name={self._name!r}, key_id={self.key_id.hex()!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretKey cannot be pickled or copied: it holds secret material")

    def __copy__(self) -> NoReturn:
        raise TypeError("SecretKey cannot be copied: it holds secret material")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("SecretKey cannot be copied: it holds secret material")


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    raw = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not raw:
        raise KeyFileError("the passphrase is empty")
    return raw


def _derive(passphrase: bytes, salt: bytes, kdf: KdfParams) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        passphrase,
        salt,
        opslimit=kdf.opslimit,
        memlimit=kdf.memlimit,
    )


def _serialize(key: SecretKey, passphrase: str | bytes | None, kdf: KdfParams) -> bytes:
    lines = [KEY_FILE_HEADER, f"name {key.name}", f"vkey {key.vkey}"]
    if passphrase is None:
        lines.append(f"seed {b64encode(key._seed())}")
    else:
        _check_kdf(kdf)
        salt = nacl.utils.random(_SALT_SIZE)
        box = nacl.secret.SecretBox(_derive(_passphrase_bytes(passphrase), salt, kdf))
        # Binding the name inside the box: an edited name line fails to decrypt.
        sealed = bytes(box.encrypt(key._seed() + key.name.encode("utf-8")))
        lines.append(f"argon2id {kdf.opslimit} {kdf.memlimit} {b64encode(salt)}")
        lines.append(f"secretbox {b64encode(sealed)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _check_kdf(kdf: KdfParams) -> None:
    if not (
        KDF_INTERACTIVE.opslimit <= kdf.opslimit <= KDF_MAX.opslimit
        and KDF_INTERACTIVE.memlimit <= kdf.memlimit <= KDF_MAX.memlimit
    ):
        raise KeyFileError(
            f"argon2id parameters out of the accepted range (opslimit "
            f"{KDF_INTERACTIVE.opslimit}..{KDF_MAX.opslimit}, memlimit "
            f"{KDF_INTERACTIVE.memlimit}..{KDF_MAX.memlimit})"
        )


def save_key(
    path: str | os.PathLike[str],
    key: SecretKey,
    passphrase: str | bytes | None = None,
    *,
    overwrite: bool = False,
    kdf: KdfParams = KDF_MODERATE,
) -> None:
    """Write a key file atomically with mode 0600.

    The content goes to a temporary file in the same directory (created with
    mode 0600, never wider), is fsynced, then linked or renamed into place
    and the directory fsynced, so a crash leaves either no file or a
    complete one. Without ``overwrite`` an existing file is never replaced,
    even by a concurrent writer (``link`` fails if the name exists).

    Args:
        path: where to write.
        key: the key.
        passphrase: encrypt the seed under this passphrase (Argon2id +
            SecretBox); plain seed when None.
        overwrite: replace an existing file.
        kdf: Argon2id cost for an encrypted file.

    Raises:
        KeyFileError: the file exists (without ``overwrite``), the passphrase
            is empty, the KDF parameters are out of range, or an OS error.
    """
    target = Path(path)
    if not overwrite and os.path.lexists(target):
        raise KeyFileError(f"{target} already exists; refusing to overwrite a key file")
    content = _serialize(key, passphrase, kdf)
    directory = target.parent
    remove_stale_temporaries(target)  # leftovers of a killed write
    tmp = temporary_path(target)
    try:
        # Exactly 0600 from the first byte (blocklist.tempfiles.write_new_file).
        write_new_file(tmp, content, mode=0o600)
        _install(tmp, target, overwrite)
        fsync_directory(directory)
    except OSError as e:
        raise KeyFileError(f"cannot write key file {target}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _install(tmp: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        # link() refuses an existing name atomically: no check-then-rename race.
        os.link(tmp, target)
    except FileExistsError as e:
        raise KeyFileError(f"{target} already exists; refusing to overwrite a key file") from e
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        # A file system without hard links: check, then rename (a narrow race
        # with a concurrent writer remains; save_key checked once already).
        if os.path.lexists(target):
            raise KeyFileError(f"{target} already exists; refusing to overwrite") from e
        os.rename(tmp, target)


def _check_file_safety(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path} is not a regular file")
    problems: list[str] = []
    fixes: list[str] = []
    if st.st_uid != os.geteuid():
        problems.append(f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})")
        fixes.append(f"chown {os.geteuid()} {path}")
    if st.st_mode & _GROUP_OTHER_BITS:
        problems.append(
            f"has mode {stat.S_IMODE(st.st_mode):04o}, so other users may read or replace it"
        )
        fixes.append(f"chmod 600 {path}")
    if problems:
        raise InsecureKeyFile(
            f"refusing to use key file {path}: it {' and '.join(problems)}; "
            f"fix with: {' && '.join(fixes)}"
        )


def check_key_files(keys_dir: str | os.PathLike[str]) -> int:
    """Check every ``*.key`` file under ``keys_dir`` as :func:`load_key` would.

    Run at start-up by the processes that sign, so an insecure key stops them
    at once with the fix, instead of failing later in a background job while
    the service looks healthy and checkpoints go stale.

    Returns:
        The number of key files checked.

    Raises:
        InsecureKeyFile: a key file is readable or writable by group or
            others, or not owned by the current user.
        KeyFileError: a key file cannot be examined.
    """
    count = 0
    for path in sorted(Path(keys_dir).glob("**/*.key")):
        try:
            st = os.lstat(path)
        except OSError as e:
            raise KeyFileError(f"cannot examine key file {path}: {e.strerror}") from e
        _check_file_safety(path, st)
        count += 1
    return count


def _read_key_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KeyFileError(f"cannot open key file {path}: {e.strerror}") from e
    try:
        # fstat the opened file, not the path: no swap between check and read.
        _check_file_safety(path, os.fstat(fd))
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KeyFileError(f"{path} is not a cleanfeed key file (not UTF-8)") from e


def _field(lines: list[str], index: int, keyword: str, path: Path) -> str:
    if index >= len(lines) or not lines[index].startswith(keyword + " "):
        raise KeyFileError(f"{path}: line {index + 1} must be the {keyword!r} line")
    return lines[index][len(keyword) + 1 :]


def load_key(path: str | os.PathLike[str], passphrase: str | bytes | None = None) -> SecretKey:
    """Read a key file written by :func:`save_key`.

    Raises:
        InsecureKeyFile: the file is readable or writable by group or others,
            or not owned by the current user; the message gives the fix.
        PassphraseRequired: the file is encrypted and no passphrase was given.
        KeyFileError: missing or unreadable file, unknown format, wrong
            passphrase, a passphrase given for a plain file, or a ``vkey``
            line that does not match the key.
    """
    p = Path(path)
    text = _read_key_file(p)
    if not text.endswith("\n"):
        raise KeyFileError(f"{p}: not a cleanfeed key file (no final newline)")
    lines = text[:-1].split("\n")
    if lines[0] != KEY_FILE_HEADER:
        raise KeyFileError(f"{p}: not a {KEY_FILE_HEADER} key file")
    name = _field(lines, 1, "name", p)
    vkey = _field(lines, 2, "vkey", p)
    try:
        if len(lines) == 4:
            if passphrase is not None:
                raise KeyFileError(f"{p} is not encrypted, but a passphrase was given")
            seed = b64decode(_field(lines, 3, "seed", p), length=SEED_SIZE, what="seed")
        elif len(lines) == 5:
            seed = _decrypt(p, name, lines, passphrase)
        else:
            raise KeyFileError(f"{p}: unexpected number of lines for a key file")
        key = SecretKey.from_seed(name, seed)
    except (FormatError, ValueError) as e:
        raise KeyFileError(f"{p}: malformed key file: {e}") from e
    if key.vkey != vkey:
        raise KeyFileError(f"{p}: the vkey line does not match the key in the file")
    return key


def _decrypt(p: Path, name: str, lines: list[str], passphrase: str | bytes | None) -> bytes:
    kdf_fields = _field(lines, 3, "argon2id", p).split(" ")
    sealed = b64decode(_field(lines, 4, "secretbox", p), what="secretbox")
    if len(sealed) < _MIN_BOX_SIZE:
        raise KeyFileError(f"{p}: the secretbox line is too short")
    if len(kdf_fields) != 3:
        raise KeyFileError(f"{p}: expected 'argon2id <opslimit> <memlimit> <salt>'")
    kdf = KdfParams(
        parse_decimal(kdf_fields[0], what="opslimit"),
        parse_decimal(kdf_fields[1], what="memlimit"),
    )
    _check_kdf(kdf)
    salt = b64decode(kdf_fields[2], length=_SALT_SIZE, what="salt")
    if passphrase is None:
        raise PassphraseRequired(f"{p} is encrypted: a passphrase is needed")
    box = nacl.secret.SecretBox(_derive(_passphrase_bytes(passphrase), salt, kdf))
    try:
        plain = box.decrypt(sealed)
    except nacl.exceptions.CryptoError as e:
        raise KeyFileError(f"{p}: wrong passphrase (or the file was altered)") from e
    if plain[SEED_SIZE:] != name.encode("utf-8"):
        raise KeyFileError(f"{p}: the name line does not match the encrypted key")
    return bytes(plain[:SEED_SIZE])
