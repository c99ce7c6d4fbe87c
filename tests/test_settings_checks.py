"""`manage.py check` fails at start-up on settings that would otherwise fail half-way through an update
or page nobody: update windows, notification modes, status page kinds, thresholds, the deployment."""

import os
import shutil
import subprocess
import sys

import pytest
from django.core.checks import run_checks

from tests.conftest import REPO_ROOT
from updater import layout


def ids(**kwargs) -> list[str]:
    kwargs.setdefault("include_deployment_checks", True)
    return sorted(
        message.id for message in run_checks(**kwargs) if message.id.startswith(("updater.", "monitoring."))
    )


def test_the_defaults_pass():
    assert ids() == []


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("UPDATE_WINDOW_ROUTINE", "Sunday 2-6", "updater.E002"),
        ("UPDATE_WINDOW_CRITICAL", "", "updater.E002"),
        ("UPDATE_TIME_ZONE", "Mars/Olympus_Mons", "updater.E001"),
        ("NOTIFY_MODE", "sometimes", "updater.E003"),
        ("STATUS_PAGE_KIND", "pingdom", "updater.E004"),
        ("ALERT_CONSECUTIVE", 0, "monitoring.E003"),
        ("ALERT_HYSTERESIS", 100.0, "monitoring.E004"),
    ],
)
def test_a_bad_setting_is_an_error_naming_it(settings, setting, value, expected):
    setattr(settings, setting, value)
    found = [m for m in run_checks() if m.id == expected]
    assert found and setting in found[0].msg


@pytest.mark.parametrize(
    ("warn", "crit", "expected"),
    [
        (90.0, 90.0, []),  # equal: the warning and the alarm come together, which is allowed
        (90.1, 90.0, ["monitoring.E002"]),
        (80.0, 100.0, []),
        (80.0, 100.1, ["monitoring.E001"]),
        (-0.1, 90.0, ["monitoring.E001"]),
    ],
)
def test_threshold_pairs_are_in_range_and_in_order(settings, warn, crit, expected):
    settings.DISK_WARN_PERCENT, settings.DISK_CRIT_PERCENT = warn, crit
    assert ids() == expected


def test_a_health_url_without_a_token_or_allowed_network_is_an_error(settings):
    settings.UPDATER_HEALTH_URL = "http://127.0.0.1:8000/monitoring/health/"
    settings.MONITORING_TOKEN, settings.MONITORING_ALLOWED_IPS = "", []
    assert ids() == ["updater.E007"]
    settings.MONITORING_ALLOWED_IPS = ["127.0.0.1"]
    assert ids() == []
    settings.MONITORING_TOKEN, settings.MONITORING_ALLOWED_IPS = "t" * 32, []
    assert ids() == []


def test_a_staging_deployment_without_a_reload_method_is_warned_about(settings, tmp_path):
    settings.ENVIRONMENT = "staging"
    settings.UPDATER_RELOAD_COMMAND = settings.UPDATER_RELOAD_PIDFILE = ""
    assert ids() == []  # not a deployment: no release is ever switched
    _deployment(tmp_path, settings)
    settings.UPDATER_RELOAD_COMMAND = settings.UPDATER_RELOAD_PIDFILE = ""
    assert ids() == ["updater.W001"]
    settings.UPDATER_RELOAD_COMMAND = "systemctl reload helpdesk"
    assert ids() == []
    settings.ENVIRONMENT = "dev"
    settings.UPDATER_RELOAD_COMMAND = ""
    assert ids() == []


def _deployment(tmp_path, settings) -> layout.DeploymentRoot:
    root = layout.DeploymentRoot(tmp_path / "srv")
    root.create_layout()
    root.repo.mkdir()
    (root.repo / "HEAD").write_text("ref: refs/heads/main\n")
    settings.UPDATER_ROOT = str(root.path)
    return root


def test_a_deployment_without_git_is_an_error(settings, tmp_path, monkeypatch):
    _deployment(tmp_path, settings)
    assert ids() == []
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert ids() == ["updater.E006"]


def test_a_deployment_root_this_user_cannot_write_is_an_error(tmp_path, settings):
    """shared/ mounted read-only, in a mount namespace of the check's own (root may write anywhere
    else): `manage.py check` names the folder."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is needed for a private read-only mount")
    root = _deployment(tmp_path, settings)
    (tmp_path / "empty.env").write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        ENV_FILE=str(tmp_path / "empty.env"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        UPDATER_ROOT=str(root.path),
    )
    remount_read_only = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
    command = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        remount_read_only,
        str(root.shared),
        sys.executable,
        "manage.py",
        "check",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    if "updater.E005" not in result.stderr and ("mount" in result.stderr or "unshare" in result.stderr):
        pytest.skip(f"no private read-only mount here: {result.stderr.strip()[:200]}")
    assert result.returncode == 1
    assert f"(updater.E005) {root.shared} is not writable by this user" in result.stderr
    assert os.access(root.shared, os.W_OK)  # outside that namespace nothing changed


def test_manage_py_check_fails_at_once_on_a_bad_window(manage):
    result = manage("check", UPDATE_WINDOW_IMPORTANT="weekends", NOTIFY_MODE="loud")
    assert result.returncode == 1
    assert "UPDATE_WINDOW_IMPORTANT cannot be read" in result.stderr
    assert "NOTIFY_MODE 'loud' is unknown" in result.stderr


def test_an_updater_command_refuses_bad_settings_with_exit_2_before_touching_anything(manage, tmp_path):
    result = manage("safe_migrate", UPDATE_WINDOW_ROUTINE="Sunday night")
    assert result.returncode == 2
    assert "UPDATE_WINDOW_ROUTINE cannot be read" in result.stderr
    assert not (tmp_path / "db.sqlite3").exists() or (tmp_path / "db.sqlite3").stat().st_size == 0
