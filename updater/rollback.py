"""Going back to an earlier release (`rollback`): code by switching links, the database by reverse
migrations to the target's migration state, or by restoring the backup taken before the update."""

import json
from dataclasses import dataclass
from pathlib import Path

from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from updater import backups, deployment, journal, locks, maintenance, pipeline, releases
from updater.deployment import DeploymentRoot

_LEAVES_SCRIPT = (
    "import json; from django.db.migrations.loader import MigrationLoader; "
    "graph = MigrationLoader(None, ignore_no_migrations=True).graph; "
    "print(json.dumps(sorted([list(n) for n in graph.nodes])))"
)


@dataclass(frozen=True)
class RollbackResult:
    from_version: str | None
    to_version: str
    database: str  # "unchanged", "migrated back", "restored from <file>"
    journal: journal.Journal


def rollback(
    root: DeploymentRoot, *, to: str | None = None, db: str = "migrate", force: bool = False
) -> RollbackResult:
    try:
        with locks.hold(root.lock_file, command=f"rollback --to {to or 'previous'} --db {db}"):
            return _rollback_locked(root, to, db, force)
    except locks.LockHeld as held:
        who = held.holder.describe() if held.holder else "another process"
        raise pipeline.UpdateBusy(f"another update or rollback is running ({who})") from None


def _rollback_locked(root: DeploymentRoot, to: str | None, db: str, force: bool) -> RollbackResult:
    if journal.unfinished(root.updates):
        raise pipeline.UpdateRefused(
            "an earlier run did not finish; run `manage.py rollback --recover` first"
        )
    current = root.current_release()
    target = root.release(to) if to else root.previous_release()
    if target is None or not target.is_dir():
        raise pipeline.UpdateRefused(f"there is no release {to or '(previous)'} to go back to")
    if current is not None and target.resolve() == current:
        raise pipeline.UpdateRefused(f"{target.name} is already the current release")
    if (target / pipeline.BAD_MARKER).exists() and not force:
        raise pipeline.UpdateRefused(f"{target.name} was marked bad; pass --force to go back to it anyway")

    run = journal.Journal.start(root.updates, "rollback", current.name if current else None, target.name)
    target_release = releases.Release(target.name, target, None)
    current_release = releases.Release(current.name, current, None) if current else None
    known = _migrations_of(root, target_release)
    ahead = sorted(node for node in MigrationRecorder(connection).applied_migrations() if node not in known)
    database = "unchanged"
    try:
        if ahead and db != "keep":
            maintenance.enable(f"rollback to {target.name}", root.maintenance_flag)
            if db == "migrate":
                with pipeline.step(run, "migrate back"):
                    _migrate_back(root, current_release, known, ahead)
                database = "migrated back"
            else:
                backup = _backup_before(root, current.name if current else "")
                with pipeline.step(run, "restore"):
                    backups.restore_backup(backup)
                database = f"restored from {backup}"
        run.record(switched_from=current)
        with pipeline.step(run, "switch"):
            deployment.switch(root, target)
            pipeline.reload_app_server()
        with pipeline.step(run, "verify"):
            releases.manage(root, target_release, "smoke_check")
    except Exception as error:
        pipeline.undo(root, run)
        run.finish(journal.FAILED, str(error))
        raise pipeline.UpdateFailed(
            f"the rollback to {target.name} failed and was undone: {error}"
        ) from error
    finally:
        maintenance.disable(root.maintenance_flag)
    run.finish(journal.SUCCEEDED)
    return RollbackResult(current.name if current else None, target.name, database, run)


def _migrations_of(root: DeploymentRoot, release: releases.Release) -> set[tuple[str, str]]:
    """Every migration the release's code knows, asked of that release's own Python."""
    output = releases.manage(root, release, "shell", "--no-imports", "-c", _LEAVES_SCRIPT)
    return {tuple(node) for node in json.loads(output)}


def _migrate_back(
    root: DeploymentRoot, current: releases.Release, known: set[tuple[str, str]], ahead: list[tuple[str, str]]
) -> None:
    """Reverse migrations run by the *newer* code, which knows how to undo them."""
    for app in sorted({app for app, _name in ahead}):
        names = sorted(name for known_app, name in known if known_app == app)
        releases.manage(root, current, "migrate", app, names[-1] if names else "zero", "--noinput")


def _backup_before(root: DeploymentRoot, version: str) -> Path:
    for run in reversed(journal.all_journals(root.updates)):
        if (
            run.data.get("command") == "update"
            and run.data.get("to_version") == version
            and run.fact("backup")
        ):
            return Path(run.fact("backup"))
    raise pipeline.UpdateRefused(
        f"no backup taken before the update to {version} was found; use --db migrate or keep"
    )
