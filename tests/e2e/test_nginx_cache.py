"""End to end: the nginx cache of docs/operations.md in front of a public list.

``cleanfeed init --public`` makes the list ``pub``; ``cleanfeed serve`` runs
on a loopback port; nginx runs the configuration block of docs/operations.md
("A cache in front of a public list (nginx)"), read from the document by
:mod:`bench.nginx_cache` with only the upstream port, a plain-HTTP loopback
listen line and the cache directory substituted (and, where a test needs a
new checkpoint to show within seconds, the 10 s checkpoint validity). So
these tests check what the document tells operators, line for line.

nginx reports what its cache did in the ``X-Cache-Status`` header the
documented configuration adds, and in the access log the wrapper writes;
``cleanfeed serve`` logs every ISP fetch with the token's name, which shows
what reached it.

Marked ``tools``: without nginx the tests skip with a reason, except under
``CI=true``, where they fail: CI must never silently skip a consumer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from support.ci import missing

ROOT = Path(__file__).resolve().parents[2]

from api.longpoll import MAX_WAIT_SECONDS, WAIT_HEADER  # noqa: E402
from bench.common import ServerProcess, cleanfeed_server  # noqa: E402
from bench.nginx_cache import (  # noqa: E402
    CACHE_STATUS_HEADER,
    DOC_LIST,
    AccessLine,
    NginxCache,
    documented_config,
    find_nginx,
    read_access_log,
    start_nginx,
)
from blocklist.checkpoint import Checkpoint  # noqa: E402
from signer.note import parse_note  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

LIST = DOC_LIST
#: Checkpoint validity where a test waits for a new checkpoint (the document
#: says 10 s; nginx counts whole seconds, so 1 s lasts one to two seconds).
SHORT_VALIDITY = "1s"
#: Longest wait for something nginx or the server does in the background
#: (a validity running out, a log line being written).
DEADLINE_SECONDS = 30.0
#: Pause between polls while waiting for one of those.
POLL_PAUSE_SECONDS = 0.1
#: Timeout of one CLI run (an ISP sync of a few entries).
CLI_TIMEOUT_SECONDS = 120

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"
URL_A = "http://203.0.113.7/nginx/a.html"
URL_B = "http://198.51.100.8/nginx/b.html"
NOT_LISTED = "http://example.org/nginx/never-listed.html"
#: Name of the ISP token whose requests must bypass the cache.
ISP_TOKEN_NAME = "isp-nginx-e2e"

T = TypeVar("T")


@pytest.fixture(scope="module")
def nginx() -> str:
    path = find_nginx()
    if path is None:
        missing("nginx is not installed (Debian: apt-get install nginx)")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # A token in the environment would make every ISP request bypass the cache.
    env = {k: v for k, v in os.environ.items() if k != "CLEANFEED_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "cleanfeed", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        env=env,
        check=False,
    )


@dataclass
class Upstream:
    """``cleanfeed serve`` for the public list, and the tokens the tests use."""

    server: ServerProcess
    root_vkey: str
    admin: str
    alice: str
    bob: str
    isp: str  # token named ISP_TOKEN_NAME

    @property
    def base(self) -> str:
        return self.server.base

    def publish(self, url: str) -> int:
        """Add ``url``, have it approved, publish; return the new version."""
        with httpx.Client(base_url=self.base, timeout=30.0) as c:
            added = c.post(
                f"/v1/lists/{LIST}/entries",
                json={"url": url, "scope": "page", "reason": "nginx e2e"},
                headers=_auth(self.alice),
            )
            assert added.status_code == 201, added.text
            approved = c.post(
                f"/v1/lists/{LIST}/entries/{added.json()['id']}/approve",
                headers=_auth(self.bob),
            )
            assert approved.json()["status"] == "active", approved.text
            published = c.post(f"/v1/lists/{LIST}/publish", headers=_auth(self.alice))
            assert published.status_code == 200, published.text
            assert published.json()["published"] is True
            version: int = published.json()["version"]
            return version

    def version(self) -> int:
        """The size of the checkpoint ``cleanfeed serve`` answers now."""
        r = httpx.get(f"{self.base}/v1/lists/{LIST}/checkpoint", timeout=10.0)
        r.raise_for_status()
        return _size(r)

    def fetch_logged(self, token_name: str, resource: str) -> bool:
        """Whether the server logged an ISP fetch of ``resource`` by ``token_name``."""
        for line in self.server.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if (
                record.get("event") == "isp_fetch"
                and record.get("token") == token_name
                and record.get("resource") == resource
            ):
                return True
        return False


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _size(checkpoint: httpx.Response) -> int:
    return Checkpoint.parse(parse_note(checkpoint.text).text).size


@pytest.fixture(scope="module")
def upstream(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("nginx-upstream")
    data_dir = root / "data"
    init = _cli("init", "--data-dir", str(data_dir), "--list", LIST, "--public", "--json")
    assert init.returncode == 0, init.stderr
    pins = json.loads(init.stdout)
    # Versions are cut only by POST …/publish: nothing changes behind a test's back.
    server = cleanfeed_server(
        data_dir, root / "server.log", extra_env={"CLEANFEED_SCHEDULE": "false"}
    )
    try:
        with httpx.Client(base_url=server.base, timeout=30.0) as c:

            def token(**body: object) -> str:
                r = c.post("/v1/tokens", json=body, headers=_auth(pins["admin_token"]))
                assert r.status_code == 201, r.text
                value: str = r.json()["token"]
                return value

            up = Upstream(
                server=server,
                root_vkey=pins["root_vkey"],
                admin=pins["admin_token"],
                alice=token(name="alice", role="analyst"),
                bob=token(name="bob", role="analyst"),
                isp=token(name=ISP_TOKEN_NAME, role="isp", lists=[LIST]),
            )
        assert up.publish(URL_A) == 1
        yield up
    finally:
        server.stop()


@pytest.fixture
def start_cache(
    nginx: str, upstream: Upstream, tmp_path: Path
) -> Iterator[Callable[..., NginxCache]]:
    started: list[NginxCache] = []

    def start(validity: str | None = None) -> NginxCache:
        work = tmp_path / f"nginx-{len(started)}"
        cache = start_nginx(nginx, work, upstream_port=upstream.server.port, validity=validity)
        started.append(cache)
        return cache

    try:
        yield start
    finally:
        for cache in started:
            cache.stop()


def _status(r: httpx.Response) -> str | None:
    value: str | None = r.headers.get(CACHE_STATUS_HEADER)
    return value


def _wait_for(what: str, probe: Callable[[], T | None]) -> T:
    """Call ``probe`` until it returns something, for at most DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {DEADLINE_SECONDS} s for {what}")
        time.sleep(POLL_PAUSE_SECONDS)


def _access_lines_after(cache: NginxCache, mark: int) -> list[AccessLine]:
    return list(read_access_log(cache.access_log))[mark:]


def _access_count(cache: NginxCache) -> int:
    return sum(1 for _ in read_access_log(cache.access_log))


# --- the checkpoint ----------------------------------------------------------------


def test_repeated_checkpoint_polls_are_hits_and_if_none_match_gets_304_from_the_cache(
    upstream: Upstream, start_cache: Callable[..., NginxCache]
) -> None:
    cache = start_cache()  # the documented 10 s validity
    direct = httpx.get(f"{upstream.base}/v1/lists/{LIST}/checkpoint", timeout=10.0)
    url = f"{cache.base}/v1/lists/{LIST}/checkpoint"
    with httpx.Client(timeout=10.0) as c:
        first = c.get(url)
        assert (first.status_code, _status(first)) == (200, "MISS")
        assert first.content == direct.content
        assert first.headers["etag"] == direct.headers["etag"]
        assert first.headers["cache-control"] == REVALIDATE
        for _ in range(3):
            again = c.get(url)
            assert (again.status_code, _status(again)) == (200, "HIT")
            assert again.content == first.content
            assert again.headers["etag"] == first.headers["etag"]
        held = c.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert (held.status_code, _status(held)) == (304, "HIT")
        assert held.content == b""
        assert held.headers["etag"] == first.headers["etag"]
        # A client holding an older checkpoint gets the whole note, still from the cache.
        stale = c.get(url, headers={"If-None-Match": '"00000000000000000000000000000000"'})
        assert (stale.status_code, _status(stale)) == (200, "HIT")
        assert stale.content == first.content


def test_unchanged_checkpoint_is_revalidated_upstream_once_its_validity_has_passed(
    upstream: Upstream, start_cache: Callable[..., NginxCache]
) -> None:
    cache = start_cache(SHORT_VALIDITY)
    url = f"{cache.base}/v1/lists/{LIST}/checkpoint"
    with httpx.Client(timeout=10.0) as c:
        first = c.get(url)
        assert _status(first) == "MISS"

        def next_non_hit() -> httpx.Response | None:
            r = c.get(url)
            return None if _status(r) == "HIT" else r

        revalidated = _wait_for("the cached checkpoint to expire", next_non_hit)
    # nginx asked with the cached ETag and the server answered 304: same note.
    assert (revalidated.status_code, _status(revalidated)) == (200, "REVALIDATED")
    assert revalidated.content == first.content
    assert revalidated.headers["etag"] == first.headers["etag"]


def test_new_version_reaches_pollers_once_the_validity_has_passed(
    upstream: Upstream, start_cache: Callable[..., NginxCache]
) -> None:
    cache = start_cache(SHORT_VALIDITY)
    url = f"{cache.base}/v1/lists/{LIST}/checkpoint"
    with httpx.Client(timeout=10.0) as c:
        before = c.get(url)
        assert before.status_code == 200
        version = upstream.publish(f"http://h{time.monotonic_ns()}.example.test/new.html")
        assert version > _size(before)

        def changed() -> httpx.Response | None:
            r = c.get(url, headers={"If-None-Match": before.headers["etag"]})
            return r if r.status_code != 304 else None

        after = _wait_for(f"the cache to serve the checkpoint of version {version}", changed)
        assert after.status_code == 200
        # Refreshed from upstream (an expired entry answered 200), not a made-up note.
        assert _status(after) == "EXPIRED"
        assert _size(after) == version
        assert after.headers["etag"] != before.headers["etag"]
        cached = c.get(url)
        assert (_status(cached), cached.content) == ("HIT", after.content)


# --- immutable documents and tokens --------------------------------------------------


def test_statement_is_a_miss_then_a_hit(
    upstream: Upstream, start_cache: Callable[..., NginxCache]
) -> None:
    cache = start_cache()
    direct = httpx.get(f"{upstream.base}/v1/lists/{LIST}/statements/1", timeout=10.0)
    assert direct.text.startswith("cleanfeed-version/v1\n")
    url = f"{cache.base}/v1/lists/{LIST}/statements/1"
    with httpx.Client(timeout=10.0) as c:
        first = c.get(url)
        assert (first.status_code, _status(first)) == (200, "MISS")
        assert first.headers["cache-control"] == IMMUTABLE
        assert first.content == direct.content
        for _ in range(2):
            again = c.get(url)
            assert (again.status_code, _status(again)) == (200, "HIT")
            assert again.content == direct.content


def test_requests_with_a_token_are_never_served_from_or_stored_in_the_cache(
    upstream: Upstream, start_cache: Callable[..., NginxCache]
) -> None:
    cache = start_cache()
    token = _auth(upstream.isp)
    statement = f"{cache.base}/v1/lists/{LIST}/statements/1"
    checkpoint = f"{cache.base}/v1/lists/{LIST}/checkpoint"
    with httpx.Client(timeout=10.0) as c:
        # The immutable location: a cached statement is not what a token gets.
        assert _status(c.get(statement)) == "MISS"
        assert _status(c.get(statement)) == "HIT"
        assert not upstream.fetch_logged(ISP_TOKEN_NAME, "statement")
        with_token = c.get(statement, headers=token)
        assert (with_token.status_code, _status(with_token)) == (200, "BYPASS")
        # Made by the server for this token (the cached copy says "public").
        assert with_token.headers["cache-control"].startswith("private,")
        _wait_for(
            "the server to log the token's statement fetch",
            lambda: upstream.fetch_logged(ISP_TOKEN_NAME, "statement") or None,
        )
        # ...and it did not replace the shared copy.
        shared = c.get(statement)
        assert (_status(shared), shared.headers["cache-control"]) == ("HIT", IMMUTABLE)

        # The checkpoint location ignores Cache-Control: a token's answer
        # would be stored for everyone if proxy_no_cache did not stop it.
        first = c.get(checkpoint, headers=token)
        assert (first.status_code, _status(first)) == (200, "BYPASS")
        assert first.headers["cache-control"] == "private, no-cache"
        anonymous = c.get(checkpoint)
        assert (_status(anonymous), anonymous.headers["cache-control"]) == ("MISS", REVALIDATE)
        assert _status(c.get(checkpoint)) == "HIT"
        again = c.get(checkpoint, headers={**token, "If-None-Match": first.headers["etag"]})
        assert (again.status_code, _status(again)) == (304, "BYPASS")
        assert again.headers["cache-control"] == "private, no-cache"


# --- long-poll ------------------------------------------------------------------------


def _waiters(upstream: Upstream) -> int:
    """Long-polls ``cleanfeed serve`` holds now (its public metrics)."""
    text = httpx.get(f"{upstream.base}/metrics", timeout=10.0).text
    match = re.search(r"^cleanfeed_checkpoint_waiters ([0-9.]+)$", text, re.MULTILINE)
    assert match is not None, "no cleanfeed_checkpoint_waiters metric"
    return int(float(match.group(1)))


def test_a_long_poll_passes_through_uncached_and_is_woken_by_a_publish(
    upstream: Upstream, start_cache: Callable[..., NginxCache]
) -> None:
    cache = start_cache()  # the documented 10 s validity
    url = f"{cache.base}/v1/lists/{LIST}/checkpoint"
    with httpx.Client(timeout=10.0) as c:
        etag = c.get(url).headers["etag"]
        assert _status(c.get(url)) == "HIT"  # a cached answer is at hand...
    held = {"If-None-Match": etag}
    with httpx.Client(timeout=30.0) as c:
        # ...but a long-poll is held upstream, not answered from the cache.
        short = c.get(url, params={"wait": 1}, headers=held)
        # Held by the API (it echoes the hold), not answered by nginx.
        assert (short.status_code, _status(short)) == (304, None)
        assert short.headers[WAIT_HEADER] == "1"

    answer: dict[str, httpx.Response] = {}

    def long_poll() -> None:
        with httpx.Client(timeout=MAX_WAIT_SECONDS + 30.0) as c:
            answer["r"] = c.get(url, params={"wait": MAX_WAIT_SECONDS}, headers=held)

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    _wait_for("the server to hold the long-poll", lambda: _waiters(upstream) == 1 or None)
    assert poller.is_alive()
    version = upstream.publish(f"http://h{time.monotonic_ns()}.example.test/held.html")
    poller.join(DEADLINE_SECONDS)
    assert not poller.is_alive(), "the publish did not end the long-poll"
    r = answer["r"]
    assert (r.status_code, _status(r)) == (200, None)
    assert r.headers[WAIT_HEADER] == str(MAX_WAIT_SECONDS)
    assert _size(r) == version
    # Not stored: a plain poll is not a HIT on the long-poll's answer.
    after = httpx.get(url, timeout=10.0)
    assert not (_status(after) == "HIT" and after.headers["etag"] == r.headers["etag"])


def test_the_documented_read_timeout_covers_the_longest_hold() -> None:
    timeouts = re.findall(r"^\s*proxy_read_timeout ([0-9]+)s;", documented_config(), re.MULTILINE)
    assert timeouts, "docs/operations.md: the nginx block sets no proxy_read_timeout"
    # nginx's default (60 s) leaves no room for the answer after a 55 s hold.
    assert all(int(t) >= MAX_WAIT_SECONDS + 15 for t in timeouts)


# --- an ISP client through the cache -------------------------------------------------


def _sync(cache: NginxCache, upstream: Upstream, state: Path) -> dict[str, object]:
    proc = _cli(
        "isp", "sync", "--once", "--json", "--server", cache.base, "--list", LIST,
        "--root-key", upstream.root_vkey, "--state-dir", str(state),
    )  # fmt: skip
    assert proc.returncode == 0, f"isp sync exited {proc.returncode}: {proc.stderr}"
    outcome: dict[str, object] = json.loads(proc.stdout)
    return outcome


def _listed(state: Path, url: str) -> bool:
    proc = _cli("isp", "check", "--state-dir", str(state), url)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


def test_isp_sync_through_the_cache_verifies_and_applies_the_list(
    upstream: Upstream, start_cache: Callable[..., NginxCache], tmp_path: Path
) -> None:
    cache = start_cache(SHORT_VALIDITY)
    version = upstream.version()
    immutable = {
        f"/v1/lists/{LIST}/statements/{version}",
        f"/v1/lists/{LIST}/proofs/inclusion?version={version}&size={version}",
        f"/v1/lists/{LIST}/proofs/range?size={version}",
        f"/v1/lists/{LIST}/snapshot?version={version}",
    }

    first_state = tmp_path / "isp-1"
    mark = _access_count(cache)
    outcome = _sync(cache, upstream, first_state)
    assert (outcome["status"], outcome["version_after"]) == ("updated", version)
    assert _listed(first_state, URL_A)
    assert not _listed(first_state, NOT_LISTED)
    # The first sync went through nginx (snapshot path) and filled the cache.
    seen = {line.uri: line.cache_status for line in _access_lines_after(cache, mark)}
    assert {uri: seen.get(uri) for uri in immutable} == dict.fromkeys(immutable, "MISS")

    # A second ISP gets every immutable document from the cache.
    second_state = tmp_path / "isp-2"
    mark = _access_count(cache)
    outcome = _sync(cache, upstream, second_state)
    assert (outcome["status"], outcome["version_after"]) == ("updated", version)
    assert _listed(second_state, URL_A)
    seen = {line.uri: line.cache_status for line in _access_lines_after(cache, mark)}
    assert {uri: seen.get(uri) for uri in immutable} == dict.fromkeys(immutable, "HIT")

    # A new version: once the cache serves its checkpoint, an incremental
    # sync through nginx verifies the new statements and applies them.
    new = upstream.publish(URL_B)
    url = f"{cache.base}/v1/lists/{LIST}/checkpoint"
    _wait_for(
        f"the cache to serve version {new}",
        lambda: True if _size(httpx.get(url, timeout=10.0)) == new else None,
    )
    outcome = _sync(cache, upstream, first_state)
    assert (outcome["status"], outcome["version_before"], outcome["version_after"]) == (
        "updated",
        version,
        new,
    )
    assert _listed(first_state, URL_B)
    assert _listed(first_state, URL_A)
