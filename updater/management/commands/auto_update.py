import socket

from django.core.management.base import BaseCommand, CommandError

from updater import layout
from updater.command_options import UpdaterCommand, outcome_as_exit_code
from updater.notify import outcome
from updater.plan import auto, policy
from updater.release import git_repo
from updater.release import update as updates


class Command(UpdaterCommand, BaseCommand):
    help = (
        "For cron / systemd timers: apply the newest release that policy allows now. Silent when there is "
        "nothing to do; BREAKING releases are held and failed ones are not retried until cleared."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="say what would happen, change nothing")
        parser.add_argument("--clear", metavar="TAG", help="allow a release that failed to be tried again")
        parser.add_argument("--no-fetch", action="store_true", help="decide from the mirror as it is")

    def handle(self, *args, **options):
        try:
            root = layout.find_root()
            if options["clear"]:
                return self._clear(root, options["clear"])
            if not options["no_fetch"]:
                git_repo.fetch(root.repo)
            decision = auto.decide(root)
        except layout.NotADeployment as error:
            raise CommandError(str(error), returncode=2) from error
        except (git_repo.GitError, policy.PolicyError) as error:
            raise CommandError(f"auto_update could not decide: {error}") from error

        if options["dry_run"]:
            self.stdout.write(
                f"Would {decision.action}: {decision.tag or '-'} ({decision.reason or 'up to date'})"
            )
            for tag, why in decision.held:
                self.stdout.write(f"Held {tag}: {why}")
            return
        self._report_news(root, decision)
        if decision.action == auto.REFUSED:
            raise CommandError(f"auto_update refused: {decision.reason}", returncode=2)
        if decision.action != auto.UPDATE:
            if options["verbosity"] >= 2:
                self.stdout.write(f"Nothing applied ({decision.action}): {decision.reason or 'up to date'}")
            return
        with outcome_as_exit_code("auto_update"), self.steps_shown(options["verbosity"]):
            result = updates.update(root, decision.tag, updates.Options(actor="auto_update"))
        plan = result.plan
        self.stdout.write(
            self.style.SUCCESS(
                f"auto_update: updated {plan.from_version} -> {plan.to_version} ({decision.reason})."
            )
        )

    def _report_news(self, root, decision: auto.Decision) -> None:
        fresh = auto.newly_reported(root, decision)
        for tag, why in decision.held:
            if f"held {tag}" in fresh:
                self.stdout.write(self.style.WARNING(f"Held {tag} for a human: {why}"))
                for delivery in outcome.held(tag, why, socket.gethostname()):
                    if not delivery.ok:
                        self.stderr.write(f"Could not tell people via {delivery.channel}: {delivery.detail}")
        if f"backoff {decision.tag}" in fresh:
            self.stdout.write(self.style.WARNING(f"Not retrying: {decision.reason}"))

    def _clear(self, root, tag: str) -> None:
        try:
            cleared = auto.clear(root, tag)
        except git_repo.InvalidVersion as error:
            raise CommandError(str(error), returncode=2) from error
        if cleared:
            self.stdout.write(f"{tag} may be tried again by the next auto_update.")
        else:
            self.stdout.write(f"{tag} was not marked as failed; nothing to clear.")
