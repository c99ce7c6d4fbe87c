"""Response and resolution targets by priority (settings), counted in business hours when
BUSINESS_HOURS says when the helpdesk works (the update windows' format, e.g. `Mon-Fri 08:00-16:00`,
in TIME_ZONE; empty: around the clock).

A ticket's `response_due_at` and `due_at` come from its creation time and its priority, and are
computed again when its priority changes. It is overdue while it is open (new or in progress) past
`due_at`; its response is late while no agent has answered publicly past `response_due_at`.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from updater.plan.policy import Window

OPEN = ("new", "in_progress")


class DueDateError(ValueError):
    """A target or business-hours setting that cannot be understood."""


def targets(spec: str) -> dict[str, float]:
    """'urgent=4,high=24,normal=72,low=168' -> hours by priority (every priority must be given)."""
    found = {}
    for part in filter(None, (piece.strip() for piece in spec.split(","))):
        priority, _, hours = part.partition("=")
        try:
            found[priority.strip()] = float(hours)
        except ValueError:
            raise DueDateError(f"{part!r} is not priority=hours") from None
    missing = {"urgent", "high", "normal", "low"} - found.keys()
    if missing or any(hours <= 0 for hours in found.values()):
        raise DueDateError(
            f"{spec!r}: every priority needs a positive number of hours (missing: {sorted(missing)})"
        )
    return found


def due_dates(created_at: datetime, priority: str) -> tuple[datetime, datetime]:
    """(response due, resolution due) of a ticket created at `created_at` with `priority`."""
    response = targets(settings.DUE_RESPONSE_HOURS)[priority]
    resolution = targets(settings.DUE_RESOLUTION_HOURS)[priority]
    return add_working_hours(created_at, response), add_working_hours(created_at, resolution)


def add_working_hours(start: datetime, hours: float) -> datetime:
    """`hours` of working time after `start`: plain hours without BUSINESS_HOURS; otherwise only the
    time inside its periods counts (a ticket opened on Friday evening is due on Monday)."""
    if not settings.BUSINESS_HOURS:
        return start + timedelta(hours=hours)
    window = Window.parse(settings.BUSINESS_HOURS)
    if window.always:
        return start + timedelta(hours=hours)
    if not window.periods:
        raise DueDateError("BUSINESS_HOURS 'never' leaves no time to work in")
    zone = ZoneInfo(settings.TIME_ZONE)
    left, at = timedelta(hours=hours), start
    for _week in range(520):  # ten years of weeks: enough for any target, and never forever
        ahead = [(opens, closes) for opens, closes in window.occurrences(at, zone) if closes > at]
        for opens, closes in ahead:
            begin = max(opens, at)
            if closes - begin >= left:
                return begin + left
            left -= closes - begin
            at = closes
        if not ahead:
            at += timedelta(days=7)
    raise DueDateError("BUSINESS_HOURS leave too little time to reach the target")


def overdue_q(now: datetime | None = None) -> Q:
    return Q(status__in=OPEN, due_at__lt=now or timezone.now())


def is_overdue(ticket, now: datetime | None = None) -> bool:
    return bool(ticket.status in OPEN and ticket.due_at and ticket.due_at < (now or timezone.now()))
