import sys

from django.core.management.base import BaseCommand, CommandError

from updater import layout
from updater.command_options import UpdaterCommand, outcome_as_exit_code
from updater.release import rollback as rollbacks
from updater.run import recovery


class Command(UpdaterCommand, BaseCommand):
    help = "Go back to the previous (or a named) release; --recover finishes an interrupted run."

    def add_arguments(self, parser):
        parser.add_argument("--to", metavar="TAG", help="the release to go back to (default: previous)")
        parser.add_argument(
            "--db",
            choices=["auto", "migrate", "restore", "keep"],
            default="auto",
            help="auto (default): reverse migrations when all are reversible, else restore the pre-update "
            "backup after confirmation; migrate / restore / keep insist on one",
        )
        parser.add_argument(
            "--recover",
            action="store_true",
            help="complete or undo any interrupted run (update, rollback, restore...)",
        )
        parser.add_argument("--force", action="store_true", help="go back to a release marked bad")
        parser.add_argument("--no-input", action="store_true", help="do not ask before restoring a backup")

    def handle(self, *args, **options):
        with outcome_as_exit_code("Rollback"), self.steps_shown(options["verbosity"]):
            if options["recover"]:
                return self._recover()
            root = layout.find_root()
            result = rollbacks.rollback(
                root,
                to=options["to"],
                db=options["db"],
                force=options["force"],
                confirm=self._confirm_restore if not options["no_input"] else self._announce_restore,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Rolled back {result.from_version} -> {result.to_version}; database {result.database}."
            )
        )

    def _recover(self) -> None:
        recovered = recovery.recover()
        if not recovered:
            self.stdout.write("Nothing to recover: every run finished.")
        for item in recovered:
            if item.outcome in ("failed", recovery.LEFT_TO_THE_FLEET):
                self.stderr.write(f"Run {item.run_id} ({item.command}): {item.detail}")
                continue
            serving = f"; serving {item.version}" if item.version else ""
            self.stdout.write(
                self.style.SUCCESS(f"Run {item.run_id} ({item.command}): {item.outcome}{serving}.")
            )

    def _announce_restore(self, plan: rollbacks.RollbackPlan) -> bool:
        self.stdout.write(self._why_restore(plan) + plan.describe_losses())
        return True

    def _confirm_restore(self, plan: rollbacks.RollbackPlan) -> bool:
        if not sys.stdin.isatty():
            raise CommandError(
                f"{self._why_restore(plan)}{plan.describe_losses()} "
                "Confirm on a terminal, or pass --no-input to accept; nothing was changed.",
                returncode=2,
            )
        self.stdout.write(self._why_restore(plan) + plan.describe_losses())
        answer = input("Type 'yes' to restore it: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Rollback cancelled; nothing was changed.", returncode=2)
        return True

    @staticmethod
    def _why_restore(plan: rollbacks.RollbackPlan) -> str:
        if plan.irreversible:
            return f"These migrations cannot be reversed: {', '.join(plan.irreversible)}. "
        return ""
