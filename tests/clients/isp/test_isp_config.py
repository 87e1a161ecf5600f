"""Configuration: TOML file, environment and flags, with validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clients.errors import ConfigError
from clients.isp.config import DEFAULT_MAX_AGE, ExportSpec, load_config
from signer.keys import SecretKey

ROOT = SecretKey.generate("cleanfeed.invalid/main/root").vkey
WITNESS = SecretKey.generate("witness.example").verifier.cosigner.vkey


def test_file_env_and_flags_precedence(tmp_path: Path) -> None:
    (tmp_path / "root.vkey").write_text(ROOT + "\n")
    (tmp_path / "token").write_text("cf_from_file\n")
    cfg = tmp_path / "isp.toml"
    cfg.write_text(
        'server = "https://hotline.example/"\n'
        'list = "main"\n'
        'token_file = "token"\n'
        'root_keys = ["@root.vkey"]\n'
        'state_dir = "state"\n'
        "interval = 900\n"
        "[timeouts]\nread = 5\n"
        f'[witnesses]\nkeys = ["{WITNESS}"]\nquorum = 1\n'
        '[[exports]]\nformat = "rpz"\noutput = "out/cleanfeed.rpz"\non_change = "rndc reload"\n'
    )
    config = load_config(cfg, environ={})
    assert config.server == "https://hotline.example"
    assert config.token == "cf_from_file"
    assert config.root_keys == (ROOT,)
    assert config.state_dir == tmp_path / "state"
    assert config.interval == 900
    assert config.timeouts.read == 5
    assert config.max_age == DEFAULT_MAX_AGE
    assert config.witnesses == (WITNESS,)
    assert config.witness_quorum == 1
    assert config.exports == (ExportSpec("rpz", tmp_path / "out/cleanfeed.rpz", "rndc reload"),)
    # The environment beats the file, flags beat both.
    assert load_config(cfg, environ={"CLEANFEED_TOKEN": "cf_env"}).token == "cf_env"
    flagged = load_config(
        cfg, environ={"CLEANFEED_TOKEN": "cf_env"}, overrides={"token": "cf_flag"}
    )
    assert flagged.token == "cf_flag"


@pytest.mark.parametrize(
    "text",
    [
        'surprise = "x"\n',
        'server = "ftp://hotline.example"\n',
        'server = "https://hotline.example/?token=x"\n',
        "interval = 1\n",
        'root_keys = ["not a vkey"]\n',
        f'[witnesses]\nkeys = ["{WITNESS}"]\nquorum = 2\n',
        "[timeouts]\nforever = 1\n",
        "this is not toml",
    ],
)
def test_invalid_configuration_refused(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "isp.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_config(cfg, environ={})


def test_require_sync_names_what_is_missing() -> None:
    config = load_config(None, environ={})
    with pytest.raises(ConfigError, match=r"--server.*--list.*--root-key.*--state-dir"):
        config.require_sync()


def test_token_never_in_repr() -> None:
    config = load_config(None, environ={"CLEANFEED_TOKEN": "cf_secret_value"})
    assert "cf_secret_value" not in repr(config)


# --- [[exports]] blockpage and ede (issue 18 item 3) ---------------------------------


def _exports(tmp_path: Path, extra: str, fmt: str = "unbound") -> Path:
    cfg = tmp_path / "isp.toml"
    cfg.write_text(f'[[exports]]\nformat = "{fmt}"\noutput = "out/cleanfeed"\n{extra}')
    return cfg


def test_export_blockpage_addresses_are_read_and_normalised(tmp_path: Path) -> None:
    cfg = _exports(tmp_path, 'blockpage = ["192.0.2.10", "2001:DB8:0::10"]\n')
    (spec,) = load_config(cfg, environ={}).exports
    assert spec.blockpage == ("192.0.2.10", "2001:db8::10")
    assert spec.ede is None
    # without the key: NXDOMAIN, as before
    (plain,) = load_config(_exports(tmp_path, ""), environ={}).exports
    assert plain.blockpage == ()


@pytest.mark.parametrize(
    ("fmt", "extra", "words"),
    [
        ("unbound", 'blockpage = ["192.0.2.300"]\n', "not an IPv4 or IPv6 address"),
        ("unbound", 'blockpage = ["0.0.0.0"]\n', "not a unicast address"),
        ("dnsmasq", 'blockpage = ["ff02::1"]\n', "not a unicast address"),
        ("hosts", 'blockpage = ["fe80::1%eth0"]\n', "without a scope"),
        ("rpz", 'blockpage = ["::ffff:192.0.2.1"]\n', "IPv4-mapped"),
        ("rpz", 'blockpage = ["192.0.2.1", "192.0.2.01"]\n', "not an IPv4"),
        ("rpz", 'blockpage = ["2001:db8::1", "2001:db8:0::1"]\n', "listed twice"),
        ("rpz", f"blockpage = {[f'192.0.2.{i}' for i in range(1, 6)]}\n", "at most 4"),
        ("squid", 'blockpage = ["192.0.2.10"]\n', "cannot send hosts to a block page"),
        ("hashes", 'blockpage = ["192.0.2.10"]\n', "cannot send hosts to a block page"),
        ("rpz", "blockpage = [1]\n", "list of strings"),
        ("rpz", "ede = 17\n", "17 (Filtered) means the user asked for the filtering"),
        ("rpz", 'ede = "filtered"\n', "17 (Filtered) means the user asked for the filtering"),
        ("rpz", "ede = 18\n", "expected 15 (Blocked) or 16 (Censored)"),
        ("rpz", "ede = true\n", "expected 15 (Blocked) or 16 (Censored)"),
        ("unbound", "ede = 15\n", "not supported by the unbound export"),
        ("dnsmasq", "ede = 16\n", "not supported by the dnsmasq export"),
        ("hosts", "ede = 15\n", "not supported by the hosts export"),
        ("rpz", "surprise = 1\n", "keys are format, output, on_change, blockpage, ede"),
    ],
)
def test_export_blockpage_and_ede_refused(tmp_path: Path, fmt: str, extra: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(_exports(tmp_path, extra, fmt), environ={})


@pytest.mark.parametrize(("value", "code"), [("15", 15), ("16", 16), ('"blocked"', 15)])
def test_export_ede_on_rpz(tmp_path: Path, value: str, code: int) -> None:
    (spec,) = load_config(_exports(tmp_path, f"ede = {value}\n", "rpz"), environ={}).exports
    assert spec.ede == code
