"""Running a command's procedure to its end: do the steps; on failure undo the started ones and say
how it ended; complete or undo an interrupted run for `rollback --recover`. Every end goes through
the journal and the run's outcome (report, notifications)."""

from collections.abc import Callable
from dataclasses import dataclass

from updater.errors import RECOVER_FIRST, UpdateFailed
from updater.notify import outcome
from updater.run import journal, steps
from updater.run.journal import Journal
from updater.run.steps import Procedure


@dataclass(frozen=True)
class Undone:
    cause: str
    touched_live: bool  # False: only steps that leave the live site alone had started
    impossible: tuple[str, ...]  # started steps that cannot be undone (an apt upgrade)


def execute(
    run: Journal,
    procedure: Procedure,
    failure: Callable[[Undone], str],
    succeeded: Callable[[Journal], None] | None = None,
) -> None:
    """Do every step; on any failure (Ctrl-C too) undo what was started and raise UpdateFailed with
    failure(undone) as its message. A failure past the point of no return is never undone: the run
    is left "incomplete" for `rollback --recover` to complete (maintenance off is among its last steps).
    Success concludes the run (report, notifications) unless `succeeded` ends it otherwise."""
    try:
        steps.run_steps(run, procedure.steps)
    except BaseException as error:
        cause = describe(error)
        if steps.past_point_of_no_return(run, procedure.steps):
            run.finish(journal.INCOMPLETE, cause)
            raise UpdateFailed(
                f"{run.data['command']} verified its result, then failed to finish ({cause}); "
                "run `manage.py rollback --recover` to complete it"
            ) from error
        undone = undo_run(run, procedure, cause)
        raise UpdateFailed(failure(undone)) from error
    if succeeded is not None:
        succeeded(run)
    else:
        outcome.conclude(run, journal.SUCCEEDED, changed=True)


def undo_run(run: Journal, procedure: Procedure, cause: str) -> Undone:
    """Undo the started steps newest first and conclude the journal: "rolled back" when the live site
    is as before, "failed" when nothing live was touched or a step cannot be undone."""
    run.close_interrupted()
    try:
        impossible = tuple(steps.undo(run, procedure.steps))
    except BaseException as error:
        run.finish(journal.UNDO_FAILED, f"{cause}; undoing it failed: {describe(error)}")
        raise UpdateFailed(
            f"{run.data['command']} failed ({cause}) and undoing it failed too ({describe(error)}); "
            f"maintenance mode stays on where it was on; {RECOVER_FIRST}"
        ) from error
    undone = Undone(cause, steps.touched_live(run, procedure.steps), impossible)
    if procedure.after_undo is not None:
        procedure.after_undo(run, cause)
    if impossible:
        hint = procedure.cannot_undo(run) if procedure.cannot_undo else ""
        text = f"{cause}; cannot be undone: {', '.join(impossible)}{hint}"
        outcome.conclude(run, journal.FAILED, text, changed=True)
    elif undone.touched_live:
        outcome.conclude(run, journal.ROLLED_BACK, cause, changed=False)
    else:
        outcome.conclude(run, journal.FAILED, cause, changed=False)
    return undone


def complete_run(run: Journal, procedure: Procedure) -> None:
    """An interrupted run past its point of no return: do the steps it had not done."""
    run.close_interrupted()
    steps.run_steps(run, procedure.steps)
    note = "completed by rollback --recover after an interruption"
    outcome.conclude(run, journal.SUCCEEDED, note, changed=True)


def describe(error: BaseException) -> str:
    if isinstance(error, UpdateFailed):
        return str(error)
    return f"{type(error).__name__}: {error}"
