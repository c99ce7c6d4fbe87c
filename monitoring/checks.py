"""The checks behind /monitoring/status/, /monitoring/metrics and check_system.

Each check reports an observed value with its unit and thresholds, and a status: pass, warn or fail.
Nothing here is slow enough for a request path: no outbound HTTP, no subprocess. Expensive probes
(pending migrations, the newest backup) are cached per process for MONITORING_CACHE_SECONDS; service
states and the CPU sample come from check_system's state file (written every minute by cron or a
timer) and are marked stale when it is old. CPU is judged by the 5-minute load average per core, not by
a single sample taken under the very load of the requests asking for it.
"""

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

import psutil
from django.conf import settings
from django.db import DatabaseError, connection

from crm import due_dates
from crm import outbox as crm_outbox
from crm.models import Ticket
from monitoring import state
from updater import layout
from updater.backup import offsite, rotation  # the updater owns the backup format
from updater.plan.migrations import pending_migrations

logger = logging.getLogger(__name__)

PASS, WARN, FAIL = "pass", "warn", "fail"
_ORDER = {PASS: 0, WARN: 1, FAIL: 2}
_cache: dict[str, tuple[float, object]] = {}
_refreshing: set[str] = set()


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    observed: float | None
    unit: str
    warn: float | None = None
    fail: float | None = None
    detail: str = ""
    stale: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def graded(name: str, observed: float, unit: str, warn: float, fail: float, detail: str = "") -> Check:
    """pass below warn, warn from warn, fail from fail (higher is worse)."""
    status = FAIL if observed >= fail else WARN if observed >= warn else PASS
    return Check(name, status, round(observed, 3), unit, warn, fail, detail)


def overall(checks: list[Check]) -> str:
    return max((check.status for check in checks), key=_ORDER.__getitem__, default=PASS)


def cached(key: str, compute: Callable[[], object]) -> object:
    """The value of an expensive probe, at most MONITORING_CACHE_SECONDS old. Only the very first call
    of a process waits for it; after that an expired value is served while one background thread
    computes the next (stale-while-revalidate), so no request pays for the probe."""
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is None:
        value = compute()
        _cache[key] = (now, value)
        return value
    if now - hit[0] >= settings.MONITORING_CACHE_SECONDS and key not in _refreshing:
        _refreshing.add(key)
        threading.Thread(target=_refresh, args=(key, compute), daemon=True).start()
    return hit[1]


def _refresh(key: str, compute: Callable[[], object]) -> None:
    try:
        _cache[key] = (time.monotonic(), compute())
    except Exception:  # a failed refresh keeps the old value; the next expiry tries again
        logger.warning("refreshing the %s probe failed", key, exc_info=True)
    finally:
        _refreshing.discard(key)
        connection.close()  # this thread's own database connection


def clear_cache() -> None:
    _cache.clear()
    from monitoring import status  # the status document is built from these values

    status.forget()


def database() -> Check:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return Check(
            "database",
            FAIL,
            None,
            "ms",
            settings.DB_LATENCY_WARN_MS,
            settings.DB_LATENCY_CRIT_MS,
            f"unreachable: {type(error).__name__}",
        )
    latency = (time.perf_counter() - started) * 1000
    return graded("database", latency, "ms", settings.DB_LATENCY_WARN_MS, settings.DB_LATENCY_CRIT_MS)


def migrations() -> Check:
    def count() -> int | None:
        try:
            return len(pending_migrations())
        except DatabaseError:
            return None

    pending = cached("migrations", count)
    if pending is None:
        return Check("migrations", FAIL, None, "migrations", 1, 1, "the database could not be asked")
    detail = "an update is probably migrating" if pending else ""
    return Check("migrations", WARN if pending else PASS, pending, "migrations", 1, None, detail)


def backup_age() -> Check:
    def newest() -> float | None:
        directory = layout.state().backups
        found = rotation.list_backups(directory) if directory.is_dir() else []
        return found[0][0].stat().st_mtime if found else None

    made = cached("backup", newest)
    warn, fail = settings.BACKUP_WARN_HOURS, settings.BACKUP_CRIT_HOURS
    if made is None:
        return Check("backup", WARN, None, "hours", warn, fail, "no backup yet")
    return graded("backup", (time.time() - made) / 3600, "hours", warn, fail)


def offsite_backups() -> list[Check]:
    """The newest off-site copy's age, and failures to send one; none when no repository is configured."""
    if not settings.BACKUP_OFFSITE_REPOSITORY:
        return []
    shipped = offsite.state()
    warn, fail = settings.OFFSITE_BACKUP_WARN_HOURS, settings.OFFSITE_BACKUP_CRIT_HOURS
    last = shipped.get("last_success")
    if last:
        age = (time.time() - datetime.fromisoformat(last).timestamp()) / 3600
        check = graded("offsite backup", age, "hours", warn, fail)
    else:
        check = Check("offsite backup", WARN, None, "hours", warn, fail, "no off-site copy yet")
    failures = shipped.get("failures", 0)
    if failures:
        # A failed shipment is worth a warning at once, whatever the age of the copy before it.
        status = check.status if check.status == FAIL else WARN
        detail = f"sending failed {failures} times in a row: {shipped.get('last_error', '')}"
        check = Check(check.name, status, check.observed, check.unit, warn, fail, detail[:500])
    return [check]


def outbox() -> Check:
    """The oldest unsent notification's age; dead letters (mails given up) warn whatever the age."""

    def measure() -> dict | None:
        try:
            return {
                "oldest_minutes": crm_outbox.oldest_age_seconds() / 60,
                "pending": crm_outbox.pending().count(),
                "dead": crm_outbox.dead().count(),
            }
        except DatabaseError:
            return None

    found = cached("outbox", measure)
    warn, fail = settings.OUTBOX_WARN_MINUTES, settings.OUTBOX_CRIT_MINUTES
    if found is None:
        return Check("mail outbox", FAIL, None, "minutes", warn, fail, "the database could not be asked")
    check = graded("mail outbox", found["oldest_minutes"], "minutes", warn, fail)
    if found["dead"]:  # how many: helpdesk_outbox_dead_letters
        status = check.status if check.status == FAIL else WARN
        check = Check(
            check.name, status, check.observed, check.unit, warn, fail, "mails given up (dead letters)"
        )
    return check


def overdue_tickets() -> Check:
    """Open tickets past their due date (crm/due_dates.py): a business figure, shown and exported; it
    warns (and so alerts) only from OVERDUE_WARN_TICKETS when that is set, and never fails the site."""

    def count() -> int | None:
        try:
            return Ticket.objects.filter(due_dates.overdue_q()).count()
        except DatabaseError:
            return None

    found = cached("overdue", count)
    warn = settings.OVERDUE_WARN_TICKETS or None
    if found is None:
        return Check("overdue tickets", WARN, None, "tickets", warn, None, "the database could not be asked")
    status = WARN if warn is not None and found >= warn else PASS
    return Check("overdue tickets", status, found, "tickets", warn, None)


def outbox_counts() -> dict | None:
    """What the outbox check measured last (for the metrics): pending and dead letters."""
    hit = _cache.get("outbox")
    return hit[1] if hit else None


def disks() -> list[Check]:
    result = []
    for mount in settings.MONITORED_DISKS:
        try:
            usage = shutil.disk_usage(mount)
        except OSError as error:
            result.append(Check(f"disk {mount}", FAIL, None, "percent", detail=str(error)))
            continue
        percent = usage.used / usage.total * 100 if usage.total else 0.0
        result.append(
            graded(
                f"disk {mount}", percent, "percent", settings.DISK_WARN_PERCENT, settings.DISK_CRIT_PERCENT
            )
        )
    return result


def memory() -> Check:
    return graded(
        "memory",
        psutil.virtual_memory().percent,
        "percent",
        settings.MEMORY_WARN_PERCENT,
        settings.MEMORY_CRIT_PERCENT,
    )


def load() -> Check:
    per_core = os.getloadavg()[1] / (os.cpu_count() or 1)
    return graded(
        "load", per_core, "load per core (5 min)", settings.LOAD_WARN_PER_CORE, settings.LOAD_CRIT_PER_CORE
    )


def services(snapshot: dict) -> Check:
    """Service states as check_system last saw them (a request never runs systemctl)."""
    wanted = settings.MONITORED_SERVICES
    if not wanted:
        return Check("services", PASS, 0, "inactive services", detail="none configured")
    states = snapshot.get("states", {})
    age = time.time() - snapshot.get("checked_at", 0)
    stale = age > settings.MONITORING_STALE_SECONDS
    down = [name for name in wanted if states.get(name) != "active"]
    if stale:
        detail = "check_system has not reported recently" if snapshot else "check_system has not run yet"
        return Check("services", WARN, len(down), "inactive services", 1, 1, detail, stale=True)
    detail = ", ".join(f"{name}: {states.get(name, 'unknown')}" for name in down)
    return Check("services", FAIL if down else PASS, len(down), "inactive services", 1, 1, detail)


def service_states(snapshot: dict) -> dict[str, bool]:
    states = snapshot.get("states", {})
    return {name: states.get(name) == "active" for name in settings.MONITORED_SERVICES}


def all_checks(saved: dict | None = None) -> list[Check]:
    """Every check; `saved` is check_system's state when the caller has it at hand already."""
    saved = saved if saved is not None else state.load()
    return [
        database(),
        migrations(),
        backup_age(),
        *offsite_backups(),
        outbox(),
        overdue_tickets(),
        *disks(),
        memory(),
        load(),
        services(saved.get("services", {})),
    ]
