"""The console's defences, checked in Debian's headless Chromium (issue 15, "Done when").

Cross-site form posts (CSRF), session fixation, idle expiry, script
injection through a listed URL and a reason (XSS), clickjacking headers,
administration pages, and login back-off (last: the back-off also counts
failures per client address, which every test here shares).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from support.browser import (
    ConsoleServer,
    Person,
    check_page,
    click_and_load,
    log_in,
    requested_urls,
    submit_enrolment,
    wait_for,
)
from support.console_accounts import create_person

from api.console import SECURITY_HEADERS

# The tests build on each other in one browser (enrolled persons, an added
# entry): scripts/test runs the browser tests in one process, in order.
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LIST = "main"
XSS_URL = 'http://example.com/x"><img src=x onerror=window.__xss=1>'
XSS_REASON = "<script>window.__xss=2</script> reported twice"

people: dict[str, Person] = {}


def enrol(driver: Any, console: ConsoleServer, name: str, role: str) -> Person:
    """Enrol ``name`` from its link; the first login may use the next code at once."""
    url = create_person(console, name, role, [LIST] if role != "admin" else [])
    driver.delete_all_cookies()
    driver.get(url)
    secret = str(wait_for(driver, "#secret").get_attribute("value"))
    password = f"a long password for {name}"
    return Person(name, password, secret, submit_enrolment(driver, secret, password))


def session_cookie(driver: Any) -> str:
    from api.accounts import SESSION_COOKIE

    cookie = driver.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    value: str = cookie["value"]
    return value


def test_clickjacking_and_caching_headers_on_every_console_response(
    console: ConsoleServer,
) -> None:
    with httpx.Client(base_url=console.base, timeout=30) as client:
        for path in (
            "/console/login",
            "/console/static/console.css",
            "/console/static/console.js",
            "/console/enrol/no-such-link",
            "/console/queue",  # a redirect to the login form
            "/console/guards",
            "/console/referrals",
            "/console/appeals",
            "/console/appeals/1",
            "/console/transparency",
        ):
            r = client.get(path)
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, (path, name)
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert "'unsafe-inline'" not in r.headers["content-security-policy"]
        # The API's own answers are unchanged.
        assert "content-security-policy" not in client.get("/healthz").headers


def test_people_enrol_and_log_in(driver: Any, console: ConsoleServer) -> None:
    people["carol"] = enrol(driver, console, "carol", "admin")
    people["dave"] = enrol(driver, console, "dave", "analyst")
    log_in(driver, console, people["dave"])
    # Each test that logs in afresh has its own person: a second login of
    # one person within a 30-second TOTP step would have to wait for it.
    people["frank"] = enrol(driver, console, "frank", "analyst")
    people["gina"] = enrol(driver, console, "gina", "analyst")


def test_session_fixation_a_planted_cookie_is_not_adopted(
    driver: Any, console: ConsoleServer
) -> None:
    from api.accounts import SESSION_COOKIE

    driver.get(f"{console.base}/console/login")
    driver.delete_all_cookies()
    planted = "planted-by-an-attacker-0123456789abcdef"
    driver.add_cookie({"name": SESSION_COOKIE, "value": planted, "path": "/"})
    log_in(driver, console, people["frank"])
    issued = session_cookie(driver)
    assert issued != planted
    # The planted value opens no session; the issued one does.
    with httpx.Client(base_url=console.base, timeout=30, cookies={SESSION_COOKIE: planted}) as c:
        r = c.get("/console/queue")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login")
    with httpx.Client(base_url=console.base, timeout=30, cookies={SESSION_COOKIE: issued}) as c:
        r = c.get(f"/console/queue?list={LIST}")
        assert r.status_code == 200
        assert "frank" in r.text


class _Attacker(BaseHTTPRequestHandler):
    """Another origin on loopback: a page whose form posts to the console."""

    target = ""

    def do_GET(self) -> None:
        page = (
            "<!DOCTYPE html><html lang=en><title>win a prize</title>"
            f'<form method="post" action="{self.target}/console/add">'
            '<input type="hidden" name="list" value="main">'
            '<input type="hidden" name="url" value="http://198.51.100.66/planted.html">'
            '<input type="hidden" name="scope" value="host">'
            '<input type="hidden" name="reason" value="planted">'
            '<input type="hidden" name="action" value="add">'
            '<input type="hidden" name="csrf_token" value="guessed">'
            '<button id="go">Claim</button></form></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(console: ConsoleServer) -> Iterator[str]:
    _Attacker.target = console.base
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _entries_with(console: ConsoleServer, url: str) -> int:
    from blocklist.store import search as store_search

    with console.ctx.db.read() as session:
        info = console.ctx.resolve_list(LIST)
        return len(store_search.search(session, info.id, url=url).items)


def test_a_cross_site_form_post_is_refused(
    driver: Any, console: ConsoleServer, attacker: str
) -> None:
    # frank is logged in (the SameSite=Strict cookie goes along: another
    # port of the same host is the same site).
    driver.get(f"{attacker}/")
    requested_urls(driver)  # the attacker's page is not the console's
    click_and_load(driver, wait_for(driver, "#go"))
    assert "cross-site" in wait_for(driver, "h1").text
    assert "another site" in driver.find_element(By.ID, "detail").text
    assert _entries_with(console, "http://198.51.100.66/planted.html") == 0


def test_a_form_post_without_the_csrf_token_is_refused(console: ConsoleServer, driver: Any) -> None:
    from api.accounts import SESSION_COOKIE

    cookie = session_cookie(driver)
    form = {
        "list": LIST,
        "url": "http://198.51.100.67/planted.html",
        "scope": "page",
        "reason": "planted",
        "action": "add",
    }
    with httpx.Client(base_url=console.base, timeout=30, cookies={SESSION_COOKIE: cookie}) as c:
        for token in (None, "", "guessed"):
            data = dict(form) if token is None else {**form, "csrf_token": token}
            r = c.post("/console/add", data=data)
            assert r.status_code == 403, r.text
            assert "security token" in r.text
    assert _entries_with(console, "http://198.51.100.67/planted.html") == 0


def test_script_in_a_url_and_a_reason_renders_inert(driver: Any, console: ConsoleServer) -> None:
    driver.get(f"{console.base}/console/add?list={LIST}")
    driver.find_element(By.ID, "url").send_keys(XSS_URL)
    driver.find_element(By.ID, "reason").send_keys(XSS_REASON)
    driver.find_element(By.ID, "preview").click()
    wait_for(driver, "#verdict")
    pages = [driver.current_url]
    assert driver.execute_script("return window.__xss === undefined")
    driver.find_element(By.ID, "add").click()
    assert wait_for(driver, "#entry-status").text == "pending"
    entry_page = driver.current_url
    for url in (entry_page, f"{console.base}/console/queue?list={LIST}"):
        driver.get(url)
        wait_for(driver, "#whoami")
        pages.append(url)
        assert driver.execute_script("return window.__xss === undefined"), url
        assert driver.find_elements(By.TAG_NAME, "img") == [], url
        assert (
            driver.find_elements(By.TAG_NAME, "script")[0]
            .get_attribute("src")
            .endswith("/console/static/console.js")
        )
        assert len(driver.find_elements(By.TAG_NAME, "script")) == 1, url
    driver.get(entry_page)
    # Shown as text, exactly as typed, and not as a link.
    assert wait_for(driver, "#entry-reason").text == XSS_REASON
    assert XSS_URL in driver.find_element(By.ID, "entry-url").text
    assert not driver.find_elements(By.CSS_SELECTOR, "#entry-url a")
    # The browser's console shows no CSP report either: nothing even tried to run.
    errors = [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert errors == [], errors


def test_a_large_import_needs_a_session(console: ConsoleServer, driver: Any) -> None:
    """Issue 12, item 8 for the console: only a logged-in person's body may be large."""
    import re

    from api.accounts import SESSION_COOKIE
    from api.bodygate import PREAUTH_BODY_BYTES

    reason = "bulk import row " * 10
    rows = "".join(
        f"http://198.51.100.{i % 250}/big/{i}.html,page,{reason},case-{i}\n" for i in range(900)
    )
    data = ("url,scope,reason,reference\n" + rows).encode()
    assert len(data) > 2 * PREAUTH_BODY_BYTES
    with httpx.Client(base_url=console.base, timeout=60) as anonymous:
        r = anonymous.post(
            "/console/import", files={"file": ("big.csv", data, "text/csv")}, data={"list": LIST}
        )
        assert r.status_code in (401, 413), r.text
    cookie = session_cookie(driver)
    with httpx.Client(
        base_url=console.base, timeout=120, cookies={SESSION_COOKIE: cookie}
    ) as client:
        page = client.get(f"/console/import?list={LIST}").text
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found is not None
        r = client.post(
            "/console/import",
            files={"file": ("big.csv", data, "text/csv")},
            data={"list": LIST, "csrf_token": found.group(1)},
        )
        assert r.status_code == 200, r.text[:500]
        assert "900 created" in r.text


def test_search_results_are_paged(driver: Any, console: ConsoleServer) -> None:
    """After the 900-row import: 50 a page, "Next page" continues after the last id."""
    driver.get(f"{console.base}/console/search?list={LIST}")
    wait_for(driver, "#s-reference")
    driver.find_element(By.ID, "s-analyst").send_keys("frank")
    click_and_load(driver, driver.find_element(By.ID, "search"))
    first = [
        r.text.split()[0] for r in driver.find_elements(By.CSS_SELECTOR, "#search-results tbody tr")
    ]
    assert len(first) == 50
    click_and_load(driver, driver.find_element(By.ID, "next-page"))
    second = [
        r.text.split()[0] for r in driver.find_elements(By.CSS_SELECTOR, "#search-results tbody tr")
    ]
    assert len(second) == 50
    assert int(second[0].lstrip("#")) > int(first[-1].lstrip("#"))
    # The filters travel with the page: still only frank's entries.
    assert all(
        "frank" in r.text for r in driver.find_elements(By.CSS_SELECTOR, "#search-results tbody tr")
    )


def test_admin_pages(driver: Any, console: ConsoleServer) -> None:
    requested_urls(driver)  # forget the attacker page's late favicon request
    # An analyst is refused the admin page.
    driver.get(f"{console.base}/console/admin?list={LIST}")
    assert "Not allowed" in wait_for(driver, "h1").text
    check_page(driver, console)
    # ... and the guard list (issue 16 item 6), which is not in an analyst's nav.
    assert not driver.find_elements(By.LINK_TEXT, "Guard list")
    driver.get(f"{console.base}/console/guards?list={LIST}")
    assert "Not allowed" in wait_for(driver, "h1").text
    # The admin creates an account: the page shows its one-time link.
    log_in(driver, console, people["carol"])
    driver.get(f"{console.base}/console/admin?list={LIST}")
    wait_for(driver, "#accounts")
    check_page(driver, console)
    driver.find_element(By.ID, "a-name").send_keys("erin")
    click_and_load(driver, driver.find_element(By.ID, "create-account"))
    link = wait_for(driver, "#secret-out").get_attribute("value")
    assert str(link).startswith(f"{console.base}/console/enrol/")
    assert "erin" in driver.find_element(By.ID, "accounts").text
    check_page(driver, console, "admin")
    # ISP tokens are created here too.
    driver.find_element(By.ID, "tk-name").send_keys("isp-admin-page")
    click_and_load(driver, driver.find_element(By.ID, "create-token"))
    assert str(wait_for(driver, "#secret-out").get_attribute("value")).startswith("cf_isp_")


def test_guard_list_page(driver: Any, console: ConsoleServer) -> None:
    """An admin guards a host and lifts the guard with a reason (issue 16 item 6)."""
    from blocklist.store import guards as store_guards

    def guarded() -> list[str]:
        with console.ctx.db.read() as session:
            return [g.host for g in store_guards.list_guards(session)]

    # carol (admin) is signed in since test_admin_pages; the nav leads here.
    driver.get(f"{console.base}/console/queue?list={LIST}")
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Guard list"))
    wait_for(driver, "#guards")
    check_page(driver, console)
    driver.find_element(By.ID, "g-host").send_keys("shared.example.com")
    driver.find_element(By.ID, "g-note").send_keys("shared hosting: thousands of sites")
    click_and_load(driver, driver.find_element(By.ID, "guard-add"))
    assert "is guarded" in wait_for(driver, "[role=status]").text
    table = driver.find_element(By.ID, "guards").text
    assert "shared.example.com" in table
    assert "thousands of sites" in table
    assert driver.find_elements(By.CSS_SELECTOR, "#guards a") == []  # hosts are text
    before = guarded()
    assert "shared.example.com" in before
    check_page(driver, console, "guards")
    # Guarding it twice is the API's clear refusal, and changes nothing.
    driver.find_element(By.ID, "g-host").send_keys("shared.example.com")
    click_and_load(driver, driver.find_element(By.ID, "guard-add"))
    assert wait_for(driver, "#error").text
    assert guarded() == before
    # Lifting needs a reason; with one the guard is gone (audited by the API).
    row = driver.find_element(
        By.XPATH, "//table[@id='guards']//tr[td[1][normalize-space()='shared.example.com']]"
    )
    row.find_element(By.NAME, "reason").send_keys("the provider moved its customers")
    click_and_load(driver, row.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert "is lifted" in wait_for(driver, "[role=status]").text
    assert sorted(guarded()) == sorted(set(before) - {"shared.example.com"})
    # Every form of the issue 16/17 pages is refused without the session's
    # CSRF token, and from another site, before anything is done.
    from api.accounts import SESSION_COOKIE

    cookie = session_cookie(driver)
    with httpx.Client(base_url=console.base, timeout=30, cookies={SESSION_COOKIE: cookie}) as c:
        for path in (
            "/console/guards/add",
            "/console/guards/remove",
            "/console/guard-approve/1",
            "/console/referrals/1/refer",
            "/console/referrals/1/override",
            "/console/appeals/1/decide",
            "/console/appeals/1/close",
        ):
            data = {"list": LIST, "host": "planted.example.com", "reason": "planted"}
            r = c.post(path, data=data)
            assert r.status_code == 403, (path, r.text)
            assert "security token" in r.text
            r = c.post(path, data=data, headers={"Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 403, (path, r.text)
            assert "cross-site" in r.text
    assert "planted.example.com" not in guarded()


def test_transparency_page(driver: Any, console: ConsoleServer) -> None:
    """The month bars come from the stored signed reports; the note text is one click away."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from blocklist import transparency as reports
    from blocklist.store import transparency as store_reports
    from blocklist.store.models import ListRow
    from signer.keys import SecretKey
    from signer.note import sign_note

    driver.get(f"{console.base}/console/transparency?list={LIST}")
    # The list was made this month: no month has ended since.
    assert wait_for(driver, "#no-reports").text
    check_page(driver, console)
    # A list older than a month with last month's report issued (the signer's
    # issuing is tested in tests/signer; here only the page is under test).
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    period = f"{year:04d}-{month:02d}"
    figures = dict.fromkeys(reports.FIGURES, "0")
    figures.update(
        {
            "entries_added": "8",
            "removed_analyst": "1",
            "removed_expiry": "3",
            "listed_entries": "4",
            "median_age_days": "1.5",
            "reverification_coverage_percent": "0.0",
            "median_days_to_decision": "0.0",
        }
    )
    text = reports.Report(
        origin="example.org/main",
        period=period,
        version=1,
        audit_seq=1,
        audit_head=bytes(32),
        figures=figures,
    ).to_text()
    note = sign_note(text, [SecretKey.generate("report.example.org")])
    with console.ctx.db.transaction() as session:
        row = session.query(ListRow).filter_by(name=LIST).one()
        session.execute(
            update(ListRow)
            .where(ListRow.id == row.id)
            .values(created_at=datetime(year, month, 1, tzinfo=UTC))
        )
        store_reports.put_report(session, row.id, period, note, now)
    driver.get(f"{console.base}/console/queue?list={LIST}")
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Transparency"))
    first = wait_for(driver, "#report-months tbody tr")
    assert first.find_element(By.CSS_SELECTOR, "th").text == period
    added, removed = first.find_elements(By.CSS_SELECTOR, "rect")
    # The longest bar is the largest figure; the other is in proportion (8 vs 1+3).
    assert int(str(added.get_attribute("width"))) == 300
    assert int(str(removed.get_attribute("width"))) == 150
    assert driver.find_elements(By.CSS_SELECTOR, "script:not([src])") == []
    check_page(driver, console, "transparency")
    click_and_load(driver, first.find_element(By.LINK_TEXT, f"{period} note"))
    body = driver.find_element(By.TAG_NAME, "body").text
    assert body.startswith(reports.REPORT_HEADER)
    assert "entries_added 8" in body


def test_an_idle_session_expires(driver: Any, console: ConsoleServer) -> None:
    log_in(driver, console, people["gina"])
    driver.get(f"{console.base}/console/queue?list={LIST}")
    assert wait_for(driver, "#whoami").text == "gina"
    idle = timedelta(seconds=console.ctx.settings.session_idle_timeout)
    real_clock = console.ctx.wall_clock
    # The app's clock moves past the idle timeout (no sleeping).
    console.ctx.wall_clock = lambda: real_clock() + idle + timedelta(seconds=1)
    try:
        driver.get(f"{console.base}/console/queue?list={LIST}")
        wait_for(driver, "#login")
        assert driver.current_url.startswith(f"{console.base}/console/login")
    finally:
        console.ctx.wall_clock = real_clock
    # The session is gone server-side, not only too old: back at real time it stays gone.
    driver.get(f"{console.base}/console/queue?list={LIST}")
    wait_for(driver, "#login")


def test_login_back_off(console: ConsoleServer) -> None:
    """Last in the module: the failures count against this client's address too."""
    with httpx.Client(base_url=console.base, timeout=30) as client:
        answers = []
        for _ in range(8):
            r = client.post(
                "/console/login",
                data={"name": "dave", "password": "wrong password", "totp": "000000"},
            )
            answers.append(r.status_code)
            if r.status_code == 429:
                break
        assert answers[0] == 401
        assert answers[-1] == 429, answers
        assert int(r.headers["retry-after"]) >= 1
        assert "Too many failed logins" in r.text
        # While it lasts, every attempt is refused before credentials are checked.
        r = client.post(
            "/console/login", data={"name": "dave", "password": "wrong", "totp": "000000"}
        )
        assert r.status_code == 429
