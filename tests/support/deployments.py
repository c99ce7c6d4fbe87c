"""Fixtures' helpers for real deployments: a wheel folder for offline venvs and tagged git repositories."""

import hashlib
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def wheelhouse_for(requirements: Path) -> Path:
    """Wheels of the project's pinned requirements, built once and kept beside the test venv."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    folder = Path(sys.prefix) / f"wheelhouse-{digest}"
    if not (folder / ".complete").exists():
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
        subprocess.run([*command, "-r", str(requirements), "-w", str(folder)], check=True, timeout=900)
        (folder / ".complete").write_text("")
    return folder


def clone_project(destination: Path) -> Path:
    """A fresh repository holding this project's committed code, with an identity for new commits."""
    git("clone", "-q", "--no-hardlinks", str(REPO_ROOT), str(destination), cwd=REPO_ROOT)
    git("config", "user.email", "tests@helpdesk.example", cwd=destination)
    git("config", "user.name", "Helpdesk tests", cwd=destination)
    return destination


def migrations(app: str = "crm") -> list[str]:
    """The app's migrations in this checkout, oldest first: "0001_initial", ..."""
    return sorted(p.stem for p in (REPO_ROOT / app / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py"))


def newest_migration(app: str = "crm") -> str:
    """The app's newest migration in this checkout: what a test release's own migrations follow."""
    return migrations(app)[-1]


def next_migration(name: str, *, after: int = 1, app: str = "crm") -> str:
    """A migration name numbered `after` places past the newest: "0005_organization_phone"."""
    return f"{int(newest_migration(app)[:4]) + after:04d}_{name}"
