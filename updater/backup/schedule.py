"""When a scheduled backup is due: every BACKUP_INTERVAL_HOURS (4 in prod, 24 elsewhere, as the
handbook says). The timer or cron line runs `backup_database --scheduled` every hour in every
environment; this module decides, so that one unit file serves them all and a missed run (a server
that was off) is made up at the next hour rather than at the next interval.

A timer fires a few minutes late or early (RandomizedDelaySec, cron's start-up), so a backup is due a
little before a full interval has passed: SLACK keeps a 4-hour schedule from slipping to 5 hours."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from updater.backup import backups, rotation
from updater.backup.engines import engine_for

SLACK = timedelta(minutes=15)


@dataclass(frozen=True)
class Due:
    due: bool
    interval_hours: float
    newest: str  # the newest complete backup set's file name, or ""
    age_hours: float | None  # how old it is

    def describe(self) -> str:
        every = f"every {self.interval_hours:g} h in {settings.ENVIRONMENT}"
        if not self.newest:
            return f"no backup set yet; backups run {every}"
        return f"the newest backup set {self.newest} is {self.age_hours:.1f} h old; backups run {every}"


def due(now: datetime | None = None, alias: str = "default") -> Due:
    """Whether the newest verified backup set (database and media) is older than the interval."""
    now = now or datetime.now(UTC)
    interval = timedelta(hours=settings.BACKUP_INTERVAL_HOURS)
    directory = backups.default_directory()
    database = engine_for(alias).database
    found = rotation.list_backups(directory, database) if directory.is_dir() else []
    complete = [(path, m) for path, m in found if m.verified_at and m.has_media]
    if not complete:
        return Due(True, settings.BACKUP_INTERVAL_HOURS, "", None)
    path, manifest = max(complete, key=lambda item: item[1].started_at)
    age = now - datetime.fromisoformat(manifest.started_at)
    return Due(age >= interval - SLACK, settings.BACKUP_INTERVAL_HOURS, path.name, age.total_seconds() / 3600)
