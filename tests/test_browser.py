"""A real browser (headless Chromium driven by Playwright) goes through a ticket's life.

Screenshots are kept in test-artifacts/browser/ for a human to look at after the run.
"""

import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "browser"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def browser(monkeypatch):
    # Playwright runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield browser
        browser.close()


def _login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/tickets/")


def test_ticket_life_in_a_real_browser(browser, live_server, helpdesk, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # A customer opens a ticket, comments on it and attaches a file.
    _login(page, base, "alice", "pw-alice")
    page.click("text=New ticket")
    page.fill("#id_title", "Scanner in room 12 is offline")
    page.fill("#id_description", "It shows error E-42 since Monday.")
    page.select_option("#id_priority", "high")
    page.click("text=Create ticket")
    page.wait_for_selector("h1:has-text('Scanner in room 12 is offline')")
    assert "created." in page.inner_text(".message")

    page.fill("#id_body", "Tried turning it off and on again.")
    page.click("text=Add comment")
    page.wait_for_selector("article.comment:has-text('Tried turning it off and on again.')")

    log = tmp_path / "scanner.log"
    log.write_text("E-42 paper feed sensor\n")
    page.set_input_files("#id_file", str(log))
    page.click("button:has-text('Upload')")
    page.wait_for_selector("#attachments a:has-text('scanner.log')")
    ticket_url = page.url.split("#")[0]
    page.click("button:has-text('Log out')")

    # An agent resolves it: first without notes (refused), then with notes.
    _login(page, base, "agnes", "pw-agnes")
    page.goto(ticket_url)
    page.click("text=Edit")
    page.select_option("#id_status", "resolved")
    page.click("text=Save")
    assert "Describe how the ticket was resolved." in page.inner_text("main form")
    page.fill("#id_resolution_notes", "Cleaned the paper feed sensor.")
    page.click("text=Save")
    page.wait_for_selector("#ticket-status:has-text('Resolved')")
    history = page.inner_text("#history")
    assert "opened the ticket" in history
    assert "attached a file" in history
    assert "New" in history and "Resolved" in history
    assert "Cleaned the paper feed sensor." in page.inner_text("#resolution-notes")
    with page.expect_download() as download:
        page.click("#attachments a:has-text('scanner.log')")
    assert download.value.path().read_text() == "E-42 paper feed sensor\n"
    page.screenshot(path=str(SCREENSHOTS / "ticket-resolved.png"), full_page=True)

    # The same list, in Polish, chosen from the language menu.
    page.goto(f"{base}/tickets/")
    page.select_option("#language", "pl")
    page.wait_for_selector("h1:has-text('Zgłoszenia')")
    assert "Rozwiązane" in page.inner_text("table.tickets")
    page.screenshot(path=str(SCREENSHOTS / "ticket-list-pl.png"), full_page=True)
    context.close()


def test_monitoring_dashboard_draws_gauges_and_the_update_timeline(browser, live_server, helpdesk, state_dir):
    import json

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    updates = state_dir.updates
    updates.mkdir(parents=True)
    steps = [("prepare", 30.0), ("backup", 4.0), ("migrate", 2.0), ("switch", 0.5), ("verify", 3.5)]
    run = {
        "id": "20261126T020000000000Z",
        "command": "update",
        "from_version": "v1.3.0",
        "to_version": "v1.4.0",
        "status": "succeeded",
        "started_at": "2026-11-26T02:00:00+00:00",
        "finished_at": "2026-11-26T02:00:40+00:00",
        "steps": [{"name": name, "status": "done", "seconds": seconds} for name, seconds in steps],
        "facts": {"maintenance_seconds": 6.8},
    }
    (updates / "20261126T020000000000Z-update.json").write_text(json.dumps(run))
    page = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900}).new_page()
    _login(page, live_server.url, "adam", "pw-adam")
    page.goto(f"{live_server.url}/monitoring/dashboard/")
    page.wait_for_selector(".gauge[data-check='memory']")
    assert page.locator(".gauge").count() == 9
    row = page.locator("tr.run").first
    assert "update v1.3.0 → v1.4.0" in row.inner_text() and "6.8 s" in row.inner_text()
    assert page.locator("tr.run .timeline .step").count() == 5
    widths = [page.locator(".timeline .step").nth(i).bounding_box()["width"] for i in range(5)]
    assert widths[0] > 5 * widths[2]  # prepare took 15 times as long as migrate: drawn to scale
    page.screenshot(path=str(SCREENSHOTS / "monitoring-dashboard.png"), full_page=True)

    customer = browser.new_context(locale="en-US").new_page()
    _login(customer, live_server.url, "alice", "pw-alice")  # a customer is not staff
    customer.goto(f"{live_server.url}/monitoring/dashboard/")
    assert "/admin/login/" in customer.url
