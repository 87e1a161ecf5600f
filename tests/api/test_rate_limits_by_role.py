"""Rate limits per role, each 429 worded for its caller (issue 13, item 7).

Before: one limiter of 2 requests/s (burst 120) for every token, and a 429
worded for ISPs polling ("this client polls faster than allowed"), so an
analyst's script of 30,000 calls got 246 through. Each role now has its own
limiter and defaults, and its own message. Time is a fake clock: no sleeps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.api_testing import (
    MAIN,
    ApiClient,
    Deployment,
    close_deployment,
    deployment_client,
    make_deployment,
)

from api.ratelimit import RateLimiter
from api.settings import (
    DEFAULT_ADMIN_BURST,
    DEFAULT_ADMIN_RATE,
    DEFAULT_ANALYST_BURST,
    DEFAULT_ANALYST_RATE,
    DEFAULT_AUDITOR_BURST,
    DEFAULT_AUDITOR_RATE,
    load_settings,
)


class FakeClock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


#: role -> (token attribute, a request that role makes, words its 429 must say)
CALLS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "analyst": (
        "alice",
        "POST",
        f"/v1/lists/{MAIN}/entries/search",
        ("analyst token", "retry after", "entries/bulk", "entries/approve", "entries import"),
    ),
    "isp": (
        "isp",
        "GET",
        f"/v1/lists/{MAIN}/checkpoint",
        ("ISP token polls", "retry after", "Cleanfeed-Min-Wait", "every 60 s"),
    ),
    "auditor": (
        "auditor",
        "GET",
        # the hash-only bundle: the audit log needs the full-audit entitlement
        f"/v1/lists/{MAIN}/audit/bundle",
        ("auditor token", "retry after", "audit fetch"),
    ),
    "admin": ("admin", "GET", "/v1/tokens", ("admin token", "retry after")),
}


def _call(client: ApiClient, d: Deployment, role: str) -> int:
    attr, method, path, _ = CALLS[role]
    kwargs = {"json": {}} if method == "POST" else {}
    return client.request(method, path, token=getattr(d.tokens, attr), **kwargs).status_code


@pytest.mark.parametrize("role", sorted(CALLS))
def test_each_role_has_its_own_bucket_and_message(tmp_path: Path, role: str) -> None:
    d = make_deployment(tmp_path, min_wait_seconds=60)
    try:
        ctx = d.app.state.cf
        clock = FakeClock()
        limited = RateLimiter(1.0, 2, clock=clock)
        if role == "isp":
            ctx.limiter = limited
        else:
            ctx.role_limiters[role] = limited
        with deployment_client(d) as client:
            assert _call(client, d, role) == 200
            assert _call(client, d, role) == 200
            attr, method, path, words = CALLS[role]
            kwargs = {"json": {}} if method == "POST" else {}
            r = client.request(method, path, token=getattr(d.tokens, attr), **kwargs)
            assert r.status_code == 429
            body = r.json()
            assert body["code"] == "rate_limited"
            assert body["role"] == role
            assert r.headers["retry-after"] == "1"
            for word in words:
                assert word in body["detail"], (word, body["detail"])
            # The other roles' buckets are untouched by this one's.
            for other in CALLS:
                if other != role:
                    assert _call(client, d, other) == 200, other
            clock.now += 1.0
            assert _call(client, d, role) == 200
    finally:
        close_deployment(d)


def test_default_limits_fit_each_roles_work(tmp_path: Path) -> None:
    defaults = load_settings(tmp_path / "unused")
    assert defaults.rate_limit_for("isp") == (2.0, 120)
    assert defaults.rate_limit_for("analyst") == (DEFAULT_ANALYST_RATE, DEFAULT_ANALYST_BURST)
    assert defaults.rate_limit_for("auditor") == (DEFAULT_AUDITOR_RATE, DEFAULT_AUDITOR_BURST)
    assert defaults.rate_limit_for("admin") == (DEFAULT_ADMIN_RATE, DEFAULT_ADMIN_BURST)
    # An analyst's script gets far more than an ISP's poll budget.
    assert DEFAULT_ANALYST_RATE >= 10 * 2.0
    assert DEFAULT_ANALYST_BURST >= 1_000


def test_an_analyst_script_is_not_throttled_like_an_isp(tmp_path: Path) -> None:
    # The shipped defaults (the test deployment otherwise disables limits).
    d = make_deployment(
        tmp_path,
        rate_limit_per_second=2.0,
        analyst_rate_limit_per_second=DEFAULT_ANALYST_RATE,
        analyst_rate_limit_burst=DEFAULT_ANALYST_BURST,
    )
    try:
        ctx = d.app.state.cf
        clock = FakeClock()  # frozen: only the burst counts
        ctx.limiter = RateLimiter(2.0, 120, clock=clock)
        ctx.role_limiters["analyst"] = RateLimiter(
            DEFAULT_ANALYST_RATE, DEFAULT_ANALYST_BURST, clock=clock
        )
        with deployment_client(d) as client:
            statuses = [_call(client, d, "analyst") for _ in range(300)]
            assert statuses.count(200) == 300
            isp = [_call(client, d, "isp") for _ in range(130)]
            assert isp.count(200) == 120
    finally:
        close_deployment(d)


def test_role_limits_are_settings(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        analyst_rate_limit_per_second=0,
        auditor_rate_limit_burst=7,
        admin_rate_limit_per_second=3.5,
    )
    assert settings.rate_limit_for("analyst") == (0, DEFAULT_ANALYST_BURST)
    assert settings.rate_limit_for("auditor") == (DEFAULT_AUDITOR_RATE, 7)
    assert settings.rate_limit_for("admin") == (3.5, DEFAULT_ADMIN_BURST)
    d = make_deployment(tmp_path / "d", analyst_rate_limit_per_second=0)
    try:
        assert not d.app.state.cf.role_limiters["analyst"].enabled
    finally:
        close_deployment(d)
