"""The updater's three outcomes besides success, and their exit codes (DESIGN.md): one mapping that
every command uses (updater/command_options.py turns them into CommandError)."""


class UpdateRefused(Exception):
    """Preflight or policy said no; nothing was changed (exit code 2)."""

    exit_code = 2


class UpdateBusy(Exception):
    """Another run holds the update lock (exit code 3)."""

    exit_code = 3


class UpdateFailed(Exception):
    """The run failed; what it changed has been undone where it could be (exit code 1)."""

    exit_code = 1


RECOVER_FIRST = "run `manage.py rollback --recover` first"
