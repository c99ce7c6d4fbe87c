import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from updater import layout
from updater.command_options import CHECKS_WITHOUT_VIEWS, OwnVersionOption
from updater.errors import UpdateBusy
from updater.plan import planning, policy, promotion, rehearsal
from updater.release import git_repo, releases
from updater.run import locks
from updater.system import apt, system_update


class Command(OwnVersionOption, BaseCommand):
    requires_system_checks = CHECKS_WITHOUT_VIEWS
    help = "What an update to TAG (default: the newest tag) would bring; changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="tag", help="the release tag (default: the newest tag)")
        parser.add_argument("--format", choices=["text", "json"], default="text")
        parser.add_argument(
            "--no-fetch", action="store_true", help="plan from the mirror (or apt lists) as it is"
        )
        parser.add_argument("--system", action="store_true", help="what update_system would do instead")
        parser.add_argument(
            "--rehearse",
            action="store_true",
            help="prepare the release and rehearse its migrations on a scratch copy of the live database "
            "(the live site is untouched); the estimate then comes from that rehearsal",
        )

    def handle(self, *args, **options):
        if options["system"]:
            return self._system(options)
        try:
            root = layout.find_root()
            if not options["no_fetch"]:
                git_repo.fetch(root.repo)
            plan = planning.plan(root, options["tag"])
            if options["rehearse"] and plan.migrations:
                self._rehearse(root, plan)
                plan = planning.plan(root, plan.target)
        except rehearsal.RehearsalFailed as error:
            raise CommandError(str(error), returncode=2) from error
        except (rehearsal.RehearsalError, releases.ReleaseError, UpdateBusy) as error:
            raise CommandError(f"The rehearsal could not be held: {error}") from error
        except layout.NotADeployment as error:
            raise CommandError(str(error), returncode=2) from error
        except git_repo.InvalidVersion as error:
            raise CommandError(str(error), returncode=2) from error
        except (git_repo.GitError, policy.PolicyError) as error:
            raise CommandError(str(error)) from error
        journeys = promotion.journeys(plan.current, plan.target, plan.update_class)
        if options["format"] == "json":
            self.stdout.write(json.dumps(plan.as_dict() | {"environments": journeys}, indent=2))
        else:
            self.stdout.write(render_text(plan) + render_journeys(journeys, plan))

    def _rehearse(self, root: layout.DeploymentRoot, plan: planning.Plan) -> None:
        """Under the update lock (an update may be preparing the same release): nothing live changes."""
        wheelhouse = Path(settings.UPDATER_WHEELHOUSE) if settings.UPDATER_WHEELHOUSE else None
        with locks.exclusive(root.lock_file, f"update_plan --rehearse --version {plan.target}"):
            release = releases.prepare(root, plan.target, wheelhouse=wheelhouse)
            rehearsal.rehearse(root, release, plan.current)

    def _system(self, options) -> None:
        try:
            plan = system_update.plan_system(system_update.SystemOptions(refresh=not options["no_fetch"]))
        except (apt.AptError, policy.PolicyError) as error:
            raise CommandError(f"The system upgrade could not be planned: {error}") from error
        if options["format"] == "json":
            self.stdout.write(
                json.dumps(
                    {
                        "update_class": plan.update_class,
                        "window": {"spec": plan.window.window, "open_now": plan.window.open},
                        "upgrades": [vars(u) | {"security": u.security} for u in plan.upgrades],
                        "held_back": [vars(h) for h in plan.held],
                        "dpkg_interrupted": plan.interrupted,
                    },
                    indent=2,
                )
            )
        else:
            self.stdout.write(system_update.describe(plan))


def render_text(plan: planning.Plan) -> str:
    if plan.up_to_date:
        return f"{plan.current} is the newest release; nothing to update."
    data = plan.as_dict()
    lines = [f"Update plan: {plan.current or '(nothing deployed)'} -> {plan.target}"]
    if len(plan.newer_tags) > 1:
        lines.append(f"Newer releases: {', '.join(plan.newer_tags)}")
    window = data["window"]
    state = "open now" if window["open_now"] else f"closed; next opens {window['next_opens_at'] or 'never'}"
    lines.append(f"Class: {plan.update_class} (window {window['spec']}: {state})")
    if plan.breaking:
        lines.append("BREAKING changes (update needs --allow-breaking):")
        lines += [f"  ! {commit.subject}" for commit in plan.breaking]
    for kind, commits in data["commits"].items():
        if commits:
            lines.append(f"{kind} ({len(commits)}):")
            lines += [f"  {c['sha'][:10]} {c['subject']}" for c in commits[:50]]
            if len(commits) > 50:
                lines.append(f"  … and {len(commits) - 50} more")
    if plan.migrations:
        schedule = plan.schedule
        if schedule.mode == "online":
            when = (
                f"online, the site stays up: {len(schedule.before_switch)} before the switch, "
                f"{len(schedule.after_switch)} after it is verified"
            )
        else:
            when = f"maintenance mode while they run: {schedule.why}"
        lines.append(f"Migrations ({len(plan.migrations)}, {when}):")
        for migration in plan.migrations:
            flag = f"  IRREVERSIBLE: {', '.join(migration.reasons)}" if migration.irreversible else ""
            lines.append(f"  {migration.name}{flag}")
            lines.append(f"    {migration.kind}: {'; '.join(migration.why)}")
    else:
        lines.append("Migrations: none (no maintenance mode; the site stays up)")
    lines.append(
        f"Requirements change: {'yes (a new virtualenv is built)' if plan.requirements_changed else 'no'}"
    )
    lines.append(f"Static files change: {'yes' if plan.static_changed else 'no'}")
    lines.append(
        f"Estimated downtime: {plan.estimated_downtime_seconds:.0f} s ({plan.estimate_source}); "
        f"whole run: about {plan.estimated_duration_seconds / 60:.1f} min"
    )
    return "\n".join(lines)


def render_journeys(journeys: dict, plan: planning.Plan) -> str:
    """Where the current and the target release have run (DEV -> TEST -> STAGING -> PROD)."""
    lines = ["", "Environments:"]
    for version, stays in journeys["releases"].items():
        role = "current" if version == plan.current else "target"
        lines.append(f"  {version} ({role}): " + "; ".join(promotion.describe(stay) for stay in stays))
    if journeys.get("predecessor_error"):
        lines.append(f"  the predecessor could not be asked: {journeys['predecessor_error']}")
    verdict = journeys.get("verdict")
    if verdict:
        lines.append(f"Promotion: {'allowed' if verdict['allowed'] else 'REFUSED'}: {verdict['reason']}")
    return "\n".join(lines)
