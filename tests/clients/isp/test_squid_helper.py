"""The Squid external ACL helper (clients.isp.squid_helper).

The protocol of squid.conf.documented (``external_acl_type``): one answer
line per request line, ``OK``/``ERR``/``BH`` with the channel ID echoed when
Squid sends one, values URL-escaped by Squid. ``OK`` carries the matched
entry's block reference as ``message=`` (Squid's error page shows it as
``%o``; issue 18 item 1). Answers must agree with the
lookups of ``check`` (clients.isp.lookup). The helper also runs as a real
process, spoken to through pipes one line at a time, which proves it
flushes each answer.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import selectors
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest

from blocklist.blockref import block_ref
from blocklist.canonical import expression_hash
from blocklist.errors import InvalidURL
from clients.isp.exports.formats import ExportInput
from clients.isp.exports.output import write_export
from clients.isp.lookup import Matcher
from clients.isp.squid_helper import (
    MAX_REQUEST_LINE,
    HashesFileSource,
    StaticSource,
    main,
    respond,
    serve,
)

REPO = Path(__file__).resolve().parents[3]
LISTED = ["example.com/", "example.org/dir/", "example.net/page.html", "example.net/a%23b"]
ANSWER_TIMEOUT = 30.0  # seconds; a hang fails the test instead of blocking the suite


def squid_escape(url: bytes) -> bytes:
    """Squid's URL-escaping of a value (rfc1738_escape: '%' and unsafe bytes)."""
    return quote_from_bytes(url, safe="/:?=&;@+$,!*'()~-._").encode("ascii")


def ok(expr: str) -> bytes:
    """The answer for a URL whose first listed expression is ``expr``.

    The reference is computed here from the expression's SHA-256, not taken
    from the helper: DESIGN.md part 2, "Block reference".
    """
    return b"OK message=" + block_ref(hashlib.sha256(expr.encode()).digest()).encode()


@pytest.fixture(scope="module")
def source() -> StaticSource:
    return StaticSource(Matcher(expression_hash(e) for e in LISTED))


def write_hashes(path: Path, exprs: list[str]) -> None:
    hashes = [expression_hash(e) for e in exprs]
    data = ExportInput(1, hashes, None, "main", "hotline.example/main", datetime.now(UTC))
    write_export("hashes", data, path)


# --- one line at a time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"http://example.com/", ok("example.com/")),
        (b"https://www.example.com/x?y=1 -", ok("example.com/")),  # %DATA appended as "-"
        (b"http://example.org/dir/page.html", ok("example.org/dir/")),
        (b"http://example.org/dir", b"ERR"),
        (b"http://example.net/page.html?q=1", ok("example.net/page.html")),
        (b"http://example.net/other.html", b"ERR"),
        (b"example.com:443", ok("example.com/")),  # CONNECT: host:port, whole-host entries apply
        (b"example.net:443", b"ERR"),  # a page entry cannot match without a path
        (b"0 http://example.com/", b"0 " + ok("example.com/")),
        (b"17 http://example.test/ -", b"17 ERR"),
        (b"3 example.com:443", b"3 " + ok("example.com/")),
    ],
)
def test_answers(source: StaticSource, line: bytes, answer: bytes) -> None:
    assert respond(source, line) == answer


def test_values_are_unescaped_once_as_squid_escapes_them(source: StaticSource) -> None:
    # The listed page "example.net/a%23b" holds an escaped '#'. Squid sends
    # "%2523"; undoing Squid's escaping gives the URL back, which matches.
    url = b"http://example.net/a%23b"
    assert squid_escape(url) == b"http://example.net/a%2523b"
    assert respond(source, squid_escape(url)) == ok("example.net/a%23b")
    assert respond(source, b"5 " + squid_escape(url)) == b"5 " + ok("example.net/a%23b")
    # protocol=2.5: values arrive raw
    assert respond(source, url, url_escaped=False) == ok("example.net/a%23b")


def test_answers_agree_with_check(source: StaticSource) -> None:
    matcher = source.current()
    urls = [
        b"http://example.com/",
        b"http://sub.example.com/a b",
        b"http://example.org/dir/x",
        b"http://example.org/\xc3\xa9/",
        b"https://example.net/page.html",
        b"http://example.test/",
        b"ftp://example.org/dir/file",
    ]
    for i, url in enumerate(urls):
        result = matcher.match(url)
        expected = ok(result.expression) if result.expression is not None else b"ERR"
        assert respond(source, squid_escape(url)) == expected
        assert (
            respond(source, str(i).encode() + b" " + squid_escape(url))
            == f"{i} ".encode() + expected
        )


def test_invalid_urls_are_err_with_a_message(source: StaticSource) -> None:
    answer = respond(source, b"4 mailto:someone@example.com")
    assert answer.startswith(b'4 ERR message="not a listable URL: ')
    assert answer.endswith(b'"')
    assert respond(source, b"http:///nohost").startswith(b"ERR message=")


def test_messages_are_quoted_for_squid() -> None:
    class Raising:
        def current(self) -> Matcher:
            raise InvalidURL('bad "quote" \\ and\nnewline')

    assert respond(Raising(), b"1 http://example.com/") == (
        b'1 ERR message="not a listable URL: bad \\"quote\\" \\\\ and?newline"'
    )


def test_ok_names_the_most_specific_listed_expression(source: StaticSource) -> None:
    # Host entry example.com/ and a deeper page: the reference is that of the
    # first listed lookup expression (Safe Browsing order, exact host and
    # full path first), the one `cleanfeed isp check` reports.
    both = StaticSource(Matcher(expression_hash(e) for e in ["example.com/", "example.com/a.html"]))
    assert respond(both, b"http://example.com/a.html") == ok("example.com/a.html")
    assert respond(both, b"http://example.com/b.html") == ok("example.com/")


def test_ok_message_survives_squid_unescaping(source: StaticSource) -> None:
    # Squid 5 URL-decodes an unquoted kv-pair value and ends it at the first
    # space (Helper::Reply::parseResponseKeys): the value must be one token
    # that decodes to itself, the printed CF1-XXXX-XXXX-XXXX-XXXX-C form.
    answer = respond(source, b"8 http://example.com/")
    channel, result, pair = answer.split(b" ")
    key, _, value = pair.partition(b"=")
    assert (channel, result, key) == (b"8", b"OK", b"message")
    assert unquote_to_bytes(value) == value
    assert re.fullmatch(rb"CF1(-[A-Z2-7]{4}){4}-[A-Z2-7]", value)


def test_internal_errors_are_bh(source: StaticSource) -> None:
    class Broken:
        def current(self) -> Matcher:
            raise RuntimeError("disk on fire")

    assert respond(Broken(), b"2 http://example.com/") == (
        b'2 BH message="internal error: RuntimeError"'
    )
    assert respond(source, b"") == b'BH message="empty request: expected %URI"'
    assert respond(source, b"9") == b'9 BH message="empty request: expected %URI"'


def test_channel_detection_can_be_forced(source: StaticSource) -> None:
    # Forced off, the first value is the URL, even when it is a number:
    # nothing is echoed and "7" (http://0.0.0.7/) is not listed.
    assert respond(source, b"7 http://example.com/", channels=False) == b"ERR"
    assert respond(source, b"http://example.com/ 7", channels=False) == ok("example.com/")
    # Forced on, any first token is echoed.
    assert respond(source, b"a1 http://example.com/", channels=True) == b"a1 " + ok("example.com/")


def test_serve_answers_every_line_in_order(source: StaticSource) -> None:
    stdin = io.BytesIO(
        b"0 http://example.com/\n"
        b"1 http://example.test/ -\r\n"
        b"2 mailto:x@example.com\n"
        + b"3 http://example.test/"
        + b"a" * MAX_REQUEST_LINE
        + b"\n"
        + b"4 http://example.org/dir/x"  # last line without newline
    )
    stdout = io.BytesIO()
    assert serve(source, stdin, stdout) == 5
    lines = stdout.getvalue().split(b"\n")
    assert lines[-1] == b""
    assert lines[0] == b"0 " + ok("example.com/")
    assert lines[1] == b"1 ERR"
    assert lines[2].startswith(b"2 ERR message=")
    assert lines[3] == b'3 BH message="request line too long"'
    assert lines[4] == b"4 " + ok("example.org/dir/")


# --- reloading the hashes file ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hashes_file_source_reloads_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "hashes.txt"
    write_hashes(path, ["example.com/"])
    clock = Clock()
    logs: list[str] = []
    src = HashesFileSource(path, interval=10, clock=clock, log=logs.append)
    assert src.current().match("http://example.com/").listed
    write_hashes(path, ["example.org/"])  # atomic replace: a new inode
    clock.now = 5  # before the interval: not checked yet
    assert src.current().match("http://example.com/").listed
    clock.now = 10
    assert not src.current().match("http://example.com/").listed
    assert src.current().match("http://example.org/").listed
    assert logs == [f"reloaded {path}: 1 hashes"]


def test_a_broken_replacement_keeps_the_loaded_list(tmp_path: Path) -> None:
    path = tmp_path / "hashes.txt"
    write_hashes(path, ["example.com/"])
    clock = Clock()
    logs: list[str] = []
    src = HashesFileSource(path, interval=0, clock=clock, log=logs.append)
    tmp = tmp_path / "new"
    tmp.write_bytes(b"ab" * 32 + b"\n" + b"cd" * 10)  # truncated
    os.replace(tmp, path)
    assert src.current().match("http://example.com/").listed
    assert src.current().match("http://example.com/").listed
    assert len(logs) == 1  # reported once, not at every request
    assert "keeping the loaded list" in logs[0]
    path.unlink()
    assert src.current().match("http://example.com/").listed
    assert src.current().match("http://example.com/").listed
    assert len(logs) == 2
    write_hashes(path, ["example.org/"])
    assert src.current().match("http://example.org/").listed


def test_main_fails_clearly_without_a_loadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--hashes-file", str(tmp_path / "missing")]) == 2
    assert "cannot load" in capsys.readouterr().err


def test_main_with_a_given_source(source: StaticSource) -> None:
    stdout = io.BytesIO()
    code = main(
        ["--channels", "no"],
        source=source,
        stdin=io.BytesIO(b"http://example.com/\n"),
        stdout=stdout,
    )
    assert code == 0
    assert stdout.getvalue() == ok("example.com/") + b"\n"


# --- as a process, through pipes -------------------------------------------------


#: The module entry point, and the installed script docs/isp.md names in
#: squid.conf (tests/e2e/test_squid_helper_e2e.py runs that under Squid).
MODULE = (sys.executable, "-m", "clients.isp.squid_helper")
SCRIPT = (str(Path(sys.executable).with_name("cleanfeed")), "isp", "squid-helper")


class Helper:
    """A helper process spoken to one line at a time, as Squid does."""

    def __init__(self, *args: str, command: tuple[str, ...] = MODULE) -> None:
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ)

    def ask(self, line: bytes) -> bytes:
        self.stdin.write(line + b"\n")
        self.stdin.flush()
        # The answer must come without closing stdin: the helper flushes.
        if not self.selector.select(ANSWER_TIMEOUT):
            raise AssertionError(f"no answer to {line!r} within {ANSWER_TIMEOUT} s")
        return self.stdout.readline().rstrip(b"\n")

    def close(self) -> tuple[int, bytes]:
        self.stdin.close()
        code = self.proc.wait(ANSWER_TIMEOUT)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.stdout.close()
        self.proc.stderr.close()
        self.selector.close()
        return code, err


@pytest.fixture
def hashes_file(tmp_path: Path) -> Path:
    path = tmp_path / "hashes.txt"
    write_hashes(path, LISTED)
    return path


@pytest.fixture(params=[MODULE, SCRIPT], ids=["module", "script"])
def helper(hashes_file: Path, request: pytest.FixtureRequest) -> Iterator[Helper]:
    h = Helper("--hashes-file", str(hashes_file), "--reload-interval", "0", command=request.param)
    yield h
    if h.proc.poll() is None:
        h.proc.kill()
        h.proc.wait()


def test_process_without_channel_ids(helper: Helper) -> None:
    assert helper.ask(b"http://example.com/ -") == ok("example.com/")
    assert helper.ask(b"http://example.test/ -") == b"ERR"
    assert helper.ask(squid_escape(b"http://example.net/a%23b")) == ok("example.net/a%23b")
    assert helper.ask(b"mailto:x@example.com").startswith(b"ERR message=")
    assert helper.close() == (0, b"")


def test_process_with_channel_ids(helper: Helper) -> None:
    # Squid may use the channels in any order; each answer names its own.
    assert helper.ask(b"7 http://example.org/dir/x -") == b"7 " + ok("example.org/dir/")
    assert helper.ask(b"0 http://example.org/other -") == b"0 ERR"
    assert helper.ask(b"12 example.com:443") == b"12 " + ok("example.com/")
    assert helper.ask(b"3 http://example.net/page.html?x=1") == b"3 " + ok("example.net/page.html")
    assert helper.close() == (0, b"")


def test_process_picks_up_a_new_export(helper: Helper, hashes_file: Path) -> None:
    assert helper.ask(b"1 http://example.test/") == b"1 ERR"
    write_hashes(hashes_file, [*LISTED, "example.test/"])
    assert helper.ask(b"2 http://example.test/") == b"2 " + ok("example.test/")
    code, err = helper.close()
    assert code == 0
    assert b"reloaded" in err


@pytest.mark.parametrize("command", [MODULE, SCRIPT], ids=["module", "script"])
def test_process_refuses_to_start_without_its_list(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # Before reading any request: Squid then sees a helper that died before
    # its first answer, which is fatal with children-startup >= 1.
    h = Helper("--hashes-file", str(tmp_path / "missing"), command=command)
    code, err = h.close()
    assert code == 2
    assert b"cannot load" in err


def _script(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*SCRIPT, *args], capture_output=True, timeout=ANSWER_TIMEOUT, check=False, cwd=REPO
    )


def test_script_check_reports_what_it_loaded(hashes_file: Path) -> None:
    proc = _script("--hashes-file", str(hashes_file), "--check")
    assert proc.returncode == 0, proc.stderr
    count = len(hashes_file.read_text().split())
    assert (
        proc.stdout == f"cleanfeed squid-helper: ok: {count} hashes from {hashes_file}\n".encode()
    )


def test_script_refuses_a_state_that_was_never_synced(tmp_path: Path) -> None:
    from clients.isp.store import StateStore

    with StateStore(tmp_path / "state"):
        pass
    proc = _script("--state-dir", str(tmp_path / "state"), "--check")
    assert proc.returncode == 2
    assert b"holds no verified version yet" in proc.stderr
    missing = _script("--state-dir", str(tmp_path / "nothing"))
    assert missing.returncode == 2
    assert b"cannot load state" in missing.stderr


def test_script_takes_one_source(tmp_path: Path, hashes_file: Path) -> None:
    proc = _script("--state-dir", str(tmp_path), "--hashes-file", str(hashes_file))
    assert proc.returncode == 2
    assert b"not both" in proc.stderr
