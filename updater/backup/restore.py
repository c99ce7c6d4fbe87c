"""restore_database as journaled steps: verify the backup (nothing changes if it is bad), maintenance
on, a pinned safety backup, the restore (undone by putting the safety backup back), maintenance off.
A restore killed half-way is undone by `rollback --recover` from the safety backup."""

from pathlib import Path

from updater import layout
from updater.backup import backups, media
from updater.backup import steps as backup_steps
from updater.run import executor, journal, locks, maintenance
from updater.run.journal import Journal
from updater.run.steps import Procedure, Step

COMMAND = "restore_database"


def restore(
    path: Path,
    *,
    force: bool = False,
    verified: bool = False,
    database: bool = True,
    media_files: bool = True,
) -> backups.RestoreResult:
    """verified: the caller has just verified the backup (restore_backup checks it again, under the
    lock, right before loading it). database / media_files: False leaves that half as it is."""
    path = Path(path).resolve()  # `latest` may be repointed while we work; hold on to its target
    if not verified:
        backups.verify_backup(path)  # a bad backup is refused before anything is journaled or changed
    state = layout.state()
    with locks.exclusive(state.lock_file, f"restore_database {path.name}"):
        journal.refuse_if_unfinished(state.updates)
        run = Journal.start(state.updates, COMMAND, None, path.name)
        run.record(restore_from=path, force=force, restore_database=database, restore_media=media_files)
        executor.execute(run, steps(run), lambda undone: f"the restore of {path.name} failed: {undone.cause}")
    return backups.RestoreResult(
        path,
        Path(run.fact("safety_backup")),
        run.fact("table_counts"),
        run.fact("integrity_problems"),
        _media_restore(run),
    )


def _media_restore(run: Journal) -> media.Restored | None:
    if run.fact("media_restored") is None:
        return None
    quarantine = run.fact("quarantine")
    return media.Restored(
        run.fact("media_restored"),
        run.fact("media_unchanged", 0),
        run.fact("quarantined_media", []),
        Path(quarantine) if quarantine else None,
        run.fact("media_missing", []),
    )


def steps(run: Journal) -> Procedure:
    def load(run: Journal) -> None:
        result = backups.restore_backup(
            Path(run.fact("restore_from")),
            force=run.fact("force"),
            safety=Path(run.fact("safety_backup")),
            database=run.fact("restore_database") is not False,
            media_files=run.fact("restore_media") is not False,
            media_verified=True,  # restore() verified the whole set before the run began
        )
        run.record(table_counts=result.table_counts, integrity_problems=result.integrity_problems)
        backup_steps.record_media(run, result)

    return Procedure(
        COMMAND,
        (
            maintenance.step(lambda run: f"restore of {Path(run.fact('restore_from')).name}"),
            backup_steps.pinned_backup(
                "safety backup",
                "safety_backup",
                lambda run: f"safety net before restoring {Path(run.fact('restore_from')).name}",
            ),
            Step("restore", load, backup_steps.restore("safety_backup")),
            Step("verify", lambda run: None, lambda run: None, completes=True),
            maintenance.off_step(),
            Step("finish", backup_steps.unpin("safety_backup"), None),
        ),
    )
