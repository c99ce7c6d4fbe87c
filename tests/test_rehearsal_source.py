"""Where a rehearsal's copy comes from: the newest verified backup when it is recent and holds the
schema the live database has now (sparing the live server a dump), else the live database itself."""

import json
import time

import pytest
from django.core.management import call_command

from tests.support.deployments import migrations
from tests.support.tampering import flip_byte
from updater.backup import backups
from updater.backup.manifest import manifest_path
from updater.plan import rehearsal

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_recent_verified_backup_of_the_current_schema_is_used(tmp_path):
    taken = backups.create_backup(output=tmp_path, reason="nightly")
    found = rehearsal.recent_backup(tmp_path, 3600)
    assert found is not None and found.path == taken.path
    assert sum(len(chunk) for chunk in backups.dump_of(found)) == found.manifest.raw_bytes


def test_an_older_backup_is_not_used(tmp_path):
    taken = backups.create_backup(output=tmp_path)
    manifest = json.loads(manifest_path(taken.path).read_text())
    manifest["finished_at"] = "2020-01-01T00:00:00+00:00"
    manifest_path(taken.path).write_text(json.dumps(manifest))
    assert rehearsal.recent_backup(tmp_path, 3600) is None
    assert rehearsal.recent_backup(tmp_path, 0) is None  # 0: always the live database


def test_a_backup_of_another_schema_is_not_used(tmp_path):
    backups.create_backup(output=tmp_path)
    call_command("migrate", "crm", migrations()[-2], fake=True, verbosity=0)  # the live schema moved
    try:
        assert rehearsal.recent_backup(tmp_path, 3600) is None
    finally:
        call_command("migrate", "crm", fake=True, verbosity=0)
    assert rehearsal.recent_backup(tmp_path, 3600) is not None


def test_a_backup_that_fails_verification_is_skipped_for_an_older_good_one(tmp_path):
    good = backups.create_backup(output=tmp_path)
    time.sleep(1.1)  # backups are named to the second
    bad = backups.create_backup(output=tmp_path)
    flip_byte(bad.path)
    found = rehearsal.recent_backup(tmp_path, 3600)
    assert found is not None and found.path == good.path
