"""Command-line details shared by the updater's management commands."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from updater import layout
from updater.errors import UpdateBusy, UpdateFailed, UpdateRefused
from updater.release import git_repo


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


class OwnVersionOption:
    """Lets a command define its own --version (a release tag) in place of Django's built-in
    `--version` (which prints Django's version and exits): `update --version v1.4.0` must mean the tag."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)
