"""Benchmark: a busy helpdesk under mixed load, the current code against the code before the fix for
concurrent ticket writes (issue 13), side by side in the same run.

50 agents for 60 s through gunicorn (4 workers) on a throwaway MariaDB: each step is a ticket list, a
ticket page, a new ticket or a comment; half of the comments go to 5 hot tickets, the rest anywhere.
Printed per code: requests/s, p95 latency and server errors (5xx or no answer). Before the fix, two
comments on one ticket could deadlock (InnoDB 1213) and answer 500.

The anchor is the commit before crm/retries.py was added (`--anchor` to choose another), exported
with `git archive` into a temporary folder and served by the same Python.

    .venv/bin/python bench/mixed_load.py [--clients 50] [--seconds 60] [--tickets 2000]
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.load import Client, Record, run_for  # noqa: E402
from tests.support.mariadb import MariaDBServer  # noqa: E402
from tests.support.processes import gunicorn_environment, start_gunicorn, wait_until_serving  # noqa: E402

HOT_TICKETS = 5
IDS = "import json\nfrom crm.models import Organization, Ticket\n" + (
    "print(json.dumps({'tickets': list(Ticket.objects.order_by('pk').values_list('pk', flat=True)[:500]),"
    " 'org': Organization.objects.order_by('pk').first().pk}))"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--anchor", default="", help="git revision of the code to compare with")
    args = parser.parse_args()
    anchor = args.anchor or _before_the_fix()

    with (
        tempfile.TemporaryDirectory(prefix="bench-mixed-") as tmp_name,
        MariaDBServer(Path(tmp_name) / "db") as db,
    ):
        tmp = Path(tmp_name)
        old_code = tmp / "anchor-code"
        old_code.mkdir()
        archive = subprocess.run(["git", "archive", anchor], cwd=REPO_ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive.stdout, check=True)
        print(
            f"{args.clients} agents, {args.seconds:g} s each, {args.tickets} tickets, gunicorn 4 workers, "
            "MariaDB; steps: list, ticket page, new ticket, comment (half of them on 5 hot tickets)"
        )
        print(f"{'code':<34} {'requests/s':>10} {'p95':>8} {'server errors':>14}")
        results = {}
        for name, code in ((f"before the fix ({anchor[:10]})", old_code), ("current", REPO_ROOT)):
            database = "anchor" if code == old_code else "current"
            db.create_database(database)
            record = _run(code, tmp / database, db.url(database), args)
            errors = record.server_errors()
            rate = len(record.requests) / args.seconds
            results[name] = (rate, record.p95(), len(errors))
            print(f"{name:<34} {rate:>10.1f} {record.p95() * 1000:>6.0f}ms {len(errors):>14}")
            if errors:
                print(f"    errors by kind: {dict(Counter(r.kind for r in errors))}")
        (old_rate, old_p95, _), (new_rate, new_p95, _) = results.values()
        print(f"current/before: requests/s x{new_rate / old_rate:.2f}, p95 x{new_p95 / old_p95:.2f}")


def _before_the_fix() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "crm/retries.py"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if not added:
        raise SystemExit("crm/retries.py has no history here: pass --anchor")
    parent = subprocess.run(
        ["git", "rev-parse", added[-1] + "^"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    )
    return parent.stdout.strip()


def _run(code: Path, tmp: Path, database_url: str, args: argparse.Namespace) -> Record:
    tmp.mkdir()
    env = gunicorn_environment(tmp, database_url, GUNICORN_WORKERS="4", UPDATER_STATE_DIR=str(tmp / "state"))
    manage = [sys.executable, "manage.py"]
    for command in (
        ["migrate", "-v", "0"],
        ["collectstatic", "--noinput", "-v", "0"],
        ["seed_demo", "--tickets", str(args.tickets), "--orgs", "20"],
    ):
        subprocess.run([*manage, *command], env=env, cwd=code, check=True, stdout=subprocess.DEVNULL)
    found = subprocess.run(
        [*manage, "shell", "--no-imports", "-c", IDS],
        env=env,
        cwd=code,
        check=True,
        capture_output=True,
        text=True,
    )
    ids = json.loads(found.stdout)
    hot, tickets = ids["tickets"][:HOT_TICKETS], ids["tickets"]
    gunicorn = start_gunicorn(env, code, sys.executable, log=tmp / "gunicorn.log")
    base = f"http://{env['GUNICORN_BIND']}"
    try:
        wait_until_serving(base + "/login/", gunicorn)
        record = Record()
        clients = [Client(base, "agent1", "agent", record) for _ in range(args.clients)]

        def work(client: Client, number: int, step: int) -> None:
            choice = random.random()
            if choice < 0.3:
                client.ticket_list()
            elif choice < 0.6:
                client.detail(random.choice(tickets))
            elif choice < 0.7:
                client.create(f"bench {number}-{step}", organization=ids["org"])
            else:
                ticket = random.choice(hot if random.random() < 0.5 else tickets)
                client.comment(ticket, f"comment {number}-{step}")

        run_for(args.seconds, clients, work)
        return record
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)


if __name__ == "__main__":
    main()
