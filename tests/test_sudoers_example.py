"""deploy/sudoers/helpdesk: valid sudoers syntax, and it grants the reload commands and nothing else."""

import re
import shutil
import subprocess

from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "deploy" / "sudoers" / "helpdesk"


def test_the_sudoers_example_parses_and_allows_only_the_reloads():
    visudo = shutil.which("visudo")
    assert visudo, "visudo is missing: scripts/bootstrap.sh --test installs sudo"
    checked = subprocess.run([visudo, "-cf", str(EXAMPLE)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = [line for line in EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    assert rules == [
        "helpdesk ALL=(root) NOPASSWD: /usr/bin/systemctl reload helpdesk, /usr/sbin/apache2ctl graceful"
    ]
    documented = re.findall(r"UPDATER_RELOAD_COMMAND=sudo -n (.+)", EXAMPLE.read_text())
    assert documented == ["/usr/bin/systemctl reload helpdesk", "/usr/sbin/apache2ctl graceful"]
