"""Finishing runs that were interrupted (kill -9, power loss): `rollback --recover`.

The journal names the run's command and how far each step got. The command's own steps are rebuilt
from the journal; a run past its point of no return is completed (the steps it had not done), any
other is undone (the started steps' own undo, newest first). Undo marks are journaled, so a recovery
that is itself killed resumes where it stopped. A step that cannot be undone (apt) is reported so.
"""

from collections.abc import Callable
from dataclasses import dataclass

from updater import layout
from updater.backup import restore, safe_migrate
from updater.release import rollback, update
from updater.run import executor, journal, locks, steps
from updater.run.journal import Journal
from updater.run.steps import Procedure
from updater.system import system_update


@dataclass(frozen=True)
class Recovered:
    run_id: str
    command: str
    outcome: str  # "completed", "rolled back", or "failed" (nothing live had changed, or cannot be undone)
    version: str | None
    detail: str = ""


def _procedures() -> dict[str, Callable[[Journal], Procedure]]:
    """Each command that changes a live site, and how its steps are rebuilt from a journal."""

    def in_deployment(build: Callable) -> Callable[[Journal], Procedure]:
        return lambda run: build(layout.find_root(), run)

    return {
        update.COMMAND: in_deployment(update.steps),
        rollback.COMMAND: in_deployment(rollback.steps),
        safe_migrate.COMMAND: safe_migrate.steps,
        restore.COMMAND: restore.steps,
        system_update.COMMAND: system_update.steps,
    }


def recover() -> list[Recovered]:
    state = layout.state()
    with locks.exclusive(state.lock_file, "rollback --recover"):
        return [_recover_one(run) for run in journal.unfinished(state.updates)]


def _recover_one(run: Journal) -> Recovered:
    build = _procedures().get(run.data.get("command"))
    if build is None:
        run.close_interrupted()
        run.finish(journal.FAILED, "interrupted; this command cannot be recovered automatically")
        return Recovered(run.data["id"], run.data.get("command", "?"), "failed", None, "unknown command")
    procedure = build(run)
    if steps.past_point_of_no_return(run, procedure.steps):
        executor.complete_run(run, procedure)
        return Recovered(run.data["id"], procedure.command, "completed", run.data.get("to_version"))
    cause = run.data.get("cause") or "interrupted; undone by rollback --recover"
    executor.undo_run(run, procedure, cause)
    failed = run.status == journal.FAILED
    version = None if failed else run.data.get("from_version")
    return Recovered(
        run.data["id"], procedure.command, run.status, version, run.data["cause"] if failed else ""
    )
