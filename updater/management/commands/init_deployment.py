from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from updater.command_options import OwnVersionOption
from updater.release import git_repo, initialization, releases


class Command(OwnVersionOption, BaseCommand):
    help = "Create a deployment root (bare mirror, shared/, first release with its venv, `current`)."

    def add_arguments(self, parser):
        parser.add_argument("--root", type=Path, required=True, help="e.g. /srv/helpdesk")
        parser.add_argument("--repo", required=True, help="URL or path of the source repository")
        parser.add_argument(
            "--version", dest="tag", required=True, help="the tag to deploy first, e.g. v1.3.0"
        )
        parser.add_argument(
            "--env-file", type=Path, help="copy this file to shared/.env (when it does not exist)"
        )
        parser.add_argument("--database-url", help="DATABASE_URL for a generated shared/.env")
        parser.add_argument("--wheelhouse", type=Path, help="install the venv offline from this wheel folder")

    def handle(self, *args, **options):
        wheelhouse = options["wheelhouse"] or (
            Path(settings.UPDATER_WHEELHOUSE) if settings.UPDATER_WHEELHOUSE else None
        )
        try:
            result = initialization.initialize(
                options["root"],
                options["repo"],
                options["tag"],
                env_source=options["env_file"],
                database_url=options["database_url"],
                wheelhouse=wheelhouse,
            )
        except git_repo.InvalidVersion as error:
            raise CommandError(str(error), returncode=2) from error
        except (git_repo.GitError, releases.ReleaseError, OSError) as error:
            raise CommandError(f"init_deployment failed: {error}") from error
        root = result.root
        if result.created_env:
            self.stdout.write(
                f"Wrote {root.env_file} (mode 0600): review ALLOWED_HOSTS, HTTPS and DATABASE_URL."
            )
        venv_note = "reused" if result.release.venv.reused else "built"
        self.stdout.write(f"Release {result.release.tag} at {result.release.path} (venv {venv_note}).")
        if result.switched:
            self.stdout.write(self.style.SUCCESS(f"{root.current_link} -> {result.release.path}"))
        else:
            self.stdout.write(f"`current` already points to {root.current_release()}; left as it is.")
