"""Squid's ERR_CLEANFEED page (clients.isp.squid_template; issue 18 item 1).

The template is read by Squid, whose error-page renderer treats every ``%``
as a code (errorpage.cc): the page may carry exactly one, ``%o`` (the
helper's message: the block reference), and never ``%U``/``%u``/``%i`` (the
URL, the client). tests/e2e/test_squid_helper_e2e.py shows it under a real
Squid; these tests pin the rendering and the command.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from blocklist.blockref import block_ref
from clients.errors import ConfigError
from clients.isp.blockpage import BlockPageConfig, PageRenderer, load_blockpage_config
from clients.isp.blockpage_page import PageContext
from clients.isp.cli import isp_group
from clients.isp.squid_template import (
    TEMPLATE_NAME,
    page_context,
    render_squid_template,
    shipped_languages,
    template_source,
    write_squid_template,
)

CONFIG = """\
[blockpage]
blocked_by = "https://isp.example/blocking"
isp_name = "Example ISP"
hotline_name = "Example Hotline"
hotline_url = "https://hotline.example/"
policy = "the 100% list"
policy_url = "https://hotline.example/policy?a=%41"
appeal_url = "https://hotline.example/appeal?lang=en"
help_line_name = "Example Help Line"
help_line_url = "https://help.example/"
help_line_phone = "0800 000 000"
message = "Blocked %U %i %o: may be illegal."
"""


@pytest.fixture
def config(tmp_path: Path) -> BlockPageConfig:
    path = tmp_path / "isp.toml"
    path.write_text(CONFIG)
    return load_blockpage_config(path)


def render(config: BlockPageConfig, source: str | None = None) -> str:
    return render_squid_template(
        config,
        page_context(config),
        source if source is not None else template_source("en"),
        language="en",
    )


def squid_codes(text: str) -> list[str]:
    """The codes Squid would expand: '%' and the next character, '%%' excepted."""
    return re.findall(r"%[^%]", re.sub(r"%%", "", text))


def squid_expand(text: str, message: str) -> str:
    """Squid's expansion of the two codes the page may hold (errorpage.cc)."""
    return re.sub(r"%(.)", lambda m: "%" if m.group(1) == "%" else message, text)


def test_the_only_squid_code_is_the_helper_message(config: BlockPageConfig) -> None:
    text = render(config)
    codes = squid_codes(text)
    # The reference; the appeal link (href and text); the appeal sentence.
    assert codes == ["%o"] * 4
    # The configured '%U %i %o' and the URLs' '%41' are text, not codes.
    assert "%%U %%i %%o" in text
    assert "policy?a=%%41" in text


def test_rendered_page_says_what_the_block_page_says(config: BlockPageConfig) -> None:
    ref = block_ref(bytes(range(32)))
    squid_page = squid_expand(render(config), ref)
    assert f'<strong class="ref">{ref}</strong>' in squid_page
    appeal = f"https://hotline.example/appeal?lang=en&amp;block_ref={ref}"
    assert f'<a href="{appeal}">' in squid_page
    # Same sentences as `cleanfeed isp blockpage` for the same settings.
    block_page = PageRenderer(config).render(ref, page_context(config)).decode()
    for part in re.findall(r"<p[^>]*>.*?</p>|<h[12]>.*?</h[12]>|<title>.*?</title>", block_page):
        assert part in squid_page, part
    assert "the 100% list" in squid_page
    assert "Blocked %U %i %o: may be illegal." in squid_page


def test_no_script_no_linked_asset(config: BlockPageConfig) -> None:
    text = render(config)
    assert "<script" not in text.lower()
    # A linked stylesheet would be fetched from the blocked origin via Squid.
    assert "<link" not in text.lower()
    assert "<style>" in text
    assert 'name="referrer" content="no-referrer"' in text


def test_a_template_must_show_the_reference(config: BlockPageConfig) -> None:
    with pytest.raises(ConfigError, match=r"must show \$block_ref"):
        render(config, "<p>$title</p>")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        render(config, "<p>$block_ref $nope</p>")
    with pytest.raises(ConfigError, match="no script"):
        render(config, "<p>$block_ref</p><SCRIPT>x()</SCRIPT>")
    # A stylesheet link placeholder does not exist here (it would load from
    # the blocked origin).
    with pytest.raises(ConfigError, match="unknown placeholder"):
        render(config, '<link href="$stylesheet"><p>$block_ref</p>')


def test_a_translation_is_rendered_with_its_language(
    config: BlockPageConfig, tmp_path: Path
) -> None:
    de = tmp_path / "de.html"
    de.write_text('<html lang="$language"><p>Sperrnummer: $block_ref</p></html>')
    text = render_squid_template(
        config, page_context(config), template_source("de", de), language="de"
    )
    assert text == '<html lang="de"><p>Sperrnummer: %o</p></html>'


def test_languages(tmp_path: Path) -> None:
    assert shipped_languages() == ["en"]
    with pytest.raises(ConfigError, match="no shipped Squid template for language 'de'"):
        template_source("de")
    with pytest.raises(ConfigError, match="not a lower-case language tag"):
        template_source("../en")
    with pytest.raises(ConfigError, match="cannot read template"):
        template_source("de", tmp_path / "missing.html")


def test_names_come_from_the_state_or_the_settings() -> None:
    named = BlockPageConfig(hotline_name="H", policy="P")
    assert page_context(named) == PageContext("H", "P")
    with pytest.raises(ConfigError, match="set hotline_name and policy"):
        page_context(BlockPageConfig())


def test_written_atomically_and_readable_by_squid(config: BlockPageConfig, tmp_path: Path) -> None:
    out = tmp_path / "en"
    out.mkdir()
    path = write_squid_template(out, render(config))
    assert path == out / TEMPLATE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in out.iterdir()] == [TEMPLATE_NAME]  # no temporary left
    with pytest.raises(ConfigError, match="not a directory"):
        write_squid_template(tmp_path / "missing", "x")


def test_command_writes_the_page(tmp_path: Path) -> None:
    conf = tmp_path / "isp.toml"
    conf.write_text(CONFIG)
    out = tmp_path / "en"
    out.mkdir()
    runner = CliRunner()
    result = runner.invoke(
        isp_group, ["squid-template", "--config", str(conf), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    written = (out / TEMPLATE_NAME).read_text()
    assert squid_codes(written) == ["%o"] * 4
    printed = runner.invoke(isp_group, ["squid-template", "--config", str(conf)])
    assert printed.exit_code == 0
    assert printed.output == written
    source = runner.invoke(isp_group, ["squid-template", "--print-source"])
    assert source.output == template_source("en")


def test_command_fails_clearly(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(isp_group, ["squid-template", "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "set hotline_name and policy" in result.output
    assert not (tmp_path / TEMPLATE_NAME).exists()
    conf = tmp_path / "isp.toml"
    conf.write_text(CONFIG)
    result = runner.invoke(isp_group, ["squid-template", "--config", str(conf), "--language", "de"])
    assert result.exit_code == 2
    assert "no shipped Squid template" in result.output


def test_the_shipped_template_is_package_data() -> None:
    # pyproject.toml must ship it, or an installed client has no page.
    text = Path(__file__).resolve().parents[3].joinpath("pyproject.toml").read_text()
    assert '"clients.isp" = ["templates/squid/*.html"]' in text
