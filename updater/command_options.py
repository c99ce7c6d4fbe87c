"""Command-line details shared by the updater's management commands."""


class OwnVersionOption:
    """Lets a command define its own --version (a release tag) in place of Django's built-in
    `--version` (which prints Django's version and exits): `update --version v1.4.0` must mean the tag."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)
