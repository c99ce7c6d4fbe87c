"""The running application's version: APP_VERSION, else a VERSION file, else `git describe`."""

import os
import subprocess
from functools import cache
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


@cache
def app_version() -> str:
    if os.environ.get("APP_VERSION"):
        return os.environ["APP_VERSION"]
    version_file = BASE_DIR / "VERSION"
    if version_file.is_file():
        return version_file.read_text().strip() or "unknown"
    try:
        described = subprocess.run(
            ["git", "describe", "--tags", "--always", "--dirty"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return described.stdout.strip() if described.returncode == 0 and described.stdout.strip() else "unknown"
