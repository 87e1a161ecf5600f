"""The analyst CLI against a real server on loopback (issue 13, items 7 and 8).

Commands run as docs/quickstart.md prints them: the server URL and the
token file come from the environment, never from a --token argument.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.api_testing import Deployment, close_deployment, make_deployment
from support.processes import free_port

from blocklist.store import imports as store_imports
from cleanfeed.cli import main

uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    """A deployment served by uvicorn on 127.0.0.1 (stopped at the end)."""
    d = make_deployment(tmp_path)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(d.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        assert thread.is_alive(), "server thread died"
        time.sleep(0.02)
    try:
        yield d, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        close_deployment(d)


def _token_file(tmp_path: Path, name: str, token: str) -> Path:
    path = tmp_path / f"{name}.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def envs(served: tuple[Deployment, str], tmp_path: Path) -> dict[str, dict[str, str]]:
    d, url = served
    return {
        who: {
            "CLEANFEED_SERVER": url,
            "CLEANFEED_TOKEN_FILE": str(_token_file(tmp_path, who, getattr(d.tokens, who))),
        }
        for who in ("alice", "bob", "isp")
    }


def _write_csv(path: Path, n: int, bad: int = 0) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url", "scope", "reason", "reference"])
        for i in range(n):
            w.writerow([f"http://cli.example.com/g/{i}.html", "page", "hotline report", f"c-{i}"])
        for i in range(bad):
            w.writerow([f"javascript:alert({i})", "page", "hotline report", ""])


def test_import_approve_publish_as_the_quickstart_prints_it(
    envs: dict[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports.csv"
    _write_csv(reports, 25, bad=2)
    code, out, err = run(
        envs["alice"], "entries", "import", str(reports), "--batch-size", "10", "--json"
    )
    assert code == 3, (out, err)  # two rows refused
    summary = json.loads(out)
    assert (summary["created"], summary["existing"], summary["refused"]) == (25, 0, 2)
    assert "rows 1-10 of 27" in err
    assert "rows 21-27 of 27" in err
    with open(summary["results_file"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 27
    assert rows[0]["result"] == "created"
    assert rows[0]["line"] == "2"
    assert {r["result"] for r in rows[25:]} == {"refused"}
    assert {r["code"] for r in rows[25:]} == {"invalid_url"}
    import_id = summary["import"]

    # Re-running is harmless: every row is "existing" under a new import.
    code, out, _ = run(envs["alice"], "entries", "import", str(reports), "--json")
    assert json.loads(out)["existing"] == 25

    # Four-eyes per entry: alice's own import is refused row by row.
    code, out, _ = run(envs["alice"], "entries", "approve", "--import", str(import_id), "--json")
    assert code == 3
    assert {r["code"] for r in json.loads(out)["results"]} == {"self_approval"}

    # Pages of 10 (not 10,000): the CLI follows "next" until the import is done.
    monkeypatch.setattr(store_imports, "MAX_APPROVE_ROWS", 10)
    code, out, err = run(envs["bob"], "entries", "approve", "--import", str(import_id))
    assert code == 0, (out, err)
    assert "25 approved (25 now active), 0 refused" in out

    code, out, _ = run(envs["alice"], "publish", "--json")
    assert code == 0
    assert json.loads(out)["count"] == 26


def test_add_shows_the_reach_and_needs_confirmation_in_scripts(
    envs: dict[str, dict[str, str]],
) -> None:
    url = "http://cli.example.org/dir/page.html"
    code, out, err = run(envs["alice"], "entries", "add", url, "--reason", "report")
    assert code == 2  # no terminal, no --yes: nothing added
    assert "cli.example.org/dir/page.html" in out  # the reach was shown first
    assert "--yes" in err
    code, out, _ = run(envs["alice"], "entries", "search", "--host", "cli.example.org", "--json")
    assert json.loads(out)["entries"] == []

    code, out, _ = run(
        envs["alice"], "entries", "add", url, "--reason", "report", "--yes", "--json"
    )
    assert code == 0, out
    added = json.loads(out)
    assert added["preview"]["accepted"] is True
    entry_id = added["entry"]["id"]

    # A refused reach is never added, and says why.
    code, out, err = run(
        envs["alice"], "entries", "add", "http://cli.example.org/dir/", "--reason", "r", "--yes"
    )
    assert code == 1
    assert "invalid_entry" in err

    code, out, _ = run(envs["bob"], "entries", "approve", str(entry_id))
    assert code == 0
    assert f"{entry_id}: approved (active)" in out
    code, out, _ = run(envs["bob"], "entries", "show", str(entry_id), "--json")
    shown = json.loads(out)
    assert shown["status"] == "active"
    assert [a["actor"] for a in shown["approvals"]] == ["bob"]
    code, out, _ = run(
        envs["bob"], "entries", "search", "--url", "http://cli.example.org/dir/page.html"
    )
    assert out.startswith(f"{entry_id}\tactive\tpage\t")
    code, out, _ = run(
        envs["bob"], "entries", "expire", str(entry_id), "--reason", "wrong block", "--json"
    )
    assert code == 0
    assert json.loads(out)["status"] == "removed"


def test_errors_print_the_problem_code_and_exit_codes_are_documented(
    envs: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    # The server's refusal: exit 1 with the problem code.
    code, _, err = run(envs["isp"], "entries", "show", "1")
    assert code == 1
    assert "forbidden (403)" in err
    code, _, err = run(envs["alice"], "entries", "show", "999999")
    assert (code, "not_found (404)" in err) == (1, True)
    # Configuration errors: exit 2.
    code, _, err = run({"CLEANFEED_SERVER": envs["alice"]["CLEANFEED_SERVER"]}, "publish")
    assert code == 2
    assert "no token" in err
    code, _, err = run({**envs["alice"], "CLEANFEED_SERVER": "127.0.0.1:1"}, "publish")
    assert code == 2
    assert "http(s) URL" in err
    code, _, err = run(envs["alice"], "entries", "import", str(tmp_path / "missing.csv"))
    assert code == 2
    # An unreachable server: exit 4.
    code, _, err = run(
        {**envs["alice"], "CLEANFEED_SERVER": f"http://127.0.0.1:{free_port()}"}, "publish"
    )
    assert code == 4
    assert "cannot reach" in err
    # The token is taken from the environment too, and never as an argument.
    code, out, _ = run(
        {"CLEANFEED_SERVER": envs["alice"]["CLEANFEED_SERVER"],
         "CLEANFEED_TOKEN": Path(envs["alice"]["CLEANFEED_TOKEN_FILE"]).read_text().strip()},
        "entries", "search", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["entries"]
    # No --token option: a token on the command line lands in shell history.
    code, _, err = run(envs["alice"], "publish", "--token", "cf_analyst_x")
    assert code == 2
    assert "No such option '--token'" in err
    assert "Exit codes: 0 done" in run({}, "entries", "import", "--help")[1]


def test_an_interrupted_import_records_the_rows_not_sent(
    envs: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    reports = tmp_path / "reports.csv"
    _write_csv(reports, 3)
    # An import id that does not exist: the first batch is refused.
    code, _, err = run(envs["alice"], "entries", "import", str(reports), "--import", "4242")
    assert code == 1
    assert "not_found (404)" in err
    assert "rows 1-3 were not sent" in err
    with open(f"{reports}.results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["result"] for r in rows] == ["not_sent"] * 3
