"""Benchmark: the ticket list served by gunicorn on MariaDB with a million tickets, against the Django admin.

    .venv/bin/python bench/ticket_list.py [--tickets 1000000] [--orgs 1000] [--requests 200]

Both sides run in the same gunicorn (2 workers) against the same database, logged in as a user who
sees every ticket: /tickets/ (an agent) and its anchor /admin/crm/ticket/ (a superuser), each for
page 1, a filtered page, a deep page (the 2,000th page of 25: ours follows its "next" link, an
"after this ticket" keyset link; the admin's is ?p=2000) and a search for a common word (in a tenth of
the tickets), a word in one ticket in 200, and a rare one (20 tickets). Requests are sequential, after
a warm-up; p50/p95 are printed with the admin/ours ratio, and the time seed_demo took to load the
tickets, how MariaDB plans the admin's page 1 in this run, and the floor: the same gunicorn's
answer to a logged-in agent's request for a missing ticket (a 404 page). Issue #20 goals: p50 <= 15 ms
for pages, <= 30 ms for searches, and >= 20x the admin.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mariadb import MariaDBServer  # noqa: E402
from tests.support.processes import gunicorn_environment, login, start_gunicorn, wait_until_serving  # noqa: E402

RARE_WORD = "kangaroo"
MID_WORD = "kestrel"  # added to one ticket in 200: 5,000 of a million, too few to be found by a walk
DEEP_PAGE = 2000
CASES = [
    ("page 1", "/tickets/", "/admin/crm/ticket/"),
    (
        "filtered",
        "/tickets/?status=in_progress&priority=high",
        "/admin/crm/ticket/?status__exact=in_progress&priority__exact=high",
    ),
    ("deep page", "/tickets/?after={deep_anchor}", f"/admin/crm/ticket/?p={DEEP_PAGE}"),
    ("search", "/tickets/?search=printer", "/admin/crm/ticket/?q=printer"),
    ("mid word", f"/tickets/?search={MID_WORD}", f"/admin/crm/ticket/?q={MID_WORD}"),
    ("rare word", f"/tickets/?search={RARE_WORD}", f"/admin/crm/ticket/?q={RARE_WORD}"),
]
# Twenty tickets with a word no demo ticket has, spread over the year, one with it only in a comment.
ADD_RARE = f"""
from crm import tickets
from crm.models import Organization, Ticket
from django.contrib.auth.models import User
agent = User.objects.get(username="agent1")
for n in range(20):
    organization = Organization.objects.order_by("id")[n]
    customer = User.objects.filter(profile__organization=organization).first()
    text = "{RARE_WORD} on the desk"
    ticket = tickets.open_ticket(author=customer, title=f"Printer {{n}}", description=text)
    if n == 0:
        Ticket.objects.filter(pk=ticket.pk).update(description="On the desk")
        tickets.add_comment(ticket, agent, "A {RARE_WORD} again")
"""
ADD_MID = f"""
from django.db.models import F, Value
from django.db.models.functions import Concat, Mod
from crm.models import Ticket
Ticket.objects.alias(slot=Mod(F("id"), 200)).filter(slot=0).update(
    description=Concat(F("description"), Value(" A {MID_WORD} nests on the roof."))
)
"""
# How MariaDB plans the admin's page 1: the changelist's own query, newest first. Joined to the
# organizations (list_select_related, until crm/admin.py stopped joining), MariaDB either read the
# created_at index (~0.13 s a page at a million tickets) or started from crm_organization and sorted
# every ticket in a temporary table (~5 s), as its sampled index statistics fell: printed, so that the
# admin/ours ratios of a run can be read.
ADMIN_PLAN = """
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test import RequestFactory
from crm.models import Ticket
request = RequestFactory().get("/admin/crm/ticket/")
request.user = User.objects.get(username="admin")
changelist = admin.site.get_model_admin(Ticket).get_changelist_instance(request)
sql, params = changelist.queryset[:100].query.sql_with_params()
with connection.cursor() as cursor:
    cursor.execute("EXPLAIN " + sql, params)
    first = cursor.fetchone()
print(f"the admin's page 1 starts from {first[2]}" + (f" ({first[-1]})" if first[-1] else ""))
"""
# The ticket the 2,000th page of the newest-first list starts after (the last of page 1,999).
DEEP_ANCHOR = f"""
from crm.models import Ticket
print(Ticket.objects.order_by("-created_at", "-id").values_list("id", flat=True)[{(DEEP_PAGE - 1) * 25 - 1}])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--anchor-requests", type=int, default=10, help="the admin takes seconds a page at a million tickets"
    )
    parser.add_argument("--buffer-pool", default="2G", help="InnoDB's cache, as such a server would have")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bench-list-") as tmp,
        MariaDBServer(Path(tmp) / "db", buffer_pool=args.buffer_pool) as server,
    ):
        env = gunicorn_environment(Path(tmp), server.url())
        manage = [sys.executable, str(REPO_ROOT / "manage.py")]
        for command in (["migrate", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
            subprocess.run([*manage, *command], env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        seed = ["seed_demo", "--tickets", str(args.tickets), "--orgs", str(args.orgs)]
        subprocess.run([*manage, *seed], env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
        seeded = time.perf_counter() - started
        for added in (ADD_RARE, ADD_MID):
            subprocess.run([*manage, "shell", "-c", added], env=env, cwd=REPO_ROOT, check=True)
        shell = [*manage, "shell", "-c", DEEP_ANCHOR]
        deep_anchor = subprocess.run(
            shell, env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True
        )
        gunicorn = start_gunicorn(env, REPO_ROOT, sys.executable, log=Path(tmp) / "gunicorn.log")
        base = f"http://{env['GUNICORN_BIND']}"
        try:
            wait_until_serving(base + "/login/", gunicorn)
            agent, admin = login(base, "agent1", "agent"), login(base, "admin", "admin")
            print(
                f"{args.tickets} tickets, {args.orgs} organizations, MariaDB, gunicorn 2 workers, "
                f"{args.requests} sequential requests per URL; seed_demo loaded them in {seeded:.0f} s"
            )
            plan = subprocess.run(
                [*manage, "shell", "-c", ADMIN_PLAN], env=env, cwd=REPO_ROOT, capture_output=True, text=True
            )
            print(plan.stdout.strip().splitlines()[-1] if plan.returncode == 0 else "admin plan: unknown")
            print(f"{'case':<10} {'ours p50':>9} {'p95':>7}   {'admin p50':>9} {'p95':>7}   admin/ours (p50)")
            for name, ours_url, anchor_url in CASES:
                ours_url = ours_url.format(deep_anchor=deep_anchor.stdout.strip())
                ours = _measure(agent, base + ours_url, args.requests)
                anchor = _measure(admin, base + anchor_url, args.anchor_requests)
                ours_text = f"{ours[0]:7.1f}ms {ours[1]:5.1f}ms"
                if isinstance(anchor, str):  # the admin failed (a 500, or gunicorn's 30 s timeout)
                    print(f"{name:<10} {ours_text}   admin failed: {anchor}", flush=True)
                    continue
                anchor_text = f"{anchor[0]:7.1f}ms {anchor[1]:5.1f}ms"
                print(f"{name:<10} {ours_text}   {anchor_text}   {anchor[0] / ours[0]:.1f}x", flush=True)
            floor = _measure(agent, base + "/tickets/0/", args.requests, expected=404)
            print(
                f"floor: an agent's 404 page (the middleware, session, user, one query, the base template) "
                f"p50 {floor[0]:.1f} ms, p95 {floor[1]:.1f} ms"
                if not isinstance(floor, str)
                else f"floor: failed: {floor}"
            )
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)


def _measure(
    session: requests.Session, url: str, count: int, expected: int = 200
) -> tuple[float, float] | str:
    """(p50, p95) in ms after a warm-up, or what went wrong."""
    timings = []
    try:
        for number in range(max(2, count // 10) + count):
            started = time.perf_counter()
            response = session.get(url, timeout=60)
            if number >= max(2, count // 10):  # after the warm-up
                timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != expected:
                return f"{url} answered {response.status_code}, not {expected}"
    except requests.RequestException as error:
        return str(error)[:120]
    cuts = statistics.quantiles(timings, n=100)
    return statistics.median(timings), cuts[94]


if __name__ == "__main__":
    main()
