"""The deployment root: where releases, shared files and the `current` link live.

    ROOT/repo.git  releases/<tag>/  current -> releases/<tag>  previous -> ...
    ROOT/shared/.env  media/  backups/  venvs/<hash>/  updates/  maintenance  update.lock

The root is UPDATER_ROOT when set, otherwise derived from the running code's path (a release is
ROOT/releases/<tag>). Switching `current` is one atomic rename of a new symlink over the old one.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


class NotADeployment(Exception):
    def __init__(self, where: Path | None = None) -> None:
        location = f" ({where})" if where else ""
        super().__init__(
            f"this code is not running inside a deployment root{location}; create one with "
            "manage.py init_deployment --root DIR --repo URL_OR_PATH --version TAG"
        )


@dataclass(frozen=True)
class DeploymentRoot:
    path: Path

    @property
    def repo(self) -> Path:
        return self.path / "repo.git"

    @property
    def releases(self) -> Path:
        return self.path / "releases"

    @property
    def current_link(self) -> Path:
        return self.path / "current"

    @property
    def previous_link(self) -> Path:
        return self.path / "previous"

    @property
    def shared(self) -> Path:
        return self.path / "shared"

    @property
    def env_file(self) -> Path:
        return self.shared / ".env"

    @property
    def media(self) -> Path:
        return self.shared / "media"

    @property
    def backups(self) -> Path:
        return self.shared / "backups"

    @property
    def venvs(self) -> Path:
        return self.shared / "venvs"

    @property
    def updates(self) -> Path:
        return self.shared / "updates"

    @property
    def maintenance_flag(self) -> Path:
        return self.shared / "maintenance"

    @property
    def lock_file(self) -> Path:
        return self.shared / "update.lock"

    def release(self, tag: str) -> Path:
        return self.releases / tag

    def current_release(self) -> Path | None:
        return _link_target(self.current_link)

    def previous_release(self) -> Path | None:
        return _link_target(self.previous_link)

    def create_layout(self) -> None:
        for directory in (self.releases, self.media, self.backups, self.venvs, self.updates):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.backups, 0o700)

    def is_initialized(self) -> bool:
        return self.releases.is_dir() and self.shared.is_dir() and (self.repo / "HEAD").exists()


def _link_target(link: Path) -> Path | None:
    if not link.is_symlink():
        return None
    return (link.parent / os.readlink(link)).resolve()


def point(link: Path, target: Path) -> None:
    """Make link point to target atomically: a new symlink renamed over the old one."""
    relative = os.path.relpath(target, link.parent)
    temporary = link.with_name(f".{link.name}.new-{os.getpid()}")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(relative)
    os.replace(temporary, link)
    fd = os.open(link.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def switch(root: DeploymentRoot, release: Path) -> Path | None:
    """`previous` <- what `current` served, `current` <- release; returns the old release."""
    old = root.current_release()
    if old is not None and old != release.resolve():
        point(root.previous_link, old)
    point(root.current_link, release)
    return old


def find_root() -> DeploymentRoot:
    """The deployment root of the running code, or NotADeployment."""
    configured = getattr(settings, "UPDATER_ROOT", "")
    if configured:
        root = DeploymentRoot(Path(configured))
        if not root.is_initialized():
            raise NotADeployment(root.path)
        return root
    code = Path(settings.BASE_DIR).resolve()
    if code.parent.name == "releases":
        root = DeploymentRoot(code.parent.parent)
        if root.is_initialized():
            return root
    raise NotADeployment()
