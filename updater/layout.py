"""Where everything lives: the ONLY owner of the updater's paths. Settings, monitoring and every
command ask this module; none of them joins a path of its own.

In a deployment (ROOT is UPDATER_ROOT, or derived from the running code's path ROOT/releases/<tag>):

    ROOT/repo.git  releases/<tag>/  current -> releases/<tag>  previous -> ...
    ROOT/shared/.env  media/  backups/  venvs/<hash>/  updates/  maintenance  update.lock
                monitoring-state.json  auto_update.json

Outside a deployment (development, tests) the same state lives in a local folder, UPDATER_STATE_DIR
or var/ beside the code (git-ignored), so that running a command never leaves a file in the checkout.
Switching `current` is one atomic rename of a new symlink over the old one.
"""

import functools
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
class StateDir:
    """The folder of run state that every release (and every tool) reads: shared/ or a local var/."""

    path: Path

    @property
    def updates(self) -> Path:
        """The write-ahead journal of every run, and the reports beside it."""
        return self.path / "updates"

    @property
    def lock_file(self) -> Path:
        return self.path / "update.lock"

    @property
    def maintenance_flag(self) -> Path:
        # UPDATER_MAINTENANCE_FLAG puts it where every server of a fleet sees it (the shared media store).
        configured = getattr(settings, "UPDATER_MAINTENANCE_FLAG", "")
        return Path(configured) if configured else self.path / "maintenance"

    @property
    def rehearsals(self) -> Path:
        """What rehearsing each target's migrations on a scratch copy measured (updater/plan/rehearsal.py)."""
        return self.path / "rehearsals"

    @property
    def backups(self) -> Path:
        # BACKUP_DIR moves backups to another disk; the updater and monitoring both ask here.
        configured = getattr(settings, "BACKUP_DIR", "")
        return Path(configured) if configured else self.path / "backups"

    @property
    def quarantine(self) -> Path:
        """Media files a restore moved aside (added after the backup it restored): kept, never deleted."""
        return self.path / "quarantine"

    @property
    def offsite_state(self) -> Path:
        """What the last shipment to the off-site repository did (updater/backup/offsite.py)."""
        return self.path / "offsite.json"

    @property
    def outbox_lock(self) -> Path:
        """Held while the mail outbox is being sent (crm/outbox.py): runs never overlap."""
        return self.path / "outbox.lock"

    @property
    def promotion_state(self) -> Path:
        """What the predecessor environment attested when last asked (updater/plan/promotion.py)."""
        return self.path / "promotion.json"

    @property
    def monitoring_state(self) -> Path:
        return self.path / "monitoring-state.json"

    @property
    def auto_update_state(self) -> Path:
        return self.path / "auto_update.json"


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
    def state(self) -> StateDir:
        return StateDir(self.shared)

    @property
    def env_file(self) -> Path:
        return self.shared / ".env"

    @property
    def media(self) -> Path:
        return self.shared / "media"

    @property
    def database_file(self) -> Path:
        """Where init_deployment puts a SQLite database when no DATABASE_URL is given."""
        return self.shared / "db.sqlite3"

    @property
    def log_file(self) -> Path:
        return self.shared / "logs" / "helpdesk.log"

    @property
    def backups(self) -> Path:
        return self.state.backups

    @property
    def rehearsals(self) -> Path:
        return self.state.rehearsals

    @property
    def venvs(self) -> Path:
        return self.shared / "venvs"

    @property
    def updates(self) -> Path:
        return self.state.updates

    @property
    def maintenance_flag(self) -> Path:
        return self.state.maintenance_flag

    @property
    def lock_file(self) -> Path:
        return self.state.lock_file

    def release(self, tag: str) -> Path:
        return self.releases / tag

    def current_release(self) -> Path | None:
        return _link_target(self.current_link)

    def previous_release(self) -> Path | None:
        return _link_target(self.previous_link)

    def current_version(self) -> str | None:
        release = self.current_release()
        return release.name if release else None

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
    root = _deployment_root()
    if root is None:
        configured = getattr(settings, "UPDATER_ROOT", "")
        raise NotADeployment(Path(configured) if configured else None)
    return root


def _deployment_root() -> DeploymentRoot | None:
    configured = getattr(settings, "UPDATER_ROOT", "")
    if configured:
        root = DeploymentRoot(Path(configured))
        return root if root.is_initialized() else None
    code = _resolved(str(settings.BASE_DIR))
    if code.parent.name == "releases":
        root = DeploymentRoot(code.parent.parent)
        if root.is_initialized():
            return root
    return None


@functools.lru_cache(maxsize=4)
def _resolved(path: str) -> Path:
    """The code's real path, resolved once: the maintenance middleware asks on every request."""
    return Path(path).resolve()


def state() -> StateDir:
    """The run state of the running code: its deployment's shared/, else the local state folder."""
    root = _deployment_root()
    if root is not None:
        return root.state
    configured = getattr(settings, "UPDATER_STATE_DIR", "")
    return StateDir(Path(configured) if configured else Path(settings.BASE_DIR) / "var")
