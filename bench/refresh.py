"""Benchmark: refresh_from_backup --anonymize against a plain restore of the same production set.

    .venv/bin/python bench/refresh.py [--tickets 100000] [--attachments 500]

On a throwaway MariaDB: seed_demo with --tickets tickets (and their comments and audit log), plus
--attachments files of 64 KiB with their rows; a backup set taken with ENVIRONMENT=prod. Then, in
one run, with ENVIRONMENT=staging, one after another on the same database:
  restore_database --no-input                  the plain restore of the set (database + files): the anchor
  restore_database --database-only --no-input  the database half alone (the stricter anchor: a refresh
                                               writes placeholders instead of copying files)
  refresh_from_backup --anonymize              restore + anonymize + placeholders + smoke checks
Prints each time and the anonymization's extra time as a share of each restore. Issue target: the
extra time <= 0.5 x the restore's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mariadb import MariaDBServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--attachments", type=int, default=500)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp_name,
        MariaDBServer(Path(tmp_name) / "db") as db,
    ):
        tmp = Path(tmp_name)
        prod, staging = _environment(tmp, db.url(), "prod"), _environment(tmp, db.url(), "staging")
        manage = [sys.executable, str(REPO_ROOT / "manage.py")]
        _run([*manage, "migrate", "-v", "0"], staging)
        _run([*manage, "collectstatic", "--noinput", "-v", "0"], staging)  # the smoke checks load pages
        seeded = _timed(
            lambda: _run([*manage, "seed_demo", "--tickets", str(args.tickets), "--orgs", "200"], staging)
        )
        _attachments(tmp / "media", args.attachments, staging)  # seed_demo never runs in prod
        _run([*manage, "backup_database"], prod)  # a set taken in prod
        backup = next((tmp / "backups").glob("*.sql.gz"))
        print(
            f"MariaDB, {args.tickets} tickets (seeded in {seeded:.0f} s), {args.attachments} attachments of "
            f"64 KiB; backup {backup.stat().st_size / 2**20:.1f} MB; wall clock, one run\n"
        )
        full = _timed(lambda: _run([*manage, "restore_database", str(backup), "--no-input"], staging))
        database = _timed(
            lambda: _run([*manage, "restore_database", str(backup), "--database-only", "--no-input"], staging)
        )
        refresh = _timed(lambda: _run([*manage, "refresh_from_backup", str(backup), "--anonymize"], staging))
        print(f"  restore (database + files)     {full:7.1f} s")
        print(f"  restore --database-only        {database:7.1f} s")
        print(f"  refresh_from_backup --anonymize{refresh:7.1f} s")
        print()
        print(f"  extra time vs the plain restore:       {(refresh - full) / full:+.2f} x (target <= 0.5)")
        print(f"  extra time vs the database-only one:   {(refresh - database) / database:+.2f} x")
        run = json.loads(
            sorted((tmp / "state" / "updates").glob("*-refresh_from_backup.json"))[-1].read_text()
        )
        print(
            "\n  refresh steps: "
            + ", ".join(f"{step['name']} {step['seconds']:.1f} s" for step in run["steps"])
        )


def _environment(tmp: Path, url: str, environment: str) -> dict[str, str]:
    env_file = tmp / "bench.env"
    env_file.write_text("")
    return {
        **os.environ,
        "ENV_FILE": str(env_file),
        "ENVIRONMENT": environment,
        "SECRET_KEY": "bench-" + "k" * 60,
        "ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": url,
        "BACKUP_DIR": str(tmp / "backups"),
        "MEDIA_ROOT": str(tmp / "media"),
        "UPDATER_STATE_DIR": str(tmp / "state"),
        "STATIC_ROOT": str(tmp / "static"),  # outside dev, pages need collected static files
        "LOG_LEVEL": "WARNING",
    }


def _attachments(media_root: Path, count: int, env: dict[str, str]) -> None:
    code = (
        "import os\n"
        "from django.core.files.base import ContentFile\n"
        "from crm.models import Ticket, TicketAttachment\n"
        f"for ticket in Ticket.objects.order_by('id')[:{count}]:\n"
        "    TicketAttachment.objects.create(ticket=ticket, uploaded_by_id=ticket.created_by_id,\n"
        "        file=ContentFile(os.urandom(65536), name='scan.pdf'), original_name='scan.pdf',\n"
        "        size=65536, content_type='application/pdf')\n"
    )
    _run([sys.executable, str(REPO_ROOT / "manage.py"), "shell", "--no-imports", "-c", code], env)


def _run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


def _timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


if __name__ == "__main__":
    main()
