"""``cleanfeed isp blockpage``: a real server on loopback over a synced state.

The state is built by the real sync (:class:`clients.isp.sync.Syncer`)
against the in-memory server of ``isp_helpers``; requests go over real
sockets. Issue 18 item 2.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.blockpage_server import Running, running
from support.isp_helpers import NOW, MemoryServer, isp_config, new_log
from support.memory_log import MemoryLog
from support.processes import free_port

from clients.errors import ConfigError, NotInitialised
from clients.isp import blockpage
from clients.isp.blockpage import (
    BlockPageConfig,
    host_expressions,
    load_blockpage_config,
    open_server,
)
from clients.isp.config import load_config
from clients.isp.sync import Syncer

HOST_ENTRY = "abuse-only.example.net/"
PAGE_ENTRY = "pages.example.com/gallery/1.html"
PREFIX_ENTRY = "files.example.org/dump/"
LATER_HOST = "later.example.org/"
LISTED_HOST = "abuse-only.example.net"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

APPEAL = "https://hotline.example/appeal?lang=en"
BLOCKED_BY = "https://isp.example/blocking"


def sha(expr: str) -> bytes:
    return hashlib.sha256(expr.encode()).digest()


def expected_ref(expr: str) -> str:
    """The block_ref, recomputed from DESIGN.md (not by blocklist.blockref)."""
    body = base64.b32encode(sha(expr)[:10]).decode()

    def valid(chars: str) -> bool:
        total = 0
        for i, c in enumerate(reversed(chars)):
            cp = ALPHABET.index(c) * (2 if i % 2 else 1)
            total += cp // 32 + cp % 32
        return total % 32 == 0

    check = next(c for c in ALPHABET if valid(body + c))
    return "CF1-" + "-".join(body[i : i + 4] for i in range(0, 16, 4)) + "-" + check


class State:
    """A state directory synced from an in-memory log with the real Syncer."""

    def __init__(self, tmp_path: Path) -> None:
        self.log: MemoryLog = new_log()
        self.log.publish(sorted(sha(e) for e in (HOST_ENTRY, PAGE_ENTRY, PREFIX_ENTRY)), now=NOW)
        self.server = MemoryServer(self.log)
        self.dir = tmp_path / "state"
        self.config = isp_config(self.log, self.dir)
        self.sync()

    def sync(self) -> None:
        with self.server.client() as client:
            outcome = Syncer(self.config, client, clock=lambda: NOW.timestamp()).sync_once()
        assert outcome.ok, outcome


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path)


def page_config(state: State, **kwargs: Any) -> BlockPageConfig:
    values: dict[str, Any] = {
        "state_dir": state.dir,
        "blocked_by": BLOCKED_BY,
        "isp_name": "Example ISP",
        "hotline_name": "Example Hotline",
        "hotline_url": "https://hotline.example/",
        "policy": "the Example Hotline blocklist policy",
        "appeal_url": APPEAL,
        "help_line_name": "Example Help Line",
        "help_line_url": "https://help.example/",
        "help_line_phone": "0800 000 000",
    }
    values.update(kwargs)
    return BlockPageConfig(**values)


@pytest.fixture
def served(state: State) -> Iterator[Running]:
    with running(page_config(state)) as r:
        yield r


def get(r: Running, host: str, path: str = "/", method: str = "GET") -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.request(method, r.base + path, headers={"Host": host})


# --- a listed host --------------------------------------------------------------------


def test_listed_host_gets_451_with_its_block_ref(served: Running) -> None:
    ref = expected_ref(HOST_ENTRY)
    response = get(served, "abuse-only.example.net")
    assert response.status_code == 451  # RFC 7725 section 3
    h = response.headers
    assert h["link"] == f'<{BLOCKED_BY}>; rel="blocked-by"'  # RFC 7725 section 4
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"
    assert h["content-type"] == "text/html; charset=utf-8"
    assert "set-cookie" not in h
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # falls back to 'none'
    text = response.text
    assert text.count(ref) >= 2  # shown, and filled into the appeal link
    assert "Example Hotline" in text
    assert "the Example Hotline blocklist policy" in text
    assert "may contain images of child sexual abuse" in text
    assert "Example Help Line" in text
    assert "0800 000 000" in text
    # The appeal form of the hotline, with the block_ref as a parameter.
    appeal = f"https://hotline.example/appeal?lang=en&amp;block_ref={ref}"
    assert f'href="{appeal}"' in text
    # No script, no third-party asset, and the listed host is never a link.
    assert "<script" not in text.lower()
    assert "style=" not in text.lower()
    assert "<style" not in text.lower()
    assert "abuse-only.example.net" not in text
    for src in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert src == blockpage.STYLESHEET_PATH or src.startswith(
            ("https://hotline.example/", "https://help.example/", BLOCKED_BY)
        ), src


def test_subdomains_and_any_path_of_a_listed_host_get_the_same_page(served: Running) -> None:
    first = get(served, "abuse-only.example.net")
    for host, path in [
        ("www.abuse-only.example.net", "/"),
        ("a.b.abuse-only.example.net:8080", "/x/y.html?q=1"),
        ("ABUSE-ONLY.example.NET.", "/anything"),
    ]:
        response = get(served, host, path)
        assert response.status_code == 451, host
        # The path is never read: the page is the same whatever was asked.
        assert response.content == first.content


def test_head_gets_the_headers_without_the_page(served: Running) -> None:
    full = get(served, "abuse-only.example.net")
    response = get(served, "abuse-only.example.net", method="HEAD")
    assert response.status_code == 451
    assert response.content == b""
    assert response.headers["content-length"] == str(len(full.content))
    assert response.headers["link"] == full.headers["link"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_405(served: Running, method: str) -> None:
    response = get(served, "abuse-only.example.net", method=method)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_stylesheet_is_served_on_listed_hosts_only(served: Running) -> None:
    response = get(served, "abuse-only.example.net", blockpage.STYLESHEET_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert get(served, "unlisted.example.com", blockpage.STYLESHEET_PATH).status_code == 404


# --- no oracle: page entries and unlisted hosts ------------------------------------


def test_page_and_prefix_entries_get_a_plain_404(served: Running) -> None:
    for host, path in [
        ("pages.example.com", "/gallery/1.html"),
        ("pages.example.com", "/"),
        ("files.example.org", "/dump/"),
        ("files.example.org", "/dump/a.jpg"),
    ]:
        response = get(served, host, path)
        assert response.status_code == 404, (host, path)
        assert response.text == "Not Found\n"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert "link" not in response.headers


def test_thousands_of_hosts_and_paths_get_404(served: Running, state: State) -> None:
    rng = random.Random(18)
    targets = [("pages.example.com", "/gallery/1.html"), ("files.example.org", "/dump/x")]
    for i in range(2_000):
        label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(10))
        host = rng.choice(
            [
                f"h{i}{label}.example.com",
                f"pages.example.com.{label}.test",
                f"abuse-only.example.net.{label}.invalid",
                f"{label}abuse-only.example.net",
                f"192.0.2.{i % 256}",
                "pages.example.com",
                "files.example.org",
            ]
        )
        path = rng.choice(["/", "/gallery/1.html", "/dump/", f"/{label}", f"/{label}?q={i}"])
        targets.append((host, path))
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=httpx.Timeout(10.0)) as client:  # keep-alive
        for host, path in targets:
            response = client.get(served.base + path, headers={"Host": host})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code == 404, (host, path)
    assert statuses == {404: len(targets)}


@pytest.mark.parametrize(
    "host",
    [
        "pages.example.com/gallery/1.html",
        "abuse-only.example.net/x",
        "user@abuse-only.example.net",
        "abuse-only.example.net%2f",
        "a" * 400,
        "",
    ],
)
def test_malformed_hosts_are_not_looked_up(served: Running, host: str) -> None:
    with socket.create_connection((served.host, served.server.port), timeout=10) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = data.split(b" ", 2)[1]
    assert status in (b"400", b"404"), data[:200]


def test_host_expressions_are_host_entries_only() -> None:
    assert host_expressions("www.abuse-only.example.net") == [
        "www.abuse-only.example.net/",
        "abuse-only.example.net/",
        "example.net/",
    ]
    assert host_expressions("[2001:db8::1]:80") == ["[2001:db8::1]/"]


# --- privacy -------------------------------------------------------------------------


def test_no_request_data_is_logged(state: State, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running(page_config(state), host="127.0.0.2") as r:
        transport = httpx.HTTPTransport(local_address="127.0.0.3")
        with httpx.Client(transport=transport, timeout=10) as client:
            for host, path in [
                ("abuse-only.example.net", "/secret-path-one"),
                ("unlisted-host.example.com", "/secret-path-two"),
                ("pages.example.com", "/gallery/1.html"),
            ]:
                client.get(r.base + path, headers={"Host": host})
            client.post(r.base + "/secret-path-three", headers={"Host": "abuse-only.example.net"})
        # a malformed request, which must not be logged either
        with socket.create_connection(("127.0.0.2", r.server.port), 10, ("127.0.0.3", 0)) as s:
            s.sendall(b"GET /secret-path-four HTTP/1.1\r\nHost: a\x01b\r\n\r\n")
            s.recv(1024)
    # Everything logged in the process except this test's own HTTP client.
    logged = "\n".join(
        f"{rec.name} {rec.getMessage()} {rec.exc_text or ''}"
        for rec in caplog.records
        if not rec.name.startswith(("httpx", "httpcore"))
    )
    assert "cleanfeed.blockpage" in logged  # the capture works: the start was logged
    for secret in ("127.0.0.3", "secret-path", "example.com", "example.net", "gallery"):
        assert secret not in logged


def test_cli_logs_no_request_data_and_stops_on_sigterm(state: State, tmp_path: Path) -> None:
    port = free_port("127.0.0.2")
    config = tmp_path / "isp.toml"
    config.write_text(
        f'state_dir = "{state.dir}"\n[blockpage]\nallow_clients = ["127.0.0.3/32"]\n'
        f'blocked_by = "{BLOCKED_BY}"\nappeal_url = "{APPEAL}"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "cleanfeed", "isp", "blockpage"),
            *("--config", str(config), "--listen", f"127.0.0.2:{port}", "--verbose"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.2:{port}"
        transport = httpx.HTTPTransport(local_address="127.0.0.3")
        deadline = time.monotonic() + 30
        with httpx.Client(transport=transport, timeout=10) as client:
            while True:
                try:
                    response = client.get(base + "/p-one", headers={"Host": LISTED_HOST})
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the block page did not start"
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    time.sleep(0.1)
            assert response.status_code == 451
            assert expected_ref(HOST_ENTRY) in response.text
            assert client.get(base + "/p-two", headers={"Host": "x.example.com"}).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    text = err.decode()
    assert "listening on 127.0.0.2" in text
    for secret in ("127.0.0.3", "p-one", "p-two", "example.com", "example.net"):
        assert secret not in text


# --- client networks -------------------------------------------------------------------


def test_unconfigured_client_networks_get_no_answer(state: State) -> None:
    config = page_config(state, allow_clients=("127.0.0.5/32", "2001:db8::/32"))
    with running(config) as r:
        with socket.create_connection(("127.0.0.1", r.server.port), 10, ("127.0.0.4", 0)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: abuse-only.example.net\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(1024) == b""  # closed without a byte
        transport = httpx.HTTPTransport(local_address="127.0.0.5")
        with httpx.Client(transport=transport, timeout=10) as client:
            answer = client.get(r.base + "/", headers={"Host": "abuse-only.example.net"})
        assert answer.status_code == 451


def test_default_answers_loopback_only() -> None:
    assert BlockPageConfig().allow_clients == ("127.0.0.0/8", "::1/128")


# --- a sync that commits is in force without a restart ------------------------------


def test_new_version_is_served_without_a_restart(state: State, served: Running) -> None:
    assert get(served, "later.example.org").status_code == 404
    state.log.publish([sha(LATER_HOST)], now=NOW)
    state.sync()
    response = get(served, "www.later.example.org")
    assert response.status_code == 451
    assert expected_ref(LATER_HOST) in response.text
    state.log.publish([], [sha(HOST_ENTRY)], now=NOW)
    state.sync()
    assert get(served, "abuse-only.example.net").status_code == 404


def test_replaced_state_file_is_reopened(state: State, served: Running, tmp_path: Path) -> None:
    # A state directory rebuilt from scratch (a new database file): the
    # watcher re-opens it, and the new list is the one served.
    other = State(tmp_path / "other")
    other.log.publish([sha(LATER_HOST)], now=NOW)
    other.sync()
    for name in ("state.db-wal", "state.db-shm"):
        (state.dir / name).unlink(missing_ok=True)
    os.replace(other.dir / "state.db", state.dir / "state.db")
    deadline = time.monotonic() + 30
    while get(served, "later.example.org").status_code != 451:
        assert time.monotonic() < deadline, "the replaced state was never re-opened"
        time.sleep(0.2)


# --- configuration -----------------------------------------------------------------------


def test_config_file_is_shared_with_the_isp_client(state: State, tmp_path: Path) -> None:
    path = tmp_path / "isp.toml"
    path.write_text(
        'state_dir = "state"\nlist = "main"\n[blockpage]\n'
        f'blocked_by = "{BLOCKED_BY}"\nallow_clients = ["192.0.2.0/24"]\nlanguage = "en-GB"\n',
        encoding="utf-8",
    )
    config = load_blockpage_config(path, overrides={"listen": "127.0.0.1:0"})
    assert config.state_dir == tmp_path / "state"
    assert config.allow_clients == ("192.0.2.0/24",)
    assert config.language == "en-GB"
    # The sync's own loader accepts the same file.
    assert load_config(path).list == "main"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[blockpage]\ncolour = 'red'\n", "unknown key"),
        ("[blockpage]\nappeal_url = 'javascript:alert(1)'\n", "absolute http"),
        ("[blockpage]\nblocked_by = '/relative'\n", "absolute http"),
        ("[blockpage]\nblocked_by = 'https://isp.example/a>; rel=x'\n", "cannot hold"),
        # a TOML basic string: \r\n are a real CR LF in the value
        ('[blockpage]\nappeal_url = "https://h.example/\\r\\nSet-Cookie: a=b"\n', "cannot hold"),
        ("[blockpage]\nallow_clients = ['10.0.0.1/8']\n", "allow_clients"),
        ("[blockpage]\nlanguage = 'en GB'\n", "language"),
        ("[blockpage]\nmax_connections = 0\n", "positive"),
        ("blockpage = 3\n", "must be a table"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        load_blockpage_config(path)


def test_custom_template_escapes_values(state: State, tmp_path: Path) -> None:
    template = tmp_path / "page.html"
    template.write_text(
        "<p>$title</p><p>ref=$block_ref</p><p>$$5</p><p>$appeal_html</p>", encoding="utf-8"
    )
    config = page_config(state, template=template, title="<b>Blocked</b> & gone")
    with running(config) as r:
        text = get(r, "abuse-only.example.net").text
    assert "<p>&lt;b&gt;Blocked&lt;/b&gt; &amp; gone</p>" in text
    assert f"ref={expected_ref(HOST_ENTRY)}" in text
    assert "<p>$5</p>" in text


def test_template_with_unknown_placeholder_is_refused(state: State, tmp_path: Path) -> None:
    template = tmp_path / "page.html"
    template.write_text("<p>$no_such_thing</p>", encoding="utf-8")
    with pytest.raises(ConfigError, match="no_such_thing"):
        blockpage.PageRenderer(page_config(state, template=template))


def test_template_without_block_ref_is_refused(state: State, tmp_path: Path) -> None:
    template = tmp_path / "page.html"
    template.write_text("<p>$title</p>", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"must show \$block_ref"):
        blockpage.PageRenderer(page_config(state, template=template))


def test_without_appeal_url_the_page_still_says_how_to_appeal(state: State) -> None:
    with running(page_config(state, appeal_url=None, blocked_by=None)) as r:
        response = get(r, "abuse-only.example.net")
    assert response.status_code == 451
    assert "link" not in response.headers
    assert f"quoting the block reference {expected_ref(HOST_ENTRY)}" in response.text


def test_no_verified_list_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(NotInitialised):
        asyncio.run(open_server(BlockPageConfig(state_dir=tmp_path / "none"), "127.0.0.1", 0))


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:80", ("::1", 80)),
        ("h.test:0", ("h.test", 0)),
    ],
)
def test_parse_listen(value: str, parsed: tuple[str, int]) -> None:
    assert blockpage.parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["8080", "::1:80", "127.0.0.1:99999", "127.0.0.1:"])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(ConfigError):
        blockpage.parse_listen(value)


# --- hostile clients --------------------------------------------------------------------


def _exchange(r: Running, data: bytes) -> bytes:
    with socket.create_connection((r.host, r.server.port), timeout=20) as s:
        s.sendall(data)
        out = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                out += chunk
    return out


def test_oversized_request_head_gets_431_and_close(served: Running) -> None:
    filler = b"X-Filler: " + b"a" * (4 * blockpage.MAX_REQUEST_HEAD) + b"\r\n"
    out = _exchange(
        served, b"GET / HTTP/1.1\r\nHost: abuse-only.example.net\r\n" + filler + b"\r\n"
    )
    assert out.startswith(b"HTTP/1.1 431 ")


def test_garbage_gets_400_and_close(served: Running) -> None:
    assert _exchange(served, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )


def test_two_host_headers_get_400(served: Running) -> None:
    out = _exchange(
        served, b"GET / HTTP/1.1\r\nHost: abuse-only.example.net\r\nHost: x.example.com\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 400 ")


def test_slow_request_head_is_cut_off(state: State, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blockpage, "REQUEST_TIMEOUT", 0.5)
    with (
        running(page_config(state)) as r,
        socket.create_connection((r.host, r.server.port), timeout=20) as s,
    ):
        s.sendall(b"GET / HTTP/1.1\r\nHost: abuse-only.exa")  # and never the rest
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(1024) == b""  # closed by the server, not by our timeout


def test_connections_beyond_the_cap_are_closed(state: State) -> None:
    with (
        running(page_config(state, max_connections=1)) as r,
        socket.create_connection((r.host, r.server.port), timeout=20) as first,
    ):
        first.sendall(b"GET / HTTP/1.1\r\nHost: abuse-only.example.net\r\n\r\n")
        assert first.recv(12) == b"HTTP/1.1 451"  # open, kept alive
        out = _exchange(r, b"GET / HTTP/1.1\r\nHost: abuse-only.example.net\r\n\r\n")
        assert out == b""


class _TextOnly(HTMLParser):
    """What a text browser shows: the text, without tags, styles or attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("head", "style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("head", "style", "script")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def test_page_says_everything_in_its_text_alone(served: Running) -> None:
    # A text browser shows no link targets and no styles: the reference, the
    # appeal form's address and the help line must be in the text itself.
    parser = _TextOnly()
    parser.feed(get(served, LISTED_HOST).text)
    text = " ".join(" ".join(parser.parts).split())
    ref = expected_ref(HOST_ENTRY)
    assert f"Block reference: {ref}" in text
    assert f"https://hotline.example/appeal?lang=en&block_ref={ref}" in text
    assert "https://help.example/" in text
    assert "0800 000 000" in text
    assert "Example Hotline asked for this address to be blocked" in text
    assert text.index("Access to this address has been blocked") < text.index(ref)


# --- the command line ---------------------------------------------------------------------


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from clients.isp.cli import isp_group

    return CliRunner().invoke(isp_group, ["blockpage", *args])


def test_cli_without_listen_exits_2(state: State) -> None:
    result = _cli("--state-dir", str(state.dir))
    assert result.exit_code == 2
    assert "--listen HOST:PORT" in result.output


def test_cli_before_the_first_sync_exits_2(tmp_path: Path) -> None:
    result = _cli("--state-dir", str(tmp_path / "empty"), "--listen", "127.0.0.1:0")
    assert result.exit_code == 2
    assert "not_initialised" in result.output


def test_cli_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "isp.toml"
    config.write_text("[blockpage]\nappeal_url = 'ftp://x.example/'\n", encoding="utf-8")
    result = _cli("--config", str(config), "--listen", "127.0.0.1:0")
    assert result.exit_code == 2
    assert "absolute http(s) URL" in result.output


def test_cli_prints_the_default_template() -> None:
    result = _cli("--print-template")
    assert result.exit_code == 0
    assert result.output == blockpage.DEFAULT_TEMPLATE


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback_is_answered_by_default(state: State) -> None:
    with (
        running(BlockPageConfig(state_dir=state.dir), host="::1") as r,
        httpx.Client(timeout=10) as client,
    ):
        response = client.get(f"http://[::1]:{r.server.port}/", headers={"Host": LISTED_HOST})
    assert response.status_code == 451
    assert expected_ref(HOST_ENTRY) in response.text
