"""Git access, the atomic `current` switch and shared virtualenvs, on real repositories and venvs."""

import os
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from tests.support.deployments import git
from updater import layout
from updater.layout import DeploymentRoot
from updater.release import git_repo, venvs


@pytest.fixture
def git_repo_with_tags(tmp_path) -> Path:
    repo = tmp_path / "source"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    git("config", "user.name", "T", cwd=repo)
    for version in ("v1.0.0", "v1.1.0"):
        (repo / "VERSION.txt").write_text(version)
        git("add", ".", cwd=repo)
        git("commit", "-q", "-m", f"feat: release {version}", cwd=repo)
        git("tag", version, cwd=repo)
    git("branch", "feature-x", cwd=repo)
    return repo


def test_mirror_knows_tags_and_refuses_branches_expressions_and_injection(git_repo_with_tags, tmp_path):
    mirror = tmp_path / "repo.git"
    git_repo.mirror(str(git_repo_with_tags), mirror)
    assert git_repo.tags(mirror) == ["v1.0.0", "v1.1.0"]
    assert len(git_repo.tag_commit(mirror, "v1.1.0")) == 40
    for bad in ("feature-x", "main", "v1.1.0~1", "HEAD", "v9.9.9"):
        with pytest.raises(git_repo.InvalidVersion, match="is not a"):
            git_repo.tag_commit(mirror, bad)
    for hostile in ("v1;rm -rf /", "--upload-pack=touch /tmp/x", "$(reboot)", "v1 v2", "../../etc"):
        with pytest.raises(git_repo.InvalidVersion, match="not a valid release tag"):
            git_repo.validate_tag_name(hostile)
    with pytest.raises(git_repo.GitError):
        git_repo.mirror("--upload-pack=touch /tmp/pwned", tmp_path / "other.git")


def test_mirror_fetches_new_tags(git_repo_with_tags, tmp_path):
    mirror = tmp_path / "repo.git"
    git_repo.mirror(str(git_repo_with_tags), mirror)
    git("tag", "v2.0.0", cwd=git_repo_with_tags)
    git_repo.mirror(str(git_repo_with_tags), mirror)
    assert "v2.0.0" in git_repo.tags(mirror)


def test_worktree_holds_the_tagged_code(git_repo_with_tags, tmp_path):
    mirror = tmp_path / "repo.git"
    git_repo.mirror(str(git_repo_with_tags), mirror)
    git_repo.add_worktree(mirror, tmp_path / "releases" / "v1.0.0", "v1.0.0")
    assert (tmp_path / "releases" / "v1.0.0" / "VERSION.txt").read_text() == "v1.0.0"


def test_switch_moves_current_and_previous_atomically(tmp_path):
    root = DeploymentRoot(tmp_path)
    root.create_layout()
    old, new = root.release("v1"), root.release("v2")
    old.mkdir()
    new.mkdir()
    layout.switch(root, old)
    assert root.current_release() == old and root.previous_release() is None

    # A reader looking at `current` the whole time never finds it missing.
    missing = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if not os.path.exists(root.current_link):
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for _ in range(200):
        layout.switch(root, new)
        layout.switch(root, old)
    stop.set()
    watcher.join()
    assert missing == []
    layout.switch(root, new)
    assert root.current_release() == new and root.previous_release() == old
    assert os.readlink(root.current_link) == "releases/v2"  # relative: the root can be moved


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel, written by hand (no build tools, no network)."""
    dist = f"{name}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        wheel.writestr(
            f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def test_venvs_are_keyed_by_requirements_built_offline_and_reused(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    _wheel(wheelhouse, "helpdeskdemo", "1.0")
    _wheel(wheelhouse, "helpdeskdemo", "2.0")
    first, second = tmp_path / "r1.txt", tmp_path / "r2.txt"
    first.write_text("helpdeskdemo==1.0\n")
    second.write_text("helpdeskdemo==2.0\n")

    built = venvs.ensure_venv(tmp_path / "venvs", first, wheelhouse=wheelhouse)
    assert not built.reused
    again = venvs.ensure_venv(tmp_path / "venvs", first, wheelhouse=wheelhouse)
    assert again.reused and again.path == built.path
    other = venvs.ensure_venv(tmp_path / "venvs", second, wheelhouse=wheelhouse)
    assert other.path != built.path
    version = subprocess.run(
        [str(other.python), "-c", "import helpdeskdemo; print(helpdeskdemo.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "2.0"


def test_failed_pip_leaves_no_venv_behind(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-package-anywhere==1.0\n")
    with pytest.raises(venvs.VenvError, match="installing the requirements failed"):
        venvs.ensure_venv(tmp_path / "venvs", requirements, wheelhouse=wheelhouse)
    assert list((tmp_path / "venvs").iterdir()) == []
