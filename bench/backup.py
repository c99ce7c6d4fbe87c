"""Benchmark: backup sets (database + attachments) against the handbook's tools and django-dbbackup.

    .venv/bin/python bench/backup.py [--megabytes 300] [--media-megabytes 1024] [--dump-only]

On a throwaway MariaDB whose ticket table is grown to about --megabytes of data (seed_demo, then
INSERT ... SELECT doubling) and --media-megabytes of attachments (4 MiB files of random bytes, as
PDFs and photos are: incompressible, each with its row), in one run, one after another:
  backup:  mariadb-dump --single-transaction --quick | gzip -6     (the handbook's way, the anchor)
           + tar czf media.tar.gz media/                            (the handbook's way for files)
           django-dbbackup: manage.py dbbackup --compress           (database only)
           ours: manage.py backup_database                          (peak memory sampled too)
           ours again, attachments unchanged                        (stored files are not copied again)
  off-site: restic, the first set and the second (unchanged attachments)
  restore: gunzip < dump.sql.gz | mariadb  + tar xzf                 (the anchor)
           ours: manage.py restore_database --no-input onto an empty media folder
                 (verify + safety backup + load + integrity + files)
Issue targets: database backup <= 0.35 x and restore <= 0.7 x the handbook's, unchanged media shipped
in under 10 % of the first run's time, peak memory <= 64 MB.
"""

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mariadb import MariaDBServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300, help="size of the ticket table to reach")
    parser.add_argument("--media-megabytes", type=int, default=1024, help="attachments to create")
    parser.add_argument(
        "--dump-only",
        action="store_true",
        help="only the database dump: the anchor, the bare tool, the CPU it takes, two halves at once, ours",
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp_name,
        MariaDBServer(Path(tmp_name) / "db") as db,
    ):
        tmp = Path(tmp_name)
        env = _environment(tmp, db.url())
        manage = [sys.executable, str(REPO_ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=REPO_ROOT, check=True)
        subprocess.run(
            [*manage, "seed_demo", "--tickets", "20000", "--orgs", "100"],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        table_mb = _grow_tickets(db, args.megabytes)
        if args.dump_only:
            print(f"MariaDB, crm_ticket {table_mb:.0f} MB of data; times are wall clock, one run\n")
            _dump_timings(tmp, db, env, manage)
            return
        media_root = tmp / "media"
        files = _make_attachments(db, media_root, args.media_megabytes)
        client_options = _client_options(tmp, db)
        print(
            f"MariaDB, crm_ticket {table_mb:.0f} MB of data, {files} attachments of 4 MiB "
            f"({args.media_megabytes} MB); times are wall clock, one run\n"
        )

        dump = _dump_command(client_options)
        restore_client = ["mariadb", f"--defaults-extra-file={client_options}", "helpdesk"]
        dbbackup_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "bench.dbbackup_settings",
            "DBBACKUP_DIR": str(tmp / "dbb"),
        }
        (tmp / "dbb").mkdir()
        latest = tmp / "ours" / "latest.sql.gz"

        dump_only = _timed(lambda: _pipeline([dump], tmp / "raw.sql"))
        handbook = _timed(lambda: _pipeline([dump, ["gzip", "-6"]], tmp / "anchor.sql.gz"))
        tar = ["tar", "czf", str(tmp / "media.tar.gz"), "-C", str(tmp), "media"]
        handbook_media = _timed(lambda: _run(tar, env))
        dbbackup = _timed(lambda: _run([*manage, "dbbackup", "--compress", "--noinput"], dbbackup_env))
        ours_backup, peak = _timed_with_peak_memory([*manage, "backup_database"], env)
        first = _newest_manifest(tmp / "ours")
        ours_again = _timed(lambda: _run([*manage, "backup_database"], env))
        second = _newest_manifest(tmp / "ours")

        offsite_env = _offsite_environment(tmp, env)
        ship_first = _shipped_seconds(_run_output([*manage, "backup_database"], offsite_env))
        ship_second = _shipped_seconds(_run_output([*manage, "backup_database"], offsite_env))

        restore_anchor = _timed(
            lambda: _pipeline([["gunzip", "-c", str(tmp / "anchor.sql.gz")], restore_client], None)
        )
        restored_media = tmp / "restored-media"
        restored_media.mkdir()
        untar = ["tar", "xzf", str(tmp / "media.tar.gz"), "-C", str(restored_media)]
        restore_anchor_media = _timed(lambda: _run(untar, env))
        shutil.rmtree(media_root)  # the day the disk is gone: every file comes back from the set
        ours_restore = _timed(lambda: _run([*manage, "restore_database", str(latest), "--no-input"], env))
        assert len(list(media_root.rglob("*.bin"))) == files, "the restore did not bring every file back"

        # The second engine, for databases too big for logical dumps: mariadb-backup's physical copy.
        physical_dir = tmp / "physical"
        physical_dir.mkdir()
        bare_physical = _timed(
            lambda: _pipeline(
                [_physical_command(client_options, tmp / "mb-scratch"), ["gzip", "-6"]],
                tmp / "bare.mbstream.gz",
            )
        )
        physical_backup, physical_peak = _timed_with_peak_memory(
            [
                *manage,
                "backup_database",
                "--format",
                "mariabackup",
                "--database-only",
                "--output",
                f"{physical_dir}/",
            ],
            env,
        )
        physical_manifest = _newest_manifest(physical_dir)
        physical_set = physical_dir / physical_manifest["file"]
        prepared = tmp / "prepared-datadir"
        physical_prepare = _timed(
            lambda: _run(
                [*manage, "restore_database", str(physical_set), "--prepare-datadir", str(prepared)], env
            )
        )

        sizes = {
            "anchor": (tmp / "anchor.sql.gz").stat().st_size,
            "ours": latest.resolve().stat().st_size,
            "raw": (tmp / "raw.sql").stat().st_size,
        }
        both = handbook + handbook_media
        print(f"{'backup, database part':<48} {'seconds':>8} {'vs anchor':>10}")
        print(f"{'mariadb-dump > file (no compression)':<48} {dump_only:8.2f} {dump_only / handbook:9.2f}x")
        print(f"{'mariadb-dump | gzip -6 (anchor)':<48} {handbook:8.2f} {1:9.2f}x")
        print(f"{'django-dbbackup dbbackup --compress':<48} {dbbackup:8.2f} {dbbackup / handbook:9.2f}x")
        print(
            f"{'backup_database, its dump (ours)':<48} {first['duration_seconds']:8.2f} "
            f"{first['duration_seconds'] / handbook:9.2f}x   target <= 0.35x"
        )
        print(f"\n{'backup, database + attachments':<48} {'seconds':>8} {'vs anchor':>10}")
        print(f"{'dump | gzip -6, then tar czf media (anchor)':<48} {both:8.2f} {1:9.2f}x")
        print(
            f"{'backup_database (ours, whole set)':<48} {ours_backup:8.2f} {ours_backup / both:9.2f}x   "
            f"peak memory {peak / 2**20:.0f} MB (target <= 64)"
        )
        print(
            f"{'backup_database again, attachments unchanged':<48} {ours_again:8.2f} "
            f"{ours_again / both:9.2f}x   "
            f"its media part {second['media_seconds']:.2f} s = "
            f"{second['media_seconds'] / max(first['media_seconds'], 1e-9):.1%} of the first's "
            f"{first['media_seconds']:.2f} s (target < 10 %)"
        )
        print(
            f"{'off-site (restic): first set, second set':<48} {ship_first:8.2f} {ship_second:8.2f} s  "
            f"second = {ship_second / ship_first:.1%} of the first (target < 10 %)"
        )
        print(
            f"sizes: raw {sizes['raw'] / 2**20:.0f} MB, gzip -6 {sizes['anchor'] / 2**20:.1f} MB, "
            f"ours {sizes['ours'] / 2**20:.1f} MB (standard gzip)\n"
        )
        restore_both = restore_anchor + restore_anchor_media
        print(f"{'restore':<48} {'seconds':>8} {'vs anchor':>10}")
        print(f"{'gunzip | mariadb':<48} {restore_anchor:8.2f}")
        print(f"{'gunzip | mariadb, then tar xzf media (anchor)':<48} {restore_both:8.2f} {1:9.2f}x")
        print(
            f"{'restore_database (ours, with safety backup)':<48} {ours_restore:8.2f} "
            f"{ours_restore / restore_both:9.2f}x   target <= 0.70x"
        )
        copy_seconds = physical_manifest["duration_seconds"]
        print(f"\n{'physical engine (mariadb-backup), database part':<48} {'seconds':>8} {'vs anchor':>10}")
        print(
            f"{'mariadb-backup --stream | gzip -6':<48} {bare_physical:8.2f} {bare_physical / handbook:9.2f}x"
        )
        print(
            f"{'backup_database --format mariabackup (ours)':<48} {physical_backup:8.2f} "
            f"{physical_backup / handbook:9.2f}x   its copy {copy_seconds:.2f} s = "
            f"{copy_seconds / handbook:.2f}x; "
            f"peak memory {physical_peak / 2**20:.0f} MB; {physical_manifest['size'] / 2**20:.1f} MB"
        )
        print(
            f"{'restore_database --prepare-datadir (ours)':<48} {physical_prepare:8.2f} "
            f"{physical_prepare / restore_anchor:9.2f}x   of gunzip | mariadb; then the server is stopped, "
            "the directory moved in and the server started"
        )


def _dump_timings(tmp: Path, db: MariaDBServer, env: dict[str, str], manage: list[str]) -> None:
    """The database part alone, with what bounds it on this machine: the CPU seconds the bare dump
    takes in mariadb-dump and in the server, and those of compressing and hashing its output as
    backup_database does; and the most a split over both cores gives, the ticket table (nearly all
    the data) dumped in two halves by two mariadb-dump at once, each into its own zstd -1."""
    options = _client_options(tmp, db)
    dump = _dump_command(options)
    server = psutil.Process(db.pid)
    server_before, children_before = sum(server.cpu_times()[:2]), _children_cpu()
    bare = _timed(lambda: _pipeline([dump], tmp / "raw.sql"))
    client_cpu, server_cpu = _children_cpu() - children_before, sum(server.cpu_times()[:2]) - server_before
    ours_cpu = _compress_and_hash_cpu(tmp / "raw.sql")
    handbook = _timed(lambda: _pipeline([dump, ["gzip", "-6"]], tmp / "anchor.sql.gz"))
    middle = _median_ticket_id(db)
    halves = _timed(lambda: _at_once(_halves(options, middle, tmp, compress=False)))
    halves_zstd = _timed(lambda: _at_once(_halves(options, middle, tmp, compress=True)))
    _run([*manage, "backup_database", "--database-only"], env)
    ours = _newest_manifest(tmp / "ours")["duration_seconds"]
    floor = (client_cpu + server_cpu + ours_cpu) / os.cpu_count()
    print(f"{'backup, database part':<58} {'seconds':>8} {'vs anchor':>10}")
    for label, seconds in (
        ("mariadb-dump | gzip -6 (anchor)", handbook),
        ("mariadb-dump > file (no compression)", bare),
        ("crm_ticket in two halves at once, no compression", halves),
        ("crm_ticket in two halves at once, each | zstd -1", halves_zstd),
        ("backup_database --database-only, its dump (ours)", ours),
    ):
        print(f"{label:<58} {seconds:8.2f} {seconds / handbook:9.2f}x")
    print(
        f"\nCPU of the bare dump: mariadb-dump {client_cpu:.2f} s, the server {server_cpu:.2f} s; "
        f"compressing and hashing its {(tmp / 'raw.sql').stat().st_size / 2**20:.0f} MB as ours does "
        f"{ours_cpu:.2f} s.\nOn {os.cpu_count()} cores no split of that work ends before {floor:.2f} s = "
        f"{floor / handbook:.2f}x the anchor (target <= 0.35x)."
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _compress_and_hash_cpu(raw: Path) -> float:
    """CPU seconds of what backup_database does to each byte of the dump: ISA-L gzip and sha256."""
    from updater.backup.compression import compressor

    started = time.process_time()
    gzip, digest = compressor("gzip"), hashlib.sha256()
    with raw.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(gzip.compress(chunk))
    digest.update(gzip.flush())
    return time.process_time() - started


def _median_ticket_id(db: MariaDBServer) -> int:
    connection = _connect(db)
    cursor = connection.cursor()
    cursor.execute("SELECT COUNT(*) FROM crm_ticket")
    cursor.execute("SELECT id FROM crm_ticket ORDER BY id LIMIT 1 OFFSET %s", [cursor.fetchone()[0] // 2])
    middle = cursor.fetchone()[0]
    connection.close()
    return middle


def _halves(options: Path, middle: int, tmp: Path, *, compress: bool) -> list[tuple[list[list[str]], Path]]:
    """Two pipelines: the ticket table up to `middle` (with its CREATE TABLE), and the rows after."""
    dump = _dump_command(options)[:-1]  # without the database name
    halves = (
        [*dump, f"--where=id <= {middle}", "helpdesk", "crm_ticket"],
        [*dump, "--no-create-info", f"--where=id > {middle}", "helpdesk", "crm_ticket"],
    )
    return [
        ([half, ["zstd", "-1", "-q", "-T1"]] if compress else [half], tmp / f"half-{index}.sql")
        for index, half in enumerate(halves)
    ]


def _at_once(pipelines: list[tuple[list[list[str]], Path]]) -> None:
    with ThreadPoolExecutor(len(pipelines)) as pool:
        for done in [pool.submit(_pipeline, commands, output) for commands, output in pipelines]:
            done.result()


def _environment(tmp: Path, url: str) -> dict[str, str]:
    env_file = tmp / "bench.env"
    env_file.write_text("")
    return {
        **os.environ,
        "ENV_FILE": str(env_file),
        "DATABASE_URL": url,
        "BACKUP_DIR": str(tmp / "ours"),
        "MEDIA_ROOT": str(tmp / "media"),
        "LOG_LEVEL": "WARNING",
    }


def _offsite_environment(tmp: Path, env: dict[str, str]) -> dict[str, str]:
    password = tmp / "restic-password"
    password.write_text("bench only\n")
    password.chmod(0o600)
    return {
        **env,
        "BACKUP_OFFSITE_REPOSITORY": str(tmp / "restic"),
        "BACKUP_OFFSITE_PASSWORD_FILE": str(password),
    }


def _shipped_seconds(output: str) -> float:
    match = re.search(r"Sent off-site as snapshot \S+ in ([0-9.]+) s", output)
    if not match:
        raise RuntimeError(f"backup_database did not ship: {output}")
    return float(match.group(1))


def _newest_manifest(directory: Path) -> dict:
    latest = max(directory.glob("*.manifest.json"), key=lambda path: path.name)
    return json.loads(latest.read_text())


def _make_attachments(db: MariaDBServer, media_root: Path, megabytes: int) -> int:
    """4 MiB files of random bytes under media_root, each with its attachment row."""
    connection = _connect(db)
    cursor = connection.cursor()
    cursor.execute("SELECT id, created_by_id FROM crm_ticket ORDER BY id LIMIT %s", [max(1, megabytes // 4)])
    tickets = cursor.fetchall()
    folder = media_root / "attachments" / "bench"
    folder.mkdir(parents=True)
    rows = []
    for index in range(max(1, megabytes // 4)):
        name = f"attachments/bench/file-{index:05d}.bin"
        (media_root / name).write_bytes(os.urandom(4 * 2**20))
        ticket, author = tickets[index % len(tickets)]
        rows.append((ticket, author, name, f"file-{index}.bin", 4 * 2**20, "application/octet-stream"))
    cursor.executemany(
        "INSERT INTO crm_ticketattachment (ticket_id, uploaded_by_id, file, original_name, size, "
        "content_type, created_at) VALUES (%s, %s, %s, %s, %s, %s, NOW(6))",
        rows,
    )
    connection.commit()
    connection.close()
    return len(rows)


def _client_options(tmp: Path, db: MariaDBServer) -> Path:
    path = tmp / "client.cnf"
    path.write_text(f"[client]\nuser={db.user}\npassword={db.password}\nhost=127.0.0.1\nport={db.port}\n")
    path.chmod(0o600)
    return path


def _physical_command(options: Path, scratch: Path) -> list[str]:
    return [
        "mariadb-backup",
        f"--defaults-extra-file={options}",
        "--backup",
        "--stream=mbstream",
        f"--target-dir={scratch}",
    ]


def _dump_command(options: Path) -> list[str]:
    return ["mariadb-dump", f"--defaults-extra-file={options}", "--single-transaction", "--quick", "helpdesk"]


def _connect(db: MariaDBServer):
    """The bench's own connection to the helpdesk database, as the application's user."""
    import MySQLdb

    return MySQLdb.connect(host="127.0.0.1", port=db.port, user=db.user, passwd=db.password, db="helpdesk")


def _grow_tickets(db: MariaDBServer, megabytes: int) -> float:
    connection = _connect(db)
    cursor = connection.cursor()
    columns = (
        "title, description, status, priority, created_by_id, assigned_to_id, organization_id, "
        "created_at, updated_at, resolved_at, resolution_notes"
    )

    def size_mb() -> float:
        cursor.execute("ANALYZE TABLE crm_ticket")
        cursor.fetchall()
        cursor.execute(
            "SELECT data_length FROM information_schema.tables "
            "WHERE table_schema = 'helpdesk' AND table_name = 'crm_ticket'"
        )
        return cursor.fetchone()[0] / 2**20

    while (current := size_mb()) < megabytes * 0.97:
        cursor.execute("SELECT COUNT(*) FROM crm_ticket")
        rows = cursor.fetchone()[0]
        wanted = min(rows, int(rows * (megabytes / current - 1)) + 1)  # double, or just top up
        cursor.execute(f"INSERT INTO crm_ticket ({columns}) SELECT {columns} FROM crm_ticket LIMIT {wanted}")  # noqa: S608
        connection.commit()
    connection.close()
    return current


def _pipeline(commands: list[list[str]], output: Path | None) -> None:
    """Run commands connected by pipes (no shell), the last one writing to output."""
    sink = output.open("wb") if output else subprocess.DEVNULL
    processes = []
    previous = None
    for index, command in enumerate(commands):
        last = index == len(commands) - 1
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below) mariadb-backup logs a line per file
        process = subprocess.Popen(
            command, stdin=previous, stdout=sink if last else subprocess.PIPE, stderr=log
        )
        if previous is not None:
            previous.close()
        previous = process.stdout
        processes.append((process, log))
    for process, log in processes:
        returncode = process.wait()
        log.seek(0)
        said = log.read().decode(errors="replace")[-2000:]
        log.close()
        if returncode != 0:
            raise RuntimeError(f"{process.args[0]} failed with {returncode}: {said}")
    if output:
        sink.close()


def _run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


def _run_output(command: list[str], env: dict[str, str]) -> str:
    return subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _timed_with_peak_memory(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    peak = 0
    watched = psutil.Process(process.pid)

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if process.wait() != 0:
        raise RuntimeError("backup_database failed")
    elapsed = time.perf_counter() - started
    sampler.join()
    return elapsed, peak


if __name__ == "__main__":
    main()
