"""Fixtures' helpers for real deployments: a wheel folder for offline venvs and tagged git repositories."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import free_port, start_gunicorn

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


def serve_current(
    root: Path, port: int | None = None, configure: bool = True, **settings: str
) -> tuple[subprocess.Popen, str]:
    """gunicorn (2 workers) serving the deployment's `current` on a loopback port (a free one unless
    given), reloaded by the updater with SIGHUP and checked through its health URL: with `configure`,
    those and `settings` go into shared/.env. (the process, its base URL)"""
    port = port or free_port()
    pidfile = root / "shared" / "gunicorn.pid"
    base = f"http://127.0.0.1:{port}"
    if configure:
        settings = {
            "UPDATER_RELOAD_PIDFILE": str(pidfile),
            "UPDATER_HEALTH_URL": f"{base}/monitoring/health/",
            "UPDATER_HEALTH_TIMEOUT": "60",
            **settings,
        }
        with (root / "shared" / ".env").open("a") as env_file:
            env_file.writelines(f"{key}={value}\n" for key, value in settings.items())
    env = {
        "PATH": os.environ["PATH"],
        "ENV_FILE": str(root / "shared" / ".env"),
        "GUNICORN_WORKERS": "2",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_PIDFILE": str(pidfile),
        "GUNICORN_CHDIR": str(root / "current"),
        "GUNICORN_ACCESSLOG": "",
    }
    server = start_gunicorn(env, root / "current", str(root / "current" / ".venv" / "bin" / "python"))
    return server, base
