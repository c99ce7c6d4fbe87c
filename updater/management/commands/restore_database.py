import shutil
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from updater.backup import backups, engines, media, offsite, physical, restore
from updater.command_options import UpdaterCommand, outcome_as_exit_code


class Command(UpdaterCommand, BaseCommand):
    help = (
        "Restore a backup set: verify it, take a safety backup, replace every table and put back the media "
        "files the restored rows refer to (live files that do not belong are moved to a quarantine folder)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, nargs="?", help="the backup file (e.g. backups/latest.sql.gz)")
        parser.add_argument(
            "--from-offsite",
            metavar="SNAPSHOT",
            help="fetch the backup set from the off-site repository first: a snapshot id, or latest",
        )
        parser.add_argument(
            "--list-offsite", action="store_true", help="list the off-site repository's snapshots and stop"
        )
        parser.add_argument("--no-input", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--force", action="store_true", help="restore a backup of another database name")
        parser.add_argument(
            "--prepare-datadir",
            type=Path,
            metavar="DIR",
            help="for a physical backup (mariabackup): unpack and prepare it as a MariaDB data directory in "
            "DIR (new or empty) and print the steps that put it in place; nothing live is changed",
        )
        half = parser.add_mutually_exclusive_group()
        half.add_argument("--database-only", action="store_true", help="leave the media files as they are")
        half.add_argument(
            "--media-only",
            action="store_true",
            help="leave the database as it is; put back the media files its rows refer to",
        )

    def handle(self, *args, **options):
        if options["list_offsite"]:
            return self._list_offsite()
        if (options["path"] is None) == (options["from_offsite"] is None):
            raise CommandError("Name a backup file, or --from-offsite SNAPSHOT (not both).")
        if options["prepare_datadir"] and (options["media_only"] or options["database_only"]):
            raise CommandError(
                "--prepare-datadir prepares the database half alone; drop --media-only/--database-only."
            )
        if options["from_offsite"] is None:
            return self._restore(options["path"], options)
        snapshot = options["from_offsite"]
        try:
            folder = offsite.fetch_folder(snapshot)
            path = offsite.fetch(snapshot, folder)
        except offsite.OffsiteError as error:
            raise CommandError(f"Refusing to restore: {error}. Nothing was changed.") from error
        self.stdout.write(f"Fetched off-site snapshot {snapshot} into {folder}.")
        self._restore(path, options)
        shutil.rmtree(folder)  # restored; the repository keeps the snapshot, the safety backup is local

    def _list_offsite(self) -> None:
        try:
            found = offsite.snapshots()
        except offsite.OffsiteError as error:
            raise CommandError(str(error)) from error
        if not found:
            self.stdout.write("The off-site repository holds no backup sets yet.")
        for snapshot in found:
            when = snapshot.time[:19].replace("T", " ")
            self.stdout.write(
                f"{snapshot.id[:8]}  {when}  {snapshot.host}  {snapshot.database}  {snapshot.backup}"
            )

    def _restore(self, path: Path, options: dict) -> None:
        try:
            manifest = backups.verify_backup(path)
        except backups.BackupError as error:
            raise CommandError(f"Refusing to restore: {error}. Nothing was changed.") from error
        if options["prepare_datadir"] is not None:
            return self._prepare_datadir(path, manifest, options["prepare_datadir"])
        if physical.is_physical(manifest) and not options["media_only"]:
            refusal = backups.PhysicalBackup(path.name)
            raise CommandError(f"Refusing to restore: {refusal}. Nothing was changed.")
        engine = engines.engine_for()
        if options["media_only"] and not manifest.has_media:
            raise CommandError(
                f"{path.name} holds no media files (a database-only backup); nothing to restore."
            )
        media_note = f", {manifest.media_files} media files" if manifest.has_media else ", no media files"
        self.stdout.write(
            f"{path.name}: {manifest.vendor} database {manifest.database!r}{media_note}, "
            f"app {manifest.app_version}, taken {manifest.started_at}."
        )
        if not options["no_input"]:
            if not sys.stdin.isatty():
                raise CommandError("Not a terminal: pass --no-input to restore without confirmation.")
            what = (
                "the media files"
                if options["media_only"]
                else f"every table of {engine.vendor} database {engine.database!r}"
            )
            answer = input(
                f"This replaces {what} with the backup; changes made since it was taken will be lost "
                "(a safety backup is taken first; media files added since are moved aside, not deleted).\n"
                "Type 'yes' to continue: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled; nothing was changed.")
        try:
            with outcome_as_exit_code("Restore"), self.steps_shown(options["verbosity"]):
                result = restore.restore(
                    path,
                    force=options["force"],
                    verified=True,
                    database=not options["media_only"],
                    media_files=not options["database_only"],
                )
        except backups.BackupBusy as error:
            raise CommandError(str(error), returncode=3) from error
        except backups.BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Safety backup of the previous state: {result.safety_backup}")
        rows = sum(result.table_counts.values())
        self.stdout.write(f"Restored {len(result.table_counts)} tables, {rows} rows:")
        for table, count in sorted(result.table_counts.items()):
            self.stdout.write(f"  {table:<40} {count:>10}")
        if result.media_restore is not None:
            self._show_media(result.media_restore)
        if result.integrity_problems:
            raise CommandError("Integrity check found problems: " + "; ".join(result.integrity_problems))
        self.stdout.write(self.style.SUCCESS(f"Restore of {path.name} finished; integrity check passed."))

    def _prepare_datadir(self, path: Path, manifest, target: Path) -> None:
        try:
            prepared = physical.prepare_datadir(path, target, verified=manifest)
        except backups.BackupError as error:
            raise CommandError(f"Refusing to prepare: {error}. Nothing live was changed.") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Prepared {prepared.directory} from {path.name}: MariaDB {manifest.server_version}, every "
                f"database of that server ({filesizeformat(prepared.bytes)}), in {prepared.seconds:.1f} s."
            )
        )
        steps = physical.next_steps(prepared)
        if not manifest.has_media:
            steps = steps[:-1]
        self.stdout.write("Nothing live was changed. To put it in place, on the database host as root:")
        for step in steps:
            self.stdout.write(f"  {step}")

    def _show_media(self, done: media.Restored) -> None:
        self.stdout.write(f"Media files: {done.restored} put back, {done.unchanged} already in place.")
        for name in done.missing:
            self.stderr.write(self.style.WARNING(f"  a row refers to it, the backup set lacks it: {name}"))
        if done.quarantined:
            self.stdout.write(
                f"Moved aside (not deleted) to {done.quarantine}: {len(done.quarantined)} files"
            )
            for name in done.quarantined:
                self.stdout.write(f"  {name}")
