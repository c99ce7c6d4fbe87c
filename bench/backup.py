"""Benchmark: backup_database and restore_database against the handbook's pipeline and django-dbbackup.

    .venv/bin/python bench/backup.py [--megabytes 300]

On a throwaway MariaDB whose ticket table is grown to about --megabytes of data (seed_demo, then
INSERT ... SELECT doubling), in one run, one after another on the same data:
  backup:  mariadb-dump --single-transaction --quick | gzip -6     (the handbook's way, the anchor)
           django-dbbackup: manage.py dbbackup --compress
           ours: manage.py backup_database                          (peak memory sampled too)
  restore: gunzip < dump.sql.gz | mariadb                            (the anchor)
           ours: manage.py restore_database --no-input  (verify + safety backup + load + integrity)
Issue targets: backup <= 0.6 x the anchor, peak memory <= 64 MB, restore <= 1.0 x the anchor.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mariadb import MariaDBServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300, help="size of the ticket table to reach")
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
        client_options = _client_options(tmp, db)
        print(f"MariaDB, crm_ticket {table_mb:.0f} MB of data; times are wall clock, best of one run\n")

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
        dbbackup = _timed(lambda: _run([*manage, "dbbackup", "--compress", "--noinput"], dbbackup_env))
        ours_backup, peak = _timed_with_peak_memory(
            [*manage, "backup_database", "--output", str(tmp / "ours")], env
        )
        restore_anchor = _timed(
            lambda: _pipeline([["gunzip", "-c", str(tmp / "anchor.sql.gz")], restore_client], None)
        )
        ours_restore = _timed(lambda: _run([*manage, "restore_database", str(latest), "--no-input"], env))

        sizes = {
            "anchor": (tmp / "anchor.sql.gz").stat().st_size,
            "ours": latest.resolve().stat().st_size,
            "raw": (tmp / "raw.sql").stat().st_size,
        }
        print(f"{'backup':<44} {'seconds':>8} {'vs anchor':>10}")
        print(f"{'mariadb-dump > file (no compression)':<44} {dump_only:8.2f} {dump_only / handbook:9.2f}x")
        print(f"{'mariadb-dump | gzip -6 (anchor)':<44} {handbook:8.2f} {1:9.2f}x")
        print(f"{'django-dbbackup dbbackup --compress':<44} {dbbackup:8.2f} {dbbackup / handbook:9.2f}x")
        print(
            f"{'backup_database (ours)':<44} {ours_backup:8.2f} {ours_backup / handbook:9.2f}x   "
            f"target <= 0.60x; peak memory {peak / 2**20:.0f} MB (target <= 64)"
        )
        print(
            f"sizes: raw {sizes['raw'] / 2**20:.0f} MB, gzip -6 {sizes['anchor'] / 2**20:.1f} MB, "
            f"ours {sizes['ours'] / 2**20:.1f} MB (standard gzip)\n"
        )
        print(f"{'restore':<44} {'seconds':>8} {'vs anchor':>10}")
        print(f"{'gunzip | mariadb (anchor)':<44} {restore_anchor:8.2f} {1:9.2f}x")
        print(
            f"{'restore_database (ours, with safety backup)':<44} {ours_restore:8.2f} "
            f"{ours_restore / restore_anchor:9.2f}x   target <= 1.00x"
        )


def _environment(tmp: Path, url: str) -> dict[str, str]:
    env_file = tmp / "bench.env"
    env_file.write_text("")
    return {
        **os.environ,
        "ENV_FILE": str(env_file),
        "DATABASE_URL": url,
        "BACKUP_DIR": str(tmp / "ours"),
        "LOG_LEVEL": "WARNING",
    }


def _client_options(tmp: Path, db: MariaDBServer) -> Path:
    path = tmp / "client.cnf"
    path.write_text(f"[client]\nuser={db.user}\npassword={db.password}\nhost=127.0.0.1\nport={db.port}\n")
    path.chmod(0o600)
    return path


def _dump_command(options: Path) -> list[str]:
    return ["mariadb-dump", f"--defaults-extra-file={options}", "--single-transaction", "--quick", "helpdesk"]


def _grow_tickets(db: MariaDBServer, megabytes: int) -> float:
    import MySQLdb

    connection = MySQLdb.connect(
        host="127.0.0.1", port=db.port, user=db.user, passwd=db.password, db="helpdesk"
    )
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
        process = subprocess.Popen(command, stdin=previous, stdout=sink if last else subprocess.PIPE)
        if previous is not None:
            previous.close()
        previous = process.stdout
        processes.append(process)
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError(f"{process.args[0]} failed with {process.returncode}")
    if output:
        sink.close()


def _run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


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
