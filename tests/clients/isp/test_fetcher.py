"""The fetcher: caps on decoded bytes, status mapping, hints, headers."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest
from support.isp_helpers import raw_response

from clients.common.fetcher import Fetcher
from clients.common.http import MAX_SERVER_WAIT, parse_wait_header
from clients.errors import (
    AccessDenied,
    MalformedData,
    NetworkError,
    NotFound,
    Oversize,
    RateLimited,
    ServerError,
    Timeout,
)
from clients.isp.config import Limits


def fetcher(handler: object, **kwargs: object) -> Fetcher:
    client = httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return Fetcher(client, server="https://isp.test", list_name="main", token="cf_t", **kwargs)  # type: ignore[arg-type]


def test_gzip_is_decoded_within_the_cap() -> None:
    body = b"checkpoint\n" * 100
    f = fetcher(lambda r: raw_response(200, gzip.compress(body), {"Content-Encoding": "gzip"}))
    assert f.keyring() == body.decode()


def test_deflate_is_decoded() -> None:
    f = fetcher(
        lambda r: raw_response(200, zlib.compress(b"abc\n"), {"Content-Encoding": "deflate"})
    )
    assert f.keyring() == "abc\n"


@pytest.mark.parametrize("size", [1024 * 1024, 200 * 1024 * 1024])
def test_gzip_bomb_stops_at_the_cap(size: int) -> None:
    bomb = gzip.compress(b"\0" * size, compresslevel=9)
    f = fetcher(lambda r: raw_response(200, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(Oversize):
        f.checkpoint()


def test_identity_body_over_the_cap() -> None:
    f = fetcher(lambda r: raw_response(200, b"x" * 70_000), limits=Limits(checkpoint=65_536))
    with pytest.raises(Oversize):
        f.checkpoint()


def test_declared_length_over_the_cap_refused_before_reading() -> None:
    f = fetcher(
        lambda r: raw_response(200, b"x", {"Content-Length": "999999999"}),
        limits=Limits(keyring=1000),
    )
    with pytest.raises(Oversize):
        f.keyring()


def test_unknown_encoding_refused() -> None:
    f = fetcher(lambda r: raw_response(200, b"x", {"Content-Encoding": "br"}))
    with pytest.raises(MalformedData):
        f.keyring()


def test_corrupt_gzip_refused() -> None:
    f = fetcher(lambda r: raw_response(200, b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"}))
    with pytest.raises(MalformedData):
        f.keyring()


def test_overall_deadline_against_a_dribbling_server() -> None:
    ticks = iter(range(0, 10_000, 100))
    f = fetcher(
        lambda r: raw_response(200, b"x" * 10 * 65536),
        clock=lambda: float(next(ticks)),
        response_deadline=250.0,
    )
    with pytest.raises(Timeout):
        f.keyring()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AccessDenied),
        (403, AccessDenied),
        (404, NotFound),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_mapping(status: int, error: type[Exception]) -> None:
    f = fetcher(lambda r: httpx.Response(status, json={"code": "x"}))
    with pytest.raises(error):
        f.keyring()


def test_retry_after_and_min_wait() -> None:
    f = fetcher(
        lambda r: httpx.Response(429, headers={"Retry-After": "42", "Cleanfeed-Min-Wait": "90"})
    )
    with pytest.raises(RateLimited) as info:
        f.checkpoint()
    assert info.value.retry_after == 42
    assert f.min_wait == 90


def test_wait_header_parsing() -> None:
    assert parse_wait_header("10") == 10
    assert parse_wait_header("999999999") == MAX_SERVER_WAIT
    assert parse_wait_header("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60
    assert parse_wait_header("soon") is None
    assert parse_wait_header(None) is None


def test_network_and_timeout_errors() -> None:
    def refuse(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=r)

    def slow(r: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=r)

    with pytest.raises(NetworkError):
        fetcher(refuse).keyring()
    with pytest.raises(Timeout):
        fetcher(slow).keyring()


def test_token_in_header_never_in_url_and_etag_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        return httpx.Response(304, headers={"ETag": '"e"'})

    resp = fetcher(handler).checkpoint('"e"')
    assert resp.note is None
    assert resp.etag == '"e"'
    assert seen[0].headers["Authorization"] == "Bearer cf_t"
    assert seen[0].headers["If-None-Match"] == '"e"'
    assert "cf_t" not in str(seen[0].url)


def test_statement_pages_follow_next_and_stop_at_until() -> None:
    notes = [f"note {i}\n" for i in range(1, 8)]

    def handler(r: httpx.Request) -> httpx.Response:
        since, limit = int(r.url.params["since"]), int(r.url.params["limit"])
        page = notes[since : since + min(limit, 3)]
        nxt = since + len(page) if since + len(page) < len(notes) else None
        return httpx.Response(200, json={"statements": page, "next": nxt})

    assert list(fetcher(handler).iter_statements(1, 6)) == notes[1:6]


def test_statement_page_with_a_lying_next() -> None:
    f = fetcher(lambda r: httpx.Response(200, json={"statements": ["a\n"], "next": 7}))
    with pytest.raises(MalformedData):
        list(f.iter_statements(0, 5))


def test_proof_documents_are_checked() -> None:
    f = fetcher(lambda r: httpx.Response(200, json={"hashes": ["not base64"]}))
    with pytest.raises(MalformedData):
        f.range_hashes(3)
    g = fetcher(lambda r: httpx.Response(200, json={"hashes": ["AAAA"] * 65}))
    with pytest.raises(MalformedData):
        g.inclusion_proof(1, 3)


def test_snapshot_of_another_version_refused() -> None:
    f = fetcher(lambda r: httpx.Response(200, content=b"", headers={"Cleanfeed-Version": "9"}))
    with pytest.raises(MalformedData):
        f.snapshot(3, 0)
