import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from updater.backup import backups, offsite, schedule
from updater.command_options import UpdaterCommand


class Command(UpdaterCommand, BaseCommand):
    help = (
        "Back up the database and the media files as one set: the dump streamed, compressed and "
        "checksummed, media files stored once by content (unchanged ones are not copied again); "
        "mode 0600, written atomically."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--format",
            choices=["sql", "sqlite3", "mariabackup"],
            help="sql (MySQL/MariaDB; SQLite as text), sqlite3 (a binary SQLite copy, the SQLite default) or "
            "mariabackup (MariaDB's physical hot backup of the whole server, for large databases: run on the "
            "database host; restored with restore_database --prepare-datadir)",
        )
        parser.add_argument("--output", type=Path, help="a directory, or a file name (default: BACKUP_DIR)")
        parser.add_argument("--compression", choices=["gzip", "zstd"], default="gzip")
        parser.add_argument(
            "--rotate", type=int, metavar="N", help="then keep only the newest N verified backups"
        )
        parser.add_argument("--verify", type=Path, metavar="PATH", help="only verify an existing backup")
        parser.add_argument("--database-only", action="store_true", help="leave the media files out")
        parser.add_argument(
            "--scheduled",
            action="store_true",
            help="for the hourly timer or cron: back up only when BACKUP_INTERVAL_HOURS have passed since "
            "the newest set (4 h in prod, 24 h elsewhere), rotate to BACKUP_KEEP sets, and ship off-site",
        )
        parser.add_argument(
            "--no-offsite",
            action="store_true",
            help="do not send this backup to the off-site repository (BACKUP_OFFSITE_REPOSITORY)",
        )

    def handle(self, *args, **options):
        if options["verify"]:
            return self._verify(options["verify"])
        if options["rotate"] is not None and options["rotate"] < 1:
            raise CommandError("--rotate must keep at least 1 backup.")
        if options["scheduled"]:
            when = schedule.due()
            if not when.due:
                if options["verbosity"] >= 2:  # silent under cron: mail only news
                    self.stdout.write(f"Not due: {when.describe()}.")
                return
            if options["rotate"] is None:
                options["rotate"] = settings.BACKUP_KEEP
        progress = self._progress if sys.stdout.isatty() and options["verbosity"] >= 1 else None
        try:
            result = backups.create_backup(
                output=options["output"],
                fmt=options["format"],
                compression_kind=options["compression"],
                rotate=options["rotate"],
                progress=progress,
                include_media=not options["database_only"],
            )
        except backups.BackupBusy as error:
            raise CommandError(str(error), returncode=3) from error
        except backups.BackupError as error:
            raise CommandError(str(error)) from error
        if progress:
            self.stdout.write("")
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        manifest = result.manifest
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written and verified: {result.path} ({filesizeformat(manifest.size)}, "
                f"{manifest.duration_seconds:.1f} s, sha256 {manifest.sha256[:12]}…)"
            )
        )
        if manifest.has_media:
            self.stdout.write(
                f"Media files: {manifest.media_files} ({filesizeformat(manifest.media_bytes)}) in "
                f"{manifest.media_seconds:.1f} s; {len(result.new_media)} new to the store."
            )
        for path in result.rotated:
            self.stdout.write(f"Rotated out: {path.name}")
        if offsite.Repository.configured() and not options["no_offsite"]:
            self._send(result.path)

    def _send(self, path: Path) -> None:
        """A failure to ship is the exit code and an alert (check_system); the local backup stays."""
        try:
            sent = offsite.send(path)
        except offsite.OffsiteError as error:
            raise CommandError(
                f"The backup {path.name} is kept here, but sending it off-site failed: {error}"
            ) from error
        shipped = sent.shipped
        self.stdout.write(
            self.style.SUCCESS(
                f"Sent off-site as snapshot {shipped.snapshot} in {shipped.seconds:.1f} s "
                f"({shipped.files_new} new files, {shipped.files_unmodified} unchanged, "
                f"{filesizeformat(shipped.bytes_added)} added); {sent.checked or 'no'} of the repository "
                f"read back and checked."
            )
        )
        if sent.forgotten:
            self.stdout.write(f"Off-site snapshots past the retention policy: {', '.join(sent.forgotten)}")

    def _verify(self, path: Path) -> None:
        try:
            manifest = backups.verify_backup(path)
        except backups.BackupError as error:
            raise CommandError(f"Verification failed: {error}") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"{path} is complete and intact: {manifest.vendor} database {manifest.database}, "
                f"{manifest.media_files} media files, "
                f"app {manifest.app_version}, taken {manifest.started_at}."
            )
        )

    def _progress(self, raw: int, written: int, seconds: float) -> None:
        rate = raw / seconds if seconds else 0
        self.stdout.write(
            f"\r  dumped {filesizeformat(raw)} → {filesizeformat(written)} at {filesizeformat(rate)}/s   ",
            ending="",
        )
        self.stdout.flush()
