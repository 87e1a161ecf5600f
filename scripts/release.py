#!/usr/bin/env python3
"""Build a signed release of cleanfeed that an ISP can install without an index.

One command makes, in ``OUT/cleanfeed-VERSION/``:

* ``cleanfeed-VERSION.tar.gz`` and ``cleanfeed-VERSION-py3-none-any.whl``,
  built by ``python -m build`` (the wheel is built from the sdist, which
  proves the sdist is complete);
* ``wheelhouse/``: wheels of every dependency of the base install (the ISP
  client and the auditor), either copied from ``--wheelhouse DIR`` (made
  earlier with ``pip download``) or downloaded now with ``pip download``;
* ``RELEASE-NOTES.md``: this version's section of CHANGELOG.md (a release
  without a CHANGELOG entry is refused);
* ``SHA256SUMS``: ``sha256sum`` format over every file above;
* ``SHA256SUMS.sig``: a raw Ed25519 signature (RFC 8032) of ``SHA256SUMS``
  by the hotline's *release* key, which is not any list's key: a list key
  signs blocklist data, the release key signs software.

Before anything is signed, the wheel and the wheelhouse are resolved with
``pip install --dry-run --no-index`` for this interpreter, so a release
whose wheelhouse misses a dependency is refused rather than shipped.

The release key is an Ed25519 private key in PKCS#8 PEM (RFC 8410), made
and turned into the public key the ISPs pin with standard tools::

    openssl genpkey -algorithm ed25519 -out release.key   # keep offline, mode 0600
    openssl pkey -in release.key -pubout -out cleanfeed-release.pub.pem

An ISP verifies with OpenSSL and coreutils only (docs/isp.md, Installation)::

    openssl pkeyutl -verify -pubin -inkey cleanfeed-release.pub.pem -rawin \\
      -in SHA256SUMS -sigfile SHA256SUMS.sig
    sha256sum --check --strict SHA256SUMS

Exit status: 0 released, 2 usage or input error (nothing is left in OUT).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Final

from nacl.signing import SigningKey

ROOT: Final = Path(__file__).resolve().parent.parent

#: DER prefix of an unencrypted PKCS#8 Ed25519 private key (RFC 8410 section 7):
#: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
#: Anything else (another algorithm, an encrypted key, attributes) is refused.
_PKCS8_ED25519_PREFIX: Final = bytes.fromhex("302e020100300506032b657004220420")

#: File names the ISP-facing instructions depend on.
SUMS: Final = "SHA256SUMS"
SIGNATURE: Final = "SHA256SUMS.sig"
NOTES: Final = "RELEASE-NOTES.md"
WHEELHOUSE: Final = "wheelhouse"


class ReleaseError(Exception):
    """A release cannot be made; the message says why and what to do."""


def project() -> tuple[str, str, list[str]]:
    """Name, version and base dependencies from pyproject.toml."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    meta = data["project"]
    return str(meta["name"]), str(meta["version"]), [str(d) for d in meta["dependencies"]]


def changelog_section(version: str, changelog: Path) -> str:
    """The ``## [VERSION]`` section of a Keep a Changelog file.

    Raises:
        ReleaseError: there is no section for this version.
    """
    text = changelog.read_text(encoding="utf-8")
    heading = re.compile(rf"^## \[{re.escape(version)}\](?: - \d{{4}}-\d{{2}}-\d{{2}})?$", re.M)
    found = heading.search(text)
    if found is None:
        raise ReleaseError(
            f"{changelog.name} has no '## [{version}] - YYYY-MM-DD' section:"
            " add this release's entry before releasing"
        )
    following = re.compile(r"^## ", re.M).search(text, found.end())
    end = following.start() if following else len(text)
    return text[found.start() : end].rstrip() + "\n"


def load_release_key(path: Path) -> SigningKey:
    """Read an unencrypted Ed25519 PKCS#8 PEM private key kept with mode 0600.

    Raises:
        ReleaseError: the file is unreadable, readable by others, or not such a key.
    """
    try:
        st = path.stat()
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise ReleaseError(f"cannot read release key {path}: {e}") from e
    if st.st_mode & 0o077:
        raise ReleaseError(
            f"release key {path} is readable by other users (mode {st.st_mode & 0o777:04o}):"
            " chmod 600 it"
        )
    match = re.fullmatch(
        r"\s*-----BEGIN PRIVATE KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PRIVATE KEY-----\s*",
        text,
    )
    if match is None:
        raise ReleaseError(
            f"{path} is not an unencrypted PKCS#8 PEM private key"
            " (make one with: openssl genpkey -algorithm ed25519 -out release.key)"
        )
    der = base64.b64decode("".join(match.group(1).split()), validate=True)
    if len(der) != len(_PKCS8_ED25519_PREFIX) + 32 or not der.startswith(_PKCS8_ED25519_PREFIX):
        raise ReleaseError(f"{path} is not an Ed25519 private key")
    return SigningKey(der[len(_PKCS8_ED25519_PREFIX) :])


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ReleaseError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")


def sha256sums(directory: Path) -> bytes:
    """``sha256sum`` lines for every file below ``directory``, sorted by path."""
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(directory).as_posix()}\n")
    return "".join(lines).encode("utf-8")


def release(*, key_file: Path, out: Path, wheelhouse: Path | None, no_isolation: bool) -> Path:
    """Build, collect, check, checksum and sign; return the release directory.

    Raises:
        ReleaseError: any step failed; OUT holds no partial release.
    """
    name, version, dependencies = project()
    notes = changelog_section(version, ROOT / "CHANGELOG.md")
    key = load_release_key(key_file)
    target = out / f"{name}-{version}"
    if target.exists():
        raise ReleaseError(f"{target} exists: a release is never overwritten")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-{version}.", suffix=".tmp", dir=out))
    try:
        build = [sys.executable, "-m", "build", "--outdir", str(staging), str(ROOT)]
        if no_isolation:
            build.insert(3, "--no-isolation")
        _run(build, "python -m build")
        wheel = staging / f"{name}-{version}-py3-none-any.whl"
        sdist = staging / f"{name}-{version}.tar.gz"
        for artefact in (wheel, sdist):
            if not artefact.is_file():
                raise ReleaseError(f"python -m build did not produce {artefact.name}")
        house = staging / WHEELHOUSE
        house.mkdir()
        if wheelhouse is not None:
            copied = 0
            for source in sorted(wheelhouse.glob("*.whl")):
                if not source.name.startswith(f"{name}-"):
                    shutil.copy2(source, house / source.name)
                    copied += 1
            if copied == 0:
                raise ReleaseError(f"{wheelhouse} holds no wheels")
        else:
            download = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
            _run([*download, "--dest", str(house), *dependencies], "pip download")
        # Resolve the install an ISP will run, offline, before signing it.
        dry_run = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run"]
        offline = ["--ignore-installed", "--no-index", "--find-links", str(staging)]
        offline += ["--find-links", str(house)]
        _run(
            [*dry_run, *offline, f"{name}=={version}"],
            "offline install check (is the wheelhouse complete?)",
        )
        (staging / NOTES).write_text(notes, encoding="utf-8")
        sums = sha256sums(staging)
        (staging / SUMS).write_bytes(sums)
        # RFC 8032 PureEd25519 over the file's bytes: what `openssl pkeyutl
        # -verify -rawin` checks.
        (staging / SIGNATURE).write_bytes(key.sign(sums).signature)
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.chmod(0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/release.py",
        description=(
            "Build the versioned wheel and sdist (python -m build), collect a wheelhouse of"
            " the base dependencies, write SHA256SUMS and sign it with the release key."
            " The result installs offline: see docs/isp.md, Installation."
        ),
        epilog=(
            "Make the release key once, keep it offline: openssl genpkey -algorithm ed25519"
            " -out release.key && chmod 600 release.key; publish the output of"
            " openssl pkey -in release.key -pubout. Add a '## [VERSION] - DATE' section to"
            " CHANGELOG.md first."
        ),
    )
    parser.add_argument(
        "--key", type=Path, required=True, help="Ed25519 release key, PKCS#8 PEM, mode 0600"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "release",
        help="directory that receives cleanfeed-VERSION/ (default: ./release)",
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=None,
        help="copy dependency wheels from DIR (made with pip download) instead of downloading",
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="build with this environment's setuptools instead of an isolated one",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the release command; see ``--help``."""
    args = _parser().parse_args(argv)
    try:
        target = release(
            key_file=args.key,
            out=args.out,
            wheelhouse=args.wheelhouse,
            no_isolation=args.no_isolation,
        )
    except ReleaseError as e:
        print(f"release: {e}", file=sys.stderr)
        return 2
    public = load_release_key(args.key).verify_key.encode()
    print(f"released {target}")
    print(f"release key: sha256 of the Ed25519 public key {hashlib.sha256(public).hexdigest()}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
