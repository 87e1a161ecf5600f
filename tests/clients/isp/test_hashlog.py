"""The incremental ``hashes`` export: base file plus append-only log (issue 19 item 4).

Every reader of the log must see exactly what a full ``hashes`` export of
the same version holds; a version must cost only its own changes; a torn
append must read as the previous version and be repaired by the next
writer; damage must be refused, never read as a shorter list.
"""

from __future__ import annotations

import hashlib
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.isp_helpers import NOW as LOG_NOW
from support.isp_helpers import MemoryServer, hashes, isp_config, new_log
from support.memory_log import MemoryLog

from blocklist.errors import FormatError
from clients.errors import ConfigError
from clients.isp.config import ExportSpec, load_config
from clients.isp.exports.formats import ExportInput
from clients.isp.exports.hashlog import (
    COMPACT_FRACTION,
    apply_hashes_log,
    base_path,
    read_hashes_log,
)
from clients.isp.exports.output import render
from clients.isp.lookup import read_hashes_file
from clients.isp.squid_helper import HashesFileSource
from clients.isp.sync import Syncer, SyncOutcome

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def h(i: int) -> bytes:
    return hashlib.sha256(f"example.com/hashlog/{i}".encode()).digest()


def full_render(members: set[bytes], version: int) -> bytes:
    data = ExportInput(version, members, None, "main", "hotline.example/main", NOW)
    return render("hashes", data).files[""]


def materialise(path: Path) -> bytes:
    """The log read back as a plain ``hashes`` file."""
    return "".join(x.hex() + "\n" for x in sorted(read_hashes_log(path).hashes)).encode()


class Writer:
    """Applies random versions to one log and remembers the true list."""

    def __init__(self, out: Path, size: int, seed: int = 1) -> None:
        self.out = out
        self.rng = random.Random(seed)
        self.members = {h(i) for i in range(size)}
        self.next = size
        self.version = 1
        self.result = apply_hashes_log(out, version=1, hashes=lambda: self.members)

    def step(self, adds: int, removes: int) -> None:
        removed = set(self.rng.sample(sorted(self.members), removes))
        added = {h(self.next + i) for i in range(adds)}
        self.next += adds
        new = (self.members - removed) | added
        self.result = apply_hashes_log(
            self.out,
            version=self.version + 1,
            before=self.version,
            added=added,
            removed=removed,
            hashes=lambda: new,
        )
        self.members = new
        self.version += 1


def test_incremental_applications_equal_a_full_render(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 500)
    appended = compacted = 0
    for _ in range(40):
        w.step(w.rng.randint(0, 30), w.rng.randint(0, 20))
        appended += not w.result.compacted
        compacted += w.result.compacted
        # Byte for byte what a full render of the same version writes.
        assert materialise(out) == full_render(w.members, w.version)
        assert read_hashes_log(out).version == w.version
        assert read_hashes_file(out) == w.members
    # Both paths were taken: appends, and compactions when the log grew.
    assert appended >= 20
    assert compacted >= 2
    # Compaction leaves exactly one base.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [out.name, read_hashes_log(out).base]
    )


def test_a_version_appends_only_its_changes(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 5_000)
    base = base_path(out, 1)
    before = base.stat()
    size = out.stat().st_size
    w.step(7, 3)
    assert not w.result.compacted
    # 10 lines of 66 bytes and one "=" line: nothing else was written.
    marker = out.read_bytes()[size + 10 * 66 :]
    assert marker.startswith(b"= 2 10 ")
    assert marker.endswith(b"\n")
    assert len(marker) == len(b"= 2 10 ") + 64 + 1
    after = base.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_log_is_compacted_past_its_fraction(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 1_000)
    limit = COMPACT_FRACTION * base_path(out, 1).stat().st_size
    w.step(5, 5)
    while not w.result.compacted:
        w.step(5, 5)
        assert out.stat().st_size <= limit + 200  # header and markers aside
    assert not base_path(out, 1).exists()
    assert base_path(out, w.version).exists()
    assert materialise(out) == full_render(w.members, w.version)


def test_a_torn_append_reads_as_the_previous_version_and_is_repaired(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 200)
    w.step(3, 2)
    good = out.read_bytes()
    for torn in (b"+" + h(9999).hex().encode() + b"\n+ab", b"-" + b"0" * 64 + b"\n= 3 1 ab"):
        out.write_bytes(good + torn)
        assert read_hashes_log(out).hashes == w.members
        assert read_hashes_log(out).version == 2
    # The next writer truncates the torn bytes and appends its own record.
    w.step(4, 1)
    assert not w.result.compacted
    assert read_hashes_log(out).hashes == w.members
    assert materialise(out) == full_render(w.members, w.version)


def test_a_last_record_with_a_bad_checksum_is_not_applied(tmp_path: Path) -> None:
    # A power loss can persist a record's "=" line before its body.
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 200)
    old = set(w.members)
    w.step(3, 2)
    data = bytearray(out.read_bytes())
    data[-70] ^= 1  # a body byte of the last record: still hex-looking or not
    out.write_bytes(bytes(data))
    assert read_hashes_log(out).hashes == old
    assert read_hashes_log(out).version == 1


def test_a_damaged_record_before_another_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 200)
    w.step(3, 0)
    cut = out.stat().st_size
    w.step(2, 2)
    data = bytearray(out.read_bytes())
    line_start = data.index(b"\n+", 0) + 1  # first record's first line
    data[line_start + 5] = ord("0") if data[line_start + 5] != ord("0") else ord("1")
    out.write_bytes(bytes(data))
    assert cut < len(data)
    with pytest.raises(FormatError, match="damaged record"):
        read_hashes_log(out)


def test_a_replay_on_the_wrong_base_is_refused(tmp_path: Path) -> None:
    # A record that removes an unlisted hash cannot belong to this base.
    out = tmp_path / "cleanfeed.hashes"
    Writer(out, 50)
    body = b"-" + h(10_000).hex().encode() + b"\n"
    record = body + f"= 2 1 {hashlib.sha256(body).hexdigest()}\n".encode()
    with out.open("ab") as f:
        f.write(record)
    with pytest.raises(FormatError, match="removes an unlisted hash"):
        read_hashes_log(out)


def test_a_base_that_does_not_match_the_header_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    Writer(out, 50)
    base = base_path(out, 1)
    base.write_bytes(base.read_bytes()[:-65])  # one hash fewer: a shorter list
    with pytest.raises(FormatError, match="does not match"):
        read_hashes_log(out)


def test_the_header_cannot_name_a_file_elsewhere(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    out.write_bytes(
        b"# cleanfeed hashes log 1: base ../../etc/passwd version 1 count 0 sha256 "
        + b"0" * 64
        + b"\n"
    )
    with pytest.raises(FormatError, match="not this log's base"):
        read_hashes_log(out)


def test_a_plain_export_is_not_a_log(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    out.write_bytes(h(1).hex().encode() + b"\n")
    with pytest.raises(FormatError, match="not a cleanfeed hashes log"):
        read_hashes_log(out)
    # ... but any hashes reader still reads it.
    assert read_hashes_file(out) == {h(1)}


def test_a_gap_in_versions_compacts(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 100)
    members = w.members | {h(500)}
    # The log is at 1; changes from 2 cannot be appended to it.
    result = apply_hashes_log(out, version=3, before=2, added=[h(500)], hashes=lambda: members)
    assert result.compacted
    assert read_hashes_log(out).hashes == members
    assert read_hashes_log(out).version == 3
    again = apply_hashes_log(out, version=3, hashes=lambda: members)
    assert not again.changed


def test_squid_helper_source_follows_appends(tmp_path: Path) -> None:
    out = tmp_path / "cleanfeed.hashes"
    w = Writer(out, 100)
    clock = [0.0]
    messages: list[str] = []
    source = HashesFileSource(out, interval=1.0, clock=lambda: clock[0], log=messages.append)
    assert source.current().hashes == w.members
    w.step(5, 5)
    # mtime granularity: make sure the append is seen as a change.
    st = out.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    clock[0] = 5.0
    assert source.current().hashes == w.members
    assert messages
    assert "reloaded" in messages[-1]


# --- the syncer writes it after each verified commit -----------------------------------


def test_sync_appends_each_version_and_rewrites_a_deleted_export(tmp_path: Path) -> None:
    out = tmp_path / "out" / "cleanfeed.hashes"
    out.parent.mkdir()
    log: MemoryLog = new_log()
    log.publish(hashes(*range(1, 200)), now=LOG_NOW)
    config = isp_config(
        log, tmp_path / "state", exports=(ExportSpec("hashes", out, incremental=True),)
    )
    server = MemoryServer(log)

    class Env:
        def sync(self) -> SyncOutcome:
            with server.client() as client:
                return Syncer(config, client, clock=lambda: LOG_NOW.timestamp()).sync_once()

    env = Env()
    first = env.sync()
    assert first.ok
    assert first.exports_changed == (str(out),)
    base = base_path(out, log.version)
    assert read_hashes_log(out).hashes == log.members
    stamp = base.stat().st_mtime_ns
    for i in range(3):
        log.publish(hashes(1000 + i), hashes(10 + i), now=LOG_NOW)
        outcome = env.sync()
        assert outcome.ok
        assert outcome.exports_changed == (str(out),)
        assert read_hashes_log(out).hashes == log.members
        assert read_hashes_log(out).version == log.version
        assert base.stat().st_mtime_ns == stamp  # appended, never rewritten
        assert outcome.exports[0].enforced == len(log.members)
    assert env.sync().exports_changed == ()
    # A deleted export is written whole again, from a fresh base.
    out.unlink()
    outcome = env.sync()
    assert outcome.exports_changed == (str(out),)
    assert materialise(out) == full_render(log.members, log.version)


def test_incremental_is_refused_for_other_formats(tmp_path: Path) -> None:
    conf = tmp_path / "isp.toml"
    conf.write_text('[[exports]]\nformat = "rpz"\noutput = "/x"\nincremental = true\n')
    with pytest.raises(ConfigError, match="only hashes, unbound, dnsmasq, hosts exports"):
        load_config(conf, environ={})
    conf.write_text('[[exports]]\nformat = "hashes"\noutput = "/x"\nincremental = "yes"\n')
    with pytest.raises(ConfigError, match="true or false"):
        load_config(conf, environ={})
    conf.write_text('[[exports]]\nformat = "hashes"\noutput = "/x"\nincremental = true\n')
    assert load_config(conf, environ={}).exports[0].incremental
