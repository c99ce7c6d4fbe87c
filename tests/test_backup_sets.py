"""Backup sets: the database dump and the media files (attachments) taken, verified and restored
together, on the real database of the run. Files are stored once by content; a restore puts back
exactly the files the restored rows refer to and moves every other live file aside."""

import grp
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection

from crm import demo_data
from crm.models import Ticket, TicketAttachment
from tests.conftest import REPO_ROOT
from tests.support.tampering import flip_byte
from tests.test_backups import child_database_url
from updater.backup import backups, media
from updater.backup.manifest import BackupInvalid, manifest_path, verify_backup

pytestmark = pytest.mark.django_db(transaction=True)

POLISH_NAME = "zażółć-gęślą-jaźń.txt"


@pytest.fixture
def helpdesk(db, state_dir):
    demo_data.seed(tickets=6, orgs=2)
    tickets = list(Ticket.objects.order_by("pk")[:3])
    attach(tickets[0], "invoice.pdf", b"%PDF-1.4 " + os.urandom(2 * 1024 * 1024))
    attach(tickets[1], POLISH_NAME, "Zażółć gęślą jaźń\n".encode())
    attach(tickets[2], "same-as-first.txt", b"identical content\n")
    attach(tickets[2], "same-as-second.txt", b"identical content\n")
    return state_dir


def attach(ticket: Ticket, name: str, content: bytes) -> TicketAttachment:
    return TicketAttachment.objects.create(
        ticket=ticket,
        uploaded_by=ticket.created_by,
        file=SimpleUploadedFile(name, content),
        original_name=name,
        size=len(content),
        content_type="application/octet-stream",
    )


def media_files() -> dict[str, str]:
    """What a user would compare: every file under MEDIA_ROOT and its sha256."""
    root = Path(settings.MEDIA_ROOT)
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def attachment_rows() -> dict[str, int]:
    return dict(TicketAttachment.objects.values_list("file", "size"))


def restore(*args: str) -> str:
    out = StringIO()
    call_command("restore_database", *args, "--no-input", stdout=out, stderr=out)
    return out.getvalue()


def stored_object(result: backups.BackupResult, relative: str) -> Path:
    entries = media.read_listing(result.path, result.manifest.media_listing_sha256)
    entry = next(entry for entry in entries if entry.path == relative)
    return media.object_path(media.store_of(result.path), entry.sha256)


def test_a_backup_set_restores_rows_and_files_onto_an_empty_deployment(helpdesk):
    files_before, rows_before = media_files(), attachment_rows()
    result = backups.create_backup()
    assert result.manifest.media_files == 4
    assert result.manifest.media_bytes == sum(rows_before.values())

    call_command("flush", "--no-input")
    shutil.rmtree(settings.MEDIA_ROOT)
    assert TicketAttachment.objects.count() == 0

    output = restore(str(result.path))
    assert attachment_rows() == rows_before
    assert media_files() == files_before
    assert "Media files: 4 put back, 0 already in place." in output
    for attachment in TicketAttachment.objects.all():
        with attachment.file.open("rb") as handle:
            assert len(handle.read()) == attachment.size


def test_stored_files_are_private_and_identical_content_is_stored_once(helpdesk):
    result = backups.create_backup()
    store = media.store_of(result.path)
    objects = [path for path in store.rglob("*") if path.is_file() and path.name != ".lock"]
    assert len(objects) == 3  # four files, two of them with the same content
    assert {oct(path.stat().st_mode & 0o777) for path in objects} == {"0o600"}
    assert oct(media.listing_path(result.path).stat().st_mode & 0o777) == "0o600"


def test_a_tampered_media_file_is_refused_like_a_tampered_dump_and_nothing_changes(helpdesk):
    result = backups.create_backup()
    stored = stored_object(result, next(name for name in attachment_rows() if name.endswith(".pdf")))
    flip_byte(stored, offset=100)
    later = attach(Ticket.objects.first(), "after.txt", b"made after the backup\n")
    files_before = media_files()

    with pytest.raises(CommandError, match=r"\.pdf of .* does not match its checksum: it was altered"):
        restore(str(result.path))
    with pytest.raises(CommandError, match="does not match its checksum"):
        call_command("backup_database", "--verify", str(result.path), stdout=StringIO())
    assert TicketAttachment.objects.filter(pk=later.pk).exists()
    assert media_files() == files_before


def test_a_missing_or_truncated_media_file_is_refused(helpdesk):
    result = backups.create_backup()
    name = next(name for name in attachment_rows() if name.endswith(".pdf"))
    stored = stored_object(result, name)
    stored.write_bytes(stored.read_bytes()[:-1])
    with pytest.raises(BackupInvalid, match="truncated or altered"):
        verify_backup(result.path)
    stored.unlink()
    with pytest.raises(BackupInvalid, match="is missing from media-objects/"):
        verify_backup(result.path)


def test_an_altered_listing_or_one_pointing_outside_media_root_is_refused(helpdesk):
    result = backups.create_backup()
    listing = media.listing_path(result.path)
    data = json.loads(listing.read_text())
    data["files"][0][0] = "../../etc/cron.d/evil"
    listing.write_text(json.dumps(data))
    with pytest.raises(BackupInvalid, match=r"media listing .* was altered"):
        verify_backup(result.path)
    # A forger who also rewrites the manifest's digest is still refused: the path leaves MEDIA_ROOT.
    manifest = json.loads(manifest_path(result.path).read_text())
    manifest["media_listing_sha256"] = hashlib.sha256(listing.read_bytes()).hexdigest()
    manifest_path(result.path).write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="names a path outside MEDIA_ROOT"):
        restore(str(result.path))
    assert not (Path(settings.MEDIA_ROOT).parent.parent / "etc").exists()


def test_unchanged_media_is_not_copied_again_and_a_changed_file_is(helpdesk):
    first = backups.create_backup()
    assert len(first.new_media) == 3
    second = backups.create_backup()
    assert second.new_media == frozenset()
    assert second.manifest.media_files == 4
    verify_backup(second.path)  # every file of the second set is there

    name = next(name for name in attachment_rows() if name.endswith(".txt"))
    with open(Path(settings.MEDIA_ROOT) / name, "ab") as handle:
        handle.write(b"appended\n")
    third = backups.create_backup()
    assert len(third.new_media) == 1
    assert stored_object(third, name).read_bytes().endswith(b"appended\n")

    pdf = TicketAttachment.objects.get(original_name="invoice.pdf").file.name
    content = (Path(settings.MEDIA_ROOT) / pdf).read_bytes()
    (Path(settings.MEDIA_ROOT) / pdf).write_bytes(content[::-1])  # same size, new content and mtime
    fourth = backups.create_backup()
    assert len(fourth.new_media) == 1
    assert stored_object(fourth, pdf).read_bytes() == content[::-1]


def test_an_upload_during_the_backup_comes_back_with_its_row_or_not_at_all(helpdesk, monkeypatch):
    """The upload lands after the dump's snapshot and before the files are listed: its file is in the
    set, its row is not. The restore must not bring back a file no row refers to."""
    take = media.take
    late: list[str] = []

    def upload_then_take(*args, **kwargs):
        late.append(attach(Ticket.objects.first(), "during.txt", b"uploaded during the backup\n").file.name)
        return take(*args, **kwargs)

    monkeypatch.setattr(media, "take", upload_then_take)
    result = backups.create_backup()
    monkeypatch.setattr(media, "take", take)
    assert result.manifest.media_files == 5  # the file was listed...

    call_command("flush", "--no-input")
    shutil.rmtree(settings.MEDIA_ROOT)
    restore(str(result.path))
    rows = attachment_rows()
    assert late[0] not in rows  # ...its row was not in the dump...
    assert late[0] not in media_files()  # ...so neither comes back
    assert set(media_files()) == set(rows)  # and every row has its file


def test_a_restore_moves_newer_and_changed_files_aside_and_names_them(helpdesk, state_dir):
    result = backups.create_backup()
    files_before = media_files()
    newer = attach(Ticket.objects.first(), "newer.txt", b"added after the backup\n").file.name
    changed = TicketAttachment.objects.get(original_name=POLISH_NAME).file.name
    (Path(settings.MEDIA_ROOT) / changed).write_bytes(b"edited in place after the backup\n")
    same_size = TicketAttachment.objects.get(original_name="invoice.pdf").file.name
    pdf = Path(settings.MEDIA_ROOT) / same_size
    pdf.write_bytes(pdf.read_bytes()[::-1])  # altered, its size unchanged

    output = restore(str(result.path))
    assert media_files() == files_before
    assert not TicketAttachment.objects.filter(file=newer).exists()
    assert "Moved aside (not deleted) to" in output
    assert f"  {newer}" in output and f"  {changed}" in output
    quarantine = next(state_dir.quarantine.iterdir())
    assert (quarantine / newer).read_bytes() == b"added after the backup\n"
    assert (quarantine / changed).read_bytes() == b"edited in place after the backup\n"
    assert f"  {same_size}" in output and (quarantine / same_size).exists()


def test_media_only_puts_files_back_and_leaves_the_database(helpdesk):
    result = backups.create_backup()
    files_before = media_files()
    lost = next(iter(files_before))
    (Path(settings.MEDIA_ROOT) / lost).unlink()
    newer = Ticket.objects.create(
        title="made after the backup",
        organization_id=Ticket.objects.first().organization_id,
        created_by=Ticket.objects.first().created_by,
    )

    output = restore(str(result.path), "--media-only")
    assert media_files() == files_before
    assert Ticket.objects.filter(pk=newer.pk).exists()
    assert "Media files: 1 put back, 3 already in place." in output


def test_database_only_leaves_the_media_files_alone(helpdesk):
    result = backups.create_backup()
    newer = attach(Ticket.objects.first(), "newer.txt", b"added after the backup\n").file.name
    files_before = media_files()
    output = restore(str(result.path), "--database-only")
    assert not TicketAttachment.objects.filter(file=newer).exists()
    assert media_files() == files_before
    assert "Media files" not in output


def test_media_only_refuses_a_database_only_backup(helpdesk):
    result = backups.create_backup(include_media=False)
    assert not result.manifest.has_media
    assert not media.listing_path(result.path).exists()
    with pytest.raises(CommandError, match="holds no media files"):
        restore(str(result.path), "--media-only")


def test_rotation_removes_stored_files_that_no_kept_backup_lists(helpdesk):
    first = backups.create_backup()
    gone = TicketAttachment.objects.get(file__endswith=".pdf")
    gone_object = stored_object(first, gone.file.name)
    gone.file.delete(save=False)
    gone.delete()
    kept = backups.create_backup(rotate=1)
    assert kept.rotated == [first.path]
    assert not media.listing_path(first.path).exists()
    assert not gone_object.exists()
    verify_backup(kept.path)  # every file the kept set lists is still stored


def test_restored_files_get_the_modes_and_group_of_uploads(helpdesk, settings):
    settings.MEDIA_GROUP = "nogroup"
    result = backups.create_backup()
    shutil.rmtree(settings.MEDIA_ROOT)
    restore(str(result.path))
    nogroup = grp.getgrnam("nogroup").gr_gid
    for name in attachment_rows():
        path = Path(settings.MEDIA_ROOT) / name
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_gid) == (0o640, nogroup)
        assert (stat.S_IMODE(path.parent.stat().st_mode), path.parent.stat().st_gid) == (0o750, nogroup)


def test_a_restore_killed_while_writing_files_is_undone_by_recover_files_and_rows_alike(helpdesk, tmp_path):
    """Killed (as a power loss) with the live files moved aside and the set's half written back:
    `rollback --recover` puts the safety set back — the rows and the files as they were before."""
    result = backups.create_backup()
    newer = attach(Ticket.objects.first(), "newer.txt", b"added after the backup\n").file.name
    shutil.rmtree(
        Path(settings.MEDIA_ROOT)
        / TicketAttachment.objects.get(original_name="invoice.pdf").file.name.rsplit("/", 1)[0]
    )
    files_before, rows_before = media_files(), attachment_rows()

    killed = manage_py(
        tmp_path, "restore_database", str(result.path), "--no-input", failpoints="restore files:during=kill"
    )
    assert killed.returncode == -9
    assert media_files() != files_before  # half restored
    recovered = manage_py(tmp_path, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    assert (media_files(), attachment_rows()) == (files_before, rows_before)
    assert newer in files_before


def manage_py(tmp_path: Path, *args: str, failpoints: str = "") -> subprocess.CompletedProcess:
    env_file = tmp_path / "child.env"
    env_file.write_text("")
    env = {
        **os.environ,
        "ENV_FILE": str(env_file),
        "DATABASE_URL": child_database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "UPDATER_STATE_DIR": str(settings.UPDATER_STATE_DIR),
        "UPDATER_FAILPOINTS": failpoints,
    }
    try:
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "manage.py"), *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            start_new_session=True,  # the failpoint kills its whole process group, not pytest
            timeout=300,
        )
    finally:
        connection.close()  # a restored SQLite file is a new file: read (and flush) that one


def test_a_stored_file_altered_after_verification_is_caught_while_copying_and_everything_put_back(helpdesk):
    result = backups.create_backup()
    pdf = TicketAttachment.objects.get(original_name="invoice.pdf").file.name
    (Path(settings.MEDIA_ROOT) / pdf).unlink()  # the restore has to copy it back
    later = Ticket.objects.create(
        title="made after the backup",
        organization_id=Ticket.objects.first().organization_id,
        created_by=Ticket.objects.first().created_by,
    )
    files_before = media_files()
    stored = stored_object(result, pdf)
    stored.write_bytes(stored.read_bytes()[::-1])  # swapped after the caller verified the set

    with pytest.raises(
        backups.BackupError, match=r"changed after it was verified.*|put back from the safety"
    ):
        backups.restore_backup(result.path, media_verified=True)
    assert Ticket.objects.filter(pk=later.pk).exists()
    assert media_files() == files_before
