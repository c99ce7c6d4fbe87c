from django.core.management.base import BaseCommand, CommandError

from updater.release.smoke import SmokeFailed, run_smoke_checks


class Command(BaseCommand):
    help = "Check that this release works: login page, tickets, create and read a ticket (rolled back), API."

    def handle(self, *args, **options):
        try:
            passed = run_smoke_checks()
        except SmokeFailed as error:
            raise CommandError(f"Smoke check failed: {error}") from error
        for label in passed:
            self.stdout.write(f"  ok  {label}")
        self.stdout.write(self.style.SUCCESS("All smoke checks passed."))
