"""Prometheus exposition of the same checks: base units (seconds, ratios), few labels."""

import os
import time
from datetime import datetime

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from helpdesk.version import app_version
from monitoring import checks, status
from updater.backup import offsite
from updater.run import maintenance

_STATUS_VALUE = {checks.PASS: 0, checks.WARN: 1, checks.FAIL: 2}


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class HelpdeskCollector:
    def collect(self):
        results = checks.all_checks()
        by_name = {check.name: check for check in results}
        info = InfoMetricFamily("helpdesk", "Version and environment of the running helpdesk")
        info.add_metric([], {"version": app_version(), "environment": settings.ENVIRONMENT})
        yield info
        states = GaugeMetricFamily(
            "helpdesk_check_status", "Each check: 0 pass, 1 warn, 2 fail", labels=["check"]
        )
        for check in results:
            states.add_metric([check.name], _STATUS_VALUE[check.status])
        yield states
        yield _gauge("helpdesk_up", "1 unless a check fails", int(checks.overall(results) != checks.FAIL))
        scaled = [
            ("database", "helpdesk_database_latency_seconds", "SELECT 1 round trip", 1 / 1000),
            ("migrations", "helpdesk_pending_migrations", "Migrations not applied", 1),
            ("backup", "helpdesk_backup_age_seconds", "Age of the newest backup", 3600),
            (
                "offsite backup",
                "helpdesk_offsite_backup_age_seconds",
                "Age of the newest off-site copy",
                3600,
            ),
            ("mail outbox", "helpdesk_outbox_oldest_age_seconds", "Age of the oldest unsent mail", 60),
            ("overdue tickets", "helpdesk_tickets_overdue", "Open tickets past their due date", 1),
            ("memory", "helpdesk_memory_used_ratio", "Used share of memory", 1 / 100),
            ("load", "helpdesk_load_per_core", "5-minute load average per core", 1),
        ]
        for check_name, metric, documentation, factor in scaled:
            if check_name in by_name and by_name[check_name].observed is not None:
                yield _gauge(metric, documentation, by_name[check_name].observed * factor)
        disk = GaugeMetricFamily("helpdesk_disk_used_ratio", "Used share of a mount", labels=["mount"])
        for check in results:
            if check.name.startswith("disk ") and check.observed is not None:
                disk.add_metric([check.name.removeprefix("disk ")], check.observed / 100)
        yield disk
        if settings.BACKUP_OFFSITE_REPOSITORY:
            yield _gauge(
                "helpdesk_offsite_backup_failures",
                "Failed attempts in a row to send a backup off-site",
                offsite.state().get("failures", 0),
            )
        counted = checks.outbox_counts()
        if counted:
            yield _gauge("helpdesk_outbox_pending", "Mails waiting in the outbox", counted["pending"])
            yield _gauge(
                "helpdesk_outbox_dead_letters", "Mails given up after the last attempt", counted["dead"]
            )
        # _cores, not _count: Prometheus reserves the _count suffix for histograms and summaries.
        yield _gauge("helpdesk_cpu_cores", "CPU cores", os.cpu_count() or 1)
        yield _gauge("helpdesk_cpu_used_ratio", "Busy share of all cores", status.cpu_percent() / 100)
        yield _gauge("helpdesk_maintenance_mode", "1 while maintenance mode is on", int(maintenance.is_on()))
        last = status.last_update()
        if last and last.get("finished_at"):
            yield from _last_update(last)
        yield _gauge("helpdesk_scrape_timestamp_seconds", "When this page was made", time.time())


def _last_update(run: dict):
    """The newest run of the journal (update, rollback, safe_migrate...): outcome, end and durations."""
    finished = datetime.fromisoformat(run["finished_at"]).timestamp()
    yield _gauge("helpdesk_last_update_finished_timestamp_seconds", "When the last run ended", finished)
    yield _gauge(
        "helpdesk_last_update_success", "1 if the last run succeeded", int(run.get("status") == "succeeded")
    )
    if run.get("started_at"):
        started = datetime.fromisoformat(run["started_at"]).timestamp()
        yield _gauge(
            "helpdesk_last_update_duration_seconds", "How long the last run took", finished - started
        )
    if run.get("maintenance_seconds") is not None:
        yield _gauge(
            "helpdesk_last_update_maintenance_seconds",
            "How long the last run kept the site in maintenance mode",
            run["maintenance_seconds"],
        )


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HelpdeskCollector())
    return generate_latest(registry)
