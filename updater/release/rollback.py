"""Going back to an earlier release (`rollback`): code by switching links, the database by reverse
migrations to the target's migration state when they are all reversible, otherwise by restoring the
backup taken before the update — after a confirmation that names what will be lost."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from updater import layout
from updater.backup import backups
from updater.layout import DeploymentRoot
from updater.notify import outcome
from updater.release import pipeline, releases
from updater.run import journal

# Asked of the newer release's Python: which of these applied migrations cannot be reversed?
_IRREVERSIBLE_SCRIPT = (
    "import json; from django.db.migrations.loader import MigrationLoader; "
    "graph = MigrationLoader(None, ignore_no_migrations=True).graph; "
    "print(json.dumps([f'{a}.{n}' for a, n in {nodes!r} if (a, n) in graph.nodes "
    "and not all(op.reversible for op in graph.nodes[(a, n)].operations)]))"
)
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


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback will do to the database, known before anything is changed."""

    from_version: str | None
    to_version: str
    ahead: list[str]  # applied migrations the target release does not know
    irreversible: list[str]
    database: str  # "keep", "migrate" or "restore"
    backup: Path | None = None
    backup_taken_at: str = ""
    losses: dict[str, int] = field(default_factory=dict)  # what restoring the backup throws away

    def describe_losses(self) -> str:
        counted = ", ".join(f"{what}: {count}" for what, count in self.losses.items() if count)
        return (
            f"Restoring {self.backup} (taken {self.backup_taken_at}) loses every change made since then"
            + (f": {counted}." if counted else "; none are recorded in the helpdesk tables.")
        )


Confirm = Callable[[RollbackPlan], bool]


def rollback(
    root: DeploymentRoot,
    *,
    to: str | None = None,
    db: str = "auto",
    force: bool = False,
    confirm: Confirm | None = None,
) -> RollbackResult:
    """db: "auto" reverses migrations when all are reversible and restores the backup otherwise;
    "migrate", "restore" and "keep" insist. A restore only happens when confirm(plan) says yes."""
    with pipeline.exclusive(root.lock_file, f"rollback --to {to or 'previous'} --db {db}"):
        return _rollback_locked(root, to, db, force, confirm)


def _rollback_locked(
    root: DeploymentRoot, to: str | None, db: str, force: bool, confirm: Confirm | None
) -> RollbackResult:
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

    target_release = releases.Release(target.name, target, None)
    current_release = releases.Release(current.name, current, None) if current else None
    known = _migrations_of(root, target_release)
    ahead = sorted(node for node in MigrationRecorder(connection).applied_migrations() if node not in known)
    plan = _plan(root, current_release, target.name, ahead, db)
    if plan.database == "restore" and (confirm is None or not confirm(plan)):
        raise pipeline.UpdateRefused(f"the restore was not confirmed. {plan.describe_losses()}")

    run = journal.Journal.start(root.updates, "rollback", current.name if current else None, target.name)
    outcome.begin(run)
    run.record(database_action=plan.database, migrations_ahead=plan.ahead, irreversible=plan.irreversible)
    database = "unchanged"
    try:
        if plan.database != "keep":
            pipeline.maintenance_on(root, run, f"rollback to {target.name}")
        if plan.database == "migrate":
            with pipeline.step(run, "migrate back"):
                _migrate_back(root, current_release, known, ahead)
            database = "migrated back"
        elif plan.database == "restore":
            with pipeline.step(run, "restore"):
                backups.restore_backup(plan.backup)
            run.record(database_restored_from=plan.backup)
            database = f"restored from {plan.backup}"
        run.record(switched_from=current)
        smoke = releases.start(root, target_release, "smoke_check")  # overlaps the switch, as in update
        try:
            with pipeline.step(run, "switch"):
                layout.switch(root, target)
                pipeline.reload_app_server()
            with pipeline.step(run, "verify"):
                run.record(smoke_checks=smoke.result().strip().splitlines())
        finally:
            if smoke.process.poll() is None:
                smoke.process.kill()
    except Exception as error:
        pipeline.undo(root, run)
        outcome.conclude(run, journal.FAILED, str(error), changed=False)
        raise pipeline.UpdateFailed(
            f"the rollback to {target.name} failed and was undone: {error}"
        ) from error
    finally:
        pipeline.maintenance_off(root, run)
    outcome.conclude(run, journal.SUCCEEDED, changed=True)
    return RollbackResult(current.name if current else None, target.name, database, run)


def _plan(
    root: DeploymentRoot,
    current: releases.Release | None,
    target: str,
    ahead: list[tuple[str, str]],
    db: str,
) -> RollbackPlan:
    names = [f"{app}.{name}" for app, name in ahead]
    from_version = current.tag if current else None
    if not ahead or db == "keep":
        return RollbackPlan(from_version, target, names, [], "keep")
    script = _IRREVERSIBLE_SCRIPT.replace("{nodes!r}", repr([list(node) for node in ahead]))
    irreversible = json.loads(releases.manage(root, current, "shell", "--no-imports", "-c", script))
    if db == "migrate" and irreversible:
        raise pipeline.UpdateRefused(
            f"these migrations cannot be reversed: {', '.join(irreversible)}; "
            "use --db restore (the backup taken before the update) or --db keep"
        )
    if db == "migrate" or (db == "auto" and not irreversible):
        return RollbackPlan(from_version, target, names, irreversible, "migrate")
    backup = _backup_before(root, from_version or "")
    manifest = backups.Manifest.read(backup)
    return RollbackPlan(
        from_version, target, names, irreversible, "restore",
        backup=backup, backup_taken_at=manifest.started_at, losses=_changes_since(manifest.started_at),
    )  # fmt: skip


def _changes_since(moment: str) -> dict[str, int]:
    """Helpdesk rows written after the backup began: what a restore would throw away."""
    from crm.models import ActivityLog, Ticket, TicketAttachment, TicketComment

    since = datetime.fromisoformat(moment)
    return {
        "tickets created": Ticket.objects.filter(created_at__gt=since).count(),
        "tickets changed": Ticket.objects.filter(created_at__lte=since, updated_at__gt=since).count(),
        "comments": TicketComment.objects.filter(created_at__gt=since).count(),
        "attachments": TicketAttachment.objects.filter(created_at__gt=since).count(),
        "audit entries": ActivityLog.objects.filter(created_at__gt=since).count(),
    }


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
