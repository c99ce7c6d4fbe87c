"""Finishing runs that were interrupted (kill -9, power loss): `rollback --recover`.

The journal names the run's command and how far each step got. The command's own steps are rebuilt
from the journal; a run past its point of no return is completed (the steps it had not done), any
other is undone (the started steps' own undo, newest first). Undo marks are journaled, so a recovery
that is itself killed resumes where it stopped. A step that cannot be undone (apt) is reported so.
"""

from collections.abc import Callable
from dataclasses import dataclass

from updater import layout
from updater.backup import refresh, restore, safe_migrate
from updater.release import rollback, update
from updater.run import executor, journal, locks, steps
from updater.run.journal import Journal
from updater.run.steps import Procedure
from updater.system import system_update

LEFT_TO_THE_FLEET = "left to the fleet"


@dataclass(frozen=True)
class Recovered:
    run_id: str
    command: str
    # "completed", "rolled back", "failed" (nothing live had changed, or cannot be undone), or
    # LEFT_TO_THE_FLEET (one server's part of a fleet update)
    outcome: str
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
        refresh.COMMAND: refresh.steps,
        system_update.COMMAND: system_update.steps,
    }


def recover() -> list[Recovered]:
    state = layout.state()
    with locks.exclusive(state.lock_file, "rollback --recover"):
        return [_recover_one(run) for run in journal.unfinished(state.updates)]


def _recover_one(run: Journal) -> Recovered:
    fleet_run = run.fact("fleet_run")
    if fleet_run is not None:  # one server's part: undoing it alone could put the database back under
        # servers that run the new release; the fleet's undo orders every server (the primary last)
        return Recovered(
            run.data["id"],
            run.data["command"],
            LEFT_TO_THE_FLEET,
            None,
            f"part of the fleet run {fleet_run}: {journal.undo_fleet_run(fleet_run)} "
            f"(or `update --fleet-run {fleet_run} --stage undo` on each server, the "
            "primary last), or complete it by running update.yml again with the same fleet_run",
        )
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
