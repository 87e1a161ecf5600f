"""Transparency reports (issue 17 item 5): issued once, signed, verified offline.

A month of known activity is built through the API (additions, an
analyst's expiry, two appeals: suspended then upheld, and removed); the
report is issued as of the first day after that month, verified offline
with the root key against a full bundle (every figure recomputed), and a
tampered figure fails even when re-signed with the right key.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from support.api_testing import (
    MAIN,
    URL_A,
    URL_B,
    ApiClient,
    Deployment,
    Tokens,
    add_approved,
    decide_appeal,
    publish,
)

from blocklist.blockref import block_ref
from blocklist.keyring import Keyring
from blocklist.transparency import REPORT_HEADER, parse_period, parse_report, period_of
from clients.audit.bundle import Bundle, dumps, loads
from clients.audit.cli import audit_group
from clients.audit.transparency import ReportInvalid, verify_report
from signer.datadir import online_key_path
from signer.keys import load_key
from signer.note import parse_note, sign_note
from signer.transparency import issue_report

URL_C = "http://example.org/c/d.html"


def _appeal(client: ApiClient, entry: dict[str, Any]) -> int:
    ref = block_ref(base64.b64decode(entry["hash"]))
    r = client.post("/v1/appeals", json={"block_ref": ref, "message": "wrong"})
    assert r.status_code == 202
    appeal: int = r.json()["appeal"]
    return appeal


def _month_of_activity(client: ApiClient, tokens: Tokens) -> None:
    a = add_approved(client, tokens, URL_A)
    b = add_approved(client, tokens, URL_B)
    c = add_approved(client, tokens, URL_C)
    publish(client, tokens.alice)
    first = _appeal(client, a)
    decide_appeal(client, tokens.carol, first, "suspended")
    decide_appeal(client, tokens.carol, first, "upheld")
    assert (
        client.post(f"/v1/lists/{MAIN}/entries/{a['id']}/approve", token=tokens.bob).status_code
        == 200
    )
    second = _appeal(client, b)
    decide_appeal(client, tokens.carol, second, "removed")
    r = client.post(
        f"/v1/lists/{MAIN}/entries/{c['id']}/expire", json={"reason": "gone"}, token=tokens.bob
    )
    assert r.status_code == 200
    publish(client, tokens.alice)


def _after(period: str) -> datetime:
    return parse_period(period)[1] + timedelta(hours=1)


def _full(client: ApiClient, tokens: Tokens) -> Bundle:
    r = client.get(
        f"/v1/lists/{MAIN}/audit/bundle", params={"full": "true"}, token=tokens.auditor_full
    )
    assert r.status_code == 200
    return loads(r.content)


@pytest.fixture
def issued(deployment: Deployment, client: ApiClient, tokens: Tokens) -> tuple[str, str, Bundle]:
    _month_of_activity(client, tokens)
    period = period_of(datetime.now(UTC))
    note = issue_report(
        deployment.db, MAIN, period, deployment.settings.keys_dir, now=_after(period)
    )
    return period, note, _full(client, tokens)


def test_the_report_carries_the_months_figures_and_verifies_offline(
    deployment: Deployment, issued: tuple[str, str, Bundle]
) -> None:
    period, note, bundle = issued
    report = parse_report(parse_note(note).text)
    assert parse_note(note).text.startswith(REPORT_HEADER + "\n")
    assert report.period == period
    assert report.version == 3  # the suspension published one at once
    figures = dict(report.figures)
    # The canary, created with the list this month, is never counted.
    assert figures["entries_added"] == "3"
    assert figures["removed_analyst"] == "1"
    assert figures["removed_appeal"] == "1"
    assert figures["removed_expiry"] == "0"
    assert figures["removed_gone"] == "0"
    assert figures["listed_entries"] == "1"
    assert figures["appeals_received"] == "2"
    assert figures["appeals_suspended"] == "1"
    assert figures["appeals_upheld"] == "1"
    assert figures["appeals_removed"] == "1"
    assert figures["median_days_to_decision"] == "0.0"
    assert figures["reverification_coverage_percent"] == "0.0"
    assert figures["referrals"] == "0"
    check = verify_report(note, [deployment.init.root_vkey], bundle=bundle)
    assert check.bundle_verified
    assert check.figures_recomputed
    # With only the keyrings, the signature still verifies offline.
    only_keys = verify_report(note, [deployment.init.root_vkey], keyrings=bundle.keyrings)
    assert not only_keys.figures_recomputed


def test_a_report_is_issued_once_and_served_as_the_same_bytes(
    deployment: Deployment, client: ApiClient, tokens: Tokens, issued: tuple[str, str, Bundle]
) -> None:
    period, note, _ = issued
    again = issue_report(
        deployment.db,
        MAIN,
        period,
        deployment.settings.keys_dir,
        now=_after(period) + timedelta(days=3),
    )
    assert again == note
    r = client.get(
        f"/v1/lists/{MAIN}/transparency", params={"period": period}, token=tokens.auditor
    )
    assert r.status_code == 200
    assert r.text == note
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    # Not public: no token, no report; ISPs are not auditors.
    assert (
        client.get(f"/v1/lists/{MAIN}/transparency", params={"period": period}).status_code == 401
    )
    assert (
        client.get(
            f"/v1/lists/{MAIN}/transparency", params={"period": period}, token=tokens.isp
        ).status_code
        == 403
    )


def test_only_ended_periods_get_a_report(
    client: ApiClient, tokens: Tokens, deployment: Deployment
) -> None:
    publish(client, tokens.alice)
    r = client.get(
        f"/v1/lists/{MAIN}/transparency",
        params={"period": period_of(datetime.now(UTC))},
        token=tokens.auditor,
    )
    assert r.status_code == 409
    assert "has not ended" in r.json()["detail"]
    r = client.get(
        f"/v1/lists/{MAIN}/transparency", params={"period": "2026-13"}, token=tokens.auditor
    )
    assert r.status_code == 422


def _resign(deployment: Deployment, note: str, text: str) -> str:
    report = parse_report(parse_note(note).text)
    with deployment.db.read() as session:
        from blocklist.store import versions as store_versions

        keyring_row = store_versions.get_keyring(session, 1)
        assert keyring_row is not None
        keyring = Keyring.parse(parse_note(keyring_row.note).text)
    vkey = keyring.keys_for_version(report.version)[0]
    key = load_key(online_key_path(deployment.settings.keys_dir, MAIN, vkey))
    return sign_note(text, [key])


def test_a_tampered_figure_fails_even_with_a_valid_signature(
    deployment: Deployment, issued: tuple[str, str, Bundle]
) -> None:
    _, note, bundle = issued
    text = parse_note(note).text
    forged_text = text.replace("\nappeals_upheld 1\n", "\nappeals_upheld 0\n")
    assert forged_text != text
    forged = _resign(deployment, note, forged_text)
    # The signature is the right key's: only the recomputation catches it.
    verify_report(forged, [deployment.init.root_vkey], keyrings=bundle.keyrings)
    with pytest.raises(ReportInvalid) as caught:
        verify_report(forged, [deployment.init.root_vkey], bundle=bundle)
    assert caught.value.check == "figures"
    assert "appeals_upheld 0 (recomputed 1)" in caught.value.reason
    # Changing the text without re-signing fails on the signature.
    unsigned = note.replace("\nappeals_upheld 1\n", "\nappeals_upheld 0\n")
    with pytest.raises(ReportInvalid) as caught:
        verify_report(unsigned, [deployment.init.root_vkey], bundle=bundle)
    assert caught.value.check == "signature"


def test_verify_report_command(
    deployment: Deployment, issued: tuple[str, str, Bundle], tmp_path: Any
) -> None:
    _, note, bundle = issued
    note_file = tmp_path / "report.note"
    note_file.write_text(note, encoding="utf-8")
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_bytes(dumps(bundle))
    runner = CliRunner()
    ok = runner.invoke(
        audit_group,
        [
            "verify-report",
            str(note_file),
            "--root-key",
            deployment.init.root_vkey,
            "--bundle",
            str(bundle_file),
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["ok"] is True
    assert doc["figures_recomputed"] is True
    forged = tmp_path / "forged.note"
    forged.write_text(
        _resign(
            deployment,
            note,
            parse_note(note).text.replace("\nentries_added 3\n", "\nentries_added 30\n"),
        ),
        encoding="utf-8",
    )
    bad = runner.invoke(
        audit_group,
        [
            "verify-report",
            str(forged),
            "--root-key",
            deployment.init.root_vkey,
            "--bundle",
            str(bundle_file),
        ],
    )
    assert bad.exit_code == 1
    assert "entries_added 30 (recomputed 3)" in bad.output
    usage = runner.invoke(
        audit_group, ["verify-report", str(note_file), "--root-key", deployment.init.root_vkey]
    )
    assert usage.exit_code == 2


def test_a_public_lists_report_needs_no_token(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    from api.lists_admin import create_list_with_keys

    created = create_list_with_keys(
        deployment.db,
        deployment.settings.keys_dir,
        name="open",
        origin=None,
        approvals_required=1,
        home_country=None,
        canary_url=None,
        public=True,
        actor="test",
    )
    publish(client, tokens.admin, "open")
    period = period_of(datetime.now(UTC))
    note = issue_report(
        deployment.db, "open", period, deployment.settings.keys_dir, now=_after(period)
    )
    r = client.get("/v1/lists/open/transparency", params={"period": period})
    assert r.status_code == 200
    assert r.text == note
    assert r.headers["cache-control"].startswith("public")
    check = verify_report(
        note, [created.root_vkey], keyrings=[client.get("/v1/lists/open/keyring").text]
    )
    assert check.report.figures["entries_added"] == "0"  # the canary is never counted
