"""``cleanfeed isp`` run as docs/isp.md prints it, in a child process, against a
loopback server: exit codes, pinned roots, what exports cannot enforce, and
errors printed once (issue 13, items 3 to 6).

The hotline is a :class:`MemoryServer` (the wire contract of DESIGN.md) on a
real socket, signed with the real clock so the child's freshness checks
pass. Its list holds one entry of each scope: a whole host, a page and a
prefix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.isp_helpers import LIST, ORIGIN, LoopbackServer, MemoryServer, expression_hash_of
from support.memory_log import MemoryLog

from blocklist.keyring import Keyring
from signer.keyring import sign_keyring
from signer.keys import SecretKey

#: One entry per scope: whole host, page, prefix.
HOST, PAGE, PREFIX = "example.com/", "example.org/a/page.html", "example.net/dir/"

#: Longest a CLI child process may run (a sync of one version takes < 2 s).
CLI_TIMEOUT_SECONDS = 60.0


@dataclass
class Hotline:
    log: MemoryLog
    memory: MemoryServer
    base: str
    root_file: Path
    token_file: Path
    tmp: Path

    def common(self, state: Path | None = None, **override: str) -> list[str]:
        """The flags of docs/isp.md's "First sync by hand", some replaced."""
        flags = {
            "--server": self.base,
            "--token-file": str(self.token_file),
            "--list": LIST,
            "--root-key": f"@{self.root_file}",
            "--state-dir": str(state or self.tmp / "state"),
        }
        flags.update({f"--{k.replace('_', '-')}": v for k, v in override.items()})
        return [part for item in flags.items() for part in item]


@contextlib.contextmanager
def serving(tmp_path: Path) -> Iterator[Hotline]:
    now = datetime.now(UTC)
    log = MemoryLog(ORIGIN, now=now)
    exprs = {expression_hash_of(e): e for e in (HOST, PAGE, PREFIX)}
    log.publish(sorted(exprs), now=now)
    memory = MemoryServer(log, expressions=exprs)
    memory.now = now
    root_file = tmp_path / "root.vkey"
    root_file.write_text(log.root_vkey + "\n")
    token_file = tmp_path / "token"
    token_file.write_text("cf_isp_test\n")
    with LoopbackServer(memory) as loopback:
        yield Hotline(log, memory, loopback.base, root_file, token_file, tmp_path)


@pytest.fixture
def hotline(tmp_path: Path) -> Iterator[Hotline]:
    with serving(tmp_path) as h:
        yield h


@pytest.fixture(scope="module")
def synced_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    """One hotline and one synced state for tests that must not change either."""
    with serving(tmp_path_factory.mktemp("hotline")) as h:
        synced(h)
        yield h


def cleanfeed(*args: str, timeout: float = CLI_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
    """``cleanfeed isp ARGS`` in a child process, with no CLEANFEED_* from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANFEED_")}
    return subprocess.run(
        [sys.executable, "-m", "cleanfeed", "isp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def synced(hotline: Hotline) -> Path:
    """The state directory after a first successful sync."""
    state = hotline.tmp / "state"
    done = cleanfeed("sync", "--once", *hotline.common(state))
    assert done.returncode == 0, done.stderr
    return state


def label(vkey: str) -> str:
    """``name+keyid``: how messages name a key (the base64 key may hold a "+")."""
    name, key_id, _ = vkey.split("+", 2)
    return f"{name}+{key_id}"


def one_line(stderr: str) -> str:
    """The only line on stderr (errors are printed once)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --- item 3: configuration errors exit 2 ---------------------------------------------

#: Each command of docs/isp.md with what it needs besides the common flags.
COMMANDS = {
    "sync": ["sync", "--once"],
    "run": ["run"],
    "check": ["check", "http://example.com/"],
    "status": ["status"],
    "export": ["export", "--format", "hosts", "--output", "{tmp}/hosts"],
}

#: The configuration errors of issue 13 item 3, as flag overrides.
CONFIG_ERRORS = {
    "missing token file": {"token_file": "{tmp}/no-such-token"},
    "malformed root key": {"root_key": "hotline.example/cleanfeed/main/root-1+10093004"},
    "server without a scheme": {"server": "hotline.example"},
}


@pytest.mark.parametrize("error", sorted(CONFIG_ERRORS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_configuration_errors_exit_2_on_every_command(
    synced_hotline: Hotline, command: str, error: str
) -> None:
    hotline = synced_hotline
    state = hotline.tmp / "state"
    override = {k: v.format(tmp=hotline.tmp) for k, v in CONFIG_ERRORS[error].items()}
    args = [a.format(tmp=hotline.tmp) for a in COMMANDS[command]]
    done = cleanfeed(*args, *hotline.common(state, **override))
    assert done.returncode == 2, (done.returncode, done.stderr)
    word = "failed" if command in ("sync", "run") else "error"
    assert one_line(done.stderr).startswith(f"{word}: config_error: ")


def test_configuration_file_errors_exit_2(hotline: Hotline) -> None:
    config = hotline.tmp / "isp.toml"
    bad = {
        'proxy = "proxy.example.net:3128"': "proxy must be a URL with a scheme",
        '[[exports]]\nformat = "bind"\noutput = "x.rpz"': "unknown export format 'bind'",
        '[[exports]]\nformat = "hosts"\noutput = "h"\n[[exports]]\nformat = "rpz"\noutput = "h"': (
            "already the output of exports[0]"
        ),
        "intervall = 600": "unknown configuration key(s): intervall",
    }
    for text, message in bad.items():
        config.write_text(text + "\n")
        done = cleanfeed("sync", "--once", "--config", str(config), *hotline.common())
        assert done.returncode == 2, (text, done.stderr)
        line = one_line(done.stderr)
        assert line.startswith("failed: config_error: "), line
        assert message in line, line
    assert not (hotline.tmp / "state").exists()  # refused before touching anything


def test_rejected_data_still_exits_1(hotline: Hotline) -> None:
    # 1 stays reserved for "the hotline's data was rejected": a first sync
    # whose keyring is not signed by the pinned root.
    other = hotline.tmp / "other.vkey"
    other.write_text(SecretKey.generate(f"{ORIGIN}/root").vkey)
    done = cleanfeed("sync", "--once", *hotline.common(root_key=f"@{other}"))
    assert done.returncode == 1, done.stderr
    assert one_line(done.stderr).startswith("rejected: keyring_rejected: ")


# --- item 4: the pinned roots are part of the state ----------------------------------


def rotate_root(log: MemoryLog) -> SecretKey:
    """The hotline rotates its root: serial + 1 names the new root, signed by both."""
    new_root = SecretKey.generate(f"{ORIGIN}/root2")
    rotated = Keyring.create(
        origin=log.origin,
        serial=log.keyring.serial + 1,
        expires=log.keyring.expires,
        threshold=1,
        roots=[new_root.vkey],
        keys=list(log.keyring.keys),
    )
    log.keyrings.append(sign_keyring(rotated, [log.root_key, new_root]))
    log.keyring = rotated
    log.root_key = new_root
    return new_root


def test_a_root_key_the_state_never_trusted_is_refused(hotline: Hotline) -> None:
    state = synced(hotline)
    before = json.loads(cleanfeed("status", "--state-dir", str(state), "--json").stdout)
    stranger = hotline.tmp / "stranger.vkey"
    stranger.write_text(SecretKey.generate("hotline.example/cleanfeed/other/root").vkey)

    done = cleanfeed("sync", "--once", *hotline.common(state, root_key=f"@{stranger}"))
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    stranger_label = "hotline.example/cleanfeed/other/root+"
    assert line.startswith(f"failed: root_key_mismatch: root key {stranger_label}")
    assert f"pinned to {label(hotline.log.root_vkey)} (keyring serial 1)" in line
    assert "sync into a new, empty --state-dir" in line
    after = json.loads(cleanfeed("status", "--state-dir", str(state), "--json").stdout)
    assert after["version"] == before["version"] == 1
    assert after["last_error_reason"] == "root_key_mismatch"

    # The daemon refuses at once instead of retrying forever.
    run = cleanfeed("run", *hotline.common(state, root_key=f"@{stranger}"), timeout=30)
    assert run.returncode == 2, run.stderr
    assert one_line(run.stderr).startswith("failed: root_key_mismatch: ")


def test_the_state_follows_a_root_rotation(hotline: Hotline) -> None:
    state = synced(hotline)
    old_root = hotline.log.root_vkey
    new_root = rotate_root(hotline.log)
    new_file = hotline.tmp / "root-2.vkey"
    new_file.write_text(new_root.vkey)

    # The old pin walks to the rotated keyring; then the ISP updates its
    # pinned file as the hotline asks, and both pins stay accepted.
    for pin in (f"@{hotline.root_file}", f"@{new_file}", old_root, new_root.vkey):
        done = cleanfeed("sync", "--once", *hotline.common(state, root_key=pin))
        assert done.returncode == 0, (pin, done.stderr)
    stranger = SecretKey.generate(f"{ORIGIN}/root3").vkey
    done = cleanfeed("sync", "--once", *hotline.common(state, root_key=stranger))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"rotated to {label(new_root.vkey)} (keyring serial 2)" in line, line


# --- item 5: what a DNS or hosts export cannot enforce --------------------------------


def test_every_sync_reports_what_each_export_cannot_enforce(hotline: Hotline) -> None:
    exports = hotline.tmp / "exports"
    exports.mkdir()
    config = hotline.tmp / "isp.toml"
    config.write_text(
        "plaintext = true\n"
        + "".join(
            f'[[exports]]\nformat = "{fmt}"\noutput = "exports/cleanfeed.{fmt}"\n'
            for fmt in ("hosts", "rpz", "hashes")
        )
    )
    hosts, rpz = exports / "cleanfeed.hosts", exports / "cleanfeed.rpz"
    expected = {
        "hosts": f"export hosts {hosts}: version 1, 1 of 3 entries enforced; "
        "cannot enforce 2 (1 page, 1 prefix); 1 host entries blocked on the exact host only",
        "rpz": f"export rpz {rpz}: version 1, 1 of 3 entries enforced; "
        "cannot enforce 2 (1 page, 1 prefix)",
        "hashes": f"export hashes {exports}/cleanfeed.hashes: version 1, 3 of 3 entries enforced",
    }
    # The first sync writes the exports, the second finds the list current
    # and writes nothing: both report, without -v.
    for status in ("updated", "current"):
        done = cleanfeed("sync", "--once", "--config", str(config), *hotline.common())
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith(f"{status}: ")
        for line in expected.values():
            assert line in lines, done.stdout
        assert "  2 page/prefix entries cannot be enforced by DNS" in done.stdout
        assert done.stderr == ""

    as_json = cleanfeed("sync", "--once", "--json", "--config", str(config), *hotline.common())
    reports = {r["format"]: r for r in json.loads(as_json.stdout)["exports"]}
    assert reports["rpz"]["not_enforceable_by_scope"] == {
        "page": 1,
        "prefix": 1,
        "host": 0,
        "other": 0,
    }
    assert reports["hosts"]["partial"] == 1

    state = ["--state-dir", str(hotline.tmp / "state")]
    text = cleanfeed("status", *state).stdout
    assert "exports: 3\n" in text
    assert f"  {expected['hosts'].removeprefix('export ')}\n" in text
    doc = json.loads(cleanfeed("status", "--json", *state).stdout)
    assert [(r["format"], r["not_enforceable"]) for r in doc["exports"]] == [
        ("hosts", 2),
        ("rpz", 2),
        ("hashes", 0),
    ]
    assert doc["exports"][0]["output"] == str(hosts)
    metrics = cleanfeed("status", "--prometheus", *state).stdout
    gauge = "cleanfeed_isp_export_not_enforceable_entries"
    assert f'{gauge}{{format="rpz",output="{rpz}",scope="prefix"}} 1\n' in metrics
    assert f'{gauge}{{format="hosts",output="{hosts}",scope="host"}} 0\n' in metrics


def test_the_daemon_warns_when_an_export_it_rewrote_cannot_enforce_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from clients.isp.daemon import log_outcome
    from clients.isp.records import ExportReport
    from clients.isp.sync import SyncOutcome

    report = ExportReport("rpz", "/x/cleanfeed.rpz", 2, 1, 2, {"page": 1, "prefix": 1})
    outcome = SyncOutcome(
        "updated", 1, 2, "success", "updated", exports_changed=(report.output,), exports=(report,)
    )
    with caplog.at_level(logging.INFO, logger="cleanfeed.isp"):
        log_outcome(outcome)
        log_outcome(SyncOutcome("current", 2, 2, "up_to_date", "current", exports=(report,)))
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    summary = "export rpz /x/cleanfeed.rpz: version 2, 1 of 3 entries enforced; cannot enforce 2"
    assert [(lvl, msg.startswith(summary)) for lvl, msg in levels] == [
        (logging.INFO, False),
        (logging.WARNING, True),
        (logging.INFO, False),
        (logging.INFO, True),
    ]


# --- item 6: errors print once, and name the list -------------------------------------


def test_no_such_list_is_printed_once_and_named(hotline: Hotline) -> None:
    done = cleanfeed("sync", "--once", *hotline.common(list="mian"))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"failed: not_found: list 'mian' on {hotline.base}: ")


def test_post_commit_problem_is_printed_once(hotline: Hotline) -> None:
    config = hotline.tmp / "isp.toml"
    config.write_text('plaintext = true\n[[exports]]\nformat = "hosts"\noutput = "gone/hosts"\n')
    done = cleanfeed("sync", "--once", "--config", str(config), *hotline.common())
    assert done.returncode == 3, done.stderr
    assert one_line(done.stderr).startswith("warning: export_write: export hosts ")
    # Two failing exports: each problem once, none lost.
    config.write_text(
        'plaintext = true\n[[exports]]\nformat = "hosts"\noutput = "gone/hosts"\n'
        '[[exports]]\nformat = "rpz"\noutput = "gone/rpz"\n'
    )
    done = cleanfeed("sync", "--once", "--config", str(config), *hotline.common())
    assert done.returncode == 3, done.stderr
    assert [line.split(":")[:2] for line in done.stderr.splitlines()] == [
        ["warning", " export_write"],
        ["warning", " export_write"],
    ], done.stderr
    assert "export rpz " in done.stderr.splitlines()[1]
    # -v logs the requests, but the outcome is still printed once.
    done = cleanfeed("sync", "--once", "-v", *hotline.common(list="mian"))
    assert done.returncode == 2
    assert sum("not_found" in line for line in done.stderr.splitlines()) == 1, done.stderr
