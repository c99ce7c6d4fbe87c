from django.core.management.base import BaseCommand, CommandError

from updater.backup import backups, safe_migrate
from updater.command_options import UpdaterCommand


class Command(UpdaterCommand, BaseCommand):
    help = "Migrate safely: backup, integrity check, migrate, integrity check; restore the backup on failure."

    def add_arguments(self, parser):
        parser.add_argument("--plan", action="store_true", help="only list the migrations that would run")

    def handle(self, *args, **options):
        pending = safe_migrate.pending_migrations()
        if options["plan"] or not pending:
            self.stdout.write("Pending migrations: " + (", ".join(pending) if pending else "none"))
            return
        try:
            with self.steps_shown(options["verbosity"]):
                result = safe_migrate.safe_migrate()
        except (safe_migrate.SafeMigrateFailed, backups.BackupError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Backup: {result.backup}")
        self.stdout.write(self.style.SUCCESS(f"Applied {len(result.applied)}: {', '.join(result.applied)}"))
