from django.core.management.base import BaseCommand

from updater.command_options import UpdaterCommand, outcome_as_exit_code
from updater.plan import policy
from updater.system import apt, system_update


class Command(UpdaterCommand, BaseCommand):
    help = (
        "Upgrade operating-system packages with the application's safety net: lock, journal, window, "
        "/etc and database backups, non-interactive apt keeping conffiles, restarts, verification, report."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--security-only", action="store_true", help="only packages from security origins"
        )
        parser.add_argument("--packages", help="only these packages (comma-separated names)")
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be upgraded, change nothing"
        )
        parser.add_argument("--ignore-window", action="store_true", help="upgrade outside the class's window")
        parser.add_argument("--no-refresh", action="store_true", help="skip `apt-get update`")

    def handle(self, *args, **options):
        names = tuple(n.strip() for n in (options["packages"] or "").split(",") if n.strip())
        chosen = system_update.SystemOptions(
            security_only=options["security_only"],
            packages=names,
            dry_run=options["dry_run"],
            ignore_window=options["ignore_window"],
            refresh=not options["no_refresh"],
        )
        refused = (apt.AptError, policy.PolicyError)
        with outcome_as_exit_code("update_system", refused=refused), self.steps_shown(options["verbosity"]):
            result = system_update.update_system(chosen)
        if result.repaired:
            self.stdout.write(
                f"Repaired an interrupted dpkg run (dpkg --configure -a): {result.repaired[-300:]}"
            )
        self.stdout.write(system_update.describe(result.plan, dry_run=options["dry_run"]))
        if result.run:
            facts = result.run.data["facts"]
            self.stdout.write(self.style.SUCCESS(f"Upgraded {len(result.plan.upgrades)} package(s)."))
            self.stdout.write(f"/etc saved to {facts.get('etc_backup')}; database to {facts.get('backup')}")
            if facts.get("not_restarted"):
                self.stdout.write(
                    f"Not restarted ({facts['restart_note']}): {', '.join(facts['not_restarted'])}"
                )
            if facts.get("reboot_required"):
                self.stdout.write(self.style.WARNING("A reboot is required (not done by update_system)."))
