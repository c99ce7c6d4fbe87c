"""The updater's commands on a site whose views are broken: they run the checks of the settings, the
models and the database, not those that import every view (updater/command_options.
CHECKS_WITHOUT_VIEWS); a failed settings check still refuses them."""

import sqlite3

import pytest

BROKEN_VIEWS = {"DJANGO_SETTINGS_MODULE": "tests.support.broken_site_settings"}


@pytest.fixture
def site(manage, tmp_path) -> dict[str, str]:
    """A migrated SQLite site with one organization; its backups and media under tmp_path."""
    env = {"BACKUP_DIR": str(tmp_path / "backups"), "MEDIA_ROOT": str(tmp_path / "media")}
    assert manage("migrate", "-v", "0", **env).returncode == 0
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        db.execute("INSERT INTO crm_organization (name, email) VALUES ('Acme', '')")
    return env


def organizations(tmp_path) -> list[str]:
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        return [name for (name,) in db.execute("SELECT name FROM crm_organization")]


def test_a_backup_and_its_restore_work_when_the_sites_views_cannot_be_imported(manage, site, tmp_path):
    checked = manage("check", **site, **BROKEN_VIEWS)
    assert checked.returncode != 0 and "no_such_urls" in checked.stderr  # the site is really broken

    taken = manage("backup_database", **site, **BROKEN_VIEWS)
    assert taken.returncode == 0, taken.stderr
    assert "Backup written and verified" in taken.stdout
    [backup] = (tmp_path / "backups").glob("db-*.gz")
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        db.execute("DELETE FROM crm_organization")

    restored = manage("restore_database", str(backup), "--no-input", **site, **BROKEN_VIEWS)
    assert restored.returncode == 0, restored.stderr
    assert organizations(tmp_path) == ["Acme"]
    migrated = manage("safe_migrate", **site, **BROKEN_VIEWS)
    assert migrated.returncode == 0, migrated.stderr


def test_a_failed_settings_check_still_refuses_a_backup_and_a_restore(manage, site, tmp_path):
    taken = manage("backup_database", **site)
    assert taken.returncode == 0, taken.stderr
    [backup] = (tmp_path / "backups").glob("db-*.gz")
    bad = {**site, "NOTIFY_MODE": "sometimes"}  # updater.E003

    refused = manage("backup_database", **bad)
    assert refused.returncode == 2 and "updater.E003" in refused.stderr
    assert list((tmp_path / "backups").glob("db-*.gz")) == [backup]  # nothing written
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        db.execute("DELETE FROM crm_organization")
    refused = manage("restore_database", str(backup), "--no-input", **bad)
    assert refused.returncode == 2 and "updater.E003" in refused.stderr
    assert organizations(tmp_path) == []  # nothing restored
