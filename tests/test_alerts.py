"""check_system's alerts: thresholds, consecutive breaches, hysteresis, reminders, resolve once,
error-log scanning, and delivery to a real SMTP server and a real webhook."""

import json
import random

import pytest
from django.core.management import call_command

from monitoring import alerts, checks, state, system_check
from tests.support.mailbox import Mailbox
from tests.support.webhooks import Webhook

MINUTE = 60.0


@pytest.fixture(autouse=True)
def alert_settings(settings, tmp_path):
    settings.ALERT_CONSECUTIVE, settings.ALERT_HYSTERESIS = 3, 5.0
    settings.ALERT_REPEAT_MINUTES, settings.ALERT_REPEAT_CRITICAL_MINUTES = 240, 60


def disk(percent: float) -> checks.Check:
    return checks.graded("disk /", percent, "percent", 80, 90)


def run(samples: list[float], start: float = 0.0) -> list[alerts.Alert]:
    saved, sent = {}, []
    for minute, percent in enumerate(samples):
        saved, raised = alerts.evaluate(saved, [disk(percent)], start + minute * MINUTE)
        sent += raised
    return sent


def test_a_disk_flapping_around_the_threshold_alerts_at_most_once():
    rng = random.Random(7)
    samples = [rng.uniform(79, 81) for _ in range(60)]
    sent = run(samples)
    assert len(sent) <= 1
    assert all(alert.kind == "warning" for alert in sent)


def test_it_takes_consecutive_breaches_to_alert():
    assert run([85, 85, 70, 85, 85]) == []  # never three in a row
    sent = run([85, 85, 85])
    assert [(a.kind, a.check) for a in sent] == [("warning", "disk /")]
    assert sent[0].text == "disk / is warning: 85 percent (threshold 80 percent)"


def test_critical_suppresses_the_warning_and_resolve_is_sent_once():
    sent = run([95, 95, 95, 95, 86, 70, 70, 70])
    assert [a.kind for a in sent] == ["critical", "resolved"]  # 95 -> 86 is not news; 70 resolves
    assert sent[1].text == "disk / is back to normal: 70 percent"


def test_hysteresis_holds_a_level_until_the_value_is_clearly_below_it():
    assert [a.kind for a in run([85, 85, 85, 77, 76, 78, 74])] == ["warning", "resolved"]


def test_reminders_repeat_sooner_for_critical_than_for_warning():
    warnings = run([85] * (5 * 60))  # five hours of a standing warning
    assert [a.kind for a in warnings] == ["warning", "reminder"]
    criticals = run([95] * (3 * 60 + 10))
    assert [a.kind for a in criticals] == ["critical", "reminder", "reminder", "reminder"]
    assert criticals[1].subject_flag == "STILL CRITICAL"


def test_an_unreachable_database_is_critical_without_a_number(settings):
    settings.ALERT_CONSECUTIVE = 1
    down = checks.Check("database", checks.FAIL, None, "ms", 100, 1000, "unreachable: OperationalError")
    _, sent = alerts.evaluate({}, [down], 0)
    assert sent[0].kind == "critical" and sent[0].text.endswith("unreachable: OperationalError")


def test_error_logs_are_counted_from_where_the_last_round_stopped(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("[error] old, before monitoring began\n")
    count, offsets = system_check.count_new_errors([str(log)], {})
    assert count == 0  # a log seen the first time is read from its end
    with log.open("a") as handle:
        handle.write("[error] one\n[notice] fine\n" + json.dumps({"level": "ERROR", "message": "two"}) + "\n")
        handle.write(
            json.dumps({"level": "INFO", "message": "an error mentioned at INFO"}) + "\n[error] half"
        )
    count, offsets = system_check.count_new_errors([str(log)], offsets)
    assert count == 2  # the half-written last line waits
    with log.open("a") as handle:
        handle.write(" a line\n")
    count, offsets = system_check.count_new_errors([str(log)], offsets)
    assert count == 1
    log.unlink()
    log.write_text("[error] after rotation\n")  # a new file (inode) is read from its start
    assert system_check.count_new_errors([str(log)], offsets)[0] == 1


@pytest.mark.django_db
def test_check_system_alerts_by_email_and_slack_once_then_resolves_once(settings, tmp_path, capsys):
    settings.ALERT_CONSECUTIVE = 1
    settings.MONITORED_DISKS = ["/"]
    settings.BACKUP_WARN_HOURS = settings.BACKUP_CRIT_HOURS = 1e9
    settings.LOAD_WARN_PER_CORE = settings.LOAD_CRIT_PER_CORE = 1e9
    settings.MEMORY_WARN_PERCENT = settings.MEMORY_CRIT_PERCENT = 100.0
    settings.DISK_WARN_PERCENT, settings.DISK_CRIT_PERCENT = 0.0, 0.001  # any used disk is critical
    with Mailbox() as smtp, Webhook(200) as slack, Webhook(200) as status_page:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.ALERT_EMAILS, settings.SLACK_WEBHOOK_URL = ["ops@example.org"], slack.url()
        settings.STATUS_PAGE_URL = status_page.url("/components/7")
        call_command("check_system")
        call_command("check_system")  # still critical: nothing new
        settings.DISK_WARN_PERCENT, settings.DISK_CRIT_PERCENT = 99.9, 100.0
        call_command("check_system")
        call_command("check_system")
    subjects = [message.subject for message in smtp.received]
    assert [s.split(" helpdesk ")[0] for s in subjects if "disk /" in s] == ["[CRITICAL]", "[RESOLVED]"]
    assert len(slack.calls) == len(smtp.received)
    pages = [call.body["component"]["status"] for call in status_page.calls]
    assert pages == ["partial_outage", "degraded_performance"]  # disk critical; then only "no backup" warns
    assert any("disk / is critical" in call.body["text"] for call in slack.calls)
    saved = state.load()
    assert (
        saved["alerts"]["disk /"]["level"] == "ok"
        and "percent" in saved["cpu"]
        and "states" in saved["services"]
    )
    assert "[CRITICAL] disk / is critical" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_hanging_slack_webhook_is_never_called_by_the_status_endpoint(client, settings, tmp_path):
    with Webhook("hang") as slack:
        settings.SLACK_WEBHOOK_URL = slack.url()
        for _ in range(5):
            assert client.get("/monitoring/status/").status_code in (200, 503)
    assert slack.calls == []  # alerts go out from check_system, never from a request
