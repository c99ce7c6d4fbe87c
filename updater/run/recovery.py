"""Finishing runs that were interrupted (kill -9, power loss): `rollback --recover`.

The journal says how far a run got. A run that had verified the new release is completed (it only
lacked its last bookkeeping); any other is undone: `current` back to the release it replaced, the
database restored from the run's backup if migrations had started, maintenance mode off.
"""

from dataclasses import dataclass
from pathlib import Path

from updater.backup import backups
from updater.layout import DeploymentRoot
from updater.notify import outcome
from updater.release import pipeline
from updater.run import journal


@dataclass(frozen=True)
class Recovered:
    run_id: str
    outcome: str  # "completed" or "rolled back"
    version: str | None


def recover(root: DeploymentRoot) -> list[Recovered]:
    with pipeline.exclusive(root.lock_file, "rollback --recover"):
        return [_recover_one(root, run) for run in journal.unfinished(root.updates)]


def _recover_one(root: DeploymentRoot, run: journal.Journal) -> Recovered:
    if run.fact("verified"):
        pipeline.maintenance_off(root, run)
        if run.fact("backup"):
            backups.unpin(Path(run.fact("backup")))
        outcome.conclude(run, journal.SUCCEEDED, "completed by rollback --recover after an interruption",
                           changed=True)  # fmt: skip
        return Recovered(run.data["id"], "completed", run.data.get("to_version"))
    pipeline.undo(root, run)
    if run.data.get("to_version"):
        pipeline.mark_bad(root, run.data["to_version"], "interrupted; undone by rollback --recover")
    outcome.conclude(run, journal.ROLLED_BACK, "interrupted; undone by rollback --recover", changed=False)
    return Recovered(run.data["id"], "rolled back", run.data.get("from_version"))
