"""Benchmark: seed_demo's bulk loader against a row-by-row ORM loader, on a throwaway MariaDB.

    .venv/bin/python bench/seed_demo.py [--tickets 100000] [--orgs 1000] [--anchor-tickets 2000]

The anchor saves each ticket, comment and activity entry with .save() inside one transaction — the
straightforward way to write such a script. Both run in the same process against the same server;
the ratio of their rates is printed. The issue's target: 100,000 tickets in under a minute.
"""

import argparse
import os
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
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--anchor-tickets", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-mariadb-") as base, MariaDBServer(Path(base)) as server:
        os.environ["DATABASE_URL"] = server.url()
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            call_command("seed_demo", tickets=args.tickets, orgs=args.orgs, stdout=quiet)
        ours = time.perf_counter() - started

        started = time.perf_counter()
        _row_by_row(args.anchor_tickets)
        anchor = time.perf_counter() - started

    our_rate, anchor_rate = args.tickets / ours, args.anchor_tickets / anchor
    for name, count, seconds in (
        ("seed_demo (bulk)", args.tickets, ours),
        ("anchor (.save())", args.anchor_tickets, anchor),
    ):
        print(f"{name:<17} {count:>7} tickets in {seconds:6.1f} s = {count / seconds:8.0f} tickets/s")
    projected = 100_000 / our_rate
    print(f"ratio: {our_rate / anchor_rate:.1f}x faster than row by row")
    verdict = "met" if projected < 60 else "NOT met"
    print(f"100,000 tickets take {projected:.1f} s at this rate (target < 60 s: {verdict})")


def _row_by_row(count: int) -> None:
    """Same data shape as seed_demo (ticket, ~1.5 comments, ~1.75 activity entries), one INSERT at a time."""
    import random

    from django.db import transaction

    from crm import demo_data
    from crm.models import ActivityLog, Organization, Ticket, TicketComment, UserProfile

    rng = random.Random(1)
    organizations = list(Organization.objects.all()[:100])
    agents = [p.user for p in UserProfile.objects.filter(role="agent").select_related("user")]
    customers = {}
    for profile in UserProfile.objects.filter(organization__in=organizations).select_related("user"):
        customers.setdefault(profile.organization_id, []).append(profile.user)
    with transaction.atomic():
        for _ in range(count):
            row = demo_data._random_ticket(rng, None, organizations, agents, customers)
            row["id"] = Ticket.objects.create(**{k: v for k, v in row.items() if k != "id"}).pk
            for comment in demo_data._random_comments(rng, row, agents):
                TicketComment.objects.create(**comment)
            for entry in demo_data._history(row):
                ActivityLog.objects.create(**entry)


if __name__ == "__main__":
    main()
