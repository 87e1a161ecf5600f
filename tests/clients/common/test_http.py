"""The shared HTTP floor's small parts: hints, validators, header decoding, URL policy."""

from __future__ import annotations

import httpx
import pytest

from clients.common.http import (
    MAX_ETAG_BYTES,
    MAX_SERVER_WAIT,
    check_etag,
    check_server_url,
    header,
    insecure_http_warning,
    is_loopback_host,
    parse_wait_header,
)
from clients.errors import ConfigError, ServerUrlRefused, Undecodable


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("99999999", MAX_SERVER_WAIT),
        # str.isdigit() accepts these, int() refuses or misreads them:
        # RFC 9110 10.2.3 delay-seconds is ASCII DIGIT only.
        ("\u00b2", None),
        ("\u0661\u0662", None),
        ("-5", None),
        ("1.5", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_SERVER_WAIT),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_wait_header(value: str | None, expected: float | None) -> None:
    assert parse_wait_header(value) == expected


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('""', True),
        ('"' + "a" * (MAX_ETAG_BYTES - 2) + '"', True),
        ('"' + "a" * (MAX_ETAG_BYTES - 1) + '"', False),  # one byte over
        ("abc", False),  # unquoted
        ('"a"b"', False),
        ('"a b"', False),  # SP is not etagc
        ('"caf\u00e9"', False),  # obs-text is not kept
        ('w/"abc"', False),  # the weak prefix is case-sensitive
        (None, False),
    ],
)
def test_check_etag(value: str | None, kept: bool) -> None:
    assert check_etag(value) == (value if kept else None)


def _response(*headers: tuple[bytes, bytes]) -> httpx.Response:
    return httpx.Response(200, headers=list(headers))


def test_header_is_strict_ascii() -> None:
    assert header(_response((b"ETag", b' "x" ')), "etag") == '"x"'
    assert header(_response(), "ETag") is None
    for raw in ('"caf\u00e9"'.encode(), b'"caf\xe9"', b'"a\x01b"', b"a\x7fb"):
        with pytest.raises(Undecodable):
            header(_response((b"ETag", raw)), "ETag")
    with pytest.raises(Undecodable, match="more than once"):
        header(_response((b"ETag", b'"a"'), (b"ETag", b'"b"')), "ETag")
    # Repeated with the same value: one value.
    assert header(_response((b"ETag", b'"a"'), (b"etag", b'"a"')), "ETag") == '"a"'


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("[::1]", True),
        ("::1", True),
        ("localhost.example", False),
        ("evil.localhost.example", False),
        ("192.0.2.1", False),
        ("::ffff:192.0.2.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_check_server_url() -> None:
    assert check_server_url("https://hotline.example/") == "https://hotline.example"
    assert check_server_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_server_url("http://hotline.example", allow_insecure_http=True) == (
        "http://hotline.example"
    )
    with pytest.raises(ServerUrlRefused):
        check_server_url("http://hotline.example")
    with pytest.raises(ServerUrlRefused):
        # Credentials are refused even where clear text is allowed.
        check_server_url("http://u:p@hotline.example", allow_insecure_http=True)
    for bad in ("ftp://hotline.example", "hotline.example", "https://", "https://h.example:x/"):
        with pytest.raises(ConfigError):
            check_server_url(bad)
    with pytest.raises(ConfigError, match="query or fragment"):
        check_server_url("https://hotline.example/?token=x")


def test_insecure_http_warning() -> None:
    assert insecure_http_warning("https://hotline.example") is None
    assert insecure_http_warning("http://127.0.0.1:8080") is None
    warning = insecure_http_warning("http://hotline.example")
    assert warning is not None
    assert "hotline.example" in warning
