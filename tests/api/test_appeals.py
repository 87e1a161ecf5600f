"""Appeals through the API (issue 17 items 2 and 3): intake, status, review.

Every test drives the real app in-process on a real SQLite database; the
audit log, the published versions and the rows prove what happened.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.api_testing import (
    MAIN,
    URL_B,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    close_deployment,
    make_deployment,
    publish,
    row_counts,
)

from blocklist.auditlog import Action
from blocklist.blockref import block_ref
from blocklist.store import audit as store_audit
from blocklist.store.models import AppealPrivateRow, AuditRow, EntryRow, ListRow


def _ref(entry: dict[str, Any]) -> str:
    return block_ref(base64.b64decode(entry["hash"]))


#: A well-formed reference (valid check character) that names no entry.
UNKNOWN_REF = block_ref(bytes(range(32)))


def _file(client: ApiClient, **body: Any) -> Any:
    body.setdefault("message", "this page is my own school's homework site")
    return client.post("/v1/appeals", json=body)


def _secret(status_url: str) -> str:
    return status_url.rsplit("/", 1)[1]


def _status(client: ApiClient, filed: dict[str, Any]) -> Any:
    return client.get(f"/v1/appeals/status/{_secret(filed['status_url'])}")


def _listed(deployment: Deployment, entry_id: int) -> bool:
    with deployment.db.read() as s:
        row = s.get(EntryRow, entry_id)
        assert row is not None
        return row.listed


def _canary_ref(deployment: Deployment) -> str:
    with deployment.db.read() as s:
        lst = s.scalar(select(ListRow).where(ListRow.name == MAIN))
        assert lst is not None
        assert lst.canary_entry_id is not None
        canary = s.get(EntryRow, lst.canary_entry_id)
        assert canary is not None
        return block_ref(bytes(canary.hash))


def _mask(text: str) -> str:
    """The page with appeal numbers and secrets replaced (the only parts that may differ)."""
    text = re.sub(r"/appeal/status/[A-Za-z0-9_\-%]+", "/appeal/status/SECRET", text)
    return re.sub(r"<strong>\d+</strong>", "<strong>N</strong>", text)


def test_matched_and_unmatched_appeals_get_identical_answers(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens)
    publish(client, tokens.alice)
    matched = _file(client, block_ref=_ref(entry))
    unmatched = _file(client, block_ref=UNKNOWN_REF)
    canary = _file(client, block_ref=_canary_ref(deployment))
    answers = [matched, unmatched, canary]
    assert [r.status_code for r in answers] == [202, 202, 202]
    shapes = [sorted(r.json()) for r in answers]
    assert shapes == [["appeal", "status_url"]] * 3
    assert [r.headers.get("content-length") is not None for r in answers] == [True] * 3
    pages = [client.get(r.json()["status_url"].split("cleanfeed.test", 1)[1]) for r in answers]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert len({_mask(p.text) for p in pages}) == 1
    assert "waiting for review" in pages[0].text
    statuses = [
        client.get(f"/v1/appeals/status/{_secret(r.json()['status_url'])}") for r in answers
    ]
    assert len({(s.json()["state"], s.json()["text"]) for s in statuses}) == 1
    # ...while the reviewers see that only the first matched (the canary never does).
    queue = client.get(f"/v1/lists/{MAIN}/appeals", token=tokens.carol).json()["appeals"]
    assert [a["id"] for a in queue] == [matched.json()["appeal"]]
    assert queue[0]["entry"]["id"] == entry["id"]
    assert queue[0]["block_ref"] == _ref(entry)
    unmatched_queue = client.get("/v1/admin/appeals", token=tokens.admin).json()["appeals"]
    assert {a["id"] for a in unmatched_queue} == {
        unmatched.json()["appeal"],
        canary.json()["appeal"],
    }


def test_a_mistyped_reference_is_refused_before_anything_is_stored(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens)
    ref = _ref(entry)
    # Change one body character: the check character no longer matches.
    body = ref[4]
    swapped = ref[:4] + ("B" if body != "B" else "C") + ref[5:]
    before = row_counts(deployment.db)
    r = _file(client, block_ref=swapped)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "appeal_ref_mistyped"
    assert row_counts(deployment.db) == before
    r = _file(client, block_ref="CF1-NOT-A-REF")
    assert r.status_code == 422
    assert r.json()["code"] == "appeal_ref_invalid"
    assert row_counts(deployment.db) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"message": "no reference"}, "invalid_field"),
        ({"block_ref": UNKNOWN_REF, "message": "x", "name": "me"}, "validation_error"),
        ({"block_ref": UNKNOWN_REF}, "validation_error"),
        ({"block_ref": UNKNOWN_REF, "message": "m" * 4001}, "validation_error"),
        ({"block_ref": UNKNOWN_REF, "message": "x", "contact": 5}, "validation_error"),
        ({"url": "http://", "message": "x"}, "invalid_url"),
    ],
)
def test_malformed_appeals_get_a_clear_422_and_change_nothing(
    client: ApiClient, deployment: Deployment, body: dict[str, Any], code: str
) -> None:
    before = row_counts(deployment.db)
    r = client.post("/v1/appeals", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert row_counts(deployment.db) == before


def test_an_oversized_appeal_is_refused_before_it_is_read(
    client: ApiClient, deployment: Deployment
) -> None:
    before = row_counts(deployment.db)
    r = client.post(
        "/v1/appeals",
        content=b'{"block_ref": "x", "message": "' + b"a" * 20_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "body_too_large"
    assert "16384" in r.json()["detail"]
    assert row_counts(deployment.db) == before


@pytest.fixture
def strict(tmp_path: Path) -> Any:
    d = make_deployment(tmp_path, appeal_burst=3, appeal_cap_per_hour=5, appeal_refill_seconds=3600)
    c = ApiClient(d.app)
    try:
        yield d, c
    finally:
        c.close()
        close_deployment(d)


def _appeal_ids(d: Deployment) -> list[int]:
    with d.db.read() as s:
        from blocklist.store.models import AppealRow

        return list(s.scalars(select(AppealRow.id).order_by(AppealRow.id)).all())


def test_a_burst_from_one_address_is_limited_and_earlier_appeals_are_kept(
    strict: tuple[Deployment, ApiClient],
) -> None:
    d, client = strict
    first = [_file(client, url=f"http://example.org/{i}", message="wrong") for i in range(3)]
    assert [r.status_code for r in first] == [202, 202, 202]
    r = _file(client, url="http://example.org/3", message="wrong")
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert _appeal_ids(d) == [a.json()["appeal"] for a in first]


def test_duplicates_collapse_onto_the_first_appeal_with_the_same_answer_shape(
    client: ApiClient, deployment: Deployment
) -> None:
    a = _file(client, block_ref=UNKNOWN_REF, message="This is  my site")
    # The same reference typed differently, the same message re-spaced and re-cased.
    b = _file(client, block_ref=UNKNOWN_REF.lower().replace("-", " "), message="this is my SITE")
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.json()["appeal"] == b.json()["appeal"]
    assert a.json()["status_url"] != b.json()["status_url"]
    assert _appeal_ids(deployment) == [a.json()["appeal"]]
    for r in (a, b):
        assert (
            client.get(f"/v1/appeals/status/{_secret(r.json()['status_url'])}").status_code == 200
        )


def test_the_global_cap_holds_and_keeps_earlier_appeals(
    tmp_path: Path,
) -> None:
    d = make_deployment(tmp_path, appeal_cap_per_hour=2)
    client = ApiClient(d.app)
    try:
        ok = [_file(client, url=f"http://example.org/{i}", message="m") for i in range(2)]
        assert [r.status_code for r in ok] == [202, 202]
        before = row_counts(d.db)
        r = _file(client, url="http://example.org/9", message="m")
        assert r.status_code == 429
        assert r.json()["code"] == "appeal_cap_reached"
        # Room again when the older of the two leaves the hour: just under 3600 s.
        assert 3500 <= int(r.headers["Retry-After"]) <= 3600
        assert row_counts(d.db) == before
        # A duplicate of an accepted appeal still collapses (it adds no appeal).
        dup = _file(client, url="http://example.org/0", message="m")
        assert dup.status_code == 202
        assert dup.json()["appeal"] == ok[0].json()["appeal"]
        assert _appeal_ids(d) == [r.json()["appeal"] for r in ok]
    finally:
        client.close()
        close_deployment(d)


def _decide(client: ApiClient, token: str, appeal: int, outcome: str, **extra: Any) -> Any:
    return client.post(
        f"/v1/lists/{MAIN}/appeals/{appeal}/decide",
        json={"outcome": outcome, "reason": "reviewed the page", **extra},
        token=token,
    )


def test_review_suspend_then_uphold_goes_back_through_four_eyes(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens)  # alice created, bob approved
    first = publish(client, tokens.alice)["version"]
    assert _listed(deployment, entry["id"])
    filed = _file(client, block_ref=_ref(entry)).json()
    appeal = filed["appeal"]
    for who in (tokens.alice, tokens.bob):
        r = _decide(client, who, appeal, "suspended")
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "appeal_reviewer_ineligible"
    r = _decide(client, tokens.carol, appeal, "suspended")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "suspended"
    # Off the list at once: the decision published a version removing it.
    assert not _listed(deployment, entry["id"])
    status = client.get(f"/v1/appeals/status/{_secret(filed['status_url'])}").json()
    assert status["state"] == "suspended"
    r = _decide(client, tokens.carol, appeal, "upheld")
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["status"] == "pending"
    assert r.json()["entry"]["approval_round"] == 2
    # The reviewer opened the round and cannot approve it; bob can.
    own = client.post(f"/v1/lists/{MAIN}/entries/{entry['id']}/approve", token=tokens.carol)
    assert own.status_code == 403
    ok = client.post(f"/v1/lists/{MAIN}/entries/{entry['id']}/approve", token=tokens.bob)
    assert ok.status_code == 200
    assert publish(client, tokens.alice)["version"] > first + 1
    assert _listed(deployment, entry["id"])
    status = client.get(f"/v1/appeals/status/{_secret(filed['status_url'])}").json()
    assert status == {
        "appeal": appeal,
        "state": "no_change",
        "text": "Your appeal has been reviewed. The list was not changed.",
    }
    # Decided is decided.
    again = _decide(client, tokens.carol, appeal, "removed")
    assert again.status_code == 409


def test_removed_expires_the_entry_with_reason_code_appeal(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    filed = _file(client, url=URL_B).json()
    r = _decide(client, tokens.carol, filed["appeal"], "removed")
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["status"] == "expired"
    with deployment.db.read() as s:
        rec = s.scalars(
            select(AuditRow).where(
                AuditRow.entry_id == entry["id"], AuditRow.action == Action.ENTRY_EXPIRE
            )
        ).one()
        assert rec.details["reason"] == "appeal"
        assert rec.details["appeal"] == filed["appeal"]
        assert rec.actor == "carol"
    publish(client, tokens.alice)
    assert not _listed(deployment, entry["id"])
    text = client.get(filed["status_url"].split("cleanfeed.test", 1)[1]).text
    assert "The block has been removed." in text
    assert URL_B not in text


def test_audit_records_name_appeals_by_id_and_hash_only(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    secret_words = "private-words-of-the-appellant"
    filed = _file(client, url=URL_B, message=secret_words, contact="me@example.org").json()
    _decide(client, tokens.carol, filed["appeal"], "suspended")
    with deployment.db.read() as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.action.like("appeal.%"))).all()
        actions = sorted(r.action for r in rows)
        text = repr([(r.details, r.actor) for r in rows])
    assert actions == [Action.APPEAL_ATTACH, Action.APPEAL_DECIDE, Action.APPEAL_FILE]
    for leaked in (secret_words, "me@example.org", URL_B, "example.org/b"):
        assert leaked not in text
    assert entry["hash"] in text


def test_erasing_an_appellants_data_keeps_the_chains_verifying(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    from blocklist.store import appeals as store_appeals

    add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    filed = _file(client, url=URL_B, message="erase me", contact="me@example.org").json()
    with deployment.db.transaction() as s:
        assert store_appeals.erase(s, filed["appeal"], actor="admin", why="request")
    with deployment.db.read() as s:
        assert s.get(AppealPrivateRow, filed["appeal"]) is None
        store_audit.verify(s, None)
        store_audit.verify(s, 1)
    queue = client.get(f"/v1/lists/{MAIN}/appeals", token=tokens.carol).json()["appeals"]
    assert queue[0]["message"] is None
    assert queue[0]["url"] is None


def test_overdue_appeals_stand_out_in_the_queue_and_the_metrics(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from blocklist.store.models import AppealLinkRow, AppealRow

    d = make_deployment(tmp_path, appeal_overdue_days=3)
    client = ApiClient(d.app)
    try:
        entry = add_approved(client, d.tokens)
        publish(client, d.tokens.alice)
        old = _file(client, block_ref=_ref(entry), message="old").json()["appeal"]
        new = _file(client, block_ref=_ref(entry), message="new").json()["appeal"]
        lost = _file(client, block_ref=UNKNOWN_REF, message="old, unmatched").json()["appeal"]
        with d.db.transaction() as s:
            link = s.scalars(select(AppealLinkRow).where(AppealLinkRow.appeal_id == old)).one()
            link.attached_at = datetime.now(UTC) - timedelta(days=4)
            unmatched = s.get(AppealRow, lost)
            assert unmatched is not None
            unmatched.filed_at = datetime.now(UTC) - timedelta(days=5)
        queue = client.get(f"/v1/lists/{MAIN}/appeals", token=d.tokens.carol).json()["appeals"]
        assert {a["id"]: a["overdue"] for a in queue} == {old: True, new: False}
        admins = client.get("/v1/admin/appeals", token=d.tokens.admin).json()["appeals"]
        assert [(a["id"], a["overdue"]) for a in admins] == [(lost, True)]
        metrics = client.get("/metrics", token=d.tokens.admin).text
        assert "cleanfeed_appeals_overdue 2.0" in metrics
    finally:
        client.close()
        close_deployment(d)


def test_the_admin_closes_an_unmatched_appeal(client: ApiClient, tokens: Tokens) -> None:
    filed = _file(client, block_ref=UNKNOWN_REF).json()
    r = client.post(
        f"/v1/admin/appeals/{filed['appeal']}/close",
        json={"reason": "not on any list"},
        token=tokens.admin,
    )
    assert r.status_code == 200, r.text
    assert client.get("/v1/admin/appeals", token=tokens.admin).json()["appeals"] == []
    status = client.get(f"/v1/appeals/status/{_secret(filed['status_url'])}").json()
    assert status["state"] == "no_change"
    assert client.get("/v1/admin/appeals", token=tokens.alice).status_code == 403


def test_the_html_form_is_prefilled_strictly_confined_and_files_an_appeal(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    entry = add_approved(client, tokens)
    ref = _ref(entry)
    form = client.get("/appeal", params={"block_ref": ref})
    assert form.status_code == 200
    assert f'value="{ref}"' in form.text
    csp = form.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert form.headers["Referrer-Policy"] == "no-referrer"
    assert form.headers["Cache-Control"] == "no-store"
    assert "<script" not in form.text
    assert "http" not in form.text.split("<body>", 1)[1]
    hostile = client.get("/appeal", params={"block_ref": '"><script>x</script>'})
    assert "<script>x" not in hostile.text
    posted = client.post(
        "/appeal", data={"block_ref": ref, "url": "", "message": "wrong", "contact": ""}
    )
    assert posted.status_code == 202, posted.text
    link = re.search(r'href="(/appeal/status/[^"]+)"', posted.text)
    assert link is not None
    page = client.get(link.group(1))
    assert "waiting for review" in page.text
    typo = ref[:4] + ("B" if ref[4] != "B" else "C") + ref[5:]
    bad = client.post("/appeal", data={"block_ref": typo, "message": "m"})
    assert bad.status_code == 422
    assert "does not check out" in bad.text
    assert f'value="{typo}"' in bad.text  # the form keeps what was typed
    extra = client.post("/appeal", data={"block_ref": ref, "message": "m", "evil": "1"})
    assert extra.status_code == 400
    assert client.get("/appeal/status/nope").status_code == 404


def test_the_block_pages_appeal_link_opens_the_form_with_the_reference(
    client: ApiClient, tokens: Tokens
) -> None:
    from clients.isp.blockpage_page import appeal_link

    entry = add_approved(client, tokens)
    ref = _ref(entry)
    link = appeal_link("http://cleanfeed.test/appeal", "block_ref", ref)
    form = client.get(link.removeprefix("http://cleanfeed.test"))
    assert form.status_code == 200
    assert f'name="block_ref" value="{ref}"' in form.text
