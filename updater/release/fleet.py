"""One app server's part in a fleet update: `update --version TAG --fleet-run ID --stage STAGE`.

deploy/ansible/update.yml drives the fleet; every server runs the update's own steps
(updater/release/update.py), stage by stage, under one journal per server and fleet run:

    begin    preflight, as `update` does, and the journal; the primary's is the fleet's lock
    prepare  prepare (every server, in parallel); rehearse (the primary)
    migrate  the primary only: maintenance when a migration is blocking, backup, the migrations
             that run before the switch (all of them under maintenance, or the online ones)
    switch   switch + reload, verify through this server (its health URL, its smoke checks);
             the balancer has drained it first
    finish   "fleet verified" (the point of no return), maintenance off, contract, finish
    undo     the started steps' own undo, newest first; the other servers first, the primary last,
             so that the database is put back once, when no server runs the new code any more

Between stages the journal is "paused": the server refuses any other update (naming the fleet run)
until the fleet run finishes or is undone. A stage that fails undoes its own steps on this server
and leaves the rest to the fleet's undo; a stage killed half-way is done again when the playbook is
run again with the same fleet run (every step is safe to run again), or undone by `undo`.
"""

import re
from dataclasses import dataclass, field

from updater.errors import UpdateFailed, UpdateRefused
from updater.layout import DeploymentRoot
from updater.notify import outcome, reports
from updater.release import git_repo, update
from updater.run import executor, journal, locks, steps
from updater.run.journal import Journal

STAGES = {
    "begin": (),
    "prepare": ("prepare", "rehearse"),
    "migrate": ("maintenance", "backup", "migrate", "migrate online"),
    "switch": ("switch", "verify"),
    "finish": ("fleet verified", "maintenance off", "contract", "finish"),
}
UNDO = "undo"
FLEET_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class StageResult:
    fleet_run: str
    stage: str
    from_version: str | None
    to_version: str
    status: str  # the journal's: "paused", "succeeded", "rolled back", ... or "none" (nothing to undo)
    journal: str | None
    # finish: this server's report of the run (update_report's), for the fleet report without another
    # manage.py on every server
    report: dict | None = field(default=None)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def run_stage(
    root: DeploymentRoot,
    tag: str | None,
    fleet_run: str,
    stage: str,
    *,
    primary: bool = False,
    expect_current: str | None = None,
    options: update.Options | None = None,
) -> StageResult:
    if tag is not None:
        git_repo.validate_tag_name(tag)
    elif stage != UNDO:  # undoing needs only the fleet run
        raise UpdateRefused(f"the stage {stage} needs the release tag (--version)")
    if not FLEET_RUN.match(fleet_run):
        raise UpdateRefused(f"{fleet_run!r} is not a fleet run id (letters, digits, '.', '_', '-')")
    if stage != UNDO and stage not in STAGES:
        raise UpdateRefused(f"{stage!r} is not a stage: {', '.join([*STAGES, UNDO])}")
    with locks.exclusive(root.lock_file, f"update --fleet-run {fleet_run} --stage {stage} ({tag or 'undo'})"):
        run = _find(root, fleet_run)
        if run is not None and run.status == journal.SUCCEEDED and stage != UNDO:
            pass  # the playbook run again after the fleet run succeeded: nothing left to do
        elif stage == "begin" and run is not None:
            _resumable(run, fleet_run, tag)  # begun before: resumed, unless it ended here
        elif stage == "begin":
            run = _begin(root, tag, fleet_run, primary, expect_current, options or update.Options())
        elif stage == UNDO:
            _undo(root, run)
        else:
            _run(root, _resumable(run, fleet_run, tag), stage)
    if run is None:
        return StageResult(fleet_run, stage, root.current_version(), tag or "", "none", None)
    return StageResult(
        fleet_run,
        stage,
        run.data["from_version"],
        run.data["to_version"],
        run.status,
        str(run.path),
        reports.build(run) if stage == "finish" else None,
    )


def _find(root: DeploymentRoot, fleet_run: str) -> Journal | None:
    """This server's journal of the fleet run (the newest, should an id be reused)."""
    runs = [run for run in journal.all_journals(root.updates) if run.fact("fleet_run") == fleet_run]
    return runs[-1] if runs else None


def _begin(
    root: DeploymentRoot,
    tag: str,
    fleet_run: str,
    primary: bool,
    expect_current: str | None,
    options: update.Options,
) -> Journal:
    journal.refuse_if_unfinished(root.updates)  # another fleet run's journal names its holder
    old_version = root.current_version()
    if expect_current is not None and old_version != expect_current:
        raise UpdateRefused(
            f"this server runs {old_version}, the fleet's primary {expect_current}: every server must "
            "run the same release before a fleet update"
        )
    release_plan = update.preflight(root, tag, old_version, options, rehearses=primary)
    run = update.start_run(root, tag, old_version, release_plan, options)
    run.record(fleet_run=fleet_run, fleet_primary=primary, fleet_stages=["begin"])
    if primary:
        outcome.begin(run)
    _pause(run)
    return run


def _resumable(run: Journal | None, fleet_run: str, tag: str) -> Journal:
    if run is None:
        raise UpdateRefused(f"the fleet run {fleet_run} has not begun on this server (stage begin first)")
    if run.data["to_version"] != tag:
        raise UpdateRefused(f"the fleet run {fleet_run} updates this server to {run.data['to_version']}")
    if run.status in journal.FINISHED:
        raise UpdateRefused(f"the fleet run {fleet_run} has ended on this server: {run.status}")
    if run.fact("failed_stage"):
        raise UpdateRefused(
            f"the stage {run.fact('failed_stage')} of the fleet run {fleet_run} failed on this server; "
            "the fleet run can only be undone now"
        )
    return run


def _run(root: DeploymentRoot, run: Journal, stage: str) -> None:
    """The stage's steps not yet done (a stage killed half-way is done again where it stopped)."""
    procedure = update.steps(root, run)
    selected = tuple(step for step in procedure.steps if step.name in STAGES[stage])
    run.close_interrupted()
    run.data["status"] = journal.RUNNING
    run.save()
    try:
        steps.run_steps(run, selected)
    except BaseException as error:
        cause = executor.describe(error)
        if steps.past_point_of_no_return(run, procedure.steps):
            run.finish(journal.INCOMPLETE, cause)
            raise UpdateFailed(
                f"the fleet run verified every server, then failed to finish here ({cause}); run the "
                "playbook again with the same fleet run to complete it"
            ) from error
        run.record(failed_stage=stage)
        run.data["cause"] = cause
        try:
            steps.undo(run, selected)
        except BaseException as undo_error:  # the fleet's undo goes on from the steps left
            run.finish(journal.UNDO_FAILED, f"{cause}; undoing it failed: {executor.describe(undo_error)}")
            raise UpdateFailed(
                f"the stage {stage} failed on this server ({cause}) and undoing it failed too "
                f"({executor.describe(undo_error)}); the fleet run must be undone on every server"
            ) from error
        _pause(run)
        raise UpdateFailed(
            f"the stage {stage} failed on this server and was undone here ({cause}); "
            "the fleet run must be undone on every server"
        ) from error
    run.record(fleet_stages=[*run.fact("fleet_stages", []), stage])
    if stage == "finish":
        outcome.conclude(run, journal.SUCCEEDED, changed=True)
    else:
        _pause(run)


def _undo(root: DeploymentRoot, run: Journal | None) -> None:
    """Undo this server's part; nothing to do when it never began here or has ended (a stage that
    failed here was undone by itself; the journal still waits for the fleet's undo to conclude)."""
    if run is None or run.status in journal.FINISHED:
        return
    procedure = update.steps(root, run)
    if steps.past_point_of_no_return(run, procedure.steps):
        raise UpdateRefused(
            f"the fleet run {run.fact('fleet_run')} verified every server: it is completed, not undone "
            "(run the playbook again with the same fleet run)"
        )
    cause = run.data.get("cause") or f"the fleet run {run.fact('fleet_run')} was undone"
    executor.undo_run(run, procedure, cause)


def _pause(run: Journal) -> None:
    run.data["status"] = journal.PAUSED
    run.save()
