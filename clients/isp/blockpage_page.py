"""The block page itself: the HTTP 451 page's template, values and style.

:class:`PageRenderer` fills the operator's (or the default) template with
escaped values: the block reference, the blocking body and the links to
its policy, appeal and help (listed URLs never appear on the page and are
never links; docs/isp.md "Clayton's cautions").
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from blocklist.blockref import block_ref
from clients.errors import ConfigError
from clients.isp.blockpage_config import (
    BlockPageConfig,
)

__all__ = [
    "DEFAULT_STYLESHEET",
    "DEFAULT_TEMPLATE",
    "SHIPPED_PAGES",
    "STYLESHEET_PATH",
    "PageContext",
    "PageRenderer",
    "appeal_link",
    "page_values",
    "shipped_page",
]

#: Path of the page's stylesheet on the blocked origin (CSP style-src 'self').
STYLESHEET_PATH: Final = "/.cleanfeed-blockpage.css"


#: The package folder of the shipped page texts, one ``<language>.html``
#: each: Squid's ``ERR_CLEANFEED`` templates (:mod:`clients.isp.squid_template`),
#: whose English one is also the block page's default, so both pages say
#: the same thing from one text.
SHIPPED_PAGES: Final = "templates/squid"

#: Squid's page inlines its style (a linked stylesheet would be fetched from
#: the blocked origin through Squid); the block page links the stylesheet it
#: serves itself (CSP style-src 'self').
_INLINE_STYLE: Final = "<style>\n$style\n</style>\n"
_LINKED_STYLE: Final = '<link rel="stylesheet" href="$stylesheet">\n'


def shipped_page(language: str) -> str:
    """The shipped page text for ``language`` (``string.Template`` source).

    Raises:
        FileNotFoundError: no page ships for ``language``.
    """
    return (
        resources.files("clients.isp")
        .joinpath(f"{SHIPPED_PAGES}/{language}.html")
        .read_text(encoding="utf-8")
    )


def _linked_style(page: str) -> str:
    if page.count(_INLINE_STYLE) != 1:
        raise RuntimeError(f"{SHIPPED_PAGES}/en.html must hold one inline <style> element")
    return page.replace(_INLINE_STYLE, _LINKED_STYLE)


#: The default page: the shipped English page with its stylesheet linked.
#: Placeholders: plain values (HTML-escaped before they are put in): $title,
#: $message, $block_ref, $language, $stylesheet, $isp_name, $hotline_name,
#: $policy; HTML built by the server from escaped values: $who_html,
#: $help_html, $appeal_html. ``$$`` is a dollar sign.
DEFAULT_TEMPLATE: Final = _linked_style(shipped_page("en"))


DEFAULT_STYLESHEET: Final = """\
/* cleanfeed block page: served by the block page itself (CSP style-src 'self'). */
html { font-family: system-ui, sans-serif; line-height: 1.5; color: #1a1a1a; background: #f3f3f3; }
main { max-width: 40rem; margin: 3rem auto; padding: 1.5rem 2rem; background: #fff;
       border-top: 0.5rem solid #a4001d; }
h1 { font-size: 1.6rem; margin-top: 0.5rem; }
h2 { font-size: 1.1rem; margin-bottom: 0.25rem; }
.warning { font-size: 1.1rem; }
.ref { font-family: ui-monospace, monospace; font-size: 1.2rem; letter-spacing: 0.05em; }
a { color: #0b4f9c; }
"""


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'


def appeal_link(appeal_url: str, parameter: str, ref: str) -> str:
    """The hotline's appeal form URL with the reference as a query parameter."""
    parts = urlsplit(appeal_url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (parameter, ref)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class PageContext:
    """Who and what the page names, resolved once per served version."""

    hotline_name: str
    policy: str


class PageRenderer:
    """Renders the 451 page; the template is checked once, at start.

    Args:
        config: the block page settings.

    Raises:
        ConfigError: the template cannot be read, is not UTF-8, or uses a
            placeholder that does not exist.
    """

    def __init__(self, config: BlockPageConfig) -> None:
        self._config = config
        self._template = string.Template(_read_text(config.template, DEFAULT_TEMPLATE, "template"))
        self.stylesheet = _read_text(config.stylesheet, DEFAULT_STYLESHEET, "stylesheet").encode()
        # Catch a typo in a custom template now rather than on a user's screen.
        sample = block_ref(bytes(32))
        try:
            page = self.render(sample, PageContext("hotline", "policy"))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"blockpage template: unknown or malformed placeholder {e}") from e
        if sample.encode() not in page:
            # The reference is what lets a visitor appeal: a page without it
            # leaves only the "outcry" route of 2008 (DESIGN.md part 2).
            raise ConfigError("blockpage template: it must show $block_ref")

    def render(self, ref: str, context: PageContext) -> bytes:
        """The page for one block reference, as UTF-8.

        Raises:
            KeyError: the template names an unknown placeholder.
            ValueError: the template holds a malformed placeholder.
        """
        values = page_values(self._config, ref, context)
        return self._template.substitute(values).encode("utf-8")


def page_values(c: BlockPageConfig, ref: str, context: PageContext) -> dict[str, str]:
    """The placeholders' values for one block reference, HTML-escaped.

    Shared with the Squid error page (:mod:`clients.isp.squid_template`),
    so both pages say the same thing.
    """
    esc = html.escape
    hotline = (
        _link(c.hotline_url, context.hotline_name) if c.hotline_url else esc(context.hotline_name)
    )
    policy = _link(c.policy_url, context.policy) if c.policy_url else esc(context.policy)
    isp = _link(c.blocked_by, c.isp_name) if c.blocked_by else esc(c.isp_name)
    who = (
        f"{hotline} asked for this address to be blocked, under {policy}. "
        f"The block is implemented by {isp}."
    )
    contacts = []
    if c.help_line_url:
        contacts.append(_link(c.help_line_url, c.help_line_url))
    if c.help_line_phone:
        contacts.append(f"phone {esc(c.help_line_phone)}")
    reach = f": {', '.join(contacts)}" if contacts else "."
    help_html = (
        "If you are worried about your own thoughts or behaviour online, or about "
        f"someone else's, you can talk to {esc(c.help_line_name)} in confidence{reach}"
    )
    if c.appeal_url:
        form = appeal_link(c.appeal_url, c.appeal_parameter, ref)
        appeal = (
            f"Ask {hotline} to review the block with its appeal form: "
            f"{_link(form, form)}. The form needs the block reference {esc(ref)}."
        )
    else:
        appeal = f"Ask {hotline} to review the block, quoting the block reference {esc(ref)}."
    values = {
        "title": esc(c.title),
        "message": esc(c.message),
        "block_ref": esc(ref),
        "language": esc(c.language),
        "stylesheet": esc(STYLESHEET_PATH),
        "isp_name": esc(c.isp_name),
        "hotline_name": esc(context.hotline_name),
        "policy": esc(context.policy),
        "who_html": who,
        "help_html": help_html,
        "appeal_html": appeal,
    }
    return values


def _read_text(path: Path | None, default: str, what: str) -> str:
    if path is None:
        return default
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read blockpage {what} {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"blockpage {what} {path} is not UTF-8") from e
