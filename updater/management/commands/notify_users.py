from django.core.management.base import BaseCommand, CommandError

from updater.command_options import OwnVersionOption, UpdaterCommand, outcome_as_exit_code
from updater.notify import announcements


class Command(UpdaterCommand, OwnVersionOption, BaseCommand):
    help = "Email every active user about a planned update (Polish and English), over one SMTP connection."

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="tag", help="the release to announce (default: the newest tag)")
        parser.add_argument(
            "--at", help="start, 'YYYY-MM-DD HH:MM' in UPDATE_TIME_ZONE (default: next window)"
        )
        parser.add_argument("--dry-run", action="store_true", help="list the recipients, send nothing")

    def handle(self, *args, **options):
        with outcome_as_exit_code("notify_users"):
            if options["at"]:
                announcement = announcements.at(options["at"])
            else:
                announcement = announcements.from_plan(options["tag"])
        recipients = announcements.recipients()
        if options["dry_run"]:
            self.stdout.write(
                f"Would email {len(recipients)} active user(s) about {announcement.start:%Y-%m-%d %H:%M %Z}:"
            )
            for email, _name in recipients:
                self.stdout.write(f"  {email}")
            return
        if not recipients:
            self.stdout.write("No active user has an email address; nothing sent.")
            return
        delivery = announcements.send(announcement, recipients)
        if not delivery.ok:
            raise CommandError(f"The notices could not be sent: {delivery.detail}")
        self.stdout.write(self.style.SUCCESS(f"Notified {len(recipients)} user(s): {delivery.detail}."))
