"""Releases before the in-memory option file wrote the database password to
<tmp>/helpdesk-mysql-XXXX/client.cnf, and a backup killed with SIGKILL left it there. A backup now
removes such files once they are a day old, and says so; nothing else in the temporary directory."""

import os
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection

from updater.backup import backups
from updater.backup.engines.client_options import LEFT_OVER_AFTER_SECONDS, remove_left_over_option_files

NOW = 1_800_000_000.0
PASSWORD_FILE = "[client]\nuser=helpdesk\npassword=secret\n"


def left_over(tmp: Path, name: str, age: float, *extra: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    option_file = folder / "client.cnf"
    option_file.write_text(PASSWORD_FILE)
    for other in extra:
        (folder / other).write_text("x")
    os.utime(option_file, (NOW - age, NOW - age))
    return option_file


def test_an_option_file_a_day_old_is_removed_with_its_folder_and_a_younger_one_is_kept(tmp_path):
    old = left_over(tmp_path, "helpdesk-mysql-old", LEFT_OVER_AFTER_SECONDS)
    young = left_over(tmp_path, "helpdesk-mysql-young", LEFT_OVER_AFTER_SECONDS - 1)
    assert remove_left_over_option_files(tmp_path, now=NOW) == [old]
    assert not old.parent.exists()
    assert young.read_text() == PASSWORD_FILE


def test_folders_that_are_not_a_left_over_are_kept(tmp_path):
    crowded = left_over(tmp_path, "helpdesk-mysql-crowded", 2 * LEFT_OVER_AFTER_SECONDS, "notes.txt")
    other_name = left_over(tmp_path, "helpdesk-sqlite-x", 2 * LEFT_OVER_AFTER_SECONDS)
    # A link someone could plant in a shared /tmp, pointing at a folder of ours that looks like one.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = left_over(elsewhere, "mine", 2 * LEFT_OVER_AFTER_SECONDS)
    (tmp_path / "helpdesk-mysql-link").symlink_to(target.parent)
    assert remove_left_over_option_files(tmp_path, now=NOW) == []
    assert crowded.exists() and other_name.exists() and target.read_text() == PASSWORD_FILE


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'mysql'", reason="only the MySQL engine wrote option files")
def test_a_backup_removes_a_left_over_and_names_it_among_its_warnings(tmp_path, state_dir, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old = left_over(tmp_path, "helpdesk-mysql-killed", 0)
    os.utime(old, (time.time() - LEFT_OVER_AFTER_SECONDS - 60,) * 2)
    result = backups.create_backup()
    assert not old.exists()
    assert [w for w in result.warnings if str(old) in w and "earlier release" in w]
    assert connection.settings_dict["PASSWORD"] not in " ".join(result.warnings)
