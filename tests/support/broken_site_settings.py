"""The helpdesk's settings with a URLconf that cannot be imported: a site whose views are broken (a bad
release, a missing module), to show what still works then (tests/test_backup_commands.py)."""

from helpdesk.settings import *  # noqa: F403

ROOT_URLCONF = "tests.support.no_such_urls"
