"""Creating a deployment root and its first release (init_deployment)."""

import secrets
from dataclasses import dataclass
from pathlib import Path

from updater import layout
from updater.layout import DeploymentRoot
from updater.release import git_repo, releases
from updater.run.files import write_atomically


@dataclass(frozen=True)
class InitResult:
    root: DeploymentRoot
    release: releases.Release
    created_env: bool
    switched: bool


def initialize(
    root_path: Path,
    repo: str,
    tag: str,
    *,
    env_source: Path | None = None,
    database_url: str | None = None,
    wheelhouse: Path | None = None,
    python: str | None = None,
) -> InitResult:
    """Layout, mirror, shared/.env, first release with its venv, migrate, collectstatic, `current`.

    Running it again on an initialized root is safe: what exists is reused, `current` is left alone
    unless it is missing."""
    git_repo.validate_tag_name(tag)
    root = DeploymentRoot(Path(root_path).resolve())
    root.create_layout()
    git_repo.mirror(repo, root.repo)
    git_repo.tag_commit(root.repo, tag)
    created_env = _write_env(root, env_source, database_url)
    release = releases.prepare(root, tag, wheelhouse=wheelhouse, python=python)
    releases.manage_together(
        root,
        release,
        ("compilemessages", "--ignore=.venv", "-v", "0"),
        ("migrate", "--noinput"),
        ("collectstatic", "--noinput"),
    )
    switched = root.current_release() is None
    if switched:
        layout.switch(root, release.path)
    return InitResult(root, release, created_env, switched)


def _write_env(root: DeploymentRoot, source: Path | None, database_url: str | None) -> bool:
    if root.env_file.exists():
        return False
    if source is not None:
        text = Path(source).read_text()
    else:
        text = "\n".join(
            [
                "# Written by init_deployment; see .env.example in any release for every setting.",
                "ENVIRONMENT=prod",
                f"SECRET_KEY={secrets.token_urlsafe(50)}",
                "ALLOWED_HOSTS=localhost,127.0.0.1",
                f"DATABASE_URL={database_url or 'sqlite:///' + str(root.database_file)}",
                "",
            ]
        )
    shared_paths = {
        "MEDIA_ROOT": root.media,
        "BACKUP_DIR": root.backups,
        "LOG_FILE": root.log_file,
        "UPDATER_ROOT": root.path,
    }
    values = {
        name.strip(): value.strip()
        for name, _, value in (line.partition("=") for line in text.splitlines() if "=" in line)
        if not name.lstrip().startswith("#")
    }
    added = {name: path for name, path in shared_paths.items() if name not in values}
    if not values.get("MONITORING_TOKEN"):  # the updater's health wait needs it to see the version
        added["MONITORING_TOKEN"] = secrets.token_urlsafe(32)  # a later line wins over an empty one
    text = text.rstrip("\n") + "\n" + "".join(f"{name}={value}\n" for name, value in added.items())
    write_atomically(
        root.env_file, text.encode(), mode=0o600
    )  # secrets: never readable by others, not even briefly
    return True
