"""``If-None-Match: *`` passed for "this ISP is current" in the uptake view.

Issue 12, item 14. ``GET …/isps`` (and the admin ``/metrics`` gauges) tell
a hotline which ISP enforces which version. A 304 to a checkpoint poll was
taken as proof the ISP held the current checkpoint, but RFC 9110 13.1.2
answers ``If-None-Match: *`` with 304 whatever the client holds: an ISP
that never fetched anything (or a stuck client replaying ``*``) showed as
current. Only a checkpoint the ISP presents by its exact ETag counts now;
``*`` still gets its 304 (the RFC's answer) but records nothing. Both the
routed path and the in-memory fast path (checkpoint cache on) are checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.api_testing import MAIN
from support.attack_helpers import World


def _uptake(w: World) -> dict[str, int]:
    r = w.call("GET", f"/v1/lists/{MAIN}/isps", w.tokens.admin)
    assert r.status_code == 200, r.text
    return {isp["name"]: isp["version"] for isp in r.json()["isps"]}


@pytest.mark.parametrize("cache_ttl", [0, 5], ids=["routed", "fast-path"])
def test_if_none_match_star_does_not_count_as_current(tmp_path: Path, cache_ttl: float) -> None:
    w = World(tmp_path, checkpoint_cache_ttl=cache_ttl)
    try:
        w.add(w.url("one"))
        version = w.publish()
        # Warm the token and checkpoint caches (a 200 records no version).
        first = w.call("GET", f"/v1/lists/{MAIN}/checkpoint", w.tokens.isp)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert _uptake(w) == {}
        star = w.call(
            "GET", f"/v1/lists/{MAIN}/checkpoint", w.tokens.isp, headers={"If-None-Match": "*"}
        )
        assert star.status_code == 304  # RFC 9110 13.1.2
        assert _uptake(w) == {}, "If-None-Match: * counted as holding the checkpoint"
        exact = w.call(
            "GET", f"/v1/lists/{MAIN}/checkpoint", w.tokens.isp, headers={"If-None-Match": etag}
        )
        assert exact.status_code == 304
        assert list(_uptake(w).values()) == [version]
    finally:
        w.close()
