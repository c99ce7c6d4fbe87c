"""safe_migrate: backup → integrity check → migrate → integrity check; the backup is restored if any
step after it fails, so the schema always matches the code that is running."""

from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from updater.backup import backups
from updater.backup.engines import engine_for


class SafeMigrateFailed(Exception):
    pass


@dataclass(frozen=True)
class SafeMigrateResult:
    backup: Path | None
    applied: list[str]


def pending_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


def safe_migrate() -> SafeMigrateResult:
    pending = pending_migrations()
    if not pending:
        return SafeMigrateResult(None, [])
    engine = engine_for()
    problems = engine.integrity_problems()
    if problems:
        raise SafeMigrateFailed(
            f"the database fails its integrity check before migrating: {'; '.join(problems)}"
        )
    backup = backups.create_backup(reason="before safe_migrate")
    with backups.pinned(backup.path, "safe_migrate in progress"):
        try:
            call_command("migrate", interactive=False, verbosity=0, stdout=StringIO())
            problems = engine.integrity_problems()
            if problems:
                raise SafeMigrateFailed(f"integrity check after migrating: {'; '.join(problems)}")
        except Exception as error:
            connection.close()
            backups.restore_backup(backup.path)
            raise SafeMigrateFailed(
                f"migrating failed and the database was restored from {backup.path}: {error}"
            ) from error
    return SafeMigrateResult(backup.path, pending)
