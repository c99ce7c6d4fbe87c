import sys

from django.core.management.base import BaseCommand, CommandError

from updater import deployment, pipeline, recovery
from updater import rollback as rollbacks


class Command(BaseCommand):
    help = "Go back to the previous (or a named) release; --recover finishes an interrupted run."

    def add_arguments(self, parser):
        parser.add_argument("--to", metavar="TAG", help="the release to go back to (default: previous)")
        parser.add_argument(
            "--db",
            choices=["migrate", "restore", "keep"],
            default="migrate",
            help="migrate: reverse migrations (default); restore: the pre-update backup; keep: leave it",
        )
        parser.add_argument("--recover", action="store_true", help="complete or undo an interrupted update")
        parser.add_argument("--force", action="store_true", help="go back to a release marked bad")
        parser.add_argument("--no-input", action="store_true", help="do not ask before restoring a backup")

    def handle(self, *args, **options):
        try:
            root = deployment.find_root()
            if options["recover"]:
                return self._recover(root)
            if options["db"] == "restore" and not options["no_input"]:
                self._confirm_restore()
            result = rollbacks.rollback(root, to=options["to"], db=options["db"], force=options["force"])
        except deployment.NotADeployment as error:
            raise CommandError(str(error), returncode=2) from error
        except pipeline.UpdateRefused as error:
            raise CommandError(f"Rollback refused, nothing was changed: {error}", returncode=2) from error
        except pipeline.UpdateBusy as error:
            raise CommandError(f"Rollback refused: {error}", returncode=3) from error
        except pipeline.UpdateFailed as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Rolled back {result.from_version} -> {result.to_version}; database {result.database}."
            )
        )

    def _recover(self, root) -> None:
        recovered = recovery.recover(root)
        if not recovered:
            self.stdout.write("Nothing to recover: every run finished.")
        for item in recovered:
            self.stdout.write(
                self.style.SUCCESS(f"Run {item.run_id}: {item.outcome}; serving {item.version}.")
            )

    def _confirm_restore(self) -> None:
        if not sys.stdin.isatty():
            raise CommandError(
                "--db restore replaces the database: confirm on a terminal or pass --no-input."
            )
        answer = input(
            "Restoring the pre-update backup loses every change made since that update. Type 'yes': "
        )
        if answer.strip().lower() != "yes":
            raise CommandError("Rollback cancelled; nothing was changed.")
