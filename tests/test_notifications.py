"""Notifications against a real SMTP server (aiosmtpd) and a real HTTP server: delivered, bounded, quiet."""

import time

import pytest
from django.core.management import CommandError, call_command

from tests.support.mailbox import Mailbox
from tests.support.webhooks import Webhook
from updater.notify import channels


@pytest.fixture
def smtp(settings):
    with Mailbox() as box:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", box.port
        settings.EMAIL_USE_TLS = False
        settings.DEFAULT_FROM_EMAIL = "helpdesk@example.org"
        yield box


def test_an_email_reaches_the_smtp_server_with_its_subject_and_body(smtp):
    delivery = channels.send_email("[OK] helpdesk update v1 -> v2", "All went well.", ["ops@example.org"])
    assert delivery.ok, delivery.detail
    [message] = smtp.received
    assert message.subject == "[OK] helpdesk update v1 -> v2"
    assert message.recipients == ["ops@example.org"] and "All went well." in message.body


def test_a_dead_smtp_server_is_reported_not_raised(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", Mailbox().port  # nobody listens there
    delivery = channels.send_email("subject", "body", ["ops@example.org"])
    assert not delivery.ok and "ConnectionRefusedError" in delivery.detail


def test_slack_gets_the_text_and_a_500_is_reported_without_the_secret_url(settings):
    with Webhook(200) as hook:
        settings.SLACK_WEBHOOK_URL = hook.url()
        assert channels.send_slack("[OK] helpdesk update").ok
    assert hook.calls[0].method == "POST" and hook.calls[0].body == {"text": "[OK] helpdesk update"}
    with Webhook(500) as hook:
        settings.SLACK_WEBHOOK_URL = hook.url()
        delivery = channels.send_slack("[FAILED] helpdesk update")
    assert not delivery.ok and delivery.detail == "RuntimeError: the webhook answered HTTP 500"
    assert "SECRET-TOKEN-PART" not in delivery.detail


def test_a_hanging_webhook_costs_at_most_the_timeout(settings):
    settings.NOTIFY_TIMEOUT = 1.0
    with Webhook("hang") as hook:
        settings.SLACK_WEBHOOK_URL = hook.url()
        started = time.monotonic()
        delivery = channels.send_slack("anyone there?")
        waited = time.monotonic() - started
    assert not delivery.ok and delivery.detail == "timed out"
    assert waited < 10  # bounded by the timeout, not by the server (which would hang for 60 s)
    assert "SECRET-TOKEN-PART" not in delivery.detail


@pytest.mark.parametrize(
    ("kind", "method", "under_maintenance", "header"),
    [
        ("statuspage", "PATCH", {"component": {"status": "under_maintenance"}}, "Authorization"),
        ("cachet", "PUT", {"status": 2}, "X-Cachet-Token"),
    ],
)
def test_the_status_page_component_goes_under_maintenance_and_back(
    settings, kind, method, under_maintenance, header
):
    with Webhook(200) as hook:
        settings.STATUS_PAGE_KIND, settings.STATUS_PAGE_URL = kind, hook.url("/components/42")
        settings.STATUS_PAGE_TOKEN = "status-token-secret"
        assert channels.set_status_page(channels.UNDER_MAINTENANCE).ok
        assert channels.set_status_page(channels.OPERATIONAL).ok
    first, second = hook.calls
    assert (first.method, first.path, first.body) == (method, "/components/42", under_maintenance)
    assert "status-token-secret" in first.headers[header]
    assert second.body in ({"component": {"status": "operational"}}, {"status": 1})


@pytest.mark.parametrize(
    ("mode", "status", "changed", "sent"),
    [
        ("always", "succeeded", False, True),
        ("on-change", "succeeded", True, True),
        ("on-change", "succeeded", False, False),
        ("on-change", "rolled back", False, True),
        ("only-on-error", "succeeded", True, False),
        ("only-on-error", "failed", False, True),
    ],
)
def test_notify_mode_decides_who_hears_about_a_run(mode, status, changed, sent):
    assert channels.should_notify(status, changed, mode) is sent


@pytest.mark.django_db
def test_notify_users_mails_every_active_user_in_both_languages_over_one_connection(smtp, helpdesk, capsys):
    helpdesk.bob.is_active = False
    helpdesk.bob.save()
    call_command("notify_users", "--at", "2026-11-29 02:00", "--dry-run")
    listed = capsys.readouterr().out
    assert helpdesk.alice.email in listed and helpdesk.bob.email not in listed
    assert smtp.received == []

    call_command("notify_users", "--at", "2026-11-29 02:00")
    recipients = sorted(r for message in smtp.received for r in message.recipients)
    active = sorted(u.email for u in (helpdesk.alice, helpdesk.agent, helpdesk.admin) if u.email)
    assert recipients == active
    assert len({message.session for message in smtp.received}) == 1  # one SMTP connection for all
    body = smtp.received[0].body
    assert "Dzień dobry" in body and "Hello" in body and "2026-11-29 02:00" in body
    assert smtp.received[0].subject.startswith("Planowana aktualizacja helpdesku / Planned helpdesk update")


@pytest.mark.django_db
def test_notify_users_refuses_an_unreadable_start_with_exit_2_and_sends_nothing(smtp, helpdesk):
    with pytest.raises(CommandError) as refused:
        call_command("notify_users", "--at", "tomorrow 2am")
    assert refused.value.returncode == 2
    assert "--at must look like '2026-11-29 02:00'" in str(refused.value)
    assert smtp.received == []
