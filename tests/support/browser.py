"""Browser tests of the console: a real server on loopback, Debian's headless Chromium.

- :func:`start_console_server` runs the API application in a real
  ``uvicorn`` server on a loopback port (in a thread of the test process, so
  a test can shorten the session idle timeout through the app's settings
  and set accounts up through the accounts API);
- :func:`make_driver` starts ``/usr/bin/chromium`` headless through
  ``/usr/bin/chromedriver`` with an explicit ``Service`` path, so Selenium
  Manager never runs and nothing is downloaded. Every host name except
  loopback resolves to nothing (``--host-resolver-rules``), so a page that
  tried to load from another host would fail visibly, and the performance
  log records every request the page made (:func:`requested_urls`);
- :func:`axe_violations` injects axe-core from the ``axe-selenium-python``
  package (``axe.min.js`` ships inside it; nothing is fetched) and returns
  the serious and critical violations of the page.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
import uvicorn

from support.processes import free_port

#: Debian's browser and driver (apt packages ``chromium``, ``chromium-driver``).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: The console's window size; the screenshots in docs/console/ have it too.
WINDOW = (1280, 800)

#: Longest wait for the server to start and for a page element.
STARTUP_SECONDS = 60.0
WAIT_SECONDS = 15.0

#: axe-core impact levels that fail a page (issue 15: "no serious or critical").
AXE_FAILING = frozenset({"serious", "critical"})


def browser_available() -> None:
    """Skip (locally) or fail (CI) when Debian's chromium or its driver is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} not installed (.ci/run installs chromium, chromium-driver)")
        pytest.skip(f"{missing} not installed")


@dataclass
class ConsoleServer:
    """A running API server with the console, on a loopback port."""

    base: str
    data_dir: Path
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ctx(self) -> Any:
        """The application's context (database, settings)."""
        return self.app.state.cf

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_console_server(data_dir: Path, **settings: Any) -> ConsoleServer:
    """Initialise ``data_dir`` (list ``main``) and serve it with ``settings`` overrides."""
    from api.app import create_app
    from api.settings import load_settings
    from signer.datadir import ensure_initialised

    ensure_initialised(data_dir, list_name="main", origin="hotline.example.org/main")
    port = free_port()
    values: dict[str, Any] = {
        "schedule": False,
        "json_logs": True,
        "log_level": "WARNING",
        # Enrolment links name this server.
        "public_url": f"http://127.0.0.1:{port}",
    }
    values.update(settings)
    app = create_app(load_settings(data_dir, **values))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the console server did not start")
        time.sleep(0.05)
    return ConsoleServer(f"http://127.0.0.1:{port}", data_dir, app, server, thread)


def make_driver() -> Any:
    """Headless Debian Chromium through Debian's chromedriver (never Selenium Manager)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        # No other host is reachable: only loopback resolves.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    # The page area itself is WINDOW (the screenshots' size), not the window.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    driver.set_page_load_timeout(WAIT_SECONDS * 2)
    return driver


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser requested since the last call (Chrome's ``Network`` events)."""
    urls: list[str] = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _axe_source() -> str:
    import axe_selenium_python

    root = Path(axe_selenium_python.__file__).resolve().parent
    return (root / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """Run axe-core on the current page; its serious and critical violations."""
    driver.execute_script(_axe_source())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations)).catch(e => done([{id: 'axe-error', impact: 'critical',"
        " help: String(e), nodes: []}]));"
    )
    return [v for v in result if v.get("impact") in AXE_FAILING]


def unlabelled_controls(driver: Any) -> list[str]:
    """Form controls of the page without a ``<label>`` (issue 15: every control has one)."""
    found: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'input:not([type=hidden]), select, textarea'))"
        ".filter(e => !(e.labels && e.labels.length))"
        ".map(e => e.outerHTML.slice(0, 120));"
    )
    return found


def describe(violations: list[dict[str, Any]]) -> str:
    """Readable summary of axe violations for an assertion message."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v.get('help')} at "
        + ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:3])
        for v in violations
    )


#: Time-steps either side of now whose code the server accepts (RFC 6238
#: section 5.2 drift allowance; blocklist.store.accounts.TOTP_WINDOW).
TOTP_DRIFT_STEPS = 1
TOTP_STEP_SECONDS = 30


def totp_code(secret: str, *, after_step: int | None = None) -> tuple[str, int]:
    """A TOTP code the server accepts now, and its time-step, later than ``after_step``.

    A code is accepted once and never one of an earlier step (RFC 6238
    section 5.2), so a second login uses the next step's code, which the
    drift allowance accepts; only a third login within one step waits.
    """
    totp = pyotp.TOTP(secret)
    while True:
        now_step = int(time.time()) // TOTP_STEP_SECONDS
        for step in range(now_step - TOTP_DRIFT_STEPS, now_step + TOTP_DRIFT_STEPS + 1):
            if after_step is None or step > after_step:
                if after_step is None:
                    step = now_step
                return totp.generate_otp(step), step
        time.sleep(0.5)


def wait_for(driver: Any, css: str, timeout: float = WAIT_SECONDS) -> Any:
    """The element matching ``css`` once it is present."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def click_and_load(driver: Any, element: Any, timeout: float = WAIT_SECONDS) -> None:
    """Click ``element`` and wait until the browser has left the current page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout).until(expected_conditions.staleness_of(page))


#: ``CONSOLE_SCREENSHOTS=DIR``: :func:`check_page` saves each page it names as
#: ``DIR/<shot>.png`` (scripts/console_screenshots.py).
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS"


def check_page(driver: Any, console: ConsoleServer, shot: str | None = None) -> None:
    """The open page passes the console's page checks (issue 15, "Done when").

    axe-core finds no serious or critical violation, every form control has
    a label, and the page requested nothing from another host. With
    ``CONSOLE_SCREENSHOTS`` set, a page named ``shot`` is saved there.
    """
    violations = axe_violations(driver)
    assert unlabelled_controls(driver) == [], driver.current_url
    assert not violations, f"{driver.current_url}:\n{describe(violations)}"
    # data: URLs (the browser's own date-picker icon) touch no network.
    foreign = [u for u in requested_urls(driver) if not u.startswith((console.base + "/", "data:"))]
    assert not foreign, f"{driver.current_url} requested other hosts: {foreign}"
    shots = os.environ.get(SCREENSHOTS_ENV)
    if shots and shot:
        Path(shots).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(shots) / f"{shot}.png"))


def submit_enrolment(driver: Any, secret: str, password: str) -> int:
    """Fill in and send the open enrolment form; returns the TOTP step its code used.

    The enrolment's code counts as used: the first login needs a later step.
    """
    from selenium.webdriver.common.by import By

    code, step = totp_code(secret)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "password2").send_keys(password)
    driver.find_element(By.ID, "totp").send_keys(code)
    driver.find_element(By.ID, "enrol").click()
    wait_for(driver, "#enrolled")
    return step


def log_in(driver: Any, console: ConsoleServer, person: Person, shot: str | None = None) -> None:
    """Log ``person`` in through the form with a fresh TOTP code; the console greets them.

    ``shot``: the login form is checked first (:func:`check_page`).
    """
    from selenium.webdriver.common.by import By

    driver.get(f"{console.base}/console/login")
    if shot:
        check_page(driver, console, shot)
    code, person.last_step = totp_code(person.secret, after_step=person.last_step)
    driver.find_element(By.ID, "name").send_keys(person.name)
    driver.find_element(By.ID, "password").send_keys(person.password)
    driver.find_element(By.ID, "totp").send_keys(code)
    driver.find_element(By.ID, "login").click()
    assert wait_for(driver, "#whoami").text == person.name


@dataclass
class Person:
    """An enrolled person: name, password and TOTP secret."""

    name: str
    password: str
    secret: str
    last_step: int | None = None


def driver_fixture() -> Iterator[Any]:
    """Start one driver; quit it afterwards (module-scoped fixtures use this)."""
    browser_available()
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


def clean_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
