"""The safeguards from the command line (issue 16 items 1-3).

``cleanfeed entries add`` against a real server on loopback refuses a public
suffix with its problem code and shows the guard rule and blast radius;
``cleanfeed entries referrals|refer`` work the referral queue;
``cleanfeed guard add|list|remove`` manage the guard list in the database.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.api_testing import Deployment, close_deployment, make_deployment

from blocklist.store import entries as store_entries
from blocklist.store import guards as store_guards
from blocklist.store import lists as store_lists
from cleanfeed.cli import main
from tests.api import test_analyst_cli as analyst_cli

pytest.importorskip("uvicorn")

#: The analyst CLI suite's loopback server (uvicorn on 127.0.0.1) and token files.
served = analyst_cli.served
_token_file = analyst_cli._token_file


def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_entries_add_refuses_a_public_suffix_and_shows_the_guard_rule(
    served: tuple[Deployment, str], tmp_path: Path
) -> None:
    d, url = served
    env = {
        "CLEANFEED_SERVER": url,
        "CLEANFEED_TOKEN_FILE": str(_token_file(tmp_path, "alice", d.tokens.alice)),
    }
    code, out, err = _run(
        env, "entries", "add", "http://co.uk/", "--scope", "host", "--reason", "r", "--yes"
    )
    assert code == 1, (out, err)
    assert "public_suffix" in err
    assert "safeguard: public suffix" in out
    code, out, err = _run(
        env,
        "entries",
        "add",
        "http://192.0.2.9/files/",
        "--scope",
        "prefix",
        "--reason",
        "r",
        "--yes",
    )
    assert code == 0, (out, err)
    assert "safeguard: guarded" in out
    entry_id = int(re.search(r"^entry (\d+) pending", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    code, out, err = _run(env, "entries", "show", str(entry_id))
    assert code == 0, err
    assert "ip-address; approved by not yet" in out


def test_entries_referrals_and_refer(served: tuple[Deployment, str], tmp_path: Path) -> None:
    d, url = served
    env = {
        "CLEANFEED_SERVER": url,
        "CLEANFEED_TOKEN_FILE": str(_token_file(tmp_path, "bob", d.tokens.bob)),
    }
    with d.db.transaction() as session:
        list_id = store_lists.get_list(session, "main").id
        row, _ = store_entries.add_entry(
            session,
            list_id,
            url="http://home.example.com/x.html",
            scope="page",
            reason="r",
            actor="alice",
        )
        from datetime import UTC, datetime

        store_guards.propose_referral(
            session, list_id, row, actor="alice", home_country="GB", now=datetime.now(UTC)
        )
        entry_id = row.id
    code, out, err = _run(env, "entries", "referrals", "--json")
    assert code == 0, err
    assert [e["id"] for e in json.loads(out)["entries"]] == [entry_id]
    code, out, err = _run(env, "entries", "refer", str(entry_id), "--reason", "home hosted")
    assert code == 0, err
    assert "referred" in out


def test_guard_cli_adds_lists_and_removes(tmp_path: Path) -> None:
    d = make_deployment(tmp_path)
    try:
        data = ["--data-dir", str(d.data_dir)]
        runner = CliRunner()
        r = runner.invoke(main, ["guard", "add", "Files.Example.org", "--note", "shared", *data])
        assert r.exit_code == 0, r.output
        assert "Guarded files.example.org" in r.output
        r = runner.invoke(main, ["guard", "add", "co.uk", *data])
        assert r.exit_code != 0
        assert "invalid_field" in r.output
        r = runner.invoke(main, ["guard", "list", "--json", *data])
        hosts = {g["host"] for g in json.loads(r.output)["guards"]}
        assert {"files.example.org", "dropbox.com"} <= hosts
        r = runner.invoke(main, ["guard", "remove", "files.example.org", "--reason", "gone", *data])
        assert r.exit_code == 0, r.output
        r = runner.invoke(main, ["guard", "list", "--json", *data])
        assert "files.example.org" not in {g["host"] for g in json.loads(r.output)["guards"]}
    finally:
        close_deployment(d)
