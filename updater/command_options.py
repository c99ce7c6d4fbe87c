"""Command-line details shared by the updater's management commands."""

import io
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from django.core.checks import Tags
from django.core.management.base import CommandError, SystemCheckError

from updater import layout
from updater.errors import UpdateBusy, UpdateFailed, UpdateRefused
from updater.release import git_repo
from updater.run import journal


@contextmanager
def outcome_as_exit_code(name: str, refused: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """The updater's outcomes as the exit codes of DESIGN.md: refused 2 (nothing changed), another run
    holds the lock 3, failed 1 (undone where it could be); `refused` adds command-specific refusals."""
    try:
        yield
    except layout.NotADeployment as error:
        raise CommandError(str(error), returncode=UpdateRefused.exit_code) from error
    except (UpdateRefused, git_repo.InvalidVersion, *refused) as error:
        raise CommandError(f"{name} refused, nothing was changed: {error}", returncode=2) from error
    except UpdateBusy as error:
        raise CommandError(f"{name} refused: {error}", returncode=3) from error
    except UpdateFailed as error:
        raise CommandError(str(error), returncode=1) from error


# The system checks the updater's commands run: the settings (the updater's own checks among them),
# the models and the database. Not the URLs, the template engines or the admin's: those import every
# view, DRF and every template tag library (~9 MB and ~0.2 s of each command, which the backup
# benchmark measures) for nothing the updater uses, and a backup, a rollback or an update is what one
# runs when the site's views are broken. A release's own `check --deploy` runs them all (prepare).
CHECKS_WITHOUT_VIEWS = [
    Tags.compatibility,
    Tags.models,
    Tags.database,
    Tags.security,
    Tags.caches,
    Tags.files,
    Tags.staticfiles,
    Tags.translation,
    Tags.signals,
    Tags.async_support,
]


class OwnVersionOption:
    """Lets a command define its own --version (a release tag) in place of Django's built-in
    `--version` (which prints Django's version and exits): `update --version v1.4.0` must mean the tag."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)


class UpdaterCommand:
    """What the updater's commands share. --verbosity: 0 writes nothing but errors (cron mails only
    failures), 1 the outcome, 2 also each step as it starts and ends, with its duration. A failed
    system check (updater/checks.py) is a refusal before anything changed: exit 2."""

    requires_system_checks = CHECKS_WITHOUT_VIEWS

    def execute(self, *args, **options):
        if options.get("verbosity", 1) == 0:
            options["stdout"] = io.StringIO()
        return super().execute(*args, **options)

    def check(self, *args, **kwargs):
        try:
            super().check(*args, **kwargs)
        except SystemCheckError as error:
            raise SystemCheckError(str(error), returncode=UpdateRefused.exit_code) from error

    def steps_shown(self, verbosity: int):
        """A context in which every journaled step is written as it happens (at verbosity 2 and up)."""
        if verbosity < 2:
            return nullcontext()
        return journal.observing(self._show_step)

    def _show_step(self, event: str, command: str, step: dict) -> None:
        if event == "started":
            self.stdout.write(f"  {command}: {step['name']} ...")
        elif event == "finished":
            seconds = step.get("seconds")
            took = f" in {seconds:.1f} s" if seconds is not None else ""
            self.stdout.write(f"  {command}: {step['name']} {step['status']}{took}")
        else:
            note = f" ({step['undo_note']})" if step.get("undo_note") else ""
            self.stdout.write(f"  {command}: {step['name']} undone{note}")
