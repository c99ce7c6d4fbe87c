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
    ahead = _migrations_ahead_of(root, target_release)
    database = "unchanged"
    try:
        if ahead and db != "keep":
            maintenance.enable(f"rollback to {target.name}", root.maintenance_flag)
            if db == "migrate":
                with_step(run, "migrate back", lambda: _migrate_back(root, current_release, target_release))
                database = "migrated back"
            else:
                backup = _backup_before(root, current.name if current else "")
                with_step(run, "restore", lambda: backups.restore_backup(backup))
                database = f"restored from {backup}"
        run.record(switched_from=current)
        with_step(run, "switch", lambda: (deployment.switch(root, target), pipeline.reload_app_server()))
        with_step(run, "verify", lambda: releases.manage(root, target_release, "smoke_check"))
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


def with_step(run: journal.Journal, name: str, action) -> None:
    run.step_started(name)
    try:
        action()
    except BaseException as error:
        run.step_finished(name, "failed", str(error)[:2000])
        raise
    run.step_finished(name)


def _migrations_ahead_of(root: DeploymentRoot, target: releases.Release) -> list[tuple[str, str]]:
    known = {
        tuple(node)
        for node in json.loads(releases.manage(root, target, "shell", "--no-imports", "-c", _LEAVES_SCRIPT))
    }
    applied = set(MigrationRecorder(connection).applied_migrations())
    return sorted(node for node in applied if node not in known)


def _migrate_back(root: DeploymentRoot, current: releases.Release, target: releases.Release) -> None:
    """Reverse migrations run by the *newer* code, which knows how to undo them."""
    known = {
        tuple(node)
        for node in json.loads(releases.manage(root, target, "shell", "--no-imports", "-c", _LEAVES_SCRIPT))
    }
    apps = sorted({app for app, _name in _migrations_ahead_of(root, target)})
    for app in apps:
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
