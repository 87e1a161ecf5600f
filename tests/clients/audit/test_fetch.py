"""Downloading bundles: capped, typed errors, atomic writes, progress."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.audit_helpers import hash_only, small_log

from clients.audit.bundle import dumps, load
from clients.audit.fetch import PLAIN_PROGRESS_STEP, fetch_bundle, progress_reporter
from clients.common.http import raise_for_status
from clients.errors import (
    AccessDenied,
    BundleError,
    BundleTooLarge,
    MalformedData,
    NetworkError,
    NotFound,
    RateLimited,
    RequestRejected,
    ServerError,
    Timeout,
)

SERVER = "https://server.test"
BUNDLE = dumps(hash_only(small_log()))


class Chunks(httpx.SyncByteStream):
    """A body streamed in chunks; counts what was read."""

    def __init__(self, data: bytes, size: int = 1000) -> None:
        self.data = data
        self.size = size
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.size):
            chunk = self.data[i : i + self.size]
            self.read += len(chunk)
            yield chunk


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def fetch(handler: Callable[[httpx.Request], httpx.Response], out: Path, **kw: object) -> object:
    with client(handler) as c:
        return fetch_bundle(
            c,
            server=SERVER,
            list_name="main",
            token="cf_t",
            output=out,
            **kw,  # type: ignore[arg-type]
        )


def test_downloads_and_writes_exactly_what_was_served(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=Chunks(BUNDLE))

    progress: list[tuple[int, int | None]] = []
    out = tmp_path / "bundle.json"
    with client(handler) as c:
        result = fetch_bundle(
            c,
            server=SERVER,
            list_name="main",
            token="cf_t",
            output=out,
            progress=lambda got, total: progress.append((got, total)),
        )
    assert out.read_bytes() == BUNDLE
    assert out.stat().st_mode & 0o777 == 0o600
    assert (result.bytes, result.kind, result.statements) == (len(BUNDLE), "hash-only", 6)
    [request] = seen
    assert request.url.path == "/v1/lists/main/audit/bundle"
    assert "full" not in request.url.params
    assert request.headers["Authorization"] == "Bearer cf_t"
    assert "cf_t" not in str(request.url)  # never in the URL
    assert request.headers["Accept-Encoding"] == "identity"
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert progress[-1][0] == len(BUNDLE)
    assert load(out) == load(out)


def test_full_bundle_is_asked_for_and_must_be_full(tmp_path: Path) -> None:
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("full"))
        return httpx.Response(200, content=BUNDLE)

    with pytest.raises(BundleError, match="asked for a full bundle, got hash-only"):
        fetch(handler, tmp_path / "b.json", full=True)
    assert asked == ["true"]
    assert not (tmp_path / "b.json").exists()


def test_over_the_cap_announced(tmp_path: Path) -> None:
    stream = Chunks(BUNDLE)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(len(BUNDLE))}, stream=stream)

    with pytest.raises(BundleTooLarge, match="announced"):
        fetch(handler, tmp_path / "b.json", max_bytes=len(BUNDLE) - 1)
    assert stream.read == 0  # refused before reading a byte


def test_over_the_cap_streamed(tmp_path: Path) -> None:
    stream = Chunks(BUNDLE * 10)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=stream)

    with pytest.raises(BundleTooLarge, match="exceeds the cap"):
        fetch(handler, tmp_path / "b.json", max_bytes=len(BUNDLE))
    assert stream.read <= len(BUNDLE) + stream.size  # stopped at the cap
    assert not (tmp_path / "b.json").exists()


def test_compressed_answer_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=Chunks(b"\x1f\x8b"))

    with pytest.raises(MalformedData, match="Content-Encoding 'gzip'"):
        fetch(handler, tmp_path / "b.json")


def test_not_a_bundle_is_not_written(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    out.write_bytes(b"previous")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"format": "something else"}')

    with pytest.raises(BundleError):
        fetch(handler, out)
    assert out.read_bytes() == b"previous"


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (401, {}, AccessDenied),
        (403, {}, AccessDenied),
        (404, {}, NotFound),
        (409, {}, RequestRejected),
        (429, {"Retry-After": "7"}, RateLimited),
        (503, {"Retry-After": "30"}, ServerError),
    ],
)
def test_status_errors(
    tmp_path: Path, status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, json={"code": "some_code"})

    with pytest.raises(error, match="some_code") as e:
        fetch(handler, tmp_path / "b.json")
    if "Retry-After" in headers:
        assert e.value.retry_after == float(headers["Retry-After"])  # type: ignore[attr-defined]


def test_transport_errors(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(NetworkError):
        fetch(refused, tmp_path / "b.json")
    with pytest.raises(Timeout):
        fetch(slow, tmp_path / "b.json")


def test_raise_for_status_accepts_success() -> None:
    raise_for_status(httpx.Response(201))
    with pytest.raises(ServerError):
        raise_for_status(httpx.Response(500, content=b"not json"))


def test_plain_progress_lines_are_throttled() -> None:
    out = io.StringIO()
    with progress_reporter(out) as report:
        for got in range(0, 3 * PLAIN_PROGRESS_STEP, 1024 * 1024):
            report(got, 3 * PLAIN_PROGRESS_STEP)
        report(3 * PLAIN_PROGRESS_STEP, 3 * PLAIN_PROGRESS_STEP)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 4
    mb = f"{3 * PLAIN_PROGRESS_STEP / 1e6:.1f} MB"
    assert lines[-1] == f"fetched {mb} of {mb}"


def test_real_service_refusals(tmp_path: Path) -> None:
    from support.audit_service import BASE, service

    with service(tmp_path) as s:
        tokens = s.deployment.tokens
        with pytest.raises(AccessDenied):  # a hash-only auditor asks for a full bundle
            fetch_bundle(
                s.http,
                server=BASE,
                list_name="main",
                token=tokens.auditor,
                output=tmp_path / "x",
                full=True,
            )
        with pytest.raises(NotFound):  # a list the token may not read
            fetch_bundle(
                s.http, server=BASE, list_name="other", token=tokens.auditor, output=tmp_path / "x"
            )
        with pytest.raises(AccessDenied):  # an ISP token is not an auditor token
            fetch_bundle(
                s.http, server=BASE, list_name="main", token=tokens.isp, output=tmp_path / "x"
            )
        assert not (tmp_path / "x").exists()


def test_progress_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    with progress_reporter(out) as report:
        report(5_000_000, 10_000_000)
        report(10_000_000, 10_000_000)
    drawn = out.getvalue()
    assert "bundle" in drawn
    assert "\x1b[" in drawn  # a rich live display, not plain lines
    assert "fetched" not in drawn
