"""``/docs``: Swagger UI served from an installed package, never from a CDN.

Issue 12, item 12. FastAPI's default page loads Swagger UI's script and
style from a third-party CDN; admins paste their tokens into that page, so
whoever serves (or subverts) the CDN could read them, and the page breaks
on an offline network. The assets here come from the ``fastapi-offline``
package, which ships Swagger UI's dist files (MIT); only the three files
the page needs are served, by name, and a Content-Security-Policy
(W3C CSP Level 3) keeps the page from loading or sending anything
anywhere but this origin.

The page is on only when the ``docs`` setting allows it, which by default
is off in ``environment = "production"`` (:attr:`api.settings.Settings.docs_enabled`).
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

from api.errors import ApiProblem

__all__ = [
    "ASSETS",
    "ASSETS_PREFIX",
    "ASSET_CACHE_CONTROL",
    "ASSET_FOLDER",
    "ASSET_PACKAGE",
    "DOCS_CSP",
    "install_docs",
]

#: Where the assets are served.
ASSETS_PREFIX: Final = "/docs/assets"

#: The only asset files served, and their media types.
ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}

#: The package that ships Swagger UI's dist files, and the folder inside it.
ASSET_PACKAGE: Final = "fastapi_offline"
ASSET_FOLDER: Final = "static"

#: Swagger UI's page has one inline script (its configuration) and inline
#: styles; everything else, including the spec it fetches and the API calls
#: it makes with the pasted token, stays on this origin.
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)

#: Assets are versioned with the installed package: a day in caches is fine.
ASSET_CACHE_CONTROL: Final = "public, max-age=86400"


def _read_asset(name: str) -> bytes:
    return (resources.files(ASSET_PACKAGE) / ASSET_FOLDER / name).read_bytes()


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Add ``/docs`` and its assets to ``app``.

    Raises:
        ModuleNotFoundError: the asset package is not installed (it is a
            dependency of the ``server`` extra).
    """
    # Read once at start-up: a missing package fails here, not on a click.
    assets = {name: (_read_asset(name), media) for name, media in ASSETS.items()}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
            # Swagger UI would otherwise load a badge from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        page.headers["Referrer-Policy"] = "no-referrer"
        page.headers["Cache-Control"] = "no-store"
        return page

    @app.get(ASSETS_PREFIX + "/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise ApiProblem("not_found", "no such documentation asset")
        body, media = found
        return Response(
            body,
            media_type=media,
            headers={"Cache-Control": ASSET_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
        )
