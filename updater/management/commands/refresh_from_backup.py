import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm import anonymization
from updater.backup import backups, offsite, refresh
from updater.command_options import UpdaterCommand, outcome_as_exit_code


class Command(UpdaterCommand, BaseCommand):
    help = (
        "Refresh staging or test from a production backup set, anonymized in the same run: people's names, "
        "e-mail addresses, usernames and free text replaced, attachments made placeholders, passwords, "
        "sessions and tokens dropped. Never in prod."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, nargs="?", help="the production backup set (its dump file)")
        parser.add_argument(
            "--from-offsite",
            metavar="SNAPSHOT",
            help="fetch the set from the off-site repository: an id or latest",
        )
        parser.add_argument(
            "--anonymize", action="store_true", help="replace personal data (required for prod sets)"
        )
        parser.add_argument(
            "--agents",
            choices=[anonymization.KEEP, anonymization.ANONYMIZE],
            default=None,
            help="agents' accounts: keep (they can log in) or anonymize them too (default: REFRESH_AGENTS)",
        )
        parser.add_argument(
            "--allow-non-prod-source", action="store_true", help="accept a set taken outside prod"
        )

    def handle(self, *args, **options):
        if (options["path"] is None) == (options["from_offsite"] is None):
            raise CommandError("Name a backup set, or --from-offsite SNAPSHOT (not both).", returncode=2)
        folder = None
        with outcome_as_exit_code("refresh_from_backup", refused=(backups.BackupError, offsite.OffsiteError)):
            path = options["path"]
            if options["from_offsite"]:
                folder = offsite.fetch_folder(options["from_offsite"])
                path = offsite.fetch(options["from_offsite"], folder)
            try:
                manifest = backups.verify_backup(path, dump_only=True)
                refresh.check_allowed(
                    manifest,
                    anonymize=options["anonymize"],
                    allow_non_prod_source=options["allow_non_prod_source"],
                )
                done = refresh.refresh(
                    path, anonymize=options["anonymize"], agents=options["agents"] or settings.REFRESH_AGENTS
                )
            finally:
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
        source = done.source
        self.stdout.write(
            f"Refreshed {settings.ENVIRONMENT} from {source.file} ({source.environment or 'unknown'}, "
            f"app {source.app_version}, taken {source.started_at}); safety backup: {done.safety_backup}."
        )
        for what, count in done.changed.items():
            self.stdout.write(f"  {what}: {count}")
        if options["anonymize"]:
            self.stdout.write(f"  attachment placeholders written: {done.placeholders}")
