"""The console's flows in Debian's headless Chromium (issue 15, "Done when").

One server and one browser for the module; the tests run in order and build
on each other: A and B enrol from their links, A adds an entry after seeing
its reach, B approves it, A publishes, an ISP that synced catches up on the
ISPs page. Every page visited is checked by axe-core (no serious or
critical violation) and for requests to any other host. With
``CONSOLE_SCREENSHOTS=DIR`` every page is also saved as a PNG
(``scripts/console_screenshots.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from support.browser import (
    ConsoleServer,
    Person,
    check_page,
    click_and_load,
    log_in,
    submit_enrolment,
    totp_code,
    wait_for,
)
from support.console_accounts import create_person

from blocklist.store import accounts as store_accounts

# The tests build on each other in one browser (enrolled persons, an added
# entry): scripts/test runs the browser tests in one process, in order.
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LIST = "main"
PASSWORD_A = "correct horse battery A"
PASSWORD_B = "correct horse battery B"
URL = "http://203.0.113.7/reports/case-17.html"

#: TAB presses allowed to reach a button (a datetime field has several stops).
MAX_TABS = 20

state: dict[str, Any] = {}


def enrol(
    driver: Any, console: ConsoleServer, url: str, password: str, shot: str | None
) -> tuple[str, int]:
    driver.get(url)
    secret = str(wait_for(driver, "#secret").get_attribute("value"))
    assert driver.find_element(By.CSS_SELECTOR, ".qr svg")  # the QR code is drawn
    check_page(driver, console, shot)
    return secret, submit_enrolment(driver, secret, password)


def login(driver: Any, console: ConsoleServer, person: Person, shot: str | None = None) -> None:
    driver.delete_all_cookies()
    log_in(driver, console, person, shot)
    state.setdefault("cookies", {})[person.name] = driver.get_cookies()


def as_person(driver: Any, console: ConsoleServer, person: Person) -> None:
    """Switch the browser to ``person``'s session (log in only the first time).

    A TOTP code is accepted once, so each fresh login waits for the next
    30-second step; going back to a live session saves that wait.
    """
    saved = state.get("cookies", {}).get(person.name)
    if saved is None:
        login(driver, console, person)
        return
    driver.get(f"{console.base}/console/login")
    driver.delete_all_cookies()
    for cookie in saved:
        driver.add_cookie(cookie)
    driver.get(f"{console.base}/console/queue?list={LIST}")
    assert wait_for(driver, "#whoami").text == person.name


def test_a_person_enrols_from_the_link(driver: Any, console: ConsoleServer) -> None:
    url_a = create_person(console, "alice", "analyst", [LIST])
    url_b = create_person(console, "bob", "analyst", [LIST])
    secret_a, code_a = enrol(driver, console, url_a, PASSWORD_A, "enrol")
    secret_b, code_b = enrol(driver, console, url_b, PASSWORD_B, None)
    # The enrolment's code counts as used: the first login needs the next one.
    state["alice"] = Person("alice", PASSWORD_A, secret_a, code_a)
    state["bob"] = Person("bob", PASSWORD_B, secret_b, code_b)
    # The link works once.
    driver.get(url_a)
    assert "not valid" in wait_for(driver, "h1").text


def test_a_wrong_or_reused_totp_code_is_refused(driver: Any, console: ConsoleServer) -> None:
    alice: Person = state["alice"]
    driver.delete_all_cookies()
    driver.get(f"{console.base}/console/login")
    wrong = f"{(int(totp_code(alice.secret)[0]) + 1) % 1_000_000:06d}"
    driver.find_element(By.ID, "name").send_keys(alice.name)
    driver.find_element(By.ID, "password").send_keys(alice.password)
    driver.find_element(By.ID, "totp").send_keys(wrong)
    driver.find_element(By.ID, "login").click()
    assert "wrong" in wait_for(driver, "#error").text
    check_page(driver, console, "login-refused")
    # A code that logged in once is refused the second time (RFC 6238 5.2).
    login(driver, console, alice, "login")
    assert alice.last_step is not None
    used = pyotp.TOTP(alice.secret).generate_otp(alice.last_step)
    driver.delete_all_cookies()
    driver.get(f"{console.base}/console/login")
    driver.find_element(By.ID, "name").send_keys(alice.name)
    driver.find_element(By.ID, "password").send_keys(alice.password)
    driver.find_element(By.ID, "totp").send_keys(str(used))
    driver.find_element(By.ID, "login").click()
    assert "already used" in wait_for(driver, "#error").text  # totp_reused
    assert not driver.find_elements(By.ID, "whoami")


def _token(console: ConsoleServer, name: str, role: str) -> str:
    r = httpx.post(
        f"{console.base}/v1/tokens",
        json={"name": name, "role": role, "lists": [LIST]},
        headers={"Authorization": f"Bearer {console.admin_token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def _person_token(console: ConsoleServer, person: str, name: str) -> str:
    """An analyst API token of ``person``, as "My tokens" mints it (issue 15, item 4).

    Once analysts are persons, ``POST /v1/tokens`` refuses an analyst token
    of no person (``analyst_token_needs_person``), so automation tokens
    come from their owner.
    """
    with console.ctx.db.transaction() as session:
        account = store_accounts.get_account_by_name(session, person)
        token, _ = store_accounts.mint_person_token(
            session, account.id, role="analyst", list_name=LIST, name=name
        )
    return token


def test_an_isp_syncs_a_first_version(console: ConsoleServer, tmp_path_factory: Any) -> None:
    # A first version from two API tokens (the curl path), for the ISP to be on.
    refused = httpx.post(
        f"{console.base}/v1/tokens",
        json={"name": "seed-nobody", "role": "analyst", "lists": [LIST]},
        headers={"Authorization": f"Bearer {console.admin_token}"},
        timeout=30,
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "analyst_token_needs_person"
    seed_a = _person_token(console, "alice", "seed-a")
    seed_b = _person_token(console, "bob", "seed-b")
    with httpx.Client(base_url=console.base, timeout=60) as api:
        added = api.post(
            f"/v1/lists/{LIST}/entries",
            json={"url": "http://198.51.100.1/seed.html", "scope": "page", "reason": "seed"},
            headers={"Authorization": f"Bearer {seed_a}"},
        )
        assert added.status_code == 201, added.text
        approved = api.post(
            f"/v1/lists/{LIST}/entries/{added.json()['id']}/approve",
            headers={"Authorization": f"Bearer {seed_b}"},
        )
        assert approved.status_code == 200, approved.text
        published = api.post(
            f"/v1/lists/{LIST}/publish", json={}, headers={"Authorization": f"Bearer {seed_a}"}
        )
        assert published.status_code == 200, published.text
    state["isp_token"] = _token(console, "isp-example", "isp")
    _token(console, "isp-silent", "isp")  # never polls
    state["isp_state"] = tmp_path_factory.mktemp("isp-state")
    state["synced"] = isp_sync(console)["version_after"]
    assert state["synced"] == published.json()["version"]


def isp_sync(console: ConsoleServer) -> dict[str, Any]:
    root = (console.data_dir / "keys" / LIST / "root.vkey").read_text().strip()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cleanfeed",
            "isp",
            "sync",
            "--once",
            "--json",
            "--server",
            console.base,
            "--token",
            state["isp_token"],
            "--list",
            LIST,
            "--root-key",
            root,
            "--state-dir",
            str(state["isp_state"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "CLEANFEED_TOKEN"},
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    outcome: dict[str, Any] = json.loads(proc.stdout)
    return outcome


def test_analyst_a_adds_an_entry_after_its_preview(driver: Any, console: ConsoleServer) -> None:
    alice: Person = state["alice"]
    as_person(driver, console, alice)
    check_page(driver, console, "queue-empty")
    driver.get(f"{console.base}/console/add?list={LIST}")
    check_page(driver, console, "add")
    driver.find_element(By.ID, "url").send_keys(URL)
    driver.find_element(By.ID, "reason").send_keys("CSAM report from the public form")
    driver.find_element(By.ID, "reference").send_keys("case-17")
    assert not driver.find_elements(By.ID, "add")  # no add before the preview
    driver.find_element(By.ID, "preview").click()
    explanation = wait_for(driver, "#reach-explanation").text
    assert explanation
    matches = driver.find_element(By.ID, "reach-matches").text
    assert "203.0.113.7/reports/case-17.html" in matches
    # Listed URLs are text: no link anywhere in the reach.
    assert not driver.find_elements(By.CSS_SELECTOR, ".reach a")
    check_page(driver, console, "add-preview")
    driver.find_element(By.ID, "add").click()
    assert wait_for(driver, "#entry-status").text == "pending"
    state["entry"] = int(driver.current_url.split("/entries/")[1].split("?")[0])
    assert driver.find_element(By.ID, "own-note")
    assert not driver.find_elements(By.ID, "approve")
    check_page(driver, console, "entry-pending")


def test_a_cannot_approve_their_own_entry_through_a_second_token(
    driver: Any, console: ConsoleServer
) -> None:
    driver.get(f"{console.base}/console/tokens?list={LIST}")
    check_page(driver, console, "tokens")
    driver.find_element(By.ID, "t-name").send_keys("alice-script")
    driver.find_element(By.ID, "mint").click()
    token = wait_for(driver, "#minted").get_attribute("value")
    r = httpx.post(
        f"{console.base}/v1/lists/{LIST}/entries/{state['entry']}/approve",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "self_approval"
    driver.get(f"{console.base}/console/entries/{state['entry']}?list={LIST}")
    assert wait_for(driver, "#entry-status").text == "pending"


def test_analyst_b_approves_from_the_queue(driver: Any, console: ConsoleServer) -> None:
    as_person(driver, console, state["bob"])
    button = wait_for(driver, f"#approve-{state['entry']}")
    check_page(driver, console, "queue")
    button.click()
    wait_for(driver, ".notice")
    assert not driver.find_elements(By.ID, f"approve-{state['entry']}")
    driver.get(f"{console.base}/console/entries/{state['entry']}?list={LIST}")
    assert wait_for(driver, "#entry-status").text == "active"
    history = driver.find_element(By.ID, "history").text
    assert "alice" in history
    assert "bob" in history
    check_page(driver, console, "entry")


def test_a_publishes_and_the_isp_catches_up(driver: Any, console: ConsoleServer) -> None:
    as_person(driver, console, state["alice"])
    driver.get(f"{console.base}/console/versions?list={LIST}")
    driver.find_element(By.ID, "publish").click()
    notice = wait_for(driver, ".notice").text
    assert notice.startswith("Published version ")
    published = int(notice.removeprefix("Published version ").rstrip("."))
    assert published > state["synced"]
    assert (
        "203.0.113.7/reports/case-17.html"
        in driver.find_element(By.CSS_SELECTOR, "details.version").text
    )
    check_page(driver, console, "versions")
    driver.get(f"{console.base}/console/isps?list={LIST}")
    row = wait_for(driver, 'tr[data-isp="isp-example"]')
    assert row.find_element(By.CSS_SELECTOR, ".behind").text == str(published - state["synced"])
    assert "stale" in (row.get_attribute("class") or "")
    silent = driver.find_element(By.CSS_SELECTOR, 'tr[data-isp="isp-silent"]')
    assert "stale" in (silent.get_attribute("class") or "")
    assert "never" in silent.text
    check_page(driver, console, "isps-behind")
    assert isp_sync(console)["version_after"] == published
    driver.refresh()
    row = wait_for(driver, 'tr[data-isp="isp-example"]')
    assert row.find_element(By.CSS_SELECTOR, ".version").text == str(published)
    assert row.find_element(By.CSS_SELECTOR, ".behind").text == "0"
    assert "fresh" in (row.get_attribute("class") or "")
    check_page(driver, console, "isps")


def test_search_finds_the_entry_by_its_canonicalised_url(
    driver: Any, console: ConsoleServer
) -> None:
    driver.get(f"{console.base}/console/search?list={LIST}")
    check_page(driver, console, None)
    # Upper-case host and a fragment: canonicalised as lookups do.
    driver.find_element(By.ID, "s-url").send_keys("HTTP://203.0.113.7/reports/case-17.html#top")
    driver.find_element(By.ID, "s-analyst").send_keys("alice")
    driver.find_element(By.ID, "search").click()
    results = wait_for(driver, "#search-results").text
    assert f"#{state['entry']}" in results
    check_page(driver, console, "search")
    driver.find_element(By.ID, "s-analyst").clear()
    driver.find_element(By.ID, "s-analyst").send_keys("bob")
    click_and_load(driver, driver.find_element(By.ID, "search"))
    assert "No entry matches" in wait_for(driver, "#search-results").text


def test_bulk_import_with_results_and_approval(
    driver: Any, console: ConsoleServer, tmp_path: Path
) -> None:
    upload = tmp_path / "import.csv"
    upload.write_text(
        "url,scope,reason,reference\n"
        "http://198.51.100.9/a.html,page,bulk row,case-20\n"
        "http://203.0.113.7/reports/case-17.html,page,already listed,case-17\n"
        "not a url,page,broken row,case-21\n",
        encoding="utf-8",
    )
    as_person(driver, console, state["bob"])
    driver.get(f"{console.base}/console/import?list={LIST}")
    check_page(driver, console, None)
    driver.find_element(By.ID, "file").send_keys(str(upload))
    driver.find_element(By.ID, "upload").click()
    counts = wait_for(driver, "#counts").text
    assert counts.startswith("1 created, 1 existing, 1 refused")
    rows = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == [
        "created",
        "existing",
        "refused",
    ]
    check_page(driver, console, "import")
    href = driver.find_element(By.ID, "download").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    csv_text = httpx.get(str(href), cookies=cookies, timeout=30).text
    assert csv_text.splitlines()[0] == "row,url,status,entry,code,message"
    assert len(csv_text.splitlines()) == 4
    # Bob's own import: his approval is refused per entry (four-eyes).
    driver.find_element(By.ID, "approve-import").click()
    summary = wait_for(driver, "#summary").text
    assert summary.startswith("0 approved")
    assert "self_approval" in driver.find_element(By.ID, "approval-results").text
    check_page(driver, console, "import-approval")


def test_an_appeal_is_suspended_from_the_appeal_page(driver: Any, console: ConsoleServer) -> None:
    """Issue 17 item 6: the queue, the detail page, the reviewer rule, a suspension."""
    filed = httpx.post(
        f"{console.base}/v1/appeals",
        json={"url": URL, "message": "this page is my shop's price list"},
        timeout=30,
    )
    assert filed.status_code == 202, filed.text
    appeal = filed.json()["appeal"]
    # bob approved the entry: he sees the appeal but may not decide it.
    as_person(driver, console, state["bob"])
    driver.get(f"{console.base}/console/queue?list={LIST}")
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Appeals"))
    row = wait_for(driver, "#appeals tbody tr")
    assert "203.0.113.7/reports/case-17.html" in row.text
    assert driver.find_elements(By.CSS_SELECTOR, "#appeals .listed a") == []
    check_page(driver, console, "appeals")
    click_and_load(driver, row.find_element(By.LINK_TEXT, f"Appeal {appeal}"))
    entry = state["entry"]
    assert wait_for(driver, f"#appeal-state-{entry}").text == "open"
    check_page(driver, console, "appeal")
    driver.find_element(By.ID, "outcome-suspended").click()
    driver.find_element(By.ID, "d-reason").send_keys("checking the shop's claim")
    click_and_load(driver, driver.find_element(By.ID, "decide"))
    assert "appeal_reviewer_ineligible" in wait_for(driver, "#error").text
    assert driver.find_element(By.ID, f"appeal-state-{entry}").text == "open"
    # carol, an analyst who neither added nor approved it, suspends it.
    url_c = create_person(console, "carol", "analyst", [LIST])
    secret_c, step_c = enrol(driver, console, url_c, "correct horse battery C", None)
    state["carol"] = Person("carol", "correct horse battery C", secret_c, step_c)
    as_person(driver, console, state["carol"])
    driver.get(f"{console.base}/console/appeals/{appeal}?list={LIST}")
    driver.find_element(By.ID, "outcome-suspended").click()
    driver.find_element(By.ID, "d-reason").send_keys("off while the claim is checked")
    click_and_load(driver, driver.find_element(By.ID, "decide"))
    assert "decided: suspended" in wait_for(driver, "[role=status]").text
    assert driver.find_element(By.ID, f"appeal-state-{entry}").text.startswith("suspended")
    with console.ctx.db.read() as session:
        from blocklist.store.models import EntryRow

        row_db = session.get(EntryRow, entry)
        assert row_db is not None
        assert row_db.status != "active"
    check_page(driver, console, "appeal-decided")


def test_a_guarded_entry_is_guard_approved_and_a_referral_referred(
    driver: Any, console: ConsoleServer
) -> None:
    """Issue 16 item 6: the queue's guard-approve form and the Referrals page."""
    from blocklist.safeguards import HostingAddress, HostingEvidence
    from blocklist.store import entries as store_entries
    from blocklist.store import guards as store_guards
    from blocklist.store import verification as store_verification
    from blocklist.store.accounts import get_account_by_name
    from blocklist.store.lists import get_list
    from blocklist.store.models import EntryRow
    from blocklist.verification import DNS_NXDOMAIN, Observation, advance

    for name in ("dana", "erin"):
        link = create_person(console, name, "admin", [])
        secret, step = enrol(driver, console, link, f"correct horse battery {name}", None)
        state[name] = Person(name, f"correct horse battery {name}", secret, step)
    evidence = HostingEvidence(
        verified=True,
        addresses=(HostingAddress("192.0.2.10", "NL"),),
        database="test-geo 2026-11",
        resolver="127.0.0.1",
        checked_at="2026-11-30T12:00:00Z",
    )
    with console.ctx.db.transaction() as session:
        list_id = get_list(session, LIST).id
        store_guards.add_guard(session, "shared.example.net", actor="dana", note="shared host")
        # dana (an admin) opened the guarded entry; bob's approval is the four-eyes one.
        guarded, _ = store_entries.add_entry(
            session,
            list_id,
            url="http://site.shared.example.net/",
            scope="host",
            reason="whole site, reported twice",
            actor="dana",
            person=get_account_by_name(session, "dana").id,
        )
        store_entries.approve(session, list_id, guarded.id, actor="bob", actor_role="analyst")
        referred, _ = store_entries.add_entry(
            session,
            list_id,
            url="http://198.51.100.44/home.html",
            scope="page",
            reason="hosted at home",
            actor="alice",
        )
        store_guards.record_hosting(
            session,
            list_id,
            referred,
            evidence,
            actor="alice",
            home_country="NL",
            now=console.ctx.wall_clock(),
        )
        guarded_id, referred_id = guarded.id, referred.id
    # The creator, although an admin, is refused the guard approval.
    as_person(driver, console, state["dana"])
    driver.get(f"{console.base}/console/queue?list={LIST}")
    wait_for(driver, f"#justify-{guarded_id}").send_keys("a second pair of eyes")
    click_and_load(driver, driver.find_element(By.ID, f"guard-approve-{guarded_id}"))
    assert "Not approved" in wait_for(driver, "h1").text
    # erin, another admin, approves it from the queue with a justification.
    as_person(driver, console, state["erin"])
    driver.get(f"{console.base}/console/queue?list={LIST}")
    row = wait_for(driver, "#guarded tbody tr")
    assert "site.shared.example.net" in row.text
    check_page(driver, console, "queue-guarded")
    driver.find_element(By.ID, f"justify-{guarded_id}").send_keys("only this site is abusive")
    click_and_load(driver, driver.find_element(By.ID, f"guard-approve-{guarded_id}"))
    assert "Guard approval recorded" in wait_for(driver, "[role=status]").text
    with console.ctx.db.read() as session:
        entry = session.get(EntryRow, guarded_id)
        assert entry is not None
        assert entry.guard_approved_by == "erin"
        assert entry.status == "active"
    # Two checks find it gone from every vantage point: the job proposes expiry,
    # and the Queue lists the proposal with its state.
    for day in (1, 2):
        now = console.ctx.wall_clock() + timedelta(days=day)
        with console.ctx.db.read() as session:
            previous = store_verification.get_state(session, guarded_id)
        outcome = advance(
            previous,
            [Observation("a", DNS_NXDOMAIN), Observation("b", DNS_NXDOMAIN)],
            now=now,
            gone_threshold=2,
            max_unverified_days=30,
            listed_since=now - timedelta(days=day),
        )
        with console.ctx.db.transaction() as session:
            store_verification.record(
                session,
                list_id,
                guarded_id,
                outcome,
                gone_threshold=2,
                auto_expire_gone=False,
                now=now,
            )
    driver.get(f"{console.base}/console/queue?list={LIST}")
    proposal = wait_for(driver, "#proposals tbody tr").text
    assert f"#{guarded_id}" in proposal
    assert "expiry" in proposal
    assert "gone" in proposal
    check_page(driver, console, "queue-proposals")
    # erin's Appeals page lists an appeal that matched no list; she closes it.
    filed = httpx.post(
        f"{console.base}/v1/appeals",
        json={"url": "http://unlisted.example.org/page.html", "message": "not blocked?"},
        timeout=30,
    )
    assert filed.status_code == 202, filed.text
    unmatched = filed.json()["appeal"]
    driver.get(f"{console.base}/console/appeals?list={LIST}")
    row = wait_for(driver, "#unmatched tbody tr")
    assert "unlisted.example.org/page.html" in row.text
    assert driver.find_elements(By.CSS_SELECTOR, "#unmatched a") == []
    check_page(driver, console, "appeals-unmatched")
    driver.find_element(By.ID, f"close-{unmatched}").send_keys("not on any list")
    click_and_load(driver, row.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert f"Appeal {unmatched} closed" in wait_for(driver, "[role=status]").text
    assert "No open unmatched appeal" in driver.find_element(By.ID, "unmatched").text
    # bob (analyst) refers the proposed entry, seeing its hosting evidence.
    as_person(driver, console, state["bob"])
    driver.get(f"{console.base}/console/queue?list={LIST}")
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Referrals"))
    evidence_text = wait_for(driver, f"#ref-{referred_id}-hosting").text
    assert "192.0.2.10" in evidence_text
    assert "test-geo 2026-11" in evidence_text
    check_page(driver, console, "referrals")
    driver.find_element(By.ID, f"refer-{referred_id}").send_keys("hosted here: takedown")
    click_and_load(driver, driver.find_element(By.ID, f"refer-button-{referred_id}"))
    assert "referred" in wait_for(driver, "[role=status]").text
    with console.ctx.db.read() as session:
        entry = session.get(EntryRow, referred_id)
        assert entry is not None
        assert entry.status == "referred"
    # The entry page shows the evidence and the re-verification state.
    driver.get(f"{console.base}/console/entries/{referred_id}?list={LIST}")
    assert "192.0.2.10" in wait_for(driver, "#entry-hosting").text
    check_page(driver, console, "entry-safeguards")
    driver.get(f"{console.base}/console/entries/{guarded_id}?list={LIST}")
    assert wait_for(driver, "#verification-status").text == "gone"
    assert driver.find_element(By.ID, "verification-gone").text == "2"
    assert "erin" in driver.find_element(By.ID, "entry-guard").text


def test_keyboard_only_login_and_add(driver: Any, console: ConsoleServer) -> None:
    alice: Person = state["alice"]
    driver.delete_all_cookies()
    driver.get(f"{console.base}/console/login")
    wait_for(driver, "#name")
    keys = ActionChains(driver)
    code, alice.last_step = totp_code(alice.secret, after_step=alice.last_step)
    # The name field has autofocus; TAB moves through the form, ENTER submits.
    keys.send_keys(alice.name, Keys.TAB, alice.password, Keys.TAB, code, Keys.ENTER).perform()
    assert wait_for(driver, "#whoami").text == "alice"
    driver.get(f"{console.base}/console/add?list={LIST}")
    wait_for(driver, "#url").click()  # focus the first field, then keys only
    ActionChains(driver).send_keys(
        "http://198.51.100.20/keyboard.html",
        Keys.TAB,  # the scope radio group ("page" is checked)
        Keys.TAB,
        "added from the keyboard",
    ).perform()
    # TAB on to "Preview reach" (the optional fields come first), then ENTER.
    for _ in range(MAX_TABS):
        if driver.switch_to.active_element.get_attribute("id") == "preview":
            break
        ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("id") == "preview"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait_for(driver, "#reach-explanation")
    # After the preview, "Add as pending" follows "Preview reach".
    driver.find_element(By.ID, "preview").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "add"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    assert wait_for(driver, "#entry-status").text == "pending"
