"""The backup steps that every command changing the database shares: take a verified backup and pin it
(so rotation cannot take it while the run depends on it), unpin it, and put it back as an undo."""

from collections.abc import Callable
from pathlib import Path

from django.db import connection

from updater.backup import backups, rotation
from updater.run.journal import Journal
from updater.run.steps import Action, Step


def pinned_backup(
    name: str, fact: str, reason: Callable[[Journal], str], output: Path | None = None, **step_options
) -> Step:
    """A step that takes a backup, pins it and journals its path as `fact`; undone by unpinning."""

    def take(run: Journal) -> None:
        why = reason(run)
        result = backups.create_backup(output=output, reason=why)
        rotation.pin(result.path, f"{run.data['command']} {run.data['id']}: {why}")
        run.record(**{fact: result.path})

    return Step(name, take, unpin(fact), **step_options)


def unpin(fact: str) -> Action:
    """Unpin the backup journaled as `fact`, if one was taken: the run no longer depends on it."""

    def release(run: Journal) -> None:
        if run.fact(fact):
            rotation.unpin(Path(run.fact(fact)))

    return release


def restore(fact: str) -> Action:
    """Put the backup journaled as `fact` back (the undo of a step that changed the database)."""

    def put_back(run: Journal) -> None:
        connection.close()  # the restore replaces every table: no connection keeps an old view open
        backup = Path(run.fact(fact))
        record_media(run, backups.restore_backup(backup))
        run.record(database_restored_from=backup)

    return put_back


def record_media(run: Journal, result: backups.RestoreResult) -> None:
    """Journal what a restore did to the media files: the report names every file it moved aside."""
    done = result.media_restore
    if done is None:
        return
    run.record(
        media_restored=done.restored,
        media_unchanged=done.unchanged,
        media_missing=done.missing,
        quarantined_media=[*run.fact("quarantined_media", []), *done.quarantined],
        quarantine=done.quarantine or run.fact("quarantine"),
    )
