"""deploy/prometheus/: the scrape config and the alerting rules pass promtool, the rules fire exactly at
the thresholds (promtool's own rule unit tests), and every threshold is the setting's default."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "deploy" / "prometheus"
# setting -> what one unit of it is in the metric's base unit (percent -> ratio, ms -> s, hours -> s)
SCALE = {"PERCENT": 0.01, "MS": 0.001, "HOURS": 3600, "PER_CORE": 1}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: scripts/bootstrap.sh --test installs it (Debian's prometheus)"
    return found


def _promtool(promtool: str, *args: str, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_scrape_config_passes_promtool_with_its_token_file(promtool, tmp_path):
    token = tmp_path / "helpdesk-token"
    token.write_text("secret\n")
    token.chmod(0o400)
    config = (EXAMPLES / "prometheus.yml").read_text()
    assert "credentials_file: /etc/prometheus/helpdesk-token" in config  # the token never in the file
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/helpdesk-token", str(token)))
    shutil.copy(EXAMPLES / "helpdesk-alerts.yml", tmp_path)
    checked = _promtool(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 13 rules found" in checked.stdout


def test_the_alerting_rules_pass_promtool_and_fire_exactly_at_the_thresholds(promtool):
    checked = _promtool(promtool, "check", "rules", "helpdesk-alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool(promtool, "test", "rules", "helpdesk-alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_threshold_of_the_rules_is_the_settings_default():
    rules = (EXAMPLES / "helpdesk-alerts.yml").read_text()
    found = re.findall(r"# ([A-Z_]+)\n\s+expr: (\w+) >= ([\d.]+)(?: \* (\d+))?", rules)
    assert len(found) == 10  # a warning and a critical rule for each of the five graded checks
    for setting, _metric, value, multiplier in found:
        unit = next(suffix for suffix in SCALE if setting.endswith(suffix))
        expected = getattr(settings, setting) * SCALE[unit]
        assert float(value) * int(multiplier or 1) == pytest.approx(expected), setting
