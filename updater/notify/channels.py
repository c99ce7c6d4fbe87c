"""Telling people: the run's report by email, a Slack message, and a status-page component.

Every outbound call runs in a worker thread that is given NOTIFY_TIMEOUT seconds and then abandoned,
so a hanging SMTP server, webhook or status page can never hold an update up by more than that. A
failure is returned as a Delivery (and so lands in the journal and the report), never raised.
Webhook URLs and tokens are secrets: they are not put in any Delivery, log line or report.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

logger = logging.getLogger(__name__)

MODES = ("always", "on-change", "only-on-error")
STATUS_PAGE_KINDS = ("statuspage", "cachet")
UNDER_MAINTENANCE, OPERATIONAL = "under_maintenance", "operational"
DEGRADED, PARTIAL_OUTAGE = "degraded_performance", "partial_outage"
# Cachet's component statuses: 1 operational, 2 performance issues, 3 partial outage, 4 major outage
# (it has no maintenance state for components, so maintenance shows as performance issues).
_CACHET_STATUS = {OPERATIONAL: 1, UNDER_MAINTENANCE: 2, DEGRADED: 2, PARTIAL_OUTAGE: 3}


@dataclass(frozen=True)
class Delivery:
    channel: str  # "email", "slack", "status page"
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def should_notify(status: str, changed: bool, mode: str | None = None) -> bool:
    """always: every finished run; on-change: a version changed or something failed; only-on-error."""
    mode = mode or settings.NOTIFY_MODE
    failed = status != "succeeded"
    if mode == "always":
        return True
    if mode == "only-on-error":
        return failed
    return failed or changed


def send_email(subject: str, body: str, recipients: list[str]) -> Delivery:
    if not recipients:
        return Delivery("email", True, "no recipients configured")

    def deliver() -> str:
        connection = get_connection(timeout=settings.NOTIFY_TIMEOUT)
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, connection=connection).send()
        return f"sent to {len(recipients)} recipient(s)"

    return _bounded("email", deliver)


def send_mass_email(messages: list[EmailMessage]) -> Delivery:
    """Many messages over one SMTP connection (notify_users)."""

    def deliver() -> str:
        with get_connection(timeout=settings.NOTIFY_TIMEOUT) as connection:
            sent = connection.send_messages(messages)
        return f"sent {sent} message(s) over one connection"

    return _bounded("email", deliver, timeout=settings.NOTIFY_TIMEOUT * max(1, len(messages) // 50 + 1))


def send_slack(text: str) -> Delivery:
    url = settings.SLACK_WEBHOOK_URL
    if not url:
        return Delivery("slack", True, "not configured")

    def deliver() -> str:
        import requests  # here: every command loads this module at start-up, few of them post

        response = requests.post(url, json={"text": text}, timeout=settings.NOTIFY_TIMEOUT)
        if response.status_code >= 300:
            raise RuntimeError(f"the webhook answered HTTP {response.status_code}")
        return f"HTTP {response.status_code}"

    return _bounded("slack", deliver)


def set_status_page(state: str) -> Delivery:
    """Put the configured status-page component under maintenance, or back to operational."""
    url = settings.STATUS_PAGE_URL
    if not url:
        return Delivery("status page", True, "not configured")
    token = settings.STATUS_PAGE_TOKEN

    def deliver() -> str:
        import requests

        if settings.STATUS_PAGE_KIND == "cachet":
            headers = {"X-Cachet-Token": token} if token else {}
            response = requests.put(
                url, json={"status": _CACHET_STATUS[state]}, headers=headers, timeout=settings.NOTIFY_TIMEOUT
            )
        else:
            headers = {"Authorization": f"OAuth {token}"} if token else {}
            response = requests.patch(
                url, json={"component": {"status": state}}, headers=headers, timeout=settings.NOTIFY_TIMEOUT
            )
        if response.status_code >= 300:
            raise RuntimeError(f"the status page answered HTTP {response.status_code}")
        return f"{state}: HTTP {response.status_code}"

    return _bounded("status page", deliver)


def _bounded(channel: str, call: Callable[[], str], timeout: float | None = None) -> Delivery:
    timeout = timeout or settings.NOTIFY_TIMEOUT
    outcome: list[Delivery] = []

    def work() -> None:
        try:
            outcome.append(Delivery(channel, True, call()))
        except Exception as error:  # any failure of a notification is reported, never raised
            outcome.append(Delivery(channel, False, _describe(error)))

    worker = threading.Thread(target=work, name=f"notify-{channel}", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    delivery = (
        outcome[0] if outcome else Delivery(channel, False, f"no answer within {timeout:.0f}s; gave up")
    )
    if not delivery.ok:
        logger.warning("notification via %s failed: %s", channel, delivery.detail)
    return delivery


def _describe(error: Exception) -> str:
    """The kind of failure without the URL (a webhook URL is a secret)."""
    import requests

    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "could not connect"
    if isinstance(error, requests.RequestException):
        return type(error).__name__
    text = str(error)
    for secret in (settings.SLACK_WEBHOOK_URL, settings.STATUS_PAGE_TOKEN, settings.EMAIL_HOST_PASSWORD):
        if secret:
            text = text.replace(secret, "***")
    return f"{type(error).__name__}: {text}"[:300]
