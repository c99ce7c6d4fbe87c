"""Update classes and maintenance windows, from the handbook's risk matrix ("Okna Czasowe").

  critical  — any `security:` commit or a `[critical]` marker: any time
  important — `feat:` or `fix:` commits: weekends 22:00-06:00
  routine   — everything else: Sundays 02:00-06:00

A window is written as `always`, `never`, or one or more `DAYS HH:MM-HH:MM` joined by `;`, where DAYS
are the days a window *starts* (`Sat,Sun`, `Mon-Fri`, `*`); an end at or before the start means the
next morning. Times are wall-clock times in UPDATE_TIME_ZONE. All arithmetic is done on UTC
instants, so a window across a DST change is as long as the clocks say: `Sun 02:00-06:00` on the
spring-forward night opens at 03:00 local (02:00 does not exist) and lasts three hours.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from updater.plan.changelog import Commit

CRITICAL, IMPORTANT, ROUTINE = "critical", "important", "routine"
CLASSES = (CRITICAL, IMPORTANT, ROUTINE)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PERIOD = re.compile(r"^(?P<days>[A-Za-z*,\-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")


class PolicyError(ValueError):
    """A window or class setting that cannot be understood."""


def classify(commits: list[Commit]) -> str:
    if any(commit.type == "security" or commit.critical for commit in commits):
        return CRITICAL
    if any(commit.type in ("feat", "fix") for commit in commits):
        return IMPORTANT
    return ROUTINE


@dataclass(frozen=True)
class Period:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class Window:
    spec: str
    periods: tuple[Period, ...]
    always: bool = False

    @classmethod
    def parse(cls, spec: str) -> "Window":
        text = spec.strip()
        if text.lower() in ("always", "24/7", "*"):
            return cls(text, (), always=True)
        if text.lower() == "never":
            return cls(text, ())
        periods = []
        for part in filter(None, (p.strip() for p in text.split(";"))):
            match = _PERIOD.match(part)
            if not match:
                raise PolicyError(
                    f"{part!r} is not a window (like 'Sat,Sun 22:00-06:00', 'always' or 'never')"
                )
            periods.append(Period(_days(match["days"]), _clock(match["start"]), _clock(match["end"])))
        if not periods:
            raise PolicyError("an empty window: write 'never' to forbid unattended updates of a class")
        return cls(text, tuple(periods))

    def occurrences(self, around: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
        """UTC (start, end) of every window that starts from two days before to eight days after."""
        local_day = around.astimezone(zone).date()
        found = []
        for offset in range(-2, 9):
            day = local_day + timedelta(days=offset)
            for period in self.periods:
                if day.weekday() in period.days:
                    found.append(_span(day, period, zone))
        return sorted(found)

    def open_span(self, at: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The window open at `at`, if any, as UTC instants (the latest-ending one if they overlap)."""
        spans = [span for span in self.occurrences(at, zone) if span[0] <= at < span[1]]
        return max(spans, key=lambda span: span[1]) if spans else None

    def next_opening(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        if self.always:
            return at
        upcoming = [start for start, _end in self.occurrences(at, zone) if start > at]
        return min(upcoming) if upcoming else None


@dataclass(frozen=True)
class WindowState:
    update_class: str
    window: str
    open: bool
    closes_at: datetime | None  # None: never closes (always)
    next_opens_at: datetime | None  # None: never opens

    def seconds_left(self, at: datetime) -> float | None:
        if not self.open:
            return 0.0
        return None if self.closes_at is None else (self.closes_at - at).total_seconds()


def window_for(update_class: str) -> Window:
    specs = {
        CRITICAL: settings.UPDATE_WINDOW_CRITICAL,
        IMPORTANT: settings.UPDATE_WINDOW_IMPORTANT,
        ROUTINE: settings.UPDATE_WINDOW_ROUTINE,
    }
    return Window.parse(specs[update_class])


def zone() -> ZoneInfo:
    return ZoneInfo(settings.UPDATE_TIME_ZONE)


def window_state(update_class: str, at: datetime | None = None) -> WindowState:
    at = (at or datetime.now(UTC)).astimezone(UTC)
    window, tz = window_for(update_class), zone()
    if window.always:
        return WindowState(update_class, window.spec, True, None, at)
    span = window.open_span(at, tz)
    return WindowState(
        update_class,
        window.spec,
        span is not None,
        span[1] if span else None,
        window.next_opening(at, tz),
    )


def _days(text: str) -> frozenset[int]:
    if text == "*":
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.lower().split(","):
        first, _, last = item.partition("-")
        try:
            start = DAY_NAMES.index(first[:3])
            end = DAY_NAMES.index(last[:3]) if last else start
        except ValueError:
            raise PolicyError(f"{item!r} is not a day or a range of days (Mon..Sun)") from None
        span = (end - start) % 7
        days.update((start + step) % 7 for step in range(span + 1))
    return frozenset(days)


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise PolicyError(f"{text!r} is not a time of day")
    return time(0, 0) if hours == 24 else time(hours, minutes)


def _span(day: date, period: Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    end_day = day if period.end > period.start else day + timedelta(days=1)
    start = datetime.combine(day, period.start, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(end_day, period.end, tzinfo=tz).astimezone(UTC)
    return start, end


def next_opening(window: WindowState) -> str:
    """When a closed window opens next, in the windows' own time zone (or "never")."""
    if window.next_opens_at is None:
        return "never"
    return window.next_opens_at.astimezone(zone()).strftime("%a %Y-%m-%d %H:%M %Z")


def window_closed(window: WindowState) -> str:
    """The one wording of a closed window, for update, update_system and auto_update alike."""
    return (
        f"is classed {window.update_class}; its window ({window.window}) is closed "
        f"and next opens {next_opening(window)}"
    )
