"""Times in signed documents round-trip for every year the format can spell."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocklist.encoding import format_time, parse_time
from blocklist.errors import FormatError


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(27, 11, 28, 12, tzinfo=UTC), "0027-11-28T12:00:00Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(2026, 12, 6, 9, 5, 7, tzinfo=UTC), "2026-12-06T09:05:07Z"),
    ],
)
def test_years_below_1000_keep_four_digits(when: datetime, text: str) -> None:
    # glibc's strftime("%Y") writes "27" for the year 27, which parse_time
    # refuses: a keyring expiring then did not round-trip (parser fuzzing).
    assert format_time(when) == text
    assert parse_time(text) == when


@given(st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)))
def test_format_then_parse_is_the_identity(when: datetime) -> None:
    assert parse_time(format_time(when)) == when


def test_short_years_are_refused() -> None:
    with pytest.raises(FormatError):
        parse_time("27-11-28T12:00:00Z")
