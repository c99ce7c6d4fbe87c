"""Releases: one git worktree per tag under releases/, with its venv and the shared files linked in,
and commands run *inside* a release by that release's own Python (stage two runs the new code)."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from updater import git_repo, venvs
from updater.deployment import DeploymentRoot

# The release reads its configuration from shared/.env only; these are the variables worth passing on.
_PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
COMMAND_TIMEOUT = 1800


class ReleaseError(Exception):
    pass


@dataclass(frozen=True)
class Release:
    tag: str
    path: Path
    venv: venvs.Venv

    @property
    def python(self) -> Path:
        return self.path / ".venv" / "bin" / "python"


def prepare(
    root: DeploymentRoot, tag: str, *, wheelhouse: Path | None = None, python: str | None = None
) -> Release:
    """Worktree, VERSION, venv (reused or built) and shared links for tag. The live site is untouched."""
    path = root.release(tag)
    if not path.exists():
        git_repo.add_worktree(root.repo, path, tag)
    (path / "VERSION").write_text(tag + "\n")
    env_link = path / ".env"
    if not env_link.is_symlink():
        env_link.unlink(missing_ok=True)
        env_link.symlink_to(os.path.relpath(root.env_file, path))
    try:
        venv = venvs.ensure_venv(
            root.venvs,
            path / "requirements.txt",
            wheelhouse=wheelhouse,
            **({"python": python} if python else {}),
        )
    except venvs.VenvError as error:
        raise ReleaseError(f"the virtualenv for {tag} could not be built: {error}") from error
    venvs.link(path, venv)
    return Release(tag, path, venv)


def manage(root: DeploymentRoot, release: Release, *args: str, timeout: int = COMMAND_TIMEOUT) -> str:
    """Run manage.py in the release with its own Python and the shared configuration."""
    environment = {key: os.environ[key] for key in _PASSED_ENVIRONMENT if key in os.environ}
    environment["ENV_FILE"] = str(root.env_file)
    try:
        result = subprocess.run(
            [str(release.python), "manage.py", *args],
            cwd=release.path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"manage.py {args[0]} in {release.tag} did not finish within {timeout}s") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ReleaseError(f"manage.py {' '.join(args)} failed in {release.tag}: {output[-2000:]}")
    return result.stdout
