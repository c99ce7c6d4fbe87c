"""`update --version TAG`: preflight (nothing changes), then the steps below, each with its own undo.

    prepare      worktree, venv, checks, collectstatic, migrate --plan   (the live site is untouched)
                 and when the migrations run (updater/plan/migration_kinds.py schedule)
    rehearse     the migrations, on a scratch copy of the live database  undo: drop the copy
                 (a migration failing there refuses the update: exit 2, the release marked bad)
    maintenance  only when a migration is blocking                       undo: maintenance off
    backup       verified and pinned                                     undo: unpin
    migrate      all of them, under maintenance, by the new release      undo: restore the backup
    migrate online  or: the online ones, with the site up               undo: migrate them back
    switch       current <- new, reload                                  undo: switch back, reload
    verify       health URL + smoke checks: the point of no return
    maintenance off
    contract     the contract migrations, once no old code is left (a failure here is completed by
                 `rollback --recover`, like any step past the point of no return)
    finish       unpin the backup, retention

Migrating online never restores the backup on failure: the site took writes meanwhile, and
migrating back (every online migration can be reversed) keeps them.

A failure before verify undoes the started steps in reverse and marks the release bad; a run killed
anywhere is completed or undone by `rollback --recover` from the same steps (updater/run/recovery.py).
"""

import dataclasses
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.recorder import MigrationRecorder

from updater.backup import steps as backup_steps
from updater.errors import UpdateFailed, UpdateRefused
from updater.layout import DeploymentRoot
from updater.notify import outcome
from updater.plan import migration_kinds, migrations, planning, policy, promotion, rehearsal, schema
from updater.release import git_repo, marks, releases, reload
from updater.release.switching import switch_step, verify_step
from updater.run import executor, faults, journal, locks, maintenance
from updater.run.journal import Journal
from updater.run.steps import Procedure, Step

COMMAND = "update"


@dataclass(frozen=True)
class UpdatePlan:
    from_version: str | None
    to_version: str
    pending_migrations: list[str]


@dataclass(frozen=True)
class UpdateResult:
    journal: journal.Journal
    plan: UpdatePlan


@dataclass(frozen=True)
class Options:
    skip_backup: bool = False
    dry_run: bool = False
    allow_breaking: bool = False
    ignore_window: bool = False
    actor: str | None = None  # who asked: a login, or "auto_update"
    skip_promotion: str | None = None  # why the predecessor's word is not needed (journaled, reported)


def update(root: DeploymentRoot, tag: str, options: Options | None = None) -> UpdateResult:
    options = options or Options()
    git_repo.validate_tag_name(tag)
    with locks.exclusive(root.lock_file, f"update --version {tag}"):
        return _update_locked(root, tag, options)


def _update_locked(root: DeploymentRoot, tag: str, options: Options) -> UpdateResult:
    journal.refuse_if_unfinished(root.updates)
    old_version = root.current_version()
    release_plan = preflight(root, tag, old_version, options)
    run = start_run(root, tag, old_version, release_plan, options)
    procedure = steps(root, run)
    succeeded = None
    if options.dry_run:  # prepare only; nothing live changed, so nobody is told
        procedure = Procedure(COMMAND, procedure.steps[:1], procedure.after_undo)
        succeeded = _dry_run_done
    else:
        outcome.begin(run)

    def failure(undone: executor.Undone) -> str:
        if not undone.touched_live:
            return f"preparing {tag} failed; the live site was not touched: {undone.cause}"
        return f"the update to {tag} failed and was rolled back to {old_version}: {undone.cause}"

    try:
        executor.execute(run, procedure, failure, succeeded)
    except UpdateFailed as error:
        if isinstance(error.__cause__, rehearsal.RehearsalFailed | rehearsal.RehearsalError):
            raise UpdateRefused(str(error)) from error  # found out before anything live changed
        raise
    return UpdateResult(run, UpdatePlan(old_version, tag, run.fact("pending_migrations", [])))


def _dry_run_done(run: Journal) -> None:
    run.finish(journal.SUCCEEDED, "dry run: prepared, nothing switched")


def start_run(
    root: DeploymentRoot, tag: str, old_version: str | None, release_plan: planning.Plan, options: Options
) -> Journal:
    """The run's journal, with the facts its steps are built from (updater/release/fleet.py adds its own)."""
    run = journal.Journal.start(root.updates, COMMAND, old_version, tag, actor=options.actor)
    run.record(
        update_class=release_plan.update_class,
        changelog=[_commit_summary(commit) for commit in release_plan.commits],
        dry_run=options.dry_run,
        target=root.release(tag),
        with_backup=not options.skip_backup,
    )
    if release_plan.promotion is not None:
        run.record(promotion=release_plan.promotion)
    if options.skip_promotion is not None:
        run.record(promotion_skipped=options.skip_promotion)
    return run


def preflight(
    root: DeploymentRoot, tag: str, old_version: str | None, options: Options, *, rehearses: bool = True
) -> planning.Plan:
    """Every refusal happens here, before the journal starts: a refused update changed nothing.
    rehearses=False: another server rehearses (a fleet's primary), so the scratch copy is not probed
    here; servers probing one scratch name at once would collide ("database exists")."""
    try:
        git_repo.fetch(root.repo)
        git_repo.tag_commit(root.repo, tag)
        if getattr(settings, "UPDATER_REQUIRE_SIGNED_TAGS", False):
            git_repo.verify_tag(
                root.repo,
                tag,
                allowed_signers=settings.UPDATER_ALLOWED_SIGNERS,
                gnupghome=settings.UPDATER_GNUPGHOME,
            )
    except git_repo.InvalidVersion as error:
        raise UpdateRefused(str(error)) from error
    except git_repo.GitError as error:
        raise UpdateRefused(f"the repository could not be fetched: {error}") from error
    if tag == old_version:
        raise UpdateRefused(f"{tag} is already the current release; nothing to do")
    reason = marks.bad_reason(root.release(tag))
    if reason is not None:
        raise UpdateRefused(f"{tag} was marked bad by an earlier failed update: {reason}")
    _check_disk(root)
    try:
        connection.ensure_connection()
    except DatabaseError as error:
        raise UpdateRefused(f"the database is unreachable: {error}") from error
    try:
        release_plan = planning.plan(root, tag)
    except (git_repo.GitError, policy.PolicyError) as error:
        raise UpdateRefused(f"the update could not be planned: {error}") from error
    _check_policy(release_plan, options)
    release_plan = _check_promotion(release_plan, options)
    if release_plan.migrations and settings.UPDATER_REHEARSE and rehearses:
        try:
            rehearsal.check_possible()
        except rehearsal.RehearsalError as error:
            raise UpdateRefused(str(error)) from error
    return release_plan


def steps(root: DeploymentRoot, run: Journal) -> Procedure:
    """The update's steps, built from the journal alone (recovery rebuilds them the same way)."""
    tag = Path(run.fact("target")).name
    # In a fleet (updater/release/fleet.py) every server prepares, switches and verifies; only the
    # primary holds the database's steps (rehearse, maintenance, backup, migrations), once.
    in_fleet = run.fact("fleet_run") is not None
    database_here = not in_fleet or bool(run.fact("fleet_primary"))

    def migrating(run: Journal) -> bool:
        return database_here and bool(run.fact("pending_migrations"))

    def with_backup(run: Journal) -> bool:
        return database_here and (run.fact("with_backup", True) or migrating(run))

    def prepare(run: Journal) -> None:
        wheelhouse = Path(settings.UPDATER_WHEELHOUSE) if settings.UPDATER_WHEELHOUSE else None
        release = releases.prepare(root, tag, wheelhouse=wheelhouse)
        built, commit = _built_files_marker(release), git_repo.tag_commit(root.repo, tag)
        building = (
            ()
            if built and built.is_file() and built.read_text() == commit
            else (
                ("compilemessages", "--ignore=.venv", "-v", "0"),
                ("collectstatic", "--noinput", "-v", "0"),
            )
        )
        *_, plan_output = releases.manage_together(
            root,
            release,
            ("check", "--deploy", "--fail-level", "ERROR"),
            *building,
            ("migrate", "--plan"),
        )
        if built:
            built.write_text(commit)
        run.record(static_and_translations_built=bool(building))
        pending = migrations.from_plan_output(plan_output)
        kinds = migration_kinds.of_release(release.path, pending)
        planned = migration_kinds.schedule(pending, kinds, settings.UPDATER_ONLINE_MIGRATIONS)
        run.record(
            pending_migrations=pending,
            migration_kinds=kinds,
            migration_schedule=asdict(planned),
            venv=str(release.venv.path),
            venv_reused=release.venv.reused,
        )

    def rehearsing(run: Journal) -> bool:
        return migrating(run) and settings.UPDATER_REHEARSE

    def rehearse(run: Journal) -> None:
        result = rehearsal.rehearse(root, _release(root, tag), run.data.get("from_version"))
        run.record(rehearsal={"source": result.source(), "migrations": result.migrations})

    def blocking(run: Journal) -> bool:
        return migrating(run) and _schedule(run).mode == "maintenance"

    def online(run: Journal) -> bool:
        return migrating(run) and _schedule(run).mode == "online" and bool(_schedule(run).before_switch)

    def contracting(run: Journal) -> bool:
        return migrating(run) and _schedule(run).mode == "online" and bool(_schedule(run).after_switch)

    def timed(run: Journal, output: str) -> None:
        """Each migration's time on the live database, beside the rehearsal's (update_report)."""
        run.record(
            migrated_seconds=(run.fact("migrated_seconds") or {}) | rehearsal.migration_timings(output)
        )

    def migrate(run: Journal) -> None:
        running = releases.start(root, _release(root, tag), "migrate", "--noinput", "-v", "2")
        faults.point("migrate:during")
        timed(run, running.result())

    def migrate_online(run: Journal) -> None:
        planned = _schedule(run).before_switch
        if run.fact("migrated_from") is None:  # journaled before anything runs: its undo needs it
            run.record(migrated_from=_applied_before(planned), schema_before=schema.snapshot())
        for app, target in _targets(planned):
            running = releases.start(
                root, _release(root, tag), "migrate", app, target, "--noinput", "-v", "2"
            )
            faults.point("migrate online:during")
            timed(run, running.result())

    def migrate_back(run: Journal) -> None:
        """Reverse the online migrations that were applied, newest app first; rows written meanwhile
        stay (the backup is not restored: the site took writes while it ran)."""
        if run.fact("switched_from"):  # the new code served: its workers must be gone first
            reload.wait_until_only(Path(run.fact("switched_from")))
        for app, target in reversed(list((run.fact("migrated_from") or {}).items())):
            releases.manage(root, _release(root, tag), "migrate", app, target, "--noinput")
        if run.fact("schema_before") is not None:  # what a migration that failed half-way left
            left = schema.added_since(run.fact("schema_before"), schema.snapshot())
            schema.drop(left)
            run.record(dropped_leftovers=schema.describe(left))
        run.record(migrated_back=True)

    def contract(run: Journal) -> None:
        reload.wait_until_only(root.release(tag))  # the previous release still reads what goes
        running = releases.start(root, _release(root, tag), "migrate", "--noinput", "-v", "2")
        faults.point("contract:during")
        timed(run, running.result())

    def finish(run: Journal) -> None:
        backup_steps.unpin("backup")(run)  # the update no longer depends on it; rotation may take it
        removed = releases.remove_old(root, settings.UPDATER_KEEP_RELEASES)
        if removed:
            run.record(removed_releases=removed)

    return Procedure(
        COMMAND,
        (
            Step("prepare", prepare, lambda run: None, touches_live=False),
            Step(
                "rehearse",
                rehearse,
                lambda run: rehearsal.drop_scratch(),
                when=rehearsing,
                touches_live=False,
            ),
            maintenance.step(lambda run: f"update to {tag}", when=blocking),
            backup_steps.pinned_backup(
                "backup", "backup", lambda run: f"before update to {tag}", root.backups, when=with_backup
            ),
            Step("migrate", migrate, backup_steps.restore("backup"), when=blocking),
            Step("migrate online", migrate_online, migrate_back, when=online),
            switch_step(root),
            verify_step(root, completes=not in_fleet),
            # A fleet's point of no return: every server verified (its finish stage begins here).
            Step("fleet verified", _nothing, _nothing, when=lambda run: in_fleet, completes=True),
            maintenance.off_step(when=lambda run: database_here),
            Step("contract", contract, lambda run: None, when=contracting),
            Step("finish", finish, None),
        ),
        after_undo=lambda run, cause: _mark_bad_unless_not_its_fault(root, tag, cause),
    )


def _nothing(run: Journal) -> None:
    pass


def _built_files_marker(release: releases.Release) -> Path | None:
    """Where a release records the commit its translations and static files were built from, so that
    preparing it again (after a dry run, a refusal, a failure elsewhere) skips rebuilding them; None
    when STATIC_ROOT is shared by every release (another release's collectstatic may have replaced
    its files since)."""
    static_root = Path(settings.STATIC_ROOT).resolve()
    if not static_root.is_relative_to(Path(settings.BASE_DIR).resolve()):
        return None
    return release.path / ".helpdesk-built"


def _schedule(run: Journal) -> migration_kinds.Schedule:
    """When the run's migrations run (a journal from before schedules existed: all under maintenance)."""
    planned = run.fact("migration_schedule")
    if planned is None:
        return migration_kinds.Schedule("maintenance", list(run.fact("pending_migrations") or []))
    return migration_kinds.Schedule(**planned)


def _targets(planned: list[str]) -> list[tuple[str, str]]:
    """(app, its last planned migration) for `migrate app name`, in the order the apps first appear."""
    targets: dict[str, str] = {}
    for name in planned:
        app, _, migration = name.partition(".")
        targets[app] = migration
    return list(targets.items())


def _applied_before(planned: list[str]) -> dict[str, str]:
    """For each app about to migrate, its newest applied migration ("zero": none): where undo goes back to."""
    applied = MigrationRecorder(connection).applied_migrations()
    before = {}
    for app, _ in _targets(planned):
        names = sorted(name for each_app, name in applied if each_app == app)
        before[app] = names[-1] if names else "zero"
    return before


def _mark_bad_unless_not_its_fault(root: DeploymentRoot, tag: str, cause: str) -> None:
    """A release that failed is not tried again; one whose rehearsal could not even be held (no
    privilege for the scratch copy, no space) is not to blame."""
    if not cause.startswith(f"{rehearsal.RehearsalError.__name__}:"):
        marks.mark_bad(root, tag, cause)


def _release(root: DeploymentRoot, tag: str) -> releases.Release:
    return releases.Release(tag, root.release(tag), None)  # its venv was linked by prepare


def _check_policy(release_plan: planning.Plan, options: Options) -> None:
    """BREAKING needs --allow-breaking; outside the class's window needs --ignore-window."""
    if release_plan.breaking and not options.allow_breaking:
        listed = "; ".join(commit.subject for commit in release_plan.breaking[:5])
        raise UpdateRefused(
            f"{release_plan.target} contains BREAKING changes ({listed}); "
            "read them, then pass --allow-breaking"
        )
    window = release_plan.window
    if not window.open and not options.ignore_window:
        raise UpdateRefused(
            f"{release_plan.target} {policy.window_closed(window)}; pass --ignore-window to update now"
        )


def _check_promotion(release_plan: planning.Plan, options: Options) -> planning.Plan:
    """With a predecessor environment, only a tag it attests (succeeded, smoke passed, soaked); the
    plan carries the verdict into the journal and the report."""
    if not promotion.configured() or options.skip_promotion is not None:
        return release_plan
    try:
        verdict = promotion.gate(release_plan.target, release_plan.update_class)
    except promotion.PromotionError as error:
        raise UpdateRefused(
            f"{error}; whether {release_plan.target} may be promoted is unknown "
            "(pass --skip-promotion --reason TEXT to take it anyway)"
        ) from error
    if not verdict.allowed:
        raise UpdateRefused(verdict.reason)
    return dataclasses.replace(release_plan, promotion=verdict.as_dict())


def _commit_summary(commit) -> dict:
    return {
        "sha": commit.sha[:12],
        "type": commit.type,
        "subject": commit.subject,
        "breaking": commit.breaking,
    }


def _check_disk(root: DeploymentRoot) -> None:
    free = shutil.disk_usage(root.path).free
    needed = settings.UPDATER_MIN_FREE_BYTES
    if free < needed:
        raise UpdateRefused(
            f"only {free // 2**20} MB free under {root.path}; an update needs {needed // 2**20} MB"
        )


# Kept for callers that only need the exception names with the command.
__all__ = ["COMMAND", "Options", "UpdateFailed", "UpdateResult", "steps", "update"]
