"""``cleanfeed appeals erase|prune`` and ``cleanfeed report transparency`` (issue 17)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select
from support.api_testing import MAIN, URL_B, ApiClient, Deployment, Tokens, add_approved, publish

from api.cli.appeals import appeals_group, report_group
from blocklist.auditlog import Action
from blocklist.store import audit as store_audit
from blocklist.store.models import AppealPrivateRow, AppealRow, AuditRow
from blocklist.transparency import FIGURES, parse_period, period_of
from signer.transparency import issue_report


def _file(client: ApiClient, message: str) -> int:
    r = client.post(
        "/v1/appeals", json={"url": URL_B, "message": message, "contact": "x@example.org"}
    )
    assert r.status_code == 202
    appeal: int = r.json()["appeal"]
    return appeal


def test_erase_removes_the_appellants_words_and_records_it(
    deployment: Deployment, client: ApiClient
) -> None:
    appeal = _file(client, "please erase")
    runner = CliRunner()
    args = ["erase", "--data-dir", str(deployment.data_dir), "--appeal", str(appeal), "--json"]
    r = runner.invoke(appeals_group, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"appeal": appeal, "erased": True}
    with deployment.db.read() as s:
        assert s.get(AppealPrivateRow, appeal) is None
        assert s.get(AppealRow, appeal) is not None
        erased = s.scalars(select(AuditRow).where(AuditRow.action == Action.APPEAL_ERASE)).one()
        assert erased.details == {"appeal": appeal, "why": "request"}
        store_audit.verify(s, None)
    again = runner.invoke(appeals_group, args)
    assert json.loads(again.output)["erased"] is False
    missing = runner.invoke(
        appeals_group, ["erase", "--data-dir", str(deployment.data_dir), "--appeal", "999"]
    )
    assert missing.exit_code != 0
    assert "no appeal 999" in missing.output


def test_retention_erases_only_closed_appeals_past_their_time(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    closed = _file(client, "decided long ago")
    still_open = _file(client, "still open")
    r = client.post(
        f"/v1/lists/{MAIN}/appeals/{closed}/decide",
        json={"outcome": "upheld", "reason": "fine"},
        token=tokens.carol,
    )
    assert r.status_code == 200
    with deployment.db.transaction() as s:
        row = s.get(AppealRow, closed)
        assert row is not None
        assert row.closed_at is not None
        row.closed_at = datetime.now(UTC) - timedelta(days=31)
    r = CliRunner().invoke(
        appeals_group,
        ["prune", "--data-dir", str(deployment.data_dir), "--days", "30", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["erased"] == [closed]
    with deployment.db.read() as s:
        assert s.get(AppealPrivateRow, closed) is None
        assert s.get(AppealPrivateRow, still_open) is not None


def test_report_transparency_prints_the_issued_report(
    deployment: Deployment, client: ApiClient, tokens: Tokens
) -> None:
    add_approved(client, tokens, URL_B)
    publish(client, tokens.alice)
    period = period_of(datetime.now(UTC))
    note = issue_report(
        deployment.db,
        MAIN,
        period,
        deployment.settings.keys_dir,
        now=parse_period(period)[1] + timedelta(hours=1),
    )
    runner = CliRunner()
    base = ["transparency", "--data-dir", str(deployment.data_dir), "--list", MAIN]
    text = runner.invoke(report_group, [*base, "--period", period])
    assert text.exit_code == 0, text.output
    assert text.output == note
    as_json = json.loads(
        runner.invoke(report_group, [*base, "--period", period, "--format", "json"]).output
    )
    assert as_json["note"] == note
    assert as_json["figures"]["entries_added"] == "1"
    rows = list(
        csv.reader(
            io.StringIO(
                runner.invoke(report_group, [*base, "--period", period, "--format", "csv"]).output
            )
        )
    )
    assert rows[0] == ["figure", "value"]
    assert [r[0] for r in rows[1:]] == list(FIGURES)
    current = runner.invoke(report_group, [*base, "--period", "2999-01"])
    assert current.exit_code != 0
    assert "has not ended" in current.output
