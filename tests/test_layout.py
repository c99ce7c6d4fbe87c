"""updater/layout.py is the one owner of every state path: in a deployment, outside one, and for
monitoring as for the updater."""

import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from monitoring import state as monitoring_state
from tests.conftest import REPO_ROOT
from updater import layout
from updater.backup import backups
from updater.run import journal, maintenance


def test_outside_a_deployment_state_lives_in_a_git_ignored_folder_beside_the_code(settings):
    settings.UPDATER_STATE_DIR = ""
    here = layout.state()
    assert here.path == Path(django_settings.BASE_DIR) / "var"
    for path in (here.lock_file, here.maintenance_flag, here.updates / "x.json", here.backups / "a.sql.gz"):
        relative = path.relative_to(REPO_ROOT)
        ignored = subprocess.run(["git", "check-ignore", "-q", str(relative)], cwd=REPO_ROOT, check=False)
        assert ignored.returncode == 0, f"{relative} would show up in git status"


def test_in_a_deployment_every_module_asks_the_same_shared_folder(settings, tmp_path):
    root = layout.DeploymentRoot(tmp_path / "srv")
    root.create_layout()
    (root.repo).mkdir()
    (root.repo / "HEAD").write_text("ref: refs/heads/main\n")
    settings.UPDATER_ROOT = str(root.path)
    assert layout.state().path == root.shared
    assert maintenance.flag_path() == root.shared / "maintenance"
    assert journal.default_directory() == root.shared / "updates"
    assert backups.default_directory() == root.shared / "backups" == root.backups
    assert monitoring_state.path() == root.shared / "monitoring-state.json"
    assert root.lock_file == root.shared / "update.lock"


@pytest.mark.parametrize("in_deployment", [False, True])
def test_backup_dir_moves_backups_for_the_updater_and_monitoring_alike(settings, tmp_path, in_deployment):
    if in_deployment:
        root = layout.DeploymentRoot(tmp_path / "srv")
        root.create_layout()
        (root.repo).mkdir()
        (root.repo / "HEAD").write_text("ref: refs/heads/main\n")
        settings.UPDATER_ROOT = str(root.path)
    settings.BACKUP_DIR = str(tmp_path / "other-disk")
    assert backups.default_directory() == tmp_path / "other-disk" == layout.state().backups
