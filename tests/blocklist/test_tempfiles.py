"""Stale temporaries of atomic writes are removed by the next write, and nothing else is."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from blocklist.merkle import EMPTY_ROOT
from blocklist.tempfiles import (
    STALE_TEMPORARY_SECONDS,
    remove_stale_temporaries,
    replace_file,
    temporary_path,
    write_new_file,
)
from clients.common.files import write_atomic
from signer.highwater import HighWater, HighWaterMark
from signer.keys import SecretKey, save_key

OLD = time.time() - STALE_TEMPORARY_SECONDS - 60


def _file(path: Path, *, mtime: float | None = None) -> Path:
    path.write_bytes(b"leftover")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_only_old_temporaries_of_the_target_go(tmp_path: Path) -> None:
    target = tmp_path / "blocklist.rpz"
    stale = _file(temporary_path(target), mtime=OLD)
    stale_mkstemp = _file(tmp_path / ".blocklist.rpz.k3j_9x2a.tmp", mtime=OLD)
    fresh = _file(temporary_path(target))
    other_target = _file(temporary_path(tmp_path / "hosts"), mtime=OLD)
    lookalikes = [
        _file(tmp_path / ".blocklist.rpz.tmp", mtime=OLD),
        _file(tmp_path / ".blocklist.rpz.ABCDEF12.tmp", mtime=OLD),
        _file(tmp_path / ".blocklist.rpz.0123456789abcdef0.tmp", mtime=OLD),
        _file(tmp_path / "blocklist.rpz.0123abcd.tmp", mtime=OLD),
        _file(target, mtime=OLD),
    ]
    directory = temporary_path(target)
    directory.mkdir()
    os.utime(directory, (OLD, OLD))
    link = temporary_path(target)
    link.symlink_to(stale_mkstemp)

    removed = remove_stale_temporaries(target)

    assert sorted(removed) == sorted([stale, stale_mkstemp])
    assert not stale.exists()
    assert not stale_mkstemp.exists()
    for kept in (fresh, other_target, *lookalikes, directory):
        assert kept.exists(), kept
    assert link.is_symlink()


def test_the_age_is_measured_from_now(tmp_path: Path) -> None:
    target = tmp_path / "hashes"
    temp = _file(temporary_path(target), mtime=1_000_000.0)
    assert remove_stale_temporaries(target, now=1_000_000.0 + STALE_TEMPORARY_SECONDS) == []
    assert remove_stale_temporaries(target, now=1_000_001.0 + STALE_TEMPORARY_SECONDS) == [temp]


def test_a_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    assert remove_stale_temporaries(tmp_path / "nowhere" / "file") == []


def test_each_atomic_writer_sweeps_its_target(tmp_path: Path) -> None:
    export = tmp_path / "exports" / "squid.acl"
    export.parent.mkdir()
    mark = HighWater.for_list(tmp_path / "keys", "main")
    mark.path.parent.mkdir(parents=True)
    key_file = tmp_path / "keys" / "main" / "online.key"
    leftovers = [
        _file(temporary_path(export), mtime=OLD),
        _file(temporary_path(mark.path), mtime=OLD),
        _file(temporary_path(key_file), mtime=OLD),
    ]

    write_atomic(export, b"example.com\n")
    mark.initialise(HighWaterMark("example.org/cleanfeed/main", 0, EMPTY_ROOT))
    save_key(key_file, SecretKey.generate("example.org/cleanfeed/main"))

    assert [p.exists() for p in leftovers] == [False, False, False]
    assert export.read_bytes() == b"example.com\n"
    assert mark.path.exists()
    assert key_file.exists()
    # The writers' own temporaries are gone too (renamed into place).
    assert sorted(p.name for p in export.parent.iterdir()) == ["squid.acl"]


def test_write_new_file_has_its_exact_mode_and_never_replaces_or_follows(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)  # narrower than asked: the mode is still exact
    try:
        write_new_file(tmp_path / "public", b"one", mode=0o644)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
    assert (tmp_path / "public").read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        write_new_file(tmp_path / "public", b"two", mode=0o600)
    assert (tmp_path / "public").read_bytes() == b"one"
    # A planted link is never written through (O_EXCL | O_NOFOLLOW).
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    (tmp_path / "planted").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_new_file(tmp_path / "planted", b"secret", mode=0o600)
    assert victim.read_bytes() == b"untouched"


def test_replace_file_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"previous")
    stale = _file(temporary_path(target), mtime=OLD)
    replace_file(target, b"new content", mode=0o600)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    # A failed write (here: the target is a directory, so the rename fails)
    # leaves what was there and no temporary behind.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "inside").write_bytes(b"kept")
    with pytest.raises(IsADirectoryError):
        replace_file(folder, b"x", mode=0o600)
    assert (folder / "inside").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "out.txt"]
