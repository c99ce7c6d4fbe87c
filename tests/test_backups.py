"""backup_database / restore_database on the real database of the run (SQLite file or MariaDB).

Backups are made by other processes (mariadb-dump, a second SQLite connection), so these tests
commit their data: transaction=True.
"""

import gzip
import hashlib
import json
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import psutil
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from crm import demo_data
from crm.models import Organization, Ticket
from tests.conftest import REPO_ROOT
from tests.support.tampering import flip_byte
from updater.backup import backups, media, rotation
from updater.backup.engines import defer_secondary_indexes, engine_for
from updater.backup.manifest import NAME_PATTERN, BackupInvalid, manifest_path
from updater.run import locks

pytestmark = pytest.mark.django_db(transaction=True)

POLISH = "Zażółć gęślą jaźń — ZAŻÓŁĆ GĘŚLĄ JAŹŃ"
BLOB = bytes(range(256)) * 4


def is_mysql() -> bool:
    return connection.vendor == "mysql"


def child_database_url() -> str:
    db = connection.settings_dict
    if is_mysql():
        return f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def backup(**options) -> backups.BackupResult:
    return backups.create_backup(**options)


@pytest.fixture
def blob_table():
    """A table outside the app with every byte value and Polish text, dropped afterwards."""
    blob_type = "LONGBLOB" if is_mysql() else "BLOB"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE bk_blob (id INTEGER PRIMARY KEY, data {blob_type}, note VARCHAR(100))")
        cursor.execute("INSERT INTO bk_blob VALUES (1, %s, %s)", [BLOB, POLISH])
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bk_blob")


@pytest.fixture
def tickets_data(db):
    demo_data.seed(tickets=60, orgs=3)
    Organization.objects.create(name=POLISH)


def _snapshot() -> dict:
    return {
        "tickets": list(
            Ticket.objects.order_by("pk").values_list("pk", "title", "description", "status", "created_at")
        ),
        "orgs": list(Organization.objects.order_by("pk").values_list("pk", "name")),
    }


def test_round_trip_keeps_every_row_identical(tickets_data, blob_table):
    before = _snapshot()
    result = backup()
    Ticket.objects.filter(pk__in=[t[0] for t in before["tickets"][:10]]).delete()
    Organization.objects.filter(name=POLISH).update(name="changed")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE bk_blob SET data = %s", [b"gone"])

    restored = backups.restore_backup(result.path)

    assert _snapshot() == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT data, note FROM bk_blob WHERE id = 1")
        data, note = cursor.fetchone()
    assert bytes(data) == BLOB
    assert note == POLISH
    assert restored.integrity_problems == []
    assert restored.table_counts["crm_ticket"] == 60
    assert restored.safety_backup.exists()


def test_restore_removes_tables_created_after_the_backup(tickets_data):
    result = backup()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bk_later (id INTEGER PRIMARY KEY)")
    backups.restore_backup(result.path)
    assert "bk_later" not in connection.introspection.table_names()
    assert Ticket.objects.count() == 60


def test_backup_files_are_private_and_described_by_a_manifest(tickets_data):
    result = backup()
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(manifest_path(result.path).stat().st_mode) == 0o600
    manifest = json.loads(manifest_path(result.path).read_text())
    assert manifest["vendor"] == connection.vendor
    assert manifest["size"] == result.path.stat().st_size
    assert len(manifest["sha256"]) == 64
    assert "0003_fill_resolution_notes" in manifest["migrations"]["crm"]
    assert manifest["verified_at"] and manifest["app_version"] and manifest["server_version"]
    latest = result.path.parent / f"latest.{manifest['format']}.gz"
    assert latest.resolve() == result.path


@pytest.mark.skipif(connection.vendor != "mysql", reason="only MariaDB dumps are SQL text by default")
def test_mariadb_backup_is_plain_gzip_of_a_complete_dump(tickets_data):
    result = backup()
    with gzip.open(result.path, "rb") as handle:
        text = handle.read().decode()
    assert "CREATE TABLE `crm_ticket`" in text
    assert POLISH in text
    assert text.rstrip().splitlines()[-1].startswith("-- Dump completed")


def test_sql_format_and_zstd_round_trip(tickets_data):
    result = backup(fmt="sql", compression_kind="zstd")
    assert result.path.name.endswith(".sql.zst")
    Ticket.objects.all().delete()
    backups.restore_backup(result.path)
    assert Ticket.objects.count() == 60


def test_truncated_backup_is_refused_and_the_database_untouched(tickets_data):
    result = backup()
    data = result.path.read_bytes()
    result.path.write_bytes(data[: len(data) // 2])
    Ticket.objects.filter(pk=Ticket.objects.first().pk).update(title="changed after the backup")

    with pytest.raises(CommandError, match=r"Refusing to restore: .*truncated or altered"):
        call_command("restore_database", str(result.path), "--no-input")
    assert Ticket.objects.filter(title="changed after the backup").exists()
    with pytest.raises(CommandError, match="Verification failed"):
        call_command("backup_database", "--verify", str(result.path))


def test_altered_backup_is_refused(tickets_data):
    result = backup()
    flip_byte(result.path)
    with pytest.raises(BackupInvalid):
        backups.verify_backup(result.path)
    with pytest.raises(CommandError, match="Refusing to restore"):
        call_command("restore_database", str(result.path), "--no-input")
    assert Ticket.objects.count() == 60


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("compression", "bogus", "unknown compression 'bogus' (known: gzip, zstd)"),
        ("size", "44062", "size is '44062', not a whole number"),
        ("size", True, "size is True, not a whole number"),
        ("size", -1, "a size is negative"),
        ("sha256", "abc", "sha256 is 'abc', not a SHA-256 digest"),
        ("vendor", "oracle", "unknown vendor 'oracle'"),
        ("format", "csv", "format 'csv' is not one of"),
        ("database", None, "database is None, not a text"),
        ("migrations", [], "migrations is [], not a mapping"),
        ("duration_seconds", "fast", "duration_seconds is 'fast', not a number"),
    ],
)
def test_every_manifest_defect_is_a_clear_refusal_and_changes_nothing(tickets_data, field, value, message):
    result = backup()
    manifest_file = manifest_path(result.path)
    manifest = json.loads(manifest_file.read_text())
    manifest[field] = value
    manifest_file.write_text(json.dumps(manifest))
    Ticket.objects.filter(pk=Ticket.objects.first().pk).update(title="changed after the backup")
    with pytest.raises(CommandError, match=re.escape(message)) as refused:
        call_command("restore_database", str(result.path), "--no-input")
    assert "Refusing to restore" in str(refused.value)
    assert Ticket.objects.filter(title="changed after the backup").exists()


def test_a_manifest_that_is_not_an_object_is_unreadable(tickets_data):
    result = backup()
    manifest_path(result.path).write_text("[1, 2]")
    with pytest.raises(BackupInvalid, match="unreadable"):
        backups.verify_backup(result.path)


def test_a_backup_swapped_after_verification_is_detected_and_the_database_put_back(tickets_data, monkeypatch):
    """Between verification and the load the safety backup is taken; a file swapped meanwhile (same
    name, a valid dump of other data) must not be loaded as if it had been verified."""
    wanted = backup()
    Ticket.objects.all().delete()
    other = backup()  # a valid dump, of a database without tickets
    Organization.objects.create(name="made after both backups")
    real_create = backups._create_locked

    def take_safety_backup_then_swap(*args, **kwargs):
        made = real_create(*args, **kwargs)
        wanted.path.write_bytes(other.path.read_bytes())  # same manifest, other bytes
        return made

    monkeypatch.setattr(backups, "_create_locked", take_safety_backup_then_swap)
    with pytest.raises(backups.BackupError, match="changed after it was verified") as failed:
        backups.restore_backup(wanted.path)
    assert "put back from the safety backup" in str(failed.value)
    assert Ticket.objects.count() == 0  # as before the restore, not the swapped file's state either
    assert Organization.objects.filter(name="made after both backups").exists()


def test_backup_of_another_database_needs_force(tickets_data):
    result = backup()
    manifest_file = manifest_path(result.path)
    manifest = json.loads(manifest_file.read_text())
    manifest["database"] = "someone_else"
    manifest_file.write_text(json.dumps(manifest))
    Ticket.objects.all().delete()
    with pytest.raises(backups.BackupError, match="pass --force"):
        backups.restore_backup(result.path)
    assert Ticket.objects.count() == 0
    backups.restore_backup(result.path, force=True)
    assert Ticket.objects.count() == 60


def test_failing_restore_puts_the_safety_backup_back(tickets_data, tmp_path):
    result = backup(fmt="sql")
    text = gzip.decompress(result.path.read_bytes()).decode()
    # A dump that is intact as a file but fails half-way through as SQL.
    anchor = "INSERT INTO" if "INSERT INTO" in text else "CREATE TABLE"
    position = text.index(anchor, len(text) // 2)
    broken = text[:position] + "THIS IS NOT SQL;\n" + text[position:]
    bad = result.path.with_name(result.path.name.replace("-2", "-1", 1))
    payload = gzip.compress(broken.encode())
    bad.write_bytes(payload)
    manifest = json.loads(manifest_path(result.path).read_text())
    manifest.update(file=bad.name, size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    manifest_path(bad).write_text(json.dumps(manifest))
    media.listing_path(bad).write_bytes(media.listing_path(result.path).read_bytes())
    Ticket.objects.filter(pk=Ticket.objects.first().pk).update(title="made after the backup")

    with pytest.raises(backups.BackupError, match="put back from the safety backup"):
        backups.restore_backup(bad)
    assert Ticket.objects.count() == 60
    assert Ticket.objects.filter(title="made after the backup").exists()


def test_rotation_keeps_the_newest_verified_and_never_pinned_or_foreign_files(tickets_data, state_dir):
    directory = state_dir.backups
    made = [backup().path for _ in range(4)]
    rotation.pin(made[0], "an unfinished update needs it")
    foreign = directory / "notes-about-helpdesk.sql.gz"
    foreign.write_bytes(b"not ours")
    lookalike = directory / "helpdesk-20200101T000000000000Z.sql.gz"  # our pattern, but no manifest
    lookalike.write_bytes(b"no manifest")

    result = backup(rotate=2)

    remaining = {p.name for p, _ in rotation.list_backups(directory)}
    assert remaining == {result.path.name, made[3].name, made[0].name}  # newest two + the pinned one
    assert not made[1].exists() and not made[2].exists()
    assert not manifest_path(made[1]).exists()
    assert foreign.exists() and lookalike.exists()
    assert set(result.rotated) == {made[1], made[2]}


def test_backup_refused_while_another_holds_the_lock(tickets_data):
    engine = engine_for()
    with (
        locks.hold(backups.lock_path(engine), command="restore_database (test)"),
        pytest.raises(
            CommandError, match=r"another backup or restore .* running .*restore_database"
        ) as error,
    ):
        call_command("backup_database")
    assert error.value.returncode == 3
    assert rotation.list_backups(Path(backups.default_directory())) == []


def test_command_reports_where_the_backup_went(tickets_data, tmp_path):
    out = StringIO()
    call_command("backup_database", "--output", str(tmp_path / "mine.gz"), stdout=out)
    assert "Backup written and verified: " + str(tmp_path / "mine.gz") in out.getvalue()
    assert (tmp_path / "mine.gz").exists()
    with pytest.raises(CommandError, match="never overwrite"):
        call_command("backup_database", "--output", str(tmp_path / "mine.gz"))


def test_restore_command_reports_tables_and_rows(tickets_data):
    result = backup()
    out = StringIO()
    call_command("restore_database", str(result.path), "--no-input", stdout=out)
    text = out.getvalue()
    assert "Safety backup of the previous state:" in text
    assert "crm_ticket" in text and "integrity check passed" in text


@pytest.mark.skipif(connection.vendor != "mysql", reason="a MariaDB dump tool and its password")
def test_password_never_appears_in_process_arguments_or_environment(tickets_data):
    demo_data.seed(tickets=3000, orgs=3)  # a dump larger than a pipe buffer keeps the tool running
    password = connection.settings_dict["PASSWORD"].encode()
    dump = engine_for().iter_dump("sql")
    next(dump)  # the tool is now running, blocked on a full pipe
    seen = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"mariadb-dump" in cmdline or b"mysqldump" in cmdline:
            seen.append(pid)
            assert password not in cmdline
            assert password not in Path(f"/proc/{pid}/environ").read_bytes()
    for _ in dump:
        pass
    assert seen, "the dump tool was not found running"


@pytest.mark.skipif(connection.vendor != "mysql", reason="InnoDB's consistent snapshot")
def test_writer_is_not_blocked_during_a_mariadb_backup(tickets_data):
    demo_data.seed(tickets=3000, orgs=3)
    org = Organization.objects.first()
    author = Ticket.objects.first().created_by
    dump = engine_for().iter_dump("sql")
    first = next(dump)  # snapshot taken, dump in progress

    writer = connections.create_connection("default")
    try:
        with writer.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 3, lock_wait_timeout = 3")
            started = time.monotonic()
            cursor.execute(
                "INSERT INTO crm_ticket (title, description, status, priority, created_by_id, "
                "organization_id, created_at, updated_at, resolution_notes) "
                "VALUES ('written during the dump', '', 'new', 'normal', %s, %s, NOW(), NOW(), '')",
                [author.pk, org.pk],
            )
            writer.commit()
            elapsed = time.monotonic() - started
    finally:
        writer.close()
    text = (first + b"".join(dump)).decode()
    assert elapsed < 2.0, f"the write waited {elapsed:.1f}s for the dump"
    assert "written during the dump" not in text  # the dump is the snapshot from before the write
    assert Ticket.objects.filter(title="written during the dump").exists()


@pytest.mark.skipif(connection.vendor != "mysql", reason="storage engines are a MySQL notion")
def test_warns_about_tables_outside_the_snapshot(tickets_data):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bk_myisam (id INTEGER PRIMARY KEY) ENGINE=MyISAM")
    try:
        err = StringIO()
        call_command("backup_database", stderr=err)
        assert "bk_myisam (MyISAM) is not InnoDB" in err.getvalue()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE bk_myisam")


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env_file = tmp_path / "child.env"
    env_file.write_text("")
    return {**os.environ, "ENV_FILE": str(env_file), "DATABASE_URL": child_database_url(), **extra}


def test_killed_backup_leaves_no_file_that_looks_like_a_backup(tickets_data, tmp_path, settings, state_dir):
    demo_data.seed(tickets=3000, orgs=3)
    directory = state_dir.backups
    directory.mkdir(parents=True, exist_ok=True)
    holder = None
    if is_mysql():
        # Hold a write lock on one table: the dump stops there, midway, until we kill it.
        holder = connections.create_connection("default")
        holder.cursor().execute("LOCK TABLES crm_ticket WRITE")
    scratch = tmp_path / "tmp"  # the backup's own temporary files, searched for the password below
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "manage.py"), "backup_database", "--format", "sql"],
        env=_child_env(tmp_path, BACKUP_DIR=str(directory), TMPDIR=str(scratch)),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(directory.glob(".*.partial-*")) and time.monotonic() < deadline:
            assert process.poll() is None, "the backup finished before it could be interrupted"
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if holder is not None:
            holder.close()
    names = [p.name for p in directory.iterdir()]
    assert not [n for n in names if NAME_PATTERN.match(n) or n.startswith("latest")], names
    assert rotation.list_backups(directory) == []
    # No file the kill left behind holds the database password (the dump tool's options never touch a disk).
    password = connection.settings_dict["PASSWORD"].encode()
    if password:
        leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and password in p.read_bytes()]
        assert leaked == []
    # The kill frees the backup lock at once (a dump tool it had started never inherits it); on a
    # loaded machine a child caught between fork and exec may hold it a moment longer, never more.
    lock = backups.lock_path(engine_for())
    assert _lock_free_within(lock, seconds=10), f"the killed backup's lock is still held by {_openers(lock)}"
    # The next backup clears the debris of the killed one.
    backup()
    assert not list(directory.glob(".*.partial-*"))


def _lock_free_within(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with locks.hold(path, command="test"):
                return True
        except locks.LockHeld:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _openers(path: Path) -> list[str]:
    """The processes that have `path` open, as 'pid name' (for the failure message)."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if any(Path(f.path) == path for f in process.open_files()):
                found.append(f"{process.pid} {process.info['name']}")
        except psutil.Error:
            continue
    return found


def test_unreachable_database_is_a_clear_error_and_leaves_nothing(tmp_path, settings):
    if is_mysql():
        url = child_database_url().rsplit("@", 1)[0] + "@127.0.0.1:9/helpdesk"  # nothing listens on port 9
        expected = "cannot be reached"
    else:
        url = f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}"
        expected = "unable to open database"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "backup_database"],
        env=_child_env(tmp_path, DATABASE_URL=url, BACKUP_DIR=str(tmp_path / "out")),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert expected in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").glob("*.gz")) == []


def _read_all(fd: int) -> bytes:
    output = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            return output
        if not data:
            return output
        output += data


def test_progress_shows_on_a_terminal_and_stays_quiet_under_cron(tickets_data, tmp_path):
    env = _child_env(tmp_path, BACKUP_DIR=str(tmp_path / "out"))
    command = [sys.executable, str(REPO_ROOT / "manage.py"), "backup_database"]
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=follower, stderr=follower)
    os.close(follower)
    on_terminal = _read_all(leader).decode(errors="replace")
    os.close(leader)
    assert process.wait(timeout=120) == 0
    assert re.search(r"dumped [\d.]+\xa0[KM]?B → [\d.]+\xa0[KM]?B at [\d.]+\xa0[KM]?B/s", on_terminal), (
        on_terminal
    )

    under_cron = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert under_cron.returncode == 0
    assert "dumped" not in under_cron.stdout
    assert under_cron.stdout.startswith("Backup written and verified")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_fails_cleanly(tickets_data, tmp_path):
    demo_data.seed(tickets=500, orgs=3)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(CommandError, match="No space left on device"):
            call_command("backup_database", "--output", str(small))
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _schema() -> dict[str, str]:
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        schema = {}
        for table in tables:
            cursor.execute(f"SHOW CREATE TABLE `{table}`")
            schema[table] = re.sub(r" AUTO_INCREMENT=\d+", "", cursor.fetchone()[1])
    return schema


@pytest.mark.skipif(connection.vendor != "mysql", reason="MariaDB restores defer indexes and foreign keys")
def test_restore_recreates_the_exact_schema_including_indexes_of_empty_tables(tickets_data):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bk_empty (id INTEGER PRIMARY KEY, ticket_id BIGINT, note VARCHAR(20), "
            "KEY bk_note (note), "
            "CONSTRAINT bk_empty_ticket FOREIGN KEY (ticket_id) REFERENCES crm_ticket (id))"
        )
    try:
        before = _schema()
        result = backup()
        backups.restore_backup(result.path)
        assert _schema() == before
        assert "KEY `bk_note`" in before["bk_empty"] and "FOREIGN KEY" in before["bk_empty"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bk_empty")


def test_deferring_indexes_moves_keys_after_the_rows_and_keeps_everything_else():
    dump = (
        b"CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `a` int,\n  PRIMARY KEY (`id`),\n"
        b"  UNIQUE KEY `u` (`a`),\n  KEY `k` (`a`),\n"
        b"  CONSTRAINT `fk` FOREIGN KEY (`a`) REFERENCES `o` (`id`)\n) ENGINE=InnoDB;\n"
        b"/*!40000 ALTER TABLE `t` DISABLE KEYS */;\nINSERT INTO `t` VALUES (1,1);\n"
        b"/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n"
        b"CREATE TABLE `empty` (\n  `id` int NOT NULL,\n  KEY `e` (`id`)\n) ENGINE=InnoDB;\n"
        b"-- Dump completed\n"
    )
    out = b"".join(defer_secondary_indexes([dump[i : i + 7] for i in range(0, len(dump), 7)])).decode()
    assert "UNIQUE KEY `u` (`a`)\n) ENGINE" in out  # unique keys stay in the table definition
    insert, added = (
        out.index("INSERT INTO"),
        out.index("ALTER TABLE `t` ADD INDEX `k` (`a`), ADD CONSTRAINT `fk`"),
    )
    assert insert < added
    assert "ALTER TABLE `empty` ADD INDEX `e` (`id`);\n-- Dump completed" in out  # no rows: added at the end


def test_restore_asks_before_replacing_and_refuses_without_a_terminal(tickets_data):
    result = backup()
    Ticket.objects.all().delete()
    with pytest.raises(CommandError, match="pass --no-input"):
        call_command("restore_database", str(result.path))
    assert Ticket.objects.count() == 0  # nothing was restored


def test_an_sqlite_sql_dump_is_loaded_as_it_streams_in_not_held_in_memory(tmp_path):
    """30 MB of SQL text through the SQLite engine: Python holds about one statement at a time, and
    values with newlines, quotes and Polish letters cut across chunk boundaries survive."""
    import sqlite3
    import tracemalloc

    from updater.backup.engines import SQLiteEngine

    engine = SQLiteEngine.__new__(SQLiteEngine)  # a file of its own, not the database of the run
    engine.alias, engine.settings = "default", {"NAME": str(tmp_path / "restored.sqlite3")}
    row = "INSERT INTO notes VALUES({n}, 'line one\nline ''two'' " + POLISH + " " + "x" * 200 + "');\n"
    rows = 100_000

    def dump():
        yield b"BEGIN TRANSACTION;\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
        buffer = b""
        for n in range(rows):
            buffer += row.format(n=n).encode()
            if len(buffer) > 100_000:
                yield buffer[:77_777]  # cut anywhere: inside a statement, a quote, a UTF-8 letter
                buffer = buffer[77_777:]
        yield buffer + b"COMMIT;\n"

    tracemalloc.start()
    engine.load(dump(), "sql")
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {rows * len(row) / 2**20:.0f} MiB dump"
    restored = sqlite3.connect(tmp_path / "restored.sqlite3")
    assert restored.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == rows
    body = restored.execute("SELECT body FROM notes WHERE id = 4242").fetchone()[0]
    restored.close()
    assert body == "line one\nline 'two' " + POLISH + " " + "x" * 200
