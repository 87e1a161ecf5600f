"""The default canary URL of a new list is always a valid entry host (issue 12, item 16)."""

from __future__ import annotations

from pathlib import Path

from support.api_testing import close_deployment, deployment_client, make_deployment

from api.lists_admin import default_canary_url
from blocklist.entries import plan_entry


def test_default_canary_of_a_name_ending_in_a_hyphen() -> None:
    # List names may end in '-'; host labels may not.
    assert default_canary_url("main") == "http://canary-main.cleanfeed.invalid/"
    assert default_canary_url("abc-") == "http://canary-abc.cleanfeed.invalid/"
    assert default_canary_url("--") == "http://canary.cleanfeed.invalid/"
    for name in ("main", "abc-", "--", "a" * 64):
        assert plan_entry(default_canary_url(name), "host").scope == "host"


def test_a_list_named_with_a_trailing_hyphen_can_be_created(tmp_path: Path) -> None:
    d = make_deployment(tmp_path)
    try:
        with deployment_client(d) as client:
            r = client.post("/v1/lists", json={"name": "abc-"}, token=d.tokens.admin)
            assert r.status_code == 201, r.text
            assert r.json()["canary_url"] == "http://canary-abc.cleanfeed.invalid/"
    finally:
        close_deployment(d)
