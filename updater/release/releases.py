"""Releases: one git worktree per tag under releases/, with its venv and the shared files linked in,
and commands run *inside* a release by that release's own Python (stage two runs the new code)."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from updater.layout import DeploymentRoot
from updater.release import git_repo, marks, venvs

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
    return start(root, release, *args).result(timeout)


def manage_together(root: DeploymentRoot, release: Release, *commands: tuple[str, ...]) -> list[str]:
    """Independent manage.py commands at once (each is mostly Python start-up; preparing a release
    takes half as long on two cores). Their outputs in order; the first failure stops the others."""
    running = [start(root, release, *command) for command in commands]
    try:
        return [each.result() for each in running]
    finally:
        for each in running:
            if each.process.poll() is None:
                each.process.kill()
                each.process.communicate()


@dataclass
class Running:
    """manage.py started in a release, to be waited for later (work that overlaps other steps)."""

    release: Release
    args: tuple[str, ...]
    process: subprocess.Popen

    def result(self, timeout: int = COMMAND_TIMEOUT) -> str:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise ReleaseError(
                f"manage.py {self.args[0]} in {self.release.tag} did not finish within {timeout}s"
            ) from None
        if self.process.returncode != 0:
            output = (stderr or stdout).strip()
            raise ReleaseError(
                f"manage.py {' '.join(self.args)} failed in {self.release.tag}: {output[-2000:]}"
            )
        return stdout


def start(
    root: DeploymentRoot, release: Release, *args: str, environment: dict[str, str] | None = None
) -> Running:
    """manage.py in the release with the shared configuration; `environment` on top (it wins over
    shared/.env, as real environment variables do)."""
    passed = {key: os.environ[key] for key in _PASSED_ENVIRONMENT if key in os.environ}
    environment = passed | {"ENV_FILE": str(root.env_file)} | (environment or {})
    process = subprocess.Popen(
        [str(release.python), "manage.py", *args],
        cwd=release.path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Running(release, args, process)


def remove_old(root: DeploymentRoot, keep: int) -> list[str]:
    """Keep the `keep` newest good releases; never current, previous, or a bad one (its evidence).
    Returns the names of the releases removed."""
    protected = {p for p in (root.current_release(), root.previous_release()) if p}
    candidates = sorted(
        (p for p in root.releases.iterdir() if p.is_dir() and marks.bad_reason(p) is None),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = []
    for release in candidates[keep:]:
        if release.resolve() in protected:
            continue
        git_repo.remove_worktree(root.repo, release)
        removed.append(release.name)
    return removed
