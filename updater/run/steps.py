"""Runs as lists of named steps, each carrying its own undo (Capistrano's named stages, with the
database undo that Capistrano and Zulip lack).

A Step has `do` and `undo` (None when it cannot be undone, like an apt upgrade), may be skipped by
`when` (decided from the journal's facts when the run reaches it), may leave the live site untouched
(`touches_live=False`, e.g. preparing a release), and may be the point of no return (`completes`):
once such a step is done, an interrupted run is completed, never undone.

Every action reads what it needs from the journal's facts and records what its undo will need before
it changes anything, so `rollback --recover` can rebuild the same steps from the journal of any
command and finish or undo it in a process that knows nothing else. Undo walks the started steps in
reverse and calls their own undo; each undo is journaled, so an interrupted undo resumes where it
stopped. Every action must therefore be safe to run again.
"""

from collections.abc import Callable
from dataclasses import dataclass

from updater.run import faults
from updater.run.journal import Journal

Action = Callable[[Journal], None]


@dataclass(frozen=True)
class Step:
    name: str
    do: Action
    undo: Action | None
    when: Callable[[Journal], bool] | None = None
    touches_live: bool = True
    completes: bool = False


@dataclass(frozen=True)
class Procedure:
    """A command's steps, and what to do once it has been undone (e.g. mark the release bad)."""

    command: str
    steps: tuple[Step, ...]
    after_undo: Callable[[Journal, str], None] | None = None
    cannot_undo: Callable[[Journal], str] | None = None  # what to tell when a step cannot be undone


def run_steps(run: Journal, steps: tuple[Step, ...]) -> None:
    """Do each step not yet done, journaled before and after; done steps are skipped, so completing an
    interrupted run starts where it stopped."""
    for step in steps:
        if run.done(step.name) or (step.when is not None and not step.when(run)):
            continue
        faults.point(f"{step.name}:before")
        run.step_started(step.name)
        try:
            step.do(run)
            faults.point(f"{step.name}:end")  # its work done, not yet journaled as done
        except BaseException as error:
            run.step_finished(step.name, "failed", _describe(error)[:2000])
            raise
        run.step_finished(step.name)
        faults.point(f"{step.name}:after")


def past_point_of_no_return(run: Journal, steps: tuple[Step, ...]) -> bool:
    return any(step.completes and run.done(step.name) for step in steps)


def touched_live(run: Journal, steps: tuple[Step, ...]) -> bool:
    return any(step.touches_live and run.started(step.name) for step in steps)


def undo(run: Journal, steps: tuple[Step, ...]) -> list[str]:
    """Call the undo of every started step, newest first; returns the steps that cannot be undone.
    An undo that raises stops the walk (what remains is undone by `rollback --recover`)."""
    impossible = []
    for step in reversed(steps):
        if not run.started(step.name) or run.undone(step.name):
            continue
        if step.undo is None:
            impossible.append(step.name)
            run.mark_undone(step.name, "cannot be undone")
            continue
        faults.point(f"undo {step.name}:before")
        step.undo(run)
        run.mark_undone(step.name)
    return impossible


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
