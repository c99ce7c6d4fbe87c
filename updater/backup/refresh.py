"""refresh_from_backup: give staging or test production's data without production's people.

Steps, journaled like a restore (a run killed half-way is undone by `rollback --recover`, which puts
the safety backup back, database and media, so no un-anonymized copy is ever left behind):

    maintenance   nobody reads the copy before it is anonymized             undo: maintenance off
    safety backup this environment as it was, database and media             undo: unpin
    restore       the production set's database (its media files are not copied: placeholders are
                  written instead)                                           undo: put the safety backup back
    anonymize     one transaction of bulk UPDATEs (crm/anonymization.py)
    placeholders  every attachment a placeholder of its type and size
    verify        the smoke checks pass on the copy: the point of no return
    maintenance off, finish
"""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from crm import anonymization
from updater import layout
from updater.backup import backups
from updater.backup import steps as backup_steps
from updater.backup.manifest import Manifest
from updater.errors import UpdateRefused
from updater.release import smoke
from updater.run import executor, journal, locks, maintenance
from updater.run.journal import Journal
from updater.run.steps import Procedure, Step

COMMAND = "refresh_from_backup"


@dataclass(frozen=True)
class Refreshed:
    source: Manifest
    changed: dict[str, int]
    placeholders: int
    safety_backup: Path


def check_allowed(manifest: Manifest, *, anonymize: bool, allow_non_prod_source: bool) -> None:
    """The refusals, before anything is journaled or changed."""
    if settings.ENVIRONMENT == "prod":
        raise UpdateRefused("refresh_from_backup never runs in prod: it replaces every row with a copy")
    source = manifest.environment or "an unknown environment"
    if manifest.environment != "prod" and not allow_non_prod_source:
        raise UpdateRefused(
            f"{manifest.file} was taken in {source}, not prod; pass --allow-non-prod-source to use it"
        )
    if manifest.environment in ("prod", "") and not anonymize:
        raise UpdateRefused(f"{manifest.file} holds production's people: pass --anonymize")


def refresh(path: Path, *, anonymize: bool = True, agents: str = anonymization.KEEP) -> Refreshed:
    path = Path(path).resolve()
    manifest = backups.verify_backup(path, dump_only=True)  # its media files are never copied here
    state = layout.state()
    with locks.exclusive(state.lock_file, f"{COMMAND} {path.name}"):
        journal.refuse_if_unfinished(state.updates)
        run = Journal.start(state.updates, COMMAND, None, path.name)
        run.record(
            refresh_from=path, anonymize=anonymize, agents=agents, source_environment=manifest.environment
        )
        executor.execute(
            run, steps(run), lambda undone: f"the refresh from {path.name} failed: {undone.cause}"
        )
    return Refreshed(
        manifest, run.fact("anonymized", {}), run.fact("placeholders", 0), Path(run.fact("safety_backup"))
    )


def steps(run: Journal) -> Procedure:
    source = Path(run.fact("refresh_from"))

    def load(run: Journal) -> None:
        result = backups.restore_backup(
            source, force=True, safety=Path(run.fact("safety_backup")), media_files=False
        )
        run.record(table_counts=result.table_counts, integrity_problems=result.integrity_problems)

    def anonymize(run: Journal) -> None:
        connection.close()  # the restore replaced every table
        summary = anonymization.anonymize(run.fact("agents"))
        run.record(anonymized=summary.changed)

    def placeholders(run: Journal) -> None:
        run.record(placeholders=anonymization.write_placeholders(Path(settings.MEDIA_ROOT)))

    def verify(run: Journal) -> None:
        """The helpdesk works on the copy: the update's smoke checks (a failure puts everything back)."""
        run.record(smoke_checks=smoke.run_smoke_checks())

    anonymizing = lambda run: bool(run.fact("anonymize"))  # noqa: E731
    return Procedure(
        COMMAND,
        (
            maintenance.step(lambda run: f"refresh from {source.name}"),
            backup_steps.pinned_backup(
                "safety backup",
                "safety_backup",
                lambda run: f"safety net before refreshing from {source.name}",
            ),
            Step("restore", load, backup_steps.restore("safety_backup")),
            Step("anonymize", anonymize, lambda run: None, when=anonymizing),
            Step("placeholders", placeholders, lambda run: None, when=anonymizing),
            Step("verify", verify, lambda run: None, completes=True),
            maintenance.off_step(),
            Step("finish", backup_steps.unpin("safety_backup"), None),
        ),
    )
