"""The signer's high-water mark (signer.highwater): never sign a fork of the log."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.memory_log import MemoryLog

from blocklist.encoding import b64encode
from blocklist.merkle import EMPTY_ROOT
from signer.errors import SignerError
from signer.highwater import (
    ForkRefused,
    HighWater,
    HighWaterError,
    HighWaterMark,
    HighWaterMissing,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ORIGIN = "example.org/cleanfeed/main"


def h(i: int) -> bytes:
    return hashlib.sha256(f"entry-{i}".encode()).digest()


def build(versions: int, salt: str = "") -> MemoryLog:
    log = MemoryLog(ORIGIN, now=NOW)
    for i in range(versions):
        log.publish([hashlib.sha256(f"{salt}{i}".encode()).digest()], now=NOW)
    return log


def marked(tmp_path: Path, log: MemoryLog, size: int) -> HighWater:
    hw = HighWater.for_list(tmp_path / "keys", "main")
    hw.initialise(HighWaterMark(ORIGIN, size, log.root(size)))
    return hw


def proofs(log: MemoryLog) -> Callable[[int, int], Sequence[bytes]]:
    def fn(m: int, n: int) -> Sequence[bytes]:
        return log.consistency_proof(m, n)

    return fn


def test_round_trip_and_file_mode(tmp_path: Path) -> None:
    log = build(3)
    hw = marked(tmp_path, log, 3)
    assert hw.path == tmp_path / "keys" / "main" / "highwater.json"
    assert hw.read() == HighWaterMark(ORIGIN, 3, log.root())
    assert stat.S_IMODE(hw.path.stat().st_mode) == 0o600
    assert json.loads(hw.path.read_text()) == {
        "origin": ORIGIN,
        "size": 3,
        "root": b64encode(log.root()),
    }
    # Written through a temporary file that is gone afterwards.
    assert sorted(p.name for p in hw.path.parent.iterdir()) == [
        "highwater.json",
        "highwater.json.lock",
    ]


def test_initialise_never_overwrites(tmp_path: Path) -> None:
    log = build(2)
    hw = marked(tmp_path, log, 2)
    with pytest.raises(HighWaterError, match="exists already"):
        hw.initialise(HighWaterMark(ORIGIN, 0, EMPTY_ROOT))
    assert hw.read().size == 2


def test_smaller_tree_is_refused_with_the_clear_message(tmp_path: Path) -> None:
    log = build(5)
    hw = marked(tmp_path, log, 5)
    with pytest.raises(ForkRefused) as info:
        hw.check_extension(3, log.root(3), proofs(log))
    message = str(info.value)
    root = b64encode(log.root())
    assert f"the database is behind the signer's high-water mark (size 5, root {root})" in message
    assert "it looks like an old backup or a lagging replica" in message
    assert "refusing to fork the log" in message
    assert "restore the latest backup" in message
    assert isinstance(info.value, SignerError)


def test_same_size_same_root_is_allowed(tmp_path: Path) -> None:
    log = build(4)
    hw = marked(tmp_path, log, 4)
    assert hw.check_extension(4, log.root(), proofs(log)) == hw.read()


def test_same_size_other_root_is_refused(tmp_path: Path) -> None:
    log, other = build(4), build(4, salt="fork")
    hw = marked(tmp_path, log, 4)
    with pytest.raises(ForkRefused, match="same size has another root"):
        hw.check_extension(4, other.root(), proofs(other))


def test_consistent_extension_is_allowed(tmp_path: Path) -> None:
    log = build(3)
    hw = marked(tmp_path, log, 3)
    for i in range(9):
        log.publish([h(1000 + i)], now=NOW)
    hw.check_extension(12, log.root(), proofs(log))


def test_larger_fork_is_refused(tmp_path: Path) -> None:
    # The database diverged after the mark (a restored backup that then
    # published other versions): a larger tree, but not an extension.
    log = build(6)
    hw = marked(tmp_path, log, 6)
    fork = build(9, salt="fork")
    with pytest.raises(ForkRefused, match="does not contain the signed tree"):
        hw.check_extension(9, fork.root(), proofs(fork))


def test_proof_from_the_wrong_tree_is_refused(tmp_path: Path) -> None:
    log = build(5)
    hw = marked(tmp_path, log, 5)
    for i in range(3):
        log.publish([h(2000 + i)], now=NOW)
    other = build(8, salt="other")
    with pytest.raises(ForkRefused):
        hw.check_extension(8, log.root(), proofs(other))


def test_missing_mark_refuses_everything(tmp_path: Path) -> None:
    log = build(1)
    hw = HighWater.for_list(tmp_path / "keys", "main")
    with pytest.raises(HighWaterMissing, match="adopt-highwater"):
        hw.check_extension(1, log.root(), proofs(log))


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{}",
        "[]",
        '{"origin": "example.org/cleanfeed/main", "size": -1, "root": "x"}',
        '{"origin": "example.org/cleanfeed/main", "size": 1, "root": "AAAA"}',
        '{"origin": "example.org/cleanfeed/main", "size": true, "root": "'
        + b64encode(bytes(32))
        + '"}',
        '{"origin": "example.org/cleanfeed/main", "size": 0, "root": "'
        + b64encode(bytes(32))
        + '"}',
        '{"origin": "a b", "size": 1, "root": "' + b64encode(bytes(32)) + '"}',
        '{"origin": "example.org/x", "size": 1, "root": "' + b64encode(bytes(32)) + '", "x": 1}',
        "x" * 5000,
    ],
)
def test_malformed_mark_is_an_error(tmp_path: Path, content: str) -> None:
    hw = HighWater(tmp_path / "highwater.json")
    hw.path.write_text(content)
    with pytest.raises(HighWaterError):
        hw.read()


def test_mark_of_another_origin_is_refused(tmp_path: Path) -> None:
    log = build(2)
    hw = marked(tmp_path, log, 2)
    with pytest.raises(HighWaterError, match="belongs to log"):
        hw.check_extension(2, log.root(), proofs(log), origin="example.org/cleanfeed/other")


def test_advance_only_moves_forward(tmp_path: Path) -> None:
    log = build(6)
    hw = marked(tmp_path, log, 2)
    assert hw.advance(HighWaterMark(ORIGIN, 5, log.root(5))) is True
    # A slower signer process that committed an older tree must not move it back.
    assert hw.advance(HighWaterMark(ORIGIN, 3, log.root(3))) is False
    assert hw.advance(HighWaterMark(ORIGIN, 5, log.root(5))) is False
    assert hw.read() == HighWaterMark(ORIGIN, 5, log.root(5))
    with pytest.raises(HighWaterError):
        hw.advance(HighWaterMark("example.org/other", 6, log.root(6)))


def test_write_failure_is_a_domain_error(tmp_path: Path) -> None:
    log = build(1)
    (tmp_path / "not-a-directory").write_text("")
    hw = HighWater(tmp_path / "not-a-directory" / "highwater.json")
    with pytest.raises(HighWaterError):
        hw.advance(HighWaterMark(ORIGIN, 1, log.root()))


_LOG = build(24)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 24), st.integers(0, 24), st.integers(0, 31))
def test_accepts_exactly_the_consistent_extensions(m: int, n: int, flip: int) -> None:
    # Law: with the mark at (m, root_m), (n, root_n) of the same log is
    # accepted iff n >= m; any altered root_n is refused.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        hw = HighWater(Path(tmp) / "highwater.json")
        hw.initialise(HighWaterMark(ORIGIN, m, _LOG.root(m)))
        fn = proofs(_LOG)
        if n >= m:
            hw.check_extension(n, _LOG.root(n), fn)
        else:
            with pytest.raises(ForkRefused):
                hw.check_extension(n, _LOG.root(n), fn)
        # Every tree extends the empty one, so only a non-empty mark pins leaves.
        if m > 0:
            bad = bytearray(_LOG.root(n))
            bad[flip] ^= 1
            with pytest.raises(ForkRefused):
                hw.check_extension(n, bytes(bad), fn)
