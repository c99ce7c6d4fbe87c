"""Virtualenvs keyed by the sha256 of a release's requirements.txt (and the Python version), shared
by every release with the same requirements under shared/venvs/<key>/.

A venv is built in place and marked complete only when pip has finished; a half-built one (pip
failed, the run was killed) has no marker and is removed before the next build. pip only ever installs
into a new venv, never into the one the site is running.
"""

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

COMPLETE_MARKER = ".helpdesk-venv-complete"
PIP_TIMEOUT = 1800


class VenvError(Exception):
    pass


@dataclass(frozen=True)
class Venv:
    path: Path
    key: str
    reused: bool

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def python_minor(python: str) -> str:
    """The interpreter's "major.minor" (e.g. "3.11"), asked of the interpreter itself."""
    return subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def venv_key(requirements: Path, python: str = sys.executable) -> str:
    version = python_minor(python)
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"\npython {version}".encode())
    return digest.hexdigest()[:20]


def ensure_venv(
    venvs_dir: Path, requirements: Path, *, python: str = sys.executable, wheelhouse: Path | None = None
) -> Venv:
    """Reuse the venv for these requirements, or build it; VenvError (with pip's words) on failure."""
    if not requirements.is_file():
        raise VenvError(f"{requirements} does not exist")
    key = venv_key(requirements, python)
    path = venvs_dir / key
    if (path / COMPLETE_MARKER).exists():
        return Venv(path, key, reused=True)
    if path.exists():
        shutil.rmtree(path)  # an unfinished build
    venvs_dir.mkdir(parents=True, exist_ok=True)
    try:
        _run([python, "-m", "venv", str(path)], "creating the virtualenv")
        install = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        if wheelhouse:
            install += ["--no-index", "--find-links", str(wheelhouse)]
        _run([*install, "-r", str(requirements)], "installing the requirements")
    except VenvError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    (path / COMPLETE_MARKER).write_text(requirements.read_text())
    return Venv(path, key, reused=False)


def link(release: Path, venv: Venv) -> None:
    """release/.venv -> the shared venv."""
    target = release / ".venv"
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(venv.path)


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise VenvError(f"{what} did not finish within {PIP_TIMEOUT}s") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise VenvError(f"{what} failed: {' / '.join(output[-5:])}")
