"""Fixtures of the console's browser tests (helpers in ``tests/support/browser.py``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import ConsoleServer, browser_available, make_driver, start_console_server


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium for the whole module (starting one takes a second)."""
    browser_available()
    chrome = make_driver()
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def console() -> Iterator[ConsoleServer]:
    """One console server per module, on a fresh data directory."""
    browser_available()
    with tempfile.TemporaryDirectory(prefix="cf-console-") as tmp:
        server = start_console_server(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.stop()
