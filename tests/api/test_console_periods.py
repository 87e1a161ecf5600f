"""The Transparency page's months (issue 17 item 6): ended months since the list began."""

from __future__ import annotations

from datetime import UTC, datetime

from api.console.pages.transparency import REPORT_MONTHS_SHOWN, ended_periods


def test_a_list_made_this_month_has_no_ended_month() -> None:
    now = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    assert ended_periods(datetime(2026, 12, 1, tzinfo=UTC), now) == []


def test_months_run_back_across_the_year_to_the_list_s_first_month() -> None:
    now = datetime(2027, 2, 1, 0, 0, tzinfo=UTC)
    created = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert ended_periods(created, now) == ["2027-01", "2026-12", "2026-11"]


def test_the_page_shows_a_bounded_number_of_months() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    periods = ended_periods(datetime(2001, 1, 1, tzinfo=UTC), now)
    assert len(periods) == REPORT_MONTHS_SHOWN
    assert periods[0] == "2026-11"
    assert periods[-1] == "2025-12"
