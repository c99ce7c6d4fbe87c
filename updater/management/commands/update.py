import json

from django.core.management.base import BaseCommand

from updater import layout
from updater.command_options import OwnVersionOption, UpdaterCommand, outcome_as_exit_code
from updater.release import fleet
from updater.release import update as updates


class Command(UpdaterCommand, OwnVersionOption, BaseCommand):
    help = "Update the helpdesk to a tagged release: backup, migrate, atomic switch, verify; undo on failure."

    def add_arguments(self, parser):
        parser.add_argument(
            "--version", dest="tag", help="the release tag, e.g. v1.4.0 (required except for --stage undo)"
        )
        parser.add_argument("--dry-run", action="store_true", help="prepare the release, change nothing live")
        parser.add_argument(
            "--skip-backup", action="store_true", help="no backup when there are no migrations"
        )
        parser.add_argument("--allow-breaking", action="store_true", help="accept BREAKING changes")
        parser.add_argument(
            "--ignore-window", action="store_true", help="update outside the update class's window"
        )
        parser.add_argument("--no-input", action="store_true", help="never ask (for cron and scripts)")
        parser.add_argument(
            "--skip-promotion",
            action="store_true",
            help="take the tag without the predecessor environment's word (needs --reason)",
        )
        parser.add_argument("--reason", help="why, for --skip-promotion: journaled and reported")
        fleets = parser.add_argument_group("one server's part in a fleet update (deploy/ansible/update.yml)")
        fleets.add_argument("--fleet-run", metavar="ID", help="the fleet run this stage belongs to")
        fleets.add_argument(
            "--stage", choices=[*fleet.STAGES, fleet.UNDO], help="the stage to run on this server"
        )
        fleets.add_argument(
            "--primary", action="store_true", help="this server holds the database's steps (begin)"
        )
        fleets.add_argument(
            "--expect-current", metavar="TAG", help="refuse to begin unless this server runs TAG"
        )

    def handle(self, *args, **options):
        if bool(options["stage"]) != bool(options["fleet_run"]):
            self.stderr.write("--stage and --fleet-run go together.")
            raise SystemExit(2)
        if not options["tag"] and options["stage"] != fleet.UNDO:
            self.stderr.write("--version TAG is required (only --stage undo goes without).")
            raise SystemExit(2)
        reason = _skip_reason(options, self.stderr)
        with outcome_as_exit_code("Update"), self.steps_shown(options["verbosity"]):
            root = layout.find_root()
            chosen = updates.Options(
                skip_backup=options["skip_backup"],
                dry_run=options["dry_run"],
                allow_breaking=options["allow_breaking"],
                ignore_window=options["ignore_window"],
                skip_promotion=reason,
            )
            if options["stage"]:
                staged = fleet.run_stage(
                    root,
                    options["tag"],
                    options["fleet_run"],
                    options["stage"],
                    primary=options["primary"],
                    expect_current=options["expect_current"],
                    options=chosen,
                )
                self.stdout.write(json.dumps(staged.as_dict()))
                return
            result = updates.update(root, options["tag"], chosen)
        plan = result.plan
        migrations = ", ".join(plan.pending_migrations) or "none"
        if options["dry_run"]:
            self.stdout.write(
                f"Dry run: {plan.from_version} -> {plan.to_version} prepared; migrations: {migrations}."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Updated {plan.from_version} -> {plan.to_version} (migrations: {migrations})."
            )
        )
        schedule = result.journal.fact("migration_schedule") or {}
        if schedule.get("mode") == "online":
            self.stdout.write("Migrated online: the site stayed up (no maintenance mode).")
        self.stdout.write(f"Journal: {result.journal.path}")


def _skip_reason(options: dict, stderr) -> str | None:
    """--skip-promotion needs a reason a reader of the report can judge: one line of text."""
    reason = (options["reason"] or "").strip()
    if not options["skip_promotion"]:
        if reason:
            stderr.write("--reason goes with --skip-promotion.")
            raise SystemExit(2)
        return None
    if not reason or len(reason) > 500 or any(ord(char) < 32 for char in reason):
        stderr.write("--skip-promotion needs --reason TEXT: one line (at most 500 characters) saying why.")
        raise SystemExit(2)
    return reason
