from django.core.management.base import BaseCommand, CommandError

from updater.release.smoke import SmokeFailed, run_smoke_checks


class Command(BaseCommand):
    help = "Check that this release works: login page, tickets, create and read a ticket (rolled back), API."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-pending",
            action="append",
            default=[],
            metavar="APP.MIGRATION",
            help="a migration that may still be unapplied (an update's contract migrations run after it)",
        )

    def handle(self, *args, **options):
        try:
            passed = run_smoke_checks(options["allow_pending"])
        except SmokeFailed as error:
            raise CommandError(f"Smoke check failed: {error}") from error
        for label in passed:
            self.stdout.write(f"  ok  {label}")
        self.stdout.write(self.style.SUCCESS("All smoke checks passed."))
