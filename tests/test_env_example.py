"""Every setting that helpdesk/settings.py reads is documented in .env.example, with a comment."""

import re

from tests.conftest import REPO_ROOT


def _settings_read() -> set[str]:
    source = (REPO_ROOT / "helpdesk" / "settings.py").read_text()
    return set(re.findall(r'config\(\s*"([A-Z_][A-Z0-9_]*)"', source))


def _documented() -> dict[str, str]:
    lines = (REPO_ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for previous, line in zip(["", *lines], lines, strict=False):
        match = re.match(r"([A-Z_][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = previous
    return documented


def test_every_setting_is_in_env_example_with_a_comment():
    read = _settings_read()
    assert len(read) > 20  # the pattern still finds the settings
    documented = _documented()
    assert read - documented.keys() == set(), "settings missing from .env.example"
    undocumented = [name for name in read if not documented[name].startswith("#")]
    assert undocumented == []


def test_env_example_lists_nothing_that_does_not_exist():
    assert _documented().keys() - _settings_read() == set()
