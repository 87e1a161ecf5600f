"""Canonical encodings shared by every signed document.

DESIGN.md, "Canonical encodings everywhere": base64 is RFC 4648 section 4
with padding and must re-encode to the same text, decimals carry no sign and
no leading zeros, times are UTC RFC 3339 with seconds and ``Z``. A parser
that accepted two spellings of one value would let two different texts carry
the same meaning, which breaks hashing of statement texts.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, date, datetime

from blocklist.errors import FormatError

__all__ = [
    "MAX_DECIMAL",
    "b64decode",
    "b64encode",
    "fits_utf8",
    "format_time",
    "format_week",
    "hash_from_hex",
    "parse_decimal",
    "parse_time",
    "parse_week",
]

_B64_RE = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")
_DECIMAL_RE = re.compile(r"\A(0|[1-9][0-9]*)\Z")
_TIME_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_HEX_HASH_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_WEEK_RE = re.compile(r"(?P<year>[0-9]{4})-W(?P<week>[0-9]{2})")

#: Largest decimal accepted anywhere (versions, serials, counts): 2^63 - 1,
#: what a signed 64-bit database column holds. Prevents huge-integer DoS.
MAX_DECIMAL = 2**63 - 1


def b64encode(data: bytes) -> str:
    """Encode bytes as padded standard base64 (RFC 4648 section 4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode canonical base64, optionally of an exact decoded length.

    Raises:
        FormatError: the text is not canonical padded base64 (stray padding
            bits, missing padding, other alphabets, whitespace) or does not
            decode to ``length`` bytes.
    """
    if not _B64_RE.match(text) or len(text) % 4:
        raise FormatError(f"{what}: not padded standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"{what}: invalid base64") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what}: non-canonical base64 (stray padding bits)")
    if length is not None and len(raw) != length:
        raise FormatError(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw


def parse_decimal(text: str, *, what: str = "number", maximum: int = MAX_DECIMAL) -> int:
    """Parse a canonical non-negative decimal (no sign, no leading zeros).

    Raises:
        FormatError: the text is not canonical or exceeds ``maximum``.
    """
    if len(text) > 20 or not _DECIMAL_RE.match(text):
        raise FormatError(f"{what}: not a canonical decimal: {text[:24]!r}")
    value = int(text)
    if value > maximum:
        raise FormatError(f"{what}: {value} exceeds the maximum {maximum}")
    return value


def fits_utf8(text: str, limit: int) -> bool:
    """Whether ``text`` encodes to at most ``limit`` bytes of UTF-8.

    Endless data: a character is at least one UTF-8 byte, so a text of more
    than ``limit`` characters is refused before any encoding work.

    Raises:
        UnicodeEncodeError: ``text`` holds a lone surrogate (it is no UTF-8).
    """
    return len(text) <= limit and len(text.encode("utf-8")) <= limit


def format_time(when: datetime) -> str:
    """Format an aware datetime as UTC RFC 3339 with seconds and ``Z``."""
    if when.tzinfo is None:
        raise ValueError("format_time needs an aware datetime")
    t = when.astimezone(UTC)
    # Not strftime("%Y"): glibc writes years below 1000 without leading
    # zeros ("27-11-28"), which parse_time (four digits) refuses, so a signed
    # document dated so would not round-trip (found by the parser fuzzing).
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def parse_time(text: str, *, what: str = "time") -> datetime:
    """Parse UTC RFC 3339 ``YYYY-MM-DDTHH:MM:SSZ`` into an aware datetime.

    Raises:
        FormatError: any other spelling (offsets, fractions, lower-case).
    """
    if not _TIME_RE.match(text):
        raise FormatError(f"{what}: not UTC RFC 3339 with seconds and Z: {text[:32]!r}")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise FormatError(f"{what}: invalid date or time: {text!r}") from e


def format_week(when: datetime) -> str:
    """The ISO 8601 week (UTC) of an aware time, ``YYYY-Www``: the hit counts' period.

    The ISP client counts hits per week and the server stores them per
    week (DESIGN.md part 2, hit counts); both name the week this way.
    """
    year, week, _ = when.astimezone(UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


def parse_week(text: str) -> date:
    """The Monday of an ISO 8601 week written ``YYYY-Www`` (the inverse of :func:`format_week`).

    Raises:
        FormatError: not of that form, or no such week (``2026-W54``).
    """
    m = _WEEK_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise FormatError(f"week: expected an ISO week such as 2026-W49, got {str(text)[:20]!r}")
    try:
        return date.fromisocalendar(int(m["year"]), int(m["week"]), 1)
    except ValueError:
        raise FormatError(f"week: {text} does not exist (ISO years have 52 or 53 weeks)") from None


def hash_from_hex(text: str) -> bytes:
    """Parse 64 lower-case hex digits into a 32-byte hash.

    Raises:
        FormatError: wrong length, upper case, or non-hex characters.
    """
    if not _HEX_HASH_RE.match(text):
        raise FormatError("hash: expected 64 lower-case hex digits")
    return bytes.fromhex(text)
