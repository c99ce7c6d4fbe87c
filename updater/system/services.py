"""systemd services, asked and told in one place: whether systemd runs here, a unit's state
(`systemctl is-active`), a restart. update_system and check_system (monitoring) both use it."""

import shutil
import subprocess
from pathlib import Path

SYSTEMCTL_TIMEOUT = 10
RESTART_TIMEOUT = 300


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def probe_services(names: list[str]) -> dict[str, str]:
    """`systemctl is-active` for each unit (an argument list with a timeout); "unknown" without systemd."""
    systemctl = shutil.which("systemctl")
    found = {}
    for name in names:
        if not systemctl:
            found[name] = "unknown"
            continue
        try:
            result = subprocess.run(
                [systemctl, "is-active", "--", name],
                capture_output=True,
                text=True,
                timeout=SYSTEMCTL_TIMEOUT,
                check=False,
            )
            found[name] = result.stdout.strip() or "unknown"
        except subprocess.TimeoutExpired:
            found[name] = "timeout"
    return found


class ServiceError(RuntimeError):
    pass


def restart(unit: str) -> None:
    result = subprocess.run(
        ["systemctl", "restart", "--", unit],
        capture_output=True,
        text=True,
        timeout=RESTART_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip()[-500:]
        raise ServiceError(f"systemctl restart {unit} failed (exit {result.returncode}): {said}")
