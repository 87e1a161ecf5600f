"""``/docs`` loaded Swagger UI from a third-party CDN, in production too.

Issue 12, item 12. Admins paste their bearer tokens into ``/docs``; the page
pulled its script from a CDN, so whoever controls (or subverts) the CDN
runs code next to those tokens, and the page fails on an offline network.
Now every asset comes from this origin (from an installed package), a
Content-Security-Policy forbids any other origin, and a deployment that
says it is production serves no ``/docs`` unless the ``docs`` setting asks
for it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from support.api_testing import ApiClient, close_deployment, make_deployment
from support.e2e_helpers import serve

BASE = "http://cleanfeed.test"


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


def test_docs_loads_nothing_from_another_origin(tmp_path: Path) -> None:
    d = make_deployment(tmp_path)
    client = ApiClient(d.app, base_url=BASE)
    try:
        page = client.get("/docs")
        assert page.status_code == 200
        urls = _asset_urls(page.text)
        assert urls, page.text
        for url in urls:
            absolute = urljoin(BASE + "/docs", url)
            assert urlsplit(absolute).netloc == "cleanfeed.test", f"third-party asset {url}"
            asset = client.get(urlsplit(absolute).path)
            assert asset.status_code == 200, url
            assert len(asset.content) > 100, url
        assert "https://" not in page.text
        assert "http://" not in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "http" not in csp  # no origin but 'self'
        # The JavaScript is Swagger UI's (5.x renders OpenAPI 3.1, which FastAPI emits).
        bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in bundle
        assert client.get("/docs/assets/..%2Fconsts.py").status_code == 404
    finally:
        client.close()
        close_deployment(d)


@pytest.mark.parametrize(("docs", "served"), [(None, False), (True, True)])
def test_production_serves_no_docs_by_default(
    tmp_path: Path, docs: bool | None, served: bool
) -> None:
    database = f"sqlite:///{tmp_path / 'data' / 'cleanfeed.db'}"
    d = make_deployment(
        tmp_path, environment="production", signer=False, database_url=database, docs=docs
    )
    client = ApiClient(d.app, base_url=BASE)
    try:
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            status = client.get(path).status_code
            assert status == (200 if served else 404), (path, status)
        assert client.get("/healthz").status_code == 200
    finally:
        client.close()
        close_deployment(d)


#: Chromium's budget of virtual time to fetch the assets and render the page.
BROWSER_BUDGET_MS = 10_000


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_docs_renders_in_a_real_browser_under_its_csp(tmp_path: Path) -> None:
    # The CSP forbids every other origin (and eval): Swagger UI must still
    # render the API from this origin's assets alone.
    server = serve(tmp_path / "cleanfeed-data", tmp_path / "serve.log")
    try:
        done = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                # Never the internet: every name but loopback fails to resolve.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                f"--user-data-dir={tmp_path / 'chromium'}",
                f"--virtual-time-budget={BROWSER_BUDGET_MS}",
                "--dump-dom",
                f"{server.base}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'data-path="/v1/lists/{list}/entries"' in dom, dom[-2000:]
    assert 'data-path="/v1/lists/{list}/checkpoint"' in dom
