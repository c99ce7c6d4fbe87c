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

from updater.backup import backups, manifest, media
from updater.backup import steps as backup_steps
from updater.errors import UpdateRefused
from updater.layout import DeploymentRoot
from updater.notify import outcome
from updater.plan.migrations import irreversible_reason
from updater.release import marks, releases
from updater.release.switching import switch_step, verify_step
from updater.run import executor, faults, journal, locks, maintenance
from updater.run.journal import Journal
from updater.run.steps import Procedure, Step

COMMAND = "rollback"

# Asked of the newer release's Python: the operations of these applied migrations, as
# [migration, operation class, reversible]; plan/migrations.py judges them, as update_plan does.
_OPERATIONS_SCRIPT = (
    "import json; from django.db.migrations.loader import MigrationLoader; "
    "graph = MigrationLoader(None, ignore_no_migrations=True).graph; "
    "print(json.dumps([[f'{a}.{n}', type(op).__name__, op.reversible] for a, n in {nodes!r} "
    "if (a, n) in graph.nodes for op in graph.nodes[(a, n)].operations]))"
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
    with locks.exclusive(root.lock_file, f"rollback --to {to or 'previous'} --db {db}"):
        return _rollback_locked(root, to, db, force, confirm)


def _rollback_locked(
    root: DeploymentRoot, to: str | None, db: str, force: bool, confirm: Confirm | None
) -> RollbackResult:
    journal.refuse_if_unfinished(root.updates)
    current = root.current_release()
    target = root.release(to) if to else root.previous_release()
    if target is None or not target.is_dir():
        raise UpdateRefused(f"there is no release {to or '(previous)'} to go back to")
    if current is not None and target.resolve() == current:
        raise UpdateRefused(f"{target.name} is already the current release")
    if marks.bad_reason(target) is not None and not force:
        raise UpdateRefused(f"{target.name} was marked bad; pass --force to go back to it anyway")

    target_release = releases.Release(target.name, target, None)
    current_release = releases.Release(current.name, current, None) if current else None
    known = _migrations_of(root, target_release)
    ahead = sorted(node for node in MigrationRecorder(connection).applied_migrations() if node not in known)
    plan = _plan(root, current_release, target.name, ahead, db)
    if plan.database == "restore" and (confirm is None or not confirm(plan)):
        raise UpdateRefused(f"the restore was not confirmed. {plan.describe_losses()}")

    run = journal.Journal.start(root.updates, COMMAND, current.name if current else None, target.name)
    run.record(
        database_action=plan.database,
        migrations_ahead=plan.ahead,
        irreversible=plan.irreversible,
        target=target,
        from_release=current,
        migrate_back_to=_migrate_back_targets(known, ahead),
        restore_from=plan.backup,
    )
    outcome.begin(run)
    executor.execute(
        run,
        steps(root, run),
        lambda undone: f"the rollback to {target.name} failed and was undone: {undone.cause}",
    )
    database = {
        "keep": "unchanged",
        "migrate": "migrated back",
        "restore": f"restored from {plan.backup}",
    }[plan.database]
    return RollbackResult(current.name if current else None, target.name, database, run)


def steps(root: DeploymentRoot, run: Journal) -> Procedure:
    """The rollback's steps, built from the journal alone. Undone, they put the database back where
    the rollback found it (re-applying reversed migrations, or the safety backup taken before the
    restore), then the code; the rollback's target is never marked bad."""
    target = Path(run.fact("target")).name

    def action(name: str):
        return lambda run: run.fact("database_action") == name

    def from_release(run: Journal) -> releases.Release:
        path = Path(run.fact("from_release"))
        return releases.Release(path.name, path, None)

    def migrate_back(run: Journal) -> None:
        # Reverse migrations are run by the *newer* code, which knows how to undo them.
        for app, name in sorted(run.fact("migrate_back_to").items()):
            releases.manage(root, from_release(run), "migrate", app, name, "--noinput")
            faults.point("migrate back:during")

    def migrate_forward(run: Journal) -> None:
        releases.manage(root, from_release(run), "migrate", "--noinput")

    def restore(run: Journal) -> None:
        result = backups.restore_backup(
            Path(run.fact("restore_from")), safety=Path(run.fact("safety_backup"))
        )
        backup_steps.record_media(run, result)
        run.record(database_restored_from=run.fact("restore_from"))

    return Procedure(
        COMMAND,
        (
            maintenance.step(
                lambda run: f"rollback to {target}", when=lambda run: run.fact("database_action") != "keep"
            ),
            Step("migrate back", migrate_back, migrate_forward, when=action("migrate")),
            backup_steps.pinned_backup(
                "safety backup",
                "safety_backup",
                lambda run: f"before the rollback to {target}",
                root.backups,
                when=action("restore"),
            ),
            Step("restore", restore, backup_steps.restore("safety_backup"), when=action("restore")),
            switch_step(root),
            verify_step(root),
            maintenance.off_step(),
            Step("finish", backup_steps.unpin("safety_backup"), None),
        ),
    )


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
    script = _OPERATIONS_SCRIPT.replace("{nodes!r}", repr([list(node) for node in ahead]))
    operations = json.loads(releases.manage(root, current, "shell", "--no-imports", "-c", script))
    irreversible = sorted(
        {name for name, operation, reversible in operations if irreversible_reason(operation, reversible)}
    )
    if db == "migrate" and irreversible:
        raise UpdateRefused(
            f"these migrations cannot be reversed: {', '.join(irreversible)}; "
            "use --db restore (the backup taken before the update) or --db keep"
        )
    if db == "migrate" or (db == "auto" and not irreversible):
        return RollbackPlan(from_version, target, names, irreversible, "migrate")
    backup = _backup_before(root, from_version or "")
    taken = manifest.Manifest.read(backup)
    return RollbackPlan(
        from_version,
        target,
        names,
        irreversible,
        "restore",
        backup=backup,
        backup_taken_at=taken.started_at,
        losses={**_changes_since(taken.started_at), **_media_set_aside(backup, taken)},
    )


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


def _media_set_aside(backup: Path, taken: manifest.Manifest) -> dict[str, int]:
    """Live media files the backup does not hold: the restore moves them aside (kept, not deleted)."""
    if not taken.has_media:
        return {}
    aside = media.would_set_aside(backup, taken.media_listing_sha256, media.media_root())
    return {"media files moved aside to the quarantine folder": len(aside)}


def _migrations_of(root: DeploymentRoot, release: releases.Release) -> set[tuple[str, str]]:
    """Every migration the release's code knows, asked of that release's own Python."""
    output = releases.manage(root, release, "shell", "--no-imports", "-c", _LEAVES_SCRIPT)
    return {tuple(node) for node in json.loads(output)}


def _migrate_back_targets(known: set[tuple[str, str]], ahead: list[tuple[str, str]]) -> dict[str, str]:
    """Per app with migrations ahead of the target: the target's newest migration, or "zero"."""
    targets = {}
    for app in sorted({app for app, _name in ahead}):
        names = sorted(name for known_app, name in known if known_app == app)
        targets[app] = names[-1] if names else "zero"
    return targets


def _backup_before(root: DeploymentRoot, version: str) -> Path:
    for run in reversed(journal.all_journals(root.updates)):
        if (
            run.data.get("command") == "update"
            and run.data.get("to_version") == version
            and run.fact("backup")
        ):
            return Path(run.fact("backup"))
    raise UpdateRefused(f"no backup taken before the update to {version} was found; use --db migrate or keep")
