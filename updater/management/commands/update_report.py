from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from updater import layout
from updater.command_options import CHECKS_WITHOUT_VIEWS
from updater.notify import channels, reports
from updater.run import journal


class Command(BaseCommand):
    requires_system_checks = CHECKS_WITHOUT_VIEWS
    help = (
        "The report of an update or rollback run: versions, changes, step timings, downtime, checks, outcome."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--run", metavar="ID", help="a run id (or its unique beginning), as in shared/updates/"
        )
        which.add_argument("--last", action="store_true", help="the newest run (the default)")
        which.add_argument("--fleet-run", metavar="ID", help="this server's run of a fleet update")
        parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")
        parser.add_argument("--email", action="store_true", help="also send it to NOTIFY_EMAILS")
        parser.add_argument("--list", action="store_true", help="list the runs instead")

    def handle(self, *args, **options):
        try:
            root = layout.find_root()
        except layout.NotADeployment as error:
            raise CommandError(str(error), returncode=2) from error
        runs = journal.all_journals(root.updates)
        if options["list"]:
            for run in runs:
                data = run.data
                self.stdout.write(
                    f"{data['id']}  {data['command']:<8} {data.get('from_version')} -> "
                    f"{data.get('to_version')}  {data['status']}"
                )
            return
        if options["fleet_run"]:
            runs = [run for run in runs if run.fact("fleet_run") == options["fleet_run"]]
            if not runs:
                raise CommandError(f"The fleet run {options['fleet_run']} never began here.", returncode=2)
        run = _pick(runs, options["run"])
        report = reports.build(run)
        self.stdout.write(reports.render(report, options["format"]), ending="")
        if options["email"]:
            if not settings.NOTIFY_EMAILS:
                raise CommandError("NOTIFY_EMAILS is empty: nobody to send the report to.")
            title = reports.subject(report)
            delivery = channels.send_email(title, reports.render(report, "text"), settings.NOTIFY_EMAILS)
            if not delivery.ok:
                raise CommandError(f"The report could not be emailed: {delivery.detail}")
            self.stderr.write(f"Emailed: {delivery.detail}.")


def _pick(runs: list[journal.Journal], wanted: str | None) -> journal.Journal:
    if not runs:
        raise CommandError("No update or rollback has run here yet.", returncode=2)
    if not wanted:
        return runs[-1]
    matches = [run for run in runs if run.data["id"].startswith(wanted)]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise CommandError(f"{found} match {wanted!r}; `update_report --list` shows them.", returncode=2)
    return matches[0]
