"""The start and the end of every run that changes something: status page, report, notifications.

`begin` puts the status-page component under maintenance; `conclude` finishes the journal, adds a
sample of query timings and the error log's tail, sets the status page back to operational, sends
the report by email and Slack as NOTIFY_MODE says, and writes the report beside the journal. Nothing
here can fail a run: every delivery is bounded and reported (updater/notify/channels.py).
"""

from pathlib import Path

from django.conf import settings

from updater.notify import channels, reports
from updater.run import journal


def begin(run: journal.Journal) -> None:
    if settings.STATUS_PAGE_URL:
        _add(run, channels.set_status_page(channels.UNDER_MAINTENANCE))


def conclude(run: journal.Journal, status: str, cause: str | None = None, *, changed: bool) -> Path:
    run.finish(status, cause)
    run.record(
        query_timings_ms=reports.query_timings(),
        error_log_tail=reports.error_log_tail(run.data["started_at"]),
    )
    if settings.STATUS_PAGE_URL:
        _add(run, channels.set_status_page(channels.OPERATIONAL))
    # A fleet's other servers keep their report; the primary's tells people (one mail, not one a server).
    if channels.should_notify(status, changed) and run.fact("fleet_primary") is not False:
        report = reports.build(run)
        title = reports.subject(report)
        _add(run, channels.send_email(title, reports.render(report, "text"), settings.NOTIFY_EMAILS))
        if settings.SLACK_WEBHOOK_URL:
            _add(run, channels.send_slack(_slack_text(title, report)))
    return reports.save(run)


def held(tag: str, why: str, host: str) -> list[channels.Delivery]:
    """auto_update held a release for a human: say so once, by email and Slack."""
    title = f"[BREAKING held] helpdesk auto_update held {tag} on {host}"
    body = (
        f"auto_update did not apply {tag}: {why}\n"
        f"Read `manage.py update_plan --version {tag}`, then run `manage.py update --version {tag} "
        "--allow-breaking` by hand.\n"
    )
    sent = [channels.send_email(title, body, settings.NOTIFY_EMAILS)]
    if settings.SLACK_WEBHOOK_URL:
        sent.append(channels.send_slack(f"{title}\n{why}"))
    return sent


def _add(run: journal.Journal, delivery: channels.Delivery) -> None:
    run.record(notifications=[*run.fact("notifications", []), delivery.as_dict()])


def _slack_text(title: str, report: dict) -> str:
    steps = ", ".join(f"{s['name']} {s.get('seconds', '?')}s" for s in report["steps"])
    lines = [title, f"by {report['actor']}; {steps}; maintenance {report['maintenance_seconds']}s"]
    if report["cause"]:
        lines.append(f"cause: {report['cause'][:500]}")
    return "\n".join(lines)
