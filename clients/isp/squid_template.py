"""Squid's own block page: the ``ERR_CLEANFEED`` error template.

DESIGN.md part 2, "Enforcement at the ISP"; issue 18 item 1. Squid answers
blocked page and prefix entries itself::

    acl cleanfeed_listed external cleanfeed
    deny_info 451:ERR_CLEANFEED cleanfeed_listed
    http_access deny cleanfeed_listed

``deny_info`` sends HTTP 451 Unavailable For Legal Reasons (RFC 7725
section 3) with the error template named ``ERR_CLEANFEED``, and the external
ACL helper (:mod:`clients.isp.squid_helper`) answers a listed URL with ``OK
message=CF1-…``: the template shows that message with Squid's ``%o`` code,
so the page carries the matched entry's ``block_ref`` and the appeal link
has it filled in.

This module renders that template from the same settings and sentences as
``cleanfeed isp blockpage`` (the ``[blockpage]`` table, :func:`page_values`),
so a blocked user sees the same page whichever filter stopped the request:
the deterrence message, who asked for the block and under what policy, the
help line, the appeal form.

Squid template rules (squid ``errorpage.cc``, ``ErrorState::Convert``):
every ``%`` in a template starts a code (``%U`` the URL, ``%i`` the client
address, ``%o`` the helper's message, ``%%`` a percent sign). The page must
never show or link the listed URL (DESIGN.md, "Privacy by default"), so
the rendered text has every ``%`` doubled and exactly one code is put back:
``%o``, wherever the template says ``$block_ref``. Squid HTML-quotes ``%o``
in a page body. No other code can appear, whatever the configured texts
hold.

Squid sends its error pages without a Content-Security-Policy of ours and
the browser would fetch a linked stylesheet *from the blocked origin*
through Squid (a page entry blocks one URL, not the host): so the style is
inline in the page, and there is no script at all.

Languages: Squid picks ``<error dir>/<language>/ERR_CLEANFEED`` from the
browser's ``Accept-Language`` (``templates/`` is the fallback). English is
shipped (``templates/squid/en.html`` in this package, also the block page's
default with its stylesheet linked instead of inlined:
:data:`clients.isp.blockpage_page.DEFAULT_TEMPLATE`); for another language
write a translation of that file and pass it with ``--template``.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path
from typing import Final

from clients.common.files import write_atomic
from clients.errors import ConfigError, NotInitialised
from clients.isp.blockpage_config import BlockPageConfig
from clients.isp.blockpage_page import (
    DEFAULT_STYLESHEET,
    SHIPPED_PAGES,
    PageContext,
    page_values,
    shipped_page,
)

#: The template's file name, as ``deny_info 451:ERR_CLEANFEED`` names it.
TEMPLATE_NAME: Final = "ERR_CLEANFEED"

#: Mode of the written template: Squid reads it as its own user.
TEMPLATE_MODE: Final = 0o644

#: Stands for the block reference while the page is rendered: it survives
#: HTML escaping and URL query encoding unchanged (letters only), so after
#: ``%`` is escaped it can be swapped for Squid's ``%o`` wherever it went.
_REF_TOKEN: Final = "CLEANFEEDBLOCKREFERENCETOKEN"  # noqa: S105 (not a secret)

#: Squid's code for "the message returned by the external ACL helper".
SQUID_MESSAGE_CODE: Final = "%o"

#: Language tags Squid can find a directory for (squid's
#: strHdrAcptLangGetItem lower-cases tags and allows a-z and '-').
_LANGUAGE_RE: Final = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")


def shipped_languages() -> list[str]:
    """The languages whose template ships with the client, sorted."""
    folder = resources.files("clients.isp").joinpath(SHIPPED_PAGES)
    return sorted(
        entry.name.removesuffix(".html")
        for entry in folder.iterdir()
        if entry.name.endswith(".html")
    )


def template_source(language: str, template: Path | None = None) -> str:
    """The ``string.Template`` text for ``language``: a file given, or a shipped one.

    Raises:
        ConfigError: the language tag is malformed, no template ships for it
            and none is given, or the given file cannot be read as UTF-8.
    """
    if not _LANGUAGE_RE.fullmatch(language):
        raise ConfigError(
            f"--language: {language!r} is not a lower-case language tag Squid can "
            "negotiate (en, de, pt-br...)"
        )
    if template is not None:
        try:
            return template.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read template {template}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"template {template} is not UTF-8") from e
    if language not in shipped_languages():
        raise ConfigError(
            f"no shipped Squid template for language {language!r} "
            f"(shipped: {', '.join(shipped_languages())}); translate the English one "
            "(cleanfeed isp squid-template --print-source) and pass it with --template"
        )
    return shipped_page(language)


def _style(config: BlockPageConfig) -> str:
    if config.stylesheet is None:
        # The block page's own stylesheet, minus its first line (a comment
        # about being served from the block page's origin).
        return DEFAULT_STYLESHEET.split("\n", 1)[1].rstrip("\n")
    try:
        css = config.stylesheet.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read blockpage stylesheet {config.stylesheet}: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"blockpage stylesheet {config.stylesheet} is not UTF-8") from e
    if "<" in css:
        # Inline in a <style> element: "</style>" would end it early.
        raise ConfigError(f"blockpage stylesheet {config.stylesheet}: '<' cannot be inlined")
    return css.rstrip("\n")


def render_squid_template(
    config: BlockPageConfig, context: PageContext, source: str, *, language: str
) -> str:
    """The ``ERR_CLEANFEED`` text: the block page with ``%o`` for the reference.

    Args:
        config: the ``[blockpage]`` settings (names, URLs, texts).
        context: who asked for the block and under what policy.
        source: the ``string.Template`` text (:func:`template_source`).
        language: the page's language tag (``<html lang>``).

    Raises:
        ConfigError: the template names an unknown placeholder, is
            malformed, or does not show ``$block_ref``.
    """
    values = page_values(config, _REF_TOKEN, context)
    values["language"] = language
    values["style"] = _style(config)
    values.pop("stylesheet")  # a link would be fetched from the blocked origin
    try:
        text = string.Template(source).substitute(values)
    except KeyError as e:
        raise ConfigError(f"Squid template: unknown placeholder ${e.args[0]}") from e
    except ValueError as e:
        raise ConfigError(f"Squid template: malformed placeholder: {e}") from e
    if _REF_TOKEN not in text:
        # The reference is what lets the visitor appeal (DESIGN.md part 2).
        raise ConfigError("Squid template: it must show $block_ref")
    if re.search(r"<script\b", text, re.I):
        raise ConfigError("Squid template: no script, please (the page runs none)")
    # errorpage.cc: '%' starts a code; only %o (the helper's message) may be one.
    return text.replace("%", "%%").replace(_REF_TOKEN, SQUID_MESSAGE_CODE)


def page_context(config: BlockPageConfig) -> PageContext:
    """Who asked for the block and under what policy, as the block page says it.

    Without ``hotline_name`` or ``policy`` in ``[blockpage]`` the names come
    from the list's origin in the state directory, as for the block page.

    Raises:
        ConfigError: a name is missing and no synced state can supply it.
    """
    if config.hotline_name and config.policy:
        return PageContext(config.hotline_name, config.policy)
    origin = _origin(config.state_dir)
    if origin is None:
        raise ConfigError(
            "set hotline_name and policy in [blockpage], or give the state directory "
            "of a synced list (--state-dir) to name them after the list's origin"
        )
    return PageContext(
        hotline_name=config.hotline_name or origin.split("/", 1)[0] or "the hotline",
        policy=config.policy or f"the blocklist {origin}",
    )


def _origin(state_dir: Path | None) -> str | None:
    if state_dir is None:
        return None
    from clients.isp.store import StateStore

    try:
        with StateStore(state_dir, create=False) as store:
            origin = store.get_meta("origin")
    except NotInitialised:
        return None
    return origin if isinstance(origin, str) and origin else None


def write_squid_template(output_dir: Path, text: str) -> Path:
    """Write ``output_dir/ERR_CLEANFEED`` atomically, readable by Squid.

    Raises:
        ConfigError: ``output_dir`` is not an existing directory.
        OSError: the file cannot be written.
    """
    if not output_dir.is_dir():
        raise ConfigError(
            f"--output {output_dir}: not a directory (Squid's error directory for one "
            "language, e.g. /usr/share/squid/errors/en)"
        )
    path = output_dir / TEMPLATE_NAME
    write_atomic(path, text.encode("utf-8"), mode=TEMPLATE_MODE)
    return path


__all__ = [
    "SQUID_MESSAGE_CODE",
    "TEMPLATE_MODE",
    "TEMPLATE_NAME",
    "page_context",
    "render_squid_template",
    "shipped_languages",
    "template_source",
    "write_squid_template",
]
