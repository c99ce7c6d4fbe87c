"""safe_migrate: integrity check → maintenance → backup → migrate → integrity check, as journaled steps.
A failure restores the backup (the migrate step's undo), so the schema always matches the code that is
running; a run killed anywhere is finished or undone by `rollback --recover` like any other."""

from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from updater import layout
from updater.backup import steps as backup_steps
from updater.backup.engines import engine_for
from updater.errors import UpdateFailed
from updater.plan.migrations import pending_migrations
from updater.run import executor, faults, journal, locks, maintenance
from updater.run.journal import Journal
from updater.run.steps import Procedure, Step

COMMAND = "safe_migrate"


class SafeMigrateFailed(Exception):
    pass


@dataclass(frozen=True)
class SafeMigrateResult:
    backup: Path | None
    applied: list[str]


def safe_migrate() -> SafeMigrateResult:
    state = layout.state()
    with locks.exclusive(state.lock_file, COMMAND):
        journal.refuse_if_unfinished(state.updates)
        pending = pending_migrations()
        if not pending:
            return SafeMigrateResult(None, [])
        run = Journal.start(state.updates, COMMAND, None, f"{len(pending)} migration(s)")
        run.record(pending_migrations=pending)
        try:
            executor.execute(run, steps(run), lambda undone: undone.cause)
        except UpdateFailed as error:
            restored = run.fact("database_restored_from")
            where = f" and the database was restored from {restored}" if restored else ""
            raise SafeMigrateFailed(f"migrating failed{where}: {error}") from error
        return SafeMigrateResult(Path(run.fact("backup")), pending)


def steps(run: Journal) -> Procedure:
    def check_before(run: Journal) -> None:
        problems = engine_for().integrity_problems()
        if problems:
            raise SafeMigrateFailed(
                f"the database fails its integrity check before migrating: {'; '.join(problems)}"
            )

    def migrate(run: Journal) -> None:
        faults.point("migrate:during")
        call_command("migrate", interactive=False, verbosity=0, stdout=StringIO())

    def check_after(run: Journal) -> None:
        problems = engine_for().integrity_problems()
        if problems:
            raise SafeMigrateFailed(f"integrity check after migrating: {'; '.join(problems)}")

    return Procedure(
        COMMAND,
        (
            Step("integrity check", check_before, lambda run: None, touches_live=False),
            maintenance.step(lambda run: "safe_migrate"),
            backup_steps.pinned_backup("backup", "backup", lambda run: "before safe_migrate"),
            Step("migrate", migrate, backup_steps.restore("backup")),
            Step("verify", check_after, lambda run: None, completes=True),
            maintenance.off_step(),
            Step("finish", backup_steps.unpin("backup"), None),
        ),
    )
