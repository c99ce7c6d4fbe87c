from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.core.management.base import BaseCommand, CommandError
from django.template.loader import render_to_string

from updater import layout
from updater.command_options import OwnVersionOption
from updater.notify import channels
from updater.plan import planning, policy
from updater.release import git_repo

SUBJECT = "Planowana aktualizacja helpdesku / Planned helpdesk update: {when}"


class Command(OwnVersionOption, BaseCommand):
    help = "Email every active user about a planned update (Polish and English), over one SMTP connection."

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="tag", help="the release to announce (default: the newest tag)")
        parser.add_argument(
            "--at", help="start, 'YYYY-MM-DD HH:MM' in UPDATE_TIME_ZONE (default: next window)"
        )
        parser.add_argument("--dry-run", action="store_true", help="list the recipients, send nothing")

    def handle(self, *args, **options):
        zone = policy.zone()
        downtime, window = None, "-"
        if options["at"]:
            try:
                start = datetime.strptime(options["at"], "%Y-%m-%d %H:%M").replace(tzinfo=zone)
            except ValueError:
                raise CommandError("--at must look like '2026-11-29 02:00'.", returncode=2) from None
        else:
            start, window, downtime = self._from_plan(options["tag"])
        recipients = list(
            get_user_model()
            .objects.filter(is_active=True)
            .exclude(email="")
            .order_by("email")
            .values_list("email", "first_name")
        )
        if options["dry_run"]:
            self.stdout.write(
                f"Would email {len(recipients)} active user(s) about {start:%Y-%m-%d %H:%M %Z}:"
            )
            for email, _name in recipients:
                self.stdout.write(f"  {email}")
            return
        context = {
            "start_local": start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "time_zone": str(zone),
            "window": window,
            "downtime_pl": _seconds(downtime, "ok.", "bez przerwy", "nieznana"),
            "downtime_en": _seconds(downtime, "about", "none expected", "unknown"),
        }
        subject = SUBJECT.format(when=context["start_local"])
        messages = [
            EmailMessage(
                subject,
                render_to_string("updater/email/maintenance_notice.txt", {**context, "name": name}),
                settings.DEFAULT_FROM_EMAIL,
                [email],
            )
            for email, name in recipients
        ]
        if not messages:
            self.stdout.write("No active user has an email address; nothing sent.")
            return
        delivery = channels.send_mass_email(messages)
        if not delivery.ok:
            raise CommandError(f"The notices could not be sent: {delivery.detail}")
        self.stdout.write(self.style.SUCCESS(f"Notified {len(messages)} user(s): {delivery.detail}."))

    def _from_plan(self, tag: str | None) -> tuple[datetime, str, float]:
        try:
            root = layout.find_root()
            plan = planning.plan(root, tag)
        except layout.NotADeployment as error:
            raise CommandError(f"{error} Or give the date with --at.", returncode=2) from error
        except git_repo.GitError as error:
            raise CommandError(str(error), returncode=2) from error
        if plan.up_to_date:
            raise CommandError(
                f"{plan.current} is the newest release; there is no update to announce.", returncode=2
            )
        opens = plan.window.next_opens_at or datetime.now(UTC)
        if plan.window.open:
            opens = datetime.now(UTC)
        return (
            opens.astimezone(policy.zone()),
            f"{plan.update_class}: {plan.window.window}",
            plan.estimated_downtime_seconds,
        )


def _seconds(value: float | None, about: str, none: str, unknown: str) -> str:
    if value is None:
        return unknown
    if value <= 0:
        return none
    minutes = max(1, round(value / 60))
    return f"{about} {minutes} min"
