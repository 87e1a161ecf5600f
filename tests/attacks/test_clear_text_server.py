"""The token and plaintext in clear: an ``http://`` server off loopback (issue 12, item 5).

Today ``cleanfeed isp`` and ``cleanfeed audit fetch`` accept any
``http://`` server: the bearer token and, for entitled tokens, the
plaintext pages cross the network unencrypted, readable and replayable by
any hop. Credentials written into the URL end up in every log line that
names the server. Now (``clients.common.http.check_server_url``):

- ``http://`` is refused unless the host is loopback, or the operator set
  ``allow_insecure_http`` (documented in docs/isp.md), in which case every
  sync logs a warning;
- credentials inside the URL are refused, without repeating them;
- the check holds wherever a configuration comes from: the configuration
  file and flags, and a :class:`Syncer` built directly, before any request.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.attack_helpers import World

from cleanfeed.cli import main
from clients.errors import ConfigError, ServerUrlRefused
from clients.isp.config import load_config
from clients.isp.sync import Syncer

CLEAR = "http://hotline.example"
WITH_CREDENTIALS = [
    "https://auditor:s3cr3t-pw@hotline.example",
    "https://:s3cr3t-pw@hotline.example",
    "http://s3cr3t-pw@127.0.0.1:8080",
]
LOOPBACK = [
    "http://127.0.0.1:8080",
    "http://127.9.9.9",
    "http://[::1]:8080",
    "http://localhost:8080",
]


def test_clear_text_server_is_refused_by_the_configuration(tmp_path: Path) -> None:
    with pytest.raises(ServerUrlRefused, match="clear-text") as e:
        load_config(overrides={"server": CLEAR})
    assert isinstance(e.value, ConfigError)  # a configuration error (exit 2)
    file = tmp_path / "isp.toml"
    file.write_text(f'server = "{CLEAR}"\n')
    with pytest.raises(ServerUrlRefused):
        load_config(file)


def test_clear_text_server_is_refused_before_any_request(world: World) -> None:
    """However the configuration was built, the token is never sent in clear."""
    w = world
    w.add(w.url("a"))
    w.publish()
    with pytest.raises(ServerUrlRefused):
        w.sync(config=w.configured(server="http://cleanfeed.test"))
    assert w.proxy.requests == []


@pytest.mark.parametrize("url", WITH_CREDENTIALS)
def test_credentials_in_the_server_url_are_refused(url: str) -> None:
    with pytest.raises(ServerUrlRefused) as e:
        load_config(overrides={"server": url})
    assert "s3cr3t" not in str(e.value)


@pytest.mark.parametrize("url", LOOPBACK)
def test_loopback_http_is_accepted(url: str) -> None:
    assert load_config(overrides={"server": url}).server == url


def test_allow_insecure_http_warns_on_every_sync(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    w.add(w.url("a"))
    w.publish()
    file = tmp_path / "isp.toml"
    file.write_text(f'server = "{CLEAR}"\nallow_insecure_http = true\n')
    assert load_config(file).allow_insecure_http
    config = w.configured(server="http://cleanfeed.test", allow_insecure_http=True)
    with caplog.at_level(logging.WARNING, logger="cleanfeed.isp"):
        for _ in range(2):
            assert w.sync(config=config).ok
    warnings = [r for r in caplog.records if "allow_insecure_http" in r.getMessage()]
    assert len(warnings) == 2
    assert all("cleanfeed.test" in r.getMessage() for r in warnings)


def test_syncer_refuses_clear_text_directly(world: World) -> None:
    import httpx

    with httpx.Client() as client, pytest.raises(ServerUrlRefused):
        Syncer(world.configured(server=CLEAR), client)


@pytest.mark.parametrize("url", [CLEAR, WITH_CREDENTIALS[0]])
def test_audit_fetch_refuses_the_url(tmp_path: Path, url: str) -> None:
    out = tmp_path / "bundle.json"
    args = ["audit", "fetch", "--server", url, "--token", "cf_t", "--list", "main"]
    result = CliRunner().invoke(main, [*args, "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert "--server" in result.output
    assert "s3cr3t" not in result.output
    assert not out.exists()
