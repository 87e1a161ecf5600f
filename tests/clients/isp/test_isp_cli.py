"""`cleanfeed isp` commands over a state directory synced from a MemoryServer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.isp_helpers import LIST, NOW, SERVER, MemoryServer, expression_hash_of, new_log

from blocklist.blockref import block_ref, parse_block_ref
from blocklist.canonical import canonicalize
from blocklist.errors import InvalidURL
from clients.isp.cli import isp_group
from clients.isp.config import IspConfig
from clients.isp.sync import Syncer

LISTED = ("example.com/", "example.org/a/", "www.example.net/p.html")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    log = new_log()
    exprs = {expression_hash_of(e): e for e in LISTED}
    log.publish(sorted(exprs), now=NOW)
    server = MemoryServer(log, expressions=exprs)
    config = IspConfig(
        server=SERVER, list=LIST, token="t", root_keys=(log.root_vkey,),
        state_dir=tmp_path / "state", plaintext=True,
    )  # fmt: skip
    with server.client() as client:
        assert Syncer(config, client, clock=lambda: NOW.timestamp()).sync_once().ok
    return tmp_path / "state"


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(isp_group, list(args), input=stdin)
    return result.exit_code, result.output


def test_check_listed_and_not_listed(state: Path) -> None:
    code, out = run("check", "--state-dir", str(state), "http://sub.example.com/x?y=1")
    assert code == 0
    assert "listed" in out
    assert expression_hash_of("example.com/").hex() in out
    code, out = run("check", "--state-dir", str(state), "http://example.net/")
    assert code == 1
    assert out.startswith("not listed")


def test_check_batch_from_stdin_json(state: Path) -> None:
    urls = "http://example.org/a/b/c\nhttp://example.test/\n\nmailto:x@example.com\n"
    code, out = run("check", "--state-dir", str(state), "--json", "-", stdin=urls)
    assert code == 0
    doc = json.loads(out)
    assert [r["listed"] for r in doc["results"]] == [True, False, False]
    assert doc["results"][0]["expression"] == "example.org/a/"
    assert "error" in doc["results"][2]
    assert "block_ref" not in doc["results"][1]


def test_check_json_reports_the_block_ref_of_a_listed_url(state: Path) -> None:
    # issue 17.1: the reference a block page shows, from the matched hash alone
    code, out = run("check", "--state-dir", str(state), "--json", "http://example.org/a/b")
    assert code == 0
    (result,) = json.loads(out)["results"]
    expected = expression_hash_of("example.org/a/")
    assert result["block_ref"].startswith("CF1-")
    assert parse_block_ref(result["block_ref"]) == expected[:10]
    assert result["block_ref"] == block_ref(expected)


def test_check_error_exit(state: Path, tmp_path: Path) -> None:
    assert run("check", "--state-dir", str(state), "javascript:alert(1)")[0] == 2
    assert run("check", "--state-dir", str(tmp_path / "none"), "http://example.com/")[0] == 2


def test_export_reports_what_the_format_cannot_enforce(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "hosts"
    code, text = run(
        "export", "--state-dir", str(state), "--format", "hosts", "--output", str(out), "--json"
    )
    assert code == 0, text
    doc = json.loads(text)
    assert doc["enforced"] == 1
    assert doc["not_enforceable"] == 2
    assert "0.0.0.0 example.com" in out.read_text()
    code, text = run(
        "export", "--state-dir", str(state), "--format", "hashes", "--output", str(out)
    )
    assert code == 0
    assert sorted(out.read_text().split()) == sorted(expression_hash_of(e).hex() for e in LISTED)


def test_export_blockpage_and_ede_options(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "hosts"
    args = ("export", "--state-dir", str(state), "--format", "hosts", "--output", str(out))
    code, text = run(*args, "--blockpage", "192.0.2.10", "--blockpage", "2001:db8::10")
    assert code == 0, text
    assert out.read_text().splitlines()[-2:] == [
        "192.0.2.10 example.com",
        "2001:db8::10 example.com",
    ]
    # refused before anything is written: the file keeps its content
    before = out.read_bytes()
    code, text = run(*args, "--blockpage", "0.0.0.0")
    assert (code, out.read_bytes()) == (2, before)
    assert "not a unicast address" in text
    code, text = run(*args, "--ede", "15")
    assert code == 2
    assert "not supported by the hosts export" in text
    rpz = tmp_path / "zone"
    rpz_args = ("export", "--state-dir", str(state), "--format", "rpz", "--output", str(rpz))
    code, text = run(*rpz_args, "--ede", "17")
    assert code == 2
    assert "means the user asked for the filtering" in text
    code, text = run(*rpz_args, "--ede", "blocked")
    assert code == 0, text
    assert "ede blocked;" in (tmp_path / "zone.named.conf").read_text()


def test_status_json(state: Path) -> None:
    code, out = run("status", "--state-dir", str(state), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["entries"] == 3
    assert doc["counters"] == {"success": 1}
    assert doc["plaintext_complete"] is True


def test_sync_once_exit_codes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANFEED_")}
    log = new_log()
    base = [sys.executable, "-m", "cleanfeed", "isp", "sync", "--once"]
    missing = subprocess.run(base, env=env, capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert "--server" in missing.stderr
    down = subprocess.run(
        [*base, "--server", "http://127.0.0.1:9", "--list", LIST, "--root-key", log.root_vkey,
         "--state-dir", str(tmp_path / "s"), "--token", "t"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert down.returncode == 2
    assert down.stderr.strip().splitlines()[-1].startswith("failed: network_error:")


def test_large_stdin_batch_on_several_processes_matches_one_by_one(state: Path) -> None:
    # Above PARALLEL_MIN_URLS the batch is split across worker processes: the
    # answers must be the same, in the same order, as checking one by one.
    from clients.isp import cli

    urls = []
    for i in range(cli.PARALLEL_MIN_URLS + 500):
        urls.append(
            ["http://example.org/a/x{}", "http://h{}.example.test/", "javascript:{}"][i % 3].format(
                i
            )
        )
    code, out = run("check", "--state-dir", str(state), "-", stdin="\n".join(urls) + "\n")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(urls)
    for url, line in zip(urls, lines, strict=True):
        status, got = line.split("\t")[:2]
        assert got == url
        expected = (
            "listed"
            if "example.org/a/" in url
            else ("error" if url.startswith("javascript:") else "not listed")
        )
        assert status == expected, line


def test_loaded_batch_answers_as_probing_the_index(state: Path) -> None:
    # A stdin batch larger than INDEX_PROBE_MAX_URLS loads every hash at once
    # (HashIndex); a smaller one, or URLs on the command line, probe the
    # on-disk index one expression at a time. Both must print the same
    # report, line for line and in JSON.
    from clients.isp import cli

    shapes = [
        ("http://example.org/a/x{}", "listed"),
        ("http://h{}.example.test/", "not listed"),
        ("javascript:{}", "error"),
        ("http://www.example.net/p.html?{}", "listed"),
        ("http://Sub{}.EXAMPLE.com/%41", "listed"),
    ]
    urls = [shapes[i % 5][0].format(i) for i in range(cli.INDEX_PROBE_MAX_URLS + 1)]
    parts = (urls[:2], urls[2 : cli.INDEX_PROBE_MAX_URLS], urls[cli.INDEX_PROBE_MAX_URLS :])
    for flags in ([], ["--json"]):
        args = ["check", "--state-dir", str(state), *flags]
        code, loaded = run(*args, "-", stdin="\n".join(urls) + "\n")
        assert code == 0
        probed = [run(*args, "-", stdin="\n".join(part))[1] for part in parts]
        assert run(*args, *parts[0])[1] == probed[0]
        if flags:
            doc = json.loads(loaded)
            assert doc["results"] == [r for p in probed for r in json.loads(p)["results"]]
            assert doc["errors"] == sum(1 for r in doc["results"] if "error" in r) > 0
            assert doc["listed"] == sum(1 for r in doc["results"] if r["listed"]) > 0
            assert doc["results"][1:3] == [
                {"url": urls[1], "listed": False},
                {"url": urls[2], "listed": False, "error": _invalid_url_message(urls[2])},
            ]
        else:
            assert loaded.splitlines() == [line for p in probed for line in p.splitlines()]
            lines = loaded.splitlines()
            assert [line.split("\t")[0] for line in lines] == [
                shapes[i % 5][1] for i in range(len(urls))
            ]
            assert lines[:3] == [
                f"listed\t{urls[0]}\texample.org/a/\t{expression_hash_of('example.org/a/').hex()}",
                f"not listed\t{urls[1]}",
                f"error\t{urls[2]}\t{_invalid_url_message(urls[2])}",
            ]
            assert loaded.endswith("\n")


def _invalid_url_message(url: str) -> str:
    try:
        canonicalize(url)
    except InvalidURL as e:
        return str(e)
    raise AssertionError(f"{url} is a valid URL")


def test_check_with_too_many_urls_exits_2_not_1(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 would read as "not listed"; a refused batch is an error.
    from clients.isp import cli

    monkeypatch.setattr(cli, "MAX_CHECK_URLS", 2)
    code, out = run("check", "--state-dir", str(state), "-", stdin="http://example.net/\n" * 3)
    assert code == 2
    assert "error: too_many_urls: more than 2 URLs on stdin" in out
