"""backup_database --format mariabackup: MariaDB's physical hot backup as a backup set, and
restore_database --prepare-datadir, which turns it into a data directory a server starts on.

Real mariadb-backup against the run's MariaDB server; the prepared directory is proven by starting a
second real mariadbd on it and reading the rows back.
"""

import json
import os
import stat
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from crm import demo_data
from crm.models import Ticket
from tests.support.mariadb import MariaDBServer
from tests.support.tampering import flip_byte
from tests.test_backup_sets import attach
from updater.backup import backups, physical, rotation
from updater.backup.engines import EngineError, MySQLEngine, mariabackup
from updater.backup.manifest import NAME_PATTERN, manifest_path
from updater.plan import rehearsal

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "mysql", reason="mariadb-backup copies a MariaDB server's files"),
]


@pytest.fixture
def tickets(db):
    demo_data.seed(tickets=30, orgs=2)
    return list(Ticket.objects.order_by("pk").values_list("pk", "title"))


@pytest.fixture
def physical_backup(tickets, tmp_path) -> Path:
    out = StringIO()
    (tmp_path / "sets").mkdir()
    call_command("backup_database", "--format", "mariabackup", "--output", str(tmp_path / "sets"), stdout=out)
    assert "Backup written and verified" in out.getvalue()
    (path,) = [p for p in (tmp_path / "sets").iterdir() if NAME_PATTERN.match(p.name)]
    return path


def _add_ticket() -> Ticket:
    first = Ticket.objects.order_by("pk").first()
    return Ticket.objects.create(
        title="after the backup",
        description="x",
        organization=first.organization,
        created_by=first.created_by,
    )


def _prepare(path: Path, target: Path) -> str:
    out = StringIO()
    call_command("restore_database", str(path), "--prepare-datadir", str(target), stdout=out)
    return out.getvalue()


def _rows_on_prepared_server(server_dir: Path) -> list[tuple[int, str]]:
    """Start a second mariadbd on the prepared directory and read the tickets back through it."""
    restored = MariaDBServer(server_dir)
    restored.start(install=False)
    try:
        link = restored.root_connection()
        try:
            cursor = link.cursor()
            cursor.execute(
                f"SELECT id, title FROM `{connection.settings_dict['NAME']}`.crm_ticket ORDER BY id"  # noqa: S608
            )
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            link.close()
    finally:
        restored.stop()


def test_a_physical_backup_prepares_a_datadir_a_server_starts_on_with_every_row(
    physical_backup, tickets, tmp_path
):
    manifest = json.loads(manifest_path(physical_backup).read_text())
    assert manifest["format"] == "mariabackup" and manifest["verified_at"]
    assert physical_backup.name.endswith(".mariabackup.gz")
    assert stat.S_IMODE(physical_backup.stat().st_mode) == 0o600
    added_later = _add_ticket()

    server_dir = tmp_path / "restored"
    printed = _prepare(physical_backup, server_dir / "data")

    assert "Nothing live was changed" in printed
    assert f"mariadb-backup --move-back --target-dir={server_dir / 'data'}" in printed
    assert stat.S_IMODE((server_dir / "data").stat().st_mode) == 0o700
    assert Ticket.objects.filter(pk=added_later.pk).exists()  # the live database untouched
    assert _rows_on_prepared_server(server_dir) == tickets


def test_restore_refuses_to_load_a_physical_backup_and_changes_nothing(physical_backup, tickets):
    _add_ticket()

    with pytest.raises(CommandError, match=r"physical backup .*--prepare-datadir DIR.*Nothing was changed"):
        call_command("restore_database", str(physical_backup), "--no-input")
    with pytest.raises(backups.BackupError, match="physical backup"):
        backups.restore_backup(physical_backup)

    assert Ticket.objects.count() == len(tickets) + 1


def test_a_tampered_physical_backup_is_refused_and_no_datadir_is_made(physical_backup, tmp_path):
    flip_byte(physical_backup, physical_backup.stat().st_size // 2)

    with pytest.raises(CommandError, match=r"Refusing to restore: .*(damaged|altered)"):
        _prepare(physical_backup, tmp_path / "data")

    assert not (tmp_path / "data").exists()


def test_prepare_refuses_a_directory_in_use_and_a_logical_dump(physical_backup, tickets, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "ibdata1").write_bytes(b"a server's own file")
    with pytest.raises(CommandError, match="not an empty directory"):
        _prepare(physical_backup, busy)
    assert [p.name for p in busy.iterdir()] == ["ibdata1"]
    assert (busy / "ibdata1").read_bytes() == b"a server's own file"

    logical = backups.create_backup(output=tmp_path / "logical", include_media=False).path
    with pytest.raises(CommandError, match=r"logical dump .*restore it with restore_database"):
        _prepare(logical, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_a_backup_of_another_mariadb_series_is_refused(physical_backup, tmp_path):
    manifest = json.loads(manifest_path(physical_backup).read_text())
    manifest["server_version"] = "10.6.19-MariaDB-0+deb12u1"
    manifest_path(physical_backup).write_text(json.dumps(manifest))

    with pytest.raises(
        CommandError, match=r"taken from MariaDB 10.6.19.*prepare it with mariadb-backup 10.6.x"
    ):
        _prepare(physical_backup, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_a_failed_prepare_leaves_no_half_unpacked_files(physical_backup, tmp_path, monkeypatch):
    def broken(target: Path) -> None:
        assert (target / "xtrabackup_info").is_file()  # unpacked, then the prepare fails
        raise EngineError("mariadb-backup --prepare failed (exit 1): redo log corrupt")

    monkeypatch.setattr(physical, "_prepare", broken)
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(CommandError, match=r"cleared: .*redo log corrupt"):
        _prepare(physical_backup, empty)
    assert empty.is_dir() and not any(empty.iterdir())  # given empty, left empty
    with pytest.raises(CommandError, match=r"cleared: .*redo log corrupt"):
        _prepare(physical_backup, tmp_path / "new")
    assert not (tmp_path / "new").exists()  # made here, removed


def test_the_media_half_of_a_physical_set_restores_alone(tickets, state_dir, tmp_path):
    attachment = attach(Ticket.objects.first(), "invoice.pdf", b"%PDF-1.4 " + os.urandom(64 * 1024))
    result = backups.create_backup(fmt="mariabackup")
    stored = Path(settings.MEDIA_ROOT) / attachment.file.name
    content = stored.read_bytes()
    stored.unlink()
    newer = _add_ticket()

    out = StringIO()
    call_command("restore_database", str(result.path), "--media-only", "--no-input", stdout=out)

    assert stored.read_bytes() == content
    assert Ticket.objects.filter(pk=newer.pk).exists()
    assert "Media files: 1 put back" in out.getvalue()
    printed = _prepare(result.path, tmp_path / "data")
    assert f"manage.py restore_database {result.path} --media-only --no-input" in printed


def test_a_user_without_backup_privileges_gets_the_tools_reason_and_nothing_is_kept(
    tickets, tmp_path, monkeypatch
):
    with connection.cursor() as cursor:
        for host in ("127.0.0.1", "localhost"):
            cursor.execute(f"CREATE USER IF NOT EXISTS 'reader'@'{host}' IDENTIFIED BY 'reader-secret-pw'")
            cursor.execute(f"GRANT SELECT ON `{connection.settings_dict['NAME']}`.* TO 'reader'@'{host}'")
    (tmp_path / "sets").mkdir()
    monkeypatch.setitem(connection.settings_dict, "USER", "reader")
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", "reader-secret-pw")
    try:
        with pytest.raises(backups.BackupError) as refused:
            backups.create_backup(output=tmp_path / "sets", fmt="mariabackup", include_media=False)
    finally:
        with connection.cursor() as cursor:
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"DROP USER IF EXISTS 'reader'@'{host}'")

    message = str(refused.value)
    assert "missing required privilege RELOAD" in message and "nothing was kept" in message
    assert "reader-secret-pw" not in message and "PASSWORD" not in message
    assert list((tmp_path / "sets").iterdir()) == []


def test_a_physical_set_counts_for_the_schedule_but_never_feeds_a_rehearsal(physical_backup):
    listed = [path for path, _manifest in rotation.list_backups(physical_backup.parent)]
    assert listed == [physical_backup]
    assert rehearsal.recent_backup(physical_backup.parent, max_age_seconds=3600) is None
    assert os.path.exists(physical_backup)


def test_only_a_stream_that_reaches_its_last_file_counts_as_complete(physical_backup):
    manifest = backups.Manifest.read(physical_backup)
    stream = b"".join(backups.dump_of(backups.BackupResult(physical_backup, manifest)))
    engine = MySQLEngine

    assert engine.dump_is_complete("mariabackup", stream[-4096:])
    assert not engine.dump_is_complete("mariabackup", stream[-4096:-20])
    assert not engine.dump_is_complete("mariabackup", stream[: len(stream) // 2][-4096:])
    assert not engine.dump_is_complete("sql", stream[-4096:])


def test_the_tools_failure_is_told_in_its_error_lines_never_with_grants(tmp_path):
    log_lines = [
        "[00] 2026-12-05 03:02:32 Connecting to MariaDB server as weak",
        "[00] 2026-12-05 03:02:32   1.GRANT USAGE ON *.* TO `weak`@`%` IDENTIFIED BY PASSWORD '*D82180'",
        "[00] 2026-12-05 03:02:32 Stopped",
    ]
    with tempfile.TemporaryFile() as log:
        log.write("\n".join(log_lines).encode())
        assert mariabackup.failure_lines(log) == "Connecting to MariaDB server as weak / Stopped"
        log.write(b"\n[00] 2026-12-05 03:02:33 Error: cannot open ./ibdata1\n")
        assert mariabackup.failure_lines(log) == "Error: cannot open ./ibdata1"
