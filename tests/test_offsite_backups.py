"""Off-site copies in real restic repositories: one on a path and one behind sftp (a test-started sshd
on 127.0.0.1). A set is shipped by backup_database, checked, pruned by the retention policy, and
restored with every local backup gone; failures are clear, alerted and leave local backups alone."""

import hashlib
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from crm import demo_data
from crm.models import Ticket, TicketAttachment
from monitoring import checks
from tests.support.sshd import Sshd
from updater.backup import backups, offsite
from updater.backup.manifest import verify_backup

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("restic") is None, reason="restic is installed by scripts/bootstrap.sh --test"
    ),
]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def helpdesk(db, state_dir):
    demo_data.seed(tickets=5, orgs=2)
    for index, ticket in enumerate(Ticket.objects.order_by("pk")[:3]):
        content = f"attachment {index}\n".encode() * 1000
        TicketAttachment.objects.create(
            ticket=ticket,
            uploaded_by=ticket.created_by,
            file=SimpleUploadedFile(f"file-{index}.txt", content),
            size=len(content),
            content_type="text/plain",
        )
    return state_dir


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "restic-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def path_repository(settings, tmp_path, password_file) -> Path:
    settings.BACKUP_OFFSITE_REPOSITORY = str(tmp_path / "offsite-repo")
    settings.BACKUP_OFFSITE_PASSWORD_FILE = str(password_file)
    settings.BACKUP_OFFSITE_CHECK_SUBSET = "100%"
    return tmp_path / "offsite-repo"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sftp"))
    server.start()
    yield server
    server.stop()


def rows_and_files() -> tuple[list, dict[str, str]]:
    rows = list(Ticket.objects.order_by("pk").values_list("pk", "title", "description", "status"))
    root = Path(settings.MEDIA_ROOT)
    files = {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    return rows, files


def backup_command(*args: str) -> str:
    out = StringIO()
    call_command("backup_database", *args, stdout=out, stderr=out)
    return out.getvalue()


def restic(repository: Path, password_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "RESTIC_REPOSITORY": str(repository),
        "RESTIC_PASSWORD_FILE": str(password_file),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["restic", *args], env=env, capture_output=True, text=True)


def lose_the_server(state_dir) -> None:
    """Every local backup, every row and every attachment gone."""
    shutil.rmtree(state_dir.backups)
    call_command("flush", "--no-input")
    shutil.rmtree(settings.MEDIA_ROOT)


def test_a_shipped_set_restores_rows_and_files_with_every_local_backup_gone(
    helpdesk, path_repository, password_file
):
    before = rows_and_files()
    output = backup_command()
    assert "Sent off-site as snapshot" in output and "100% of the repository read back and checked" in output
    assert restic(path_repository, password_file, "check", "--read-data").returncode == 0

    lose_the_server(helpdesk)
    assert rows_and_files() == ([], {})
    out = StringIO()
    call_command("restore_database", "--from-offsite", "latest", "--no-input", stdout=out)
    assert "Fetched off-site snapshot latest" in out.getvalue()
    assert rows_and_files() == before
    assert not list(helpdesk.backups.glob(".offsite-*"))  # the fetched copy is cleaned up


def test_the_second_shipment_sends_only_what_changed_and_retention_prunes(
    helpdesk, path_repository, password_file, settings
):
    settings.BACKUP_OFFSITE_KEEP_HOURLY, settings.BACKUP_OFFSITE_KEEP_DAILY = 1, 0
    settings.BACKUP_OFFSITE_KEEP_WEEKLY, settings.BACKUP_OFFSITE_KEEP_MONTHLY = 0, 0
    first = offsite.send(backups.create_backup().path)
    second = offsite.send(backups.create_backup().path)
    assert first.shipped.files_new == 6  # dump, manifest, listing and three attachments
    assert (second.shipped.files_new, second.shipped.files_unmodified) == (3, 3)  # attachments unchanged
    assert second.forgotten == [first.shipped.snapshot[:8]]  # one hourly snapshot is kept: the newest
    [kept] = offsite.snapshots()
    assert kept.id.startswith(second.shipped.snapshot) and kept.backup == second.shipped.backup

    out = StringIO()
    call_command("restore_database", "--list-offsite", stdout=out)
    assert second.shipped.backup in out.getvalue()


def test_a_set_shipped_over_sftp_restores_from_there(helpdesk, sshd, settings, tmp_path, password_file):
    remote = tmp_path / "sftp-repo"
    settings.BACKUP_OFFSITE_REPOSITORY = f"sftp:root@127.0.0.1:{remote}"
    settings.BACKUP_OFFSITE_PASSWORD_FILE = str(password_file)
    settings.BACKUP_OFFSITE_SFTP_COMMAND = " ".join([*sshd.command(), "-s", "sftp"])
    before = rows_and_files()
    assert "Sent off-site as snapshot" in backup_command()
    assert (remote / "config").is_file()  # it went through sshd into that folder

    lose_the_server(helpdesk)
    call_command("restore_database", "--from-offsite", "latest", "--no-input", stdout=StringIO())
    assert rows_and_files() == before


def test_a_wrong_password_is_a_clear_error_an_alert_and_leaves_the_local_backup(
    helpdesk, path_repository, password_file, tmp_path, settings
):
    offsite.send(backups.create_backup().path)  # the repository exists with the right password
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    settings.BACKUP_OFFSITE_PASSWORD_FILE = str(wrong)

    with pytest.raises(CommandError) as failure:
        backup_command()
    message = str(failure.value)
    assert "is kept here, but sending it off-site failed" in message and "wrong password" in message
    [local] = [p for p in helpdesk.backups.glob("*.gz") if not p.is_symlink()][-1:]
    verify_backup(local)

    [check] = [check for check in checks.all_checks() if check.name == "offsite backup"]
    assert check.status == checks.WARN
    assert "sending failed 1 times in a row" in check.detail and "wrong password" in check.detail
    metrics = _metrics()
    assert "helpdesk_offsite_backup_failures 1.0" in metrics
    assert "helpdesk_offsite_backup_age_seconds" in metrics

    settings.BACKUP_OFFSITE_PASSWORD_FILE = str(password_file)  # fixed: the next shipment clears it
    backup_command()
    [check] = [check for check in checks.all_checks() if check.name == "offsite backup"]
    assert check.status == checks.PASS and check.detail == ""


def test_an_unreachable_server_is_a_clear_error_and_nothing_local_changes(
    helpdesk, settings, password_file, tmp_path
):
    settings.BACKUP_OFFSITE_REPOSITORY = f"sftp:root@127.0.0.1:{tmp_path / 'repo'}"
    settings.BACKUP_OFFSITE_PASSWORD_FILE = str(password_file)
    # Port 9 (discard) on the loopback: nothing listens, the connection is refused at once.
    settings.BACKUP_OFFSITE_SFTP_COMMAND = (
        "ssh -p 9 -o BatchMode=yes -o ConnectTimeout=5 root@127.0.0.1 -s sftp"
    )
    with pytest.raises(
        CommandError, match=r"sending it off-site failed: restic cat on sftp:root@127\.0\.0\.1"
    ):
        backup_command()
    [local] = [p for p in helpdesk.backups.glob("*.gz") if not p.is_symlink()]
    verify_backup(local)
    assert offsite.state()["failures"] == 1


def test_no_off_site_copy_yet_is_a_warning_and_none_configured_is_no_check(helpdesk, settings, tmp_path):
    assert "offsite backup" not in {check.name for check in checks.all_checks()}
    settings.BACKUP_OFFSITE_REPOSITORY = str(tmp_path / "repo")
    [check] = [check for check in checks.all_checks() if check.name == "offsite backup"]
    assert (check.status, check.detail) == (checks.WARN, "no off-site copy yet")


def test_credentials_in_a_repository_url_never_reach_a_message():
    assert offsite.redact("rest:https://backup:s3cret@vault.example:8000/helpdesk") == (
        "rest:https://***@vault.example:8000/helpdesk"
    )
    assert offsite.redact("sftp:backup@vault:/srv/restic") == "sftp:backup@vault:/srv/restic"


def test_a_snapshot_name_that_is_not_an_id_is_refused_before_restic_runs(helpdesk, path_repository):
    with pytest.raises(CommandError, match="is not a snapshot id"):
        call_command("restore_database", "--from-offsite", "latest; rm -rf /", "--no-input")


def _metrics() -> str:
    from monitoring import metrics

    return metrics.exposition().decode()


def test_a_remembered_parent_snapshot_that_was_removed_by_hand_does_not_stop_the_next_shipment(
    helpdesk, path_repository, password_file
):
    first = offsite.send(backups.create_backup().path)
    removed = restic(path_repository, password_file, "forget", "--prune", first.shipped.snapshot)
    assert removed.returncode == 0, removed.stderr
    second = offsite.send(backups.create_backup().path)
    assert second.shipped.files_new == 6  # no parent left: everything is read and sent again
    assert [snapshot.backup for snapshot in offsite.snapshots()] == [second.shipped.backup]
