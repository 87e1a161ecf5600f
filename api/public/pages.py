"""The public appeal pages: server-rendered HTML, no script, no third-party host.

Templates are plain files in ``templates/`` read with :class:`string.Template`
(``$name`` placeholders); every value is HTML-escaped here before it is put
in, so a template never receives raw input. The one stylesheet is inline and
allowed by its SHA-256 in the Content-Security-Policy (CSP Level 3, section
8.3 "hash-source"), so the policy needs no ``'unsafe-inline'``; nothing else
may load (``default-src 'none'``), forms post only to this origin, no frame
may embed the pages, and no ``Referer`` leaves them (the status address
carries a secret).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from importlib import resources
from string import Template
from typing import Final

from fastapi.responses import HTMLResponse

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PAGE_HEADERS",
    "STYLE",
    "page",
    "render",
]

#: The pages' only style, inline and pinned by its hash in the CSP.
STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f4;color:#1b1b1b}"
    "main{max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "label{display:block;margin-top:1rem;font-weight:600}"
    "input,textarea{width:100%;box-sizing:border-box;padding:.4rem;font:inherit}"
    "button{margin-top:1rem;padding:.5rem 1.2rem;font:inherit}"
    ".error{border-left:4px solid #b00020;padding:.2rem .8rem;background:#fff}"
    ".state{font-size:1.2rem;border-left:4px solid #345;padding:.4rem .8rem;background:#fff}"
    ".url{word-break:break-all;font-family:monospace}.small{font-size:.9rem}"
)

_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode()

#: No script, no remote anything; the form posts to this origin only.
CONTENT_SECURITY_POLICY: Final = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

#: Headers of every public page: never cached (a status page is personal),
#: never framed, never sniffed, never referred from.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@functools.cache
def _template(name: str) -> Template:
    text = resources.files("api.public").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def render(name: str, **values: str) -> str:
    """Fill template ``name`` with ``values``, each escaped for HTML.

    Values whose key ends in ``_html`` are trusted fragments this module
    built (already escaped) and go in as they are.

    Raises:
        KeyError: the template names a value that was not given.
    """
    filled = {
        k.removesuffix("_html"): v if k.endswith("_html") else html.escape(v, quote=True)
        for k, v in values.items()
    }
    return _template(name).substitute(filled)


def page(title: str, body_html: str, *, status: int = 200) -> HTMLResponse:
    """A complete page with the public pages' security headers."""
    text = render("base.html", title=title, style_html=STYLE, body_html=body_html)
    return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)
