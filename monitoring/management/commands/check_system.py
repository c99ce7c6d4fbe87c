from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from monitoring import state, system_check
from updater.run import locks


class Command(BaseCommand):
    help = (
        "For cron / a systemd timer, every minute: probe services, CPU and error logs, evaluate the "
        "thresholds and send deduplicated alerts by email and Slack. Silent unless it alerts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="evaluate and print, send nothing")

    def handle(self, *args, **options):
        lock = Path(f"{state.path()}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            with locks.hold(lock, command="check_system"):
                outcome = system_check.run_round(send=not options["dry_run"])
        except locks.LockHeld as held:
            who = held.holder.describe() if held.holder else "another process"
            raise CommandError(f"check_system is already running ({who}).", returncode=3) from None
        for alert in outcome.alerts:
            self.stdout.write(f"[{alert.subject_flag}] {alert.text}")
        for delivery in outcome.deliveries:
            if not delivery.ok:
                self.stderr.write(f"Could not alert via {delivery.channel}: {delivery.detail}")
        if options["verbosity"] >= 2 or options["dry_run"]:
            for check in outcome.results:
                self.stdout.write(f"  {check.status:<4} {check.name}: {check.observed} {check.unit}")
