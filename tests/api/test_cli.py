"""``cleanfeed init`` and ``cleanfeed token …``: the JSON that scripts rely on."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner
from support.api_testing import ApiClient

from api.app import create_app
from api.settings import load_settings
from cleanfeed.cli import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_init_json_and_tokens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out = _run("init", "--data-dir", str(data), "--list", "hotline", "--json")
    assert code == 0, out
    init = json.loads(out)
    assert set(init) == {"data_dir", "list", "origin", "root_vkey", "admin_token"}
    assert init["list"] == "hotline"
    assert init["origin"] == "cleanfeed.invalid/hotline"
    assert init["admin_token"].startswith("cf_admin_")
    token_file = data / "admin-token"
    assert token_file.read_text().strip() == init["admin_token"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    code, out = _run(
        "token", "create", "--data-dir", str(data), "--role", "isp", "--name", "isp-1",
        "--list", "hotline", "--plaintext", "--expires", "2999-12-31", "--json",
    )  # fmt: skip
    assert code == 0, out
    created = json.loads(out)
    assert set(created) == {"token", "name", "role", "lists"}
    assert created["lists"] == ["hotline"]
    assert created["role"] == "isp"

    # The token works against the API built on that data directory.
    app = create_app(load_settings(data, schedule=False, rate_limit_per_second=0))
    client = ApiClient(app)
    try:
        r = client.get("/v1/lists/hotline/checkpoint", token=created["token"])
        assert r.status_code == 200
    finally:
        client.close()
        app.state.cf.db.dispose()

    code, out = _run("token", "list", "--data-dir", str(data), "--json")
    listed = json.loads(out)["tokens"]
    by_name = {t["name"]: t for t in listed}
    assert by_name["isp-1"]["plaintext"] is True
    assert by_name["isp-1"]["expires_at"].startswith("2999-12-31T23:59:59")
    assert created["token"] not in out

    code, out = _run(
        "token", "revoke", "--data-dir", str(data), str(by_name["isp-1"]["id"]), "--json"
    )
    assert code == 0
    assert json.loads(out)["revoked_at"] is not None
    code, out = _run("token", "revoke", "--data-dir", str(data), str(by_name["isp-1"]["id"]))
    assert code != 0
    assert "invalid_state" in out


def test_init_human_output_and_refusals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out = _run("init", "--data-dir", str(data))
    assert code == 0
    assert "Root key to pin" in out
    assert "cf_admin_" in out
    code, out = _run("init", "--data-dir", str(data))
    assert code != 0
    assert "already" in out
    code, out = _run(
        "token", "create", "--data-dir", str(data), "--role", "isp", "--name", "x", "--json"
    )
    assert code != 0
    assert "invalid_field" in out
    code, out = _run(
        "token", "create", "--data-dir", str(data), "--role", "analyst", "--name", "x",
        "--expires", "tomorrow",
    )  # fmt: skip
    assert code != 0
    code, out = _run("token", "list", "--data-dir", str(tmp_path / "empty"))
    assert code != 0
    assert "not initialised" in out
