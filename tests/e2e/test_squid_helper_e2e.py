"""docs/isp.md's Squid lines under a real Squid (issue 13 items 1 and 5).

A real ``squid`` (Debian's 5.7) runs on loopback with, verbatim, the
``external_acl_type``/``acl``/``http_access`` lines of each ``# squid.conf``
block of docs/isp.md: the blocks are read from the document and only the
paths change (``/opt/cleanfeed`` is the client installed from a release as
docs/isp.md says, ``/var/lib/cleanfeed/...`` a state directory synced from a
real server and its exports). A loopback origin serves every page; Squid's
``hosts_file`` sends the reserved test hosts there, so nothing leaves the
machine. Squid starts the helper itself, as it does in production
(``argv[0]`` = ``(cleanfeed)``, as Squid's user when run by root).

Shown: a listed page is denied with HTTP 451 and the project's
``ERR_CLEANFEED`` page carrying the matched entry's ``block_ref`` (issue 18
item 1; the template installed by the documented ``squid-template``
command), and an unlisted page on the same host is served; other
spellings of the listed page are denied by the helper but get through the
ACL files; an HTTPS page entry reaches Squid only as ``CONNECT
host:443`` (host entries are enforced there, page entries are not); a
helper that cannot load its list stops Squid with a FATAL error, at start
and at reconfigure, instead of denying everything; the old ``python -m``
line denies every request; the helper's documented ``--check`` command; and
the canary check script of docs/isp.md through that Squid.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.e2e_helpers import LIST, add_and_approve, free_port, publish, serve, token
from support.release_helpers import ISP_DOC, SQUID_USER, Installed, offline_env, world_readable_dir
from support.squid import Squid, chown_to_squid, squid_or_skip

from blocklist.blockref import block_ref

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

SECTION = "### Squid"
PAGE = "www.example.com/listed.html"
HOST_ENTRY = "blocked.example.org"
HTTPS_PAGE = "https://secure.example.com/listed.html"

#: Longest wait for Squid to listen, or to exit when it must fail.
SQUID_DEADLINE_SECONDS = 60.0

#: Longest a request through Squid may take.
REQUEST_TIMEOUT_SECONDS = 30.0


def squid_conf_blocks() -> dict[str, str]:
    """The ``# squid.conf`` blocks of docs/isp.md's Squid section, by kind."""
    blocks: dict[str, str] = {}
    text = ISP_DOC.read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.index("\n### ", start + len(SECTION))
    for match in re.finditer(r"^```\n(# squid\.conf\n.*?)^```", text[start:end], re.M | re.S):
        block = match.group(1)
        kind = (
            "state-dir"
            if "--state-dir" in block
            else "hashes-file"
            if "--hashes-file" in block
            else "acl-files"
        )
        assert kind not in blocks, f"two {kind} blocks in the Squid section"
        blocks[kind] = block
    assert sorted(blocks) == ["acl-files", "hashes-file", "state-dir"], blocks
    return blocks


def substitute(block: str, paths: dict[str, Path]) -> str:
    """The doc block with only its paths replaced."""
    for old, new in paths.items():
        block = block.replace(old, str(new))
    assert "/opt/cleanfeed" not in block, block
    assert "/var/lib/cleanfeed" not in block, block
    return block


# --- the origin --------------------------------------------------------------------


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"origin saw {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# --- the ISP's files ---------------------------------------------------------------


@dataclass(frozen=True)
class IspFiles:
    installed: Installed
    root: Path
    state: Path
    exports: Path
    empty_state: Path
    #: Squid's stock templates plus ERR_CLEANFEED (error_directory).
    errors: Path

    def paths(self, state: Path | None = None) -> dict[str, Path]:
        return {
            "/opt/cleanfeed": self.installed.venv,
            "/var/lib/cleanfeed/state": state or self.state,
            "/var/lib/cleanfeed/exports": self.exports,
        }


def _installed(installed: Installed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(installed.cleanfeed), *args],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def isp_files(
    installed_client: Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IspFiles]:
    work = tmp_path_factory.mktemp("squid-hotline")
    root = world_readable_dir("cleanfeed-squid-")
    server = serve(work / "data", work / "server.log")
    try:
        alice = token(server, name="alice", role="analyst", lists=[LIST])
        bob = token(server, name="bob", role="analyst", lists=[LIST])
        isp = token(server, name="isp-squid", role="isp", lists=[LIST], plaintext=True)
        add_and_approve(server, alice, bob, f"http://{PAGE}", "page")
        add_and_approve(server, alice, bob, f"http://{HOST_ENTRY}/", "host")
        add_and_approve(server, alice, bob, HTTPS_PAGE, "page")
        assert publish(server, alice).status_code == 200
        vkey = server.root_vkey
        config = work / "isp.toml"
        config.write_text("plaintext = true\n")
        state = root / "state"
        common = ["--config", str(config), "--state-dir", str(state)]
        sync = _installed(
            installed_client, "isp", "sync", "--once", *common, "--server", server.base,
            "--token", isp, "--list", LIST, "--root-key", vkey,
        )  # fmt: skip
        assert sync.returncode == 0, sync.stdout + sync.stderr
    finally:
        server.stop()
    exports = root / "exports"
    exports.mkdir(mode=0o755)
    for fmt in ("hashes", "squid"):
        out = exports / "cleanfeed.hashes" if fmt == "hashes" else exports / "cleanfeed"
        export = _installed(
            installed_client, "isp", "export", *common, "--format", fmt, "--output", str(out)
        )
        assert export.returncode == 0, export.stdout + export.stderr
    empty_state = root / "never-synced"
    empty_state.mkdir()
    errors = _install_template(installed_client, root, state)
    chown_to_squid(root)
    try:
        yield IspFiles(installed_client, root, state, exports, empty_state, errors)
    finally:
        shutil.rmtree(root, ignore_errors=True)


#: The [blockpage] settings the Squid page is rendered from (docs/blockpage.md).
BLOCKPAGE_TOML = """\
[blockpage]
isp_name = "Example ISP"
hotline_name = "Example Hotline"
policy = "the Example Hotline's list (100% verified)"
appeal_url = "https://hotline.example/appeal"
help_line_name = "Example Help Line"
help_line_phone = "0800 000 000"
"""


def _install_template(installed: Installed, root: Path, state: Path) -> Path:
    """Run docs/isp.md's ``squid-template`` command into a copy of Squid's templates.

    Squid reads templates from a compiled-in directory
    (/usr/share/squid/errors) that a test must not write to, so the copy
    is named by ``error_directory``; the command is the documented one with
    only its paths changed.
    """
    text = ISP_DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION + "\n") :]
    block = next(
        b for b in re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S) if "squid-template" in b
    )
    command = block.replace("\\\n", " ").splitlines()[0]
    assert "--output /usr/share/squid/errors/templates" in command, command
    errors = root / "errors"
    shutil.copytree(Path("/usr/share/squid/errors/templates"), errors)
    config = root / "isp.toml"
    config.write_text(BLOCKPAGE_TOML)
    command = (
        command.replace("cleanfeed isp", f"{installed.cleanfeed} isp", 1)
        .replace("/etc/cleanfeed/isp.toml", str(config))
        .replace("/var/lib/cleanfeed/state", str(state))
        .replace("/usr/share/squid/errors/templates", str(errors))
    )
    proc = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=offline_env(), timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (errors / "ERR_CLEANFEED").is_file()
    return errors


def expected_ref(expression: str) -> str:
    """DESIGN.md part 2: the block_ref of the SHA-256 of the matched expression."""
    return block_ref(hashlib.sha256(expression.encode("utf-8")).digest())


# --- Squid -------------------------------------------------------------------------


def start_squid(
    directory: Path, doc_lines: str, origin_port: int, *, errors: Path | None = None
) -> Squid:
    """Start Squid in the foreground with ``doc_lines`` and a loopback-only setup.

    Returns once Squid listens, or once it exited (the caller checks which).
    """
    squid = squid_or_skip()
    directory.mkdir()
    port = free_port()
    (directory / "hosts").write_text(
        "".join(f"127.0.0.1 {h}\n" for h in ("www.example.com", HOST_ENTRY, "secure.example.com"))
    )
    conf = directory / "squid.conf"
    conf.write_text(
        f"http_port 127.0.0.1:{port}\n"
        f"visible_hostname squid.test\n"
        f"pid_filename {directory}/squid.pid\n"
        f"cache_log {directory}/cache.log\n"
        "access_log none\n"
        "cache_store_log none\n"
        "cache deny all\n"
        f"coredump_dir {directory}\n"
        "shutdown_lifetime 0 seconds\n"
        # Names resolve from this file only; DNS goes to loopback, never out.
        f"hosts_file {directory}/hosts\n"
        "dns_nameservers 127.0.0.1\n"
        + (f"error_directory {errors}\n" if errors is not None else "")
        + f"# --- docs/isp.md, paths substituted ---\n{doc_lines}"
        "# --- the rest of a minimal configuration ---\n"
        "http_access allow localhost\n"
        "http_access deny all\n"
    )
    chown_to_squid(directory)
    name = f"cfsq{uuid.uuid4().hex[:8]}"
    log = (directory / "stderr.log").open("wb")
    process = subprocess.Popen(
        [squid, "-N", "-n", name, "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    running = Squid(port, process, directory, name)
    deadline = time.monotonic() + SQUID_DEADLINE_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return running
        except OSError:
            time.sleep(0.1)
    if process.poll() is None:
        running.stop()
        pytest.fail(f"squid did not listen:\n{running.cache_log}")
    return running


def request(squid: Squid, target: str, *, method: str = "GET") -> tuple[int, bytes]:
    """Send one raw request through Squid (no client-side URL normalisation)."""
    status, _, body = request_full(squid, target, method=method)
    return status, body


def request_full(
    squid: Squid, target: str, *, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """As :func:`request`, with the answer's header fields (lower-case names)."""
    host = target.split("/")[2] if "://" in target else target
    with socket.create_connection(("127.0.0.1", squid.port), timeout=REQUEST_TIMEOUT_SECONDS) as s:
        s.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data or method == "GET":
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


@pytest.fixture
def squid_dir() -> Iterator[Path]:
    base = world_readable_dir("cleanfeed-squid-run-")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- tests -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["state-dir", "hashes-file"])
def test_documented_helper_line_denies_the_listed_page_only(
    kind: str, isp_files: IspFiles, origin: int, squid_dir: Path
) -> None:
    lines = substitute(squid_conf_blocks()[kind], isp_files.paths())
    assert "deny_info 451:ERR_CLEANFEED cleanfeed_listed" in lines
    squid = start_squid(squid_dir / "squid", lines, origin, errors=isp_files.errors)
    try:
        assert squid.process.poll() is None, squid.cache_log
        base = f"http://www.example.com:{origin}"
        status, body = request(squid, f"{base}/other.html")
        assert (status, body) == (200, b"origin saw /other.html\n"), squid.cache_log
        # RFC 7725: 451, with the project's page naming the matched entry.
        status, headers, body = request_full(squid, f"{base}/listed.html")
        assert status == 451, squid.cache_log
        assert_block_page(body, expected_ref(PAGE))
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["content-type"].startswith("text/html")
        # The helper canonicalises as `check` does: other spellings are the same page.
        for spelling in ("/./listed.html", "//listed.html", "/%6Cisted.html", "/listed.html#x"):
            status, body = request(squid, f"{base}{spelling}")
            assert status == 451, spelling
            assert_block_page(body, expected_ref(PAGE))
        status, body = request(squid, f"http://{HOST_ENTRY}:{origin}/any/page")
        assert status == 451
        assert_block_page(body, expected_ref(f"{HOST_ENTRY}/"))
        # The canary gets the page like any other entry (issue 18).
        status, body = request(squid, "http://canary.cleanfeed.invalid/")
        assert status == 451
        assert_block_page(body, expected_ref("canary.cleanfeed.invalid/"))
        # HTTPS without interception: Squid sees CONNECT host:443 only. The
        # host entry is enforced (with the same 451, which browsers never
        # show for CONNECT); the https page entry cannot be (Squid then
        # tries 127.0.0.1:443, which is closed: 503).
        assert request(squid, f"{HOST_ENTRY}:443", method="CONNECT")[0] == 451
        assert request(squid, "secure.example.com:443", method="CONNECT")[0] not in (403, 451)
    finally:
        squid.stop()
    assert "crashing too rapidly" not in squid.cache_log
    assert "ERR_CLEANFEED" not in squid.cache_log  # no "failed to find" warning


def assert_block_page(body: bytes, ref: str) -> None:
    """The ERR_CLEANFEED page: the reference, the appeal link, no URL, no script."""
    page = body.decode("utf-8")
    assert f'<strong class="ref">{ref}</strong>' in page, page
    assert f'href="https://hotline.example/appeal?block_ref={ref}"' in page, page
    assert "Example Hotline" in page
    assert "Example Help Line" in page
    assert "(100% verified)" in page  # a '%' of the settings, not a Squid code
    for shown in ("listed.html", "example.com", "example.org"):  # never the URL (%U)
        assert shown not in page
    assert "<script" not in page.lower()
    assert "Missing Template" not in page


def test_documented_acl_files_miss_other_spellings(
    isp_files: IspFiles, origin: int, squid_dir: Path
) -> None:
    # docs/isp.md: url_regex sees the URL as spelled; `/./` and `//` get through.
    lines = substitute(squid_conf_blocks()["acl-files"], isp_files.paths())
    squid = start_squid(squid_dir / "squid", lines, origin)
    try:
        base = f"http://www.example.com:{origin}"
        assert request(squid, f"{base}/other.html")[0] == 200, squid.cache_log
        assert request(squid, f"{base}/listed.html")[0] == 403, squid.cache_log
        assert request(squid, f"{base}/./listed.html") == (200, b"origin saw /./listed.html\n")
        # (Python's http.server collapses the leading "//" it receives.)
        status, body = request(squid, f"{base}//listed.html")
        assert (status, body.startswith(b"origin saw /")) == (200, True), squid.cache_log
        assert request(squid, f"http://{HOST_ENTRY}:{origin}/x")[0] == 403
    finally:
        squid.stop()


def test_squid_warns_past_100_regular_expressions(tmp_path: Path) -> None:
    # docs/isp.md: "past 100 regular expressions `squid -k parse` warns".
    squid = squid_or_skip()

    def parse(count: int) -> str:
        regexes = tmp_path / f"{count}.url_regex"
        regexes.write_text(
            "".join(f"^http://www\\.example\\.com/p{i}\\.html$\n" for i in range(count))
        )
        conf = tmp_path / f"{count}.conf"
        conf.write_text(f'acl urls url_regex "{regexes}"\nhttp_access deny urls\n')
        proc = subprocess.run(
            [squid, "-k", "parse", "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return proc.stdout + proc.stderr

    assert "more than 100 regular expressions" not in parse(100)
    assert "more than 100 regular expressions" in parse(101)


def test_a_helper_that_cannot_load_its_list_stops_squid(
    isp_files: IspFiles, origin: int, squid_dir: Path
) -> None:
    # The documented line on a state directory that was never synced.
    lines = substitute(squid_conf_blocks()["state-dir"], isp_files.paths(isp_files.empty_state))
    squid = start_squid(squid_dir / "squid", lines, origin)
    try:
        squid.process.wait(timeout=SQUID_DEADLINE_SECONDS)
    finally:
        squid.stop()
    assert squid.process.returncode != 0
    log = squid.cache_log
    assert "FATAL: The external_acl_type helpers are crashing too rapidly" in log, log
    assert "cannot load state" in log, log


def test_a_reconfigure_whose_helper_cannot_load_its_list_stops_squid(
    isp_files: IspFiles, origin: int, squid_dir: Path
) -> None:
    exports = squid_dir / "exports"
    exports.mkdir()
    shutil.copy2(isp_files.exports / "cleanfeed.hashes", exports / "cleanfeed.hashes")
    chown_to_squid(exports)
    paths = {**isp_files.paths(), "/var/lib/cleanfeed/exports": exports}
    squid = start_squid(
        squid_dir / "squid", substitute(squid_conf_blocks()["hashes-file"], paths), origin
    )
    try:
        assert request(squid, f"http://www.example.com:{origin}/other.html")[0] == 200
        (exports / "cleanfeed.hashes").unlink()
        subprocess.run(
            [
                squid_or_skip(),
                "-k",
                "reconfigure",
                "-n",
                squid.name,
                "-f",
                str(squid.directory / "squid.conf"),
            ],
            check=True,
            timeout=60,
        )
        squid.process.wait(timeout=SQUID_DEADLINE_SECONDS)
    finally:
        squid.stop()
    assert squid.process.returncode != 0
    assert "FATAL: The external_acl_type helpers are crashing too rapidly" in squid.cache_log


def test_the_old_module_line_denied_every_request(
    isp_files: IspFiles, origin: int, squid_dir: Path
) -> None:
    # The line docs/isp.md used to print (issue 13 item 1): Squid starts the
    # interpreter as "(python)", it cannot find its venv, and with no
    # children-startup Squid keeps respawning it and denies every request.
    old = (
        "external_acl_type cleanfeed ttl=300 negative_ttl=60 children-max=4 concurrency=100 \\\n"
        "    %URI /opt/cleanfeed/bin/python -m clients.isp.squid_helper \\\n"
        "    --hashes-file /var/lib/cleanfeed/exports/cleanfeed.hashes\n"
        "acl cleanfeed_listed external cleanfeed\n"
        "http_access deny cleanfeed_listed\n"
    )
    squid = start_squid(squid_dir / "squid", substitute(old, isp_files.paths()), origin)
    try:
        assert request(squid, f"http://www.example.com:{origin}/other.html")[0] == 403
    finally:
        squid.stop()
    assert "No module named" in squid.cache_log
    # Documented lines never name the module entry point.
    assert "-m clients.isp.squid_helper" not in "".join(squid_conf_blocks().values())


def _canary_script(isp_files: IspFiles, squid: Squid) -> str:
    """docs/isp.md's canary check for cron, with this proxy and these paths."""
    text = ISP_DOC.read_text(encoding="utf-8")
    section = text[text.index("## The canary check\n") : text.index("## Status and monitoring")]
    script = next(
        b for b in re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S) if "#!/bin/sh" in b
    )
    assert "-x http://127.0.0.1:3128" in script
    script = script.replace("http://127.0.0.1:3128", f"http://127.0.0.1:{squid.port}")
    return substitute(script, isp_files.paths())


def test_documented_canary_check_through_squid(
    isp_files: IspFiles, origin: int, squid_dir: Path
) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (.ci/run installs it)")
    lines = substitute(squid_conf_blocks()["state-dir"], isp_files.paths())
    squid = start_squid(squid_dir / "squid", lines, origin, errors=isp_files.errors)
    try:
        proc = subprocess.run(
            ["sh", "-c", _canary_script(isp_files, squid)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    finally:
        squid.stop()
    # A Squid that blocks but has no ERR_CLEANFEED (the template was never
    # installed): the check says so instead of passing.
    untemplated = start_squid(squid_dir / "untemplated", lines, origin)
    try:
        proc = subprocess.run(
            ["sh", "-c", _canary_script(isp_files, untemplated)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 1
        assert "shows no block reference (ERR_CLEANFEED installed?)" in proc.stderr
    finally:
        untemplated.stop()
    # Negative control: a Squid without the cleanfeed lines lets the canary through.
    unfiltered = start_squid(squid_dir / "unfiltered", "", origin)
    try:
        proc = subprocess.run(
            ["sh", "-c", _canary_script(isp_files, unfiltered)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 1
        assert "canary not blocked by Squid" in proc.stderr
    finally:
        unfiltered.stop()


def test_documented_helper_check_command(isp_files: IspFiles) -> None:
    text = ISP_DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION + "\n") :]
    block = next(
        b for b in re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S) if "--check" in b
    )
    command = block.split("\n", 1)[1].replace("\\\n", " ")
    assert command.startswith(f"sudo -u {SQUID_USER} /opt/cleanfeed/bin/cleanfeed isp squid-helper")
    runas = f"runuser -u {SQUID_USER} --" if os.geteuid() == 0 else ""
    command = substitute(command.replace(f"sudo -u {SQUID_USER}", runas), isp_files.paths())
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    hashes = (isp_files.exports / "cleanfeed.hashes").read_text().split()
    assert proc.stdout.startswith(f"cleanfeed squid-helper: ok: {len(hashes)} hashes from ")
    missing = command.replace("cleanfeed.hashes", "missing.hashes")
    proc = subprocess.run(
        ["bash", "-c", missing], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "cannot load" in proc.stderr
