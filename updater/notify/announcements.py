"""Announcing a planned update to every active user by email (Polish and English), over one SMTP
connection: when it starts (a given time, or the next opening of the release's update window), the
window, and the expected downtime from the plan."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from updater import layout
from updater.errors import UpdateRefused
from updater.notify import channels
from updater.plan import planning, policy
from updater.release import git_repo

SUBJECT = "Planowana aktualizacja helpdesku / Planned helpdesk update: {when}"
TIME_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class Announcement:
    start: datetime  # in the windows' time zone
    window: str = "-"
    downtime_seconds: float | None = None

    @property
    def subject(self) -> str:
        return SUBJECT.format(when=self.start.strftime(TIME_FORMAT))


def at(text: str) -> Announcement:
    """An announcement for a time given as 'YYYY-MM-DD HH:MM' in UPDATE_TIME_ZONE."""
    try:
        start = datetime.strptime(text, TIME_FORMAT).replace(tzinfo=policy.zone())
    except ValueError:
        raise UpdateRefused("--at must look like '2026-11-29 02:00'") from None
    return Announcement(start)


def from_plan(tag: str | None) -> Announcement:
    """The next opening of the release's update window (now if open) and the plan's downtime."""
    try:
        plan = planning.plan(layout.find_root(), tag)
    except layout.NotADeployment as error:
        raise UpdateRefused(f"{error} Or give the date with --at.") from error
    except git_repo.GitError as error:
        raise UpdateRefused(str(error)) from error
    if plan.up_to_date:
        raise UpdateRefused(f"{plan.current} is the newest release; there is no update to announce")
    opens = datetime.now(UTC) if plan.window.open else plan.window.next_opens_at or datetime.now(UTC)
    return Announcement(
        opens.astimezone(policy.zone()),
        f"{plan.update_class}: {plan.window.window}",
        plan.estimated_downtime_seconds,
    )


def recipients() -> list[tuple[str, str]]:
    """(email, first name) of every active user with an address, by address."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="").order_by("email")
    return list(users.values_list("email", "first_name"))


def send(announcement: Announcement, to: list[tuple[str, str]]) -> channels.Delivery:
    """One message per recipient (their name in it), all over one SMTP connection."""
    context = {
        "start_local": announcement.start.strftime(TIME_FORMAT),
        "time_zone": str(policy.zone()),
        "window": announcement.window,
        "downtime_pl": _minutes(announcement.downtime_seconds, "ok.", "bez przerwy", "nieznana"),
        "downtime_en": _minutes(announcement.downtime_seconds, "about", "none expected", "unknown"),
    }
    messages = [
        EmailMessage(
            announcement.subject,
            render_to_string("updater/email/maintenance_notice.txt", {**context, "name": name}),
            settings.DEFAULT_FROM_EMAIL,
            [email],
        )
        for email, name in to
    ]
    return channels.send_mass_email(messages)


def _minutes(value: float | None, about: str, none: str, unknown: str) -> str:
    if value is None:
        return unknown
    if value <= 0:
        return none
    return f"{about} {max(1, round(value / 60))} min"
