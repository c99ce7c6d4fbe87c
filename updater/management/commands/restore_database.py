import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from updater.backup import backups, engines, restore
from updater.command_options import UpdaterCommand, outcome_as_exit_code


class Command(UpdaterCommand, BaseCommand):
    help = "Restore the database from a backup: verify it, take a safety backup, replace every table."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the backup file (e.g. backups/latest.sql.gz)")
        parser.add_argument("--no-input", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--force", action="store_true", help="restore a backup of another database name")

    def handle(self, *args, **options):
        path: Path = options["path"]
        try:
            manifest = backups.verify_backup(path)
        except backups.BackupError as error:
            raise CommandError(f"Refusing to restore: {error}. The database was not touched.") from error
        engine = engines.engine_for()
        self.stdout.write(
            f"{path.name}: {manifest.vendor} database {manifest.database!r}, app {manifest.app_version}, "
            f"taken {manifest.started_at}."
        )
        if not options["no_input"]:
            if not sys.stdin.isatty():
                raise CommandError("Not a terminal: pass --no-input to restore without confirmation.")
            answer = input(
                f"This replaces every table of {engine.vendor} database {engine.database!r} with the backup; "
                "changes made since it was taken will be lost (a safety backup is taken first).\n"
                "Type 'yes' to continue: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled; nothing was changed.")
        try:
            with outcome_as_exit_code("Restore"), self.steps_shown(options["verbosity"]):
                result = restore.restore(path, force=options["force"], verified=True)
        except backups.BackupBusy as error:
            raise CommandError(str(error), returncode=3) from error
        except backups.BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Safety backup of the previous state: {result.safety_backup}")
        rows = sum(result.table_counts.values())
        self.stdout.write(f"Restored {len(result.table_counts)} tables, {rows} rows:")
        for table, count in sorted(result.table_counts.items()):
            self.stdout.write(f"  {table:<40} {count:>10}")
        if result.integrity_problems:
            raise CommandError("Integrity check found problems: " + "; ".join(result.integrity_problems))
        self.stdout.write(self.style.SUCCESS(f"Restore of {path.name} finished; integrity check passed."))
