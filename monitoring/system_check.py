"""One round of check_system: probe what a request may not (systemctl, a CPU sample over a second,
the error logs since the last round), evaluate the alerts, send them, and keep the state."""

import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from django.conf import settings

from monitoring import alerts, attestations, checks, state
from updater.notify import channels
from updater.plan import promotion
from updater.run import maintenance
from updater.system import services

PROMOTION_REFRESH_SECONDS = 300
_ERROR_WORD = re.compile(r"\b(error|critical|crit|emerg|alert)\b", re.IGNORECASE)


@dataclass
class Round:
    results: list[checks.Check]
    alerts: list[alerts.Alert]
    deliveries: list[channels.Delivery] = field(default_factory=list)


def run_round(now: float | None = None, *, send: bool = True) -> Round:
    now = now or time.time()
    data = state.load()
    data["services"] = {"checked_at": now, "states": services.probe_services(settings.MONITORED_SERVICES)}
    data["cpu"] = {"at": now, "percent": psutil.cpu_percent(interval=1)}
    errors, data["logs"] = count_new_errors(settings.MONITORED_ERROR_LOGS, data.get("logs", {}))
    checks.clear_cache()
    results = checks.all_checks(data)  # with the service states just probed
    if settings.MONITORED_ERROR_LOGS:
        results.append(
            checks.graded(
                "error log",
                errors,
                "new error lines",
                settings.ERROR_LOG_WARN_LINES,
                settings.ERROR_LOG_CRIT_LINES,
            )
        )
    data["alerts"], raised = alerts.evaluate(data.get("alerts", {}), results, now)
    attestations.record_health(results, data, now)
    promotion.refresh(PROMOTION_REFRESH_SECONDS)  # the status page's view of the environments above
    outcome = Round(results, raised)
    if send:
        outcome.deliveries = [delivery for alert in raised for delivery in deliver(alert)]
        page = _status_page_state(data["alerts"])
        if settings.STATUS_PAGE_URL and page != data.get("status_page") and not maintenance.is_on():
            delivery = channels.set_status_page(page)
            outcome.deliveries.append(delivery)
            if delivery.ok:
                data["status_page"] = page  # a failed call is tried again next round
    state.save(data)
    return outcome


def _status_page_state(levels: dict) -> str:
    """The component's state from the alert levels: critical -> partial outage, warning -> degraded.
    During an update the updater owns the status page (under maintenance), so this round leaves it."""
    ranks = {entry.get("level") for entry in levels.values()}
    if alerts.CRITICAL in ranks:
        return channels.PARTIAL_OUTAGE
    if alerts.WARNING in ranks:
        return channels.DEGRADED
    return channels.OPERATIONAL


def count_new_errors(paths: list[str], offsets: dict) -> tuple[int, dict]:
    """Error lines written to each log since the last round. A log seen for the first time is read from
    its end (old errors are not news); a rotated or truncated one from its start."""
    total, updated = 0, {}
    for name in paths:
        path = Path(name)
        try:
            info = path.stat()
        except OSError:
            continue
        known = offsets.get(name)
        if known is None:
            updated[name] = {"inode": info.st_ino, "offset": info.st_size}
            continue
        start = (
            known["offset"] if known.get("inode") == info.st_ino and known["offset"] <= info.st_size else 0
        )
        with path.open("rb") as handle:
            handle.seek(start)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a half-written last line waits for the next round
        total += sum(1 for line in complete.decode(errors="replace").splitlines() if _is_error(line))
        updated[name] = {"inode": info.st_ino, "offset": start + len(complete)}
    return total, updated


def _is_error(line: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return bool(_ERROR_WORD.search(line))
    if isinstance(entry, dict) and "level" in entry:
        return str(entry["level"]).upper() in ("ERROR", "CRITICAL")
    return bool(_ERROR_WORD.search(line))


def deliver(alert: alerts.Alert) -> list[channels.Delivery]:
    host = socket.gethostname()
    subject = f"[{alert.subject_flag}] helpdesk {alert.check} on {host}"
    body = f"{alert.text}\n\nServer: {host}\nTime: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n"
    recipients = settings.ALERT_EMAILS or settings.NOTIFY_EMAILS
    sent = [channels.send_email(subject, body, recipients)]
    if settings.SLACK_WEBHOOK_URL:
        sent.append(channels.send_slack(f"{subject}: {alert.text}"))
    return sent
