"""Every main page on a phone (390 x 844) and a laptop (1366 x 900) in headless Chromium: nothing
scrolls sideways, tap targets are at least 24 x 24 px, and axe-core finds no serious or critical
accessibility violation. Screenshots of each page at both sizes go to test-artifacts/browser/."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from crm import tickets
from tests.conftest import REPO_ROOT
from tests.test_browser import SCREENSHOTS, _login, browser  # noqa: F401  (the shared browser fixture)
from updater.run import maintenance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AXE = REPO_ROOT / ".venv" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"phone": (390, 844), "laptop": (1366, 900)}

# Interactive elements standing on their own (not a link inside a sentence) smaller than 24 x 24 px.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'a[href], button, select, input:not([type=hidden]), textarea')]
  .filter(e => e.offsetParent !== null && !e.closest('p, .prose, .visually-hidden'))
  .map(e => [e, e.getBoundingClientRect()])
  .filter(([e, r]) => r.width < 24 || r.height < 24)
  .map(([e, r]) => `${e.tagName.toLowerCase()} "${(e.innerText || e.name || '').trim().slice(0, 30)}" ` +
                   `${Math.round(r.width)}x${Math.round(r.height)}`)"""
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
    .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ')}`);
}"""


@pytest.fixture
def busy_ticket(helpdesk):
    """A ticket as they come: a long title with an unbroken word, comments, a file with a long name."""
    ticket = tickets.open_ticket(
        author=helpdesk.alice,
        title="Drukarka_w_pokoju_12_drukuje_puste_strony_od_poniedziałku_rano",
        description="Since Monday: https://intranet.example.com/printers/room-12/status?details=full&log=1",
    )
    tickets.add_comment(ticket, helpdesk.agent, "Checking the toner.", is_internal=False)
    tickets.add_attachment(
        ticket, helpdesk.alice, SimpleUploadedFile("raport_z_awarii_drukarki_" + "x" * 60 + ".pdf", b"%PDF")
    )
    return ticket


def _check(page, name: str, size: str) -> list[str]:
    problems = []
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if width[0] > width[1]:
        problems.append(f"{name} at {size}: the page is {width[0]} px wide in a {width[1]} px window")
    problems += [f"{name} at {size}: tap target {t}" for t in page.evaluate(SMALL_TARGETS)]
    page.add_script_tag(path=str(AXE))
    problems += [f"{name} at {size}: {v}" for v in page.evaluate(AXE_RUN)]
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
    return problems


def test_every_page_fits_a_phone_and_a_laptop_and_passes_axe(
    browser,  # noqa: F811
    live_server,
    helpdesk,
    busy_ticket,
    state_dir,
):
    assert AXE.exists(), "axe-core is missing: scripts/bootstrap.sh --test installs it"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    problems = []
    for size, (width, height) in SIZES.items():
        context = browser.new_context(locale="en-US", viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{base}/login/")
        problems += _check(page, "login", size)
        _login(page, base, "adam", "pw-adam")  # staff: every column, filter and form field there is
        pages = {
            "ticket-list": "/tickets/",
            "ticket-detail": f"/tickets/{busy_ticket.pk}/",
            "ticket-create": "/tickets/create/",
            "dashboard": "/monitoring/dashboard/",
        }
        for name, path in pages.items():
            page.goto(base + path)
            problems += _check(page, name, size)
        page.goto(f"{base}/tickets/create/")
        page.click("text=Create ticket")  # nothing filled in: the form with its error summary
        page.wait_for_selector("#error-summary")
        problems += _check(page, "ticket-create-errors", size)
        maintenance.enable("layout test")
        page.goto(f"{base}/tickets/")
        problems += _check(page, "maintenance", size)
        maintenance.disable()
        context.close()
    assert problems == [], "\n".join(problems)


def test_the_polish_dashboard_names_no_check_in_english(browser, live_server, helpdesk, state_dir):  # noqa: F811
    page = browser.new_context(locale="pl-PL", viewport={"width": 390, "height": 844}).new_page()
    _login(page, live_server.url, "adam", "pw-adam")
    page.goto(f"{live_server.url}/monitoring/dashboard/")
    page.wait_for_selector(".gauge[data-check='memory']")
    shown = page.inner_text("#gauges")
    for english in ("database", "migrations", "backup", "memory", "load", "services", "disk", "percent"):
        assert english not in shown
    assert "pamięć" in shown and "kopia zapasowa" in shown
    page.screenshot(path=str(SCREENSHOTS / "dashboard-pl-phone.png"), full_page=True)
