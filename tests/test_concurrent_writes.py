"""A busy Monday on one ticket: 24 clients comment on it, edit it, upload to it and change it through
the API at once, through a real gunicorn (4 workers) on a real MariaDB. No answer is a 5xx (before,
InnoDB deadlocks answered 500), every write the server acknowledged is stored exactly once, and the
activity log has an entry for each."""

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.deployments import REPO_ROOT
from tests.support.load import ApiClient, Client, Record, run_for
from tests.support.mariadb import MariaDBServer
from tests.support.processes import gunicorn_environment, start_gunicorn, wait_until_serving

pytestmark = pytest.mark.slow

SECONDS = 8
WEB_CLIENTS = 20
API_CLIENTS = 4

SETUP = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from crm.models import Organization, Ticket, UserProfile
acme = Organization.objects.create(name="Acme")
alice = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice")
UserProfile.objects.create(user=alice, role="customer", organization=acme)
agnes = get_user_model().objects.create_user("agnes", "agnes@example.com", "pw-agnes")
UserProfile.objects.create(user=agnes, role="agent")
ticket = Ticket.objects.create(title="Printer on fire", description="d", organization=acme, created_by=alice)
print(json.dumps({"ticket": ticket.pk, "token": Token.objects.create(user=agnes).key}))
"""

STORED = """
from crm.models import ActivityLog, Ticket, TicketAttachment, TicketComment
ticket = Ticket.objects.get(pk=PK)
activity = list(ActivityLog.objects.filter(ticket=ticket).values_list("action", "changes"))
print(json.dumps({
    "comments": list(TicketComment.objects.filter(ticket=ticket).values_list("body", flat=True)),
    "attachments": [a.filename for a in TicketAttachment.objects.filter(ticket=ticket)],
    "activity": activity,
}))
"""


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The helpdesk under gunicorn (4 workers) on its own MariaDB, with a customer, an agent and a
    ticket; its state folder (maintenance flag, journal) shared with the commands the tests run."""
    tmp = tmp_path_factory.mktemp("concurrency")
    with MariaDBServer(tmp / "db") as server:
        env = gunicorn_environment(
            tmp, server.url(), GUNICORN_WORKERS="4", UPDATER_STATE_DIR=str(tmp / "state")
        )
        manage(env, "migrate", "-v", "0")
        manage(env, "collectstatic", "--noinput", "-v", "0")
        created = json.loads(manage(env, "shell", "--no-imports", "-c", "import json\n" + SETUP))
        log = tmp / "gunicorn.log"
        gunicorn = start_gunicorn(env, REPO_ROOT, sys.executable, log=log)
        base = f"http://{env['GUNICORN_BIND']}"
        try:
            wait_until_serving(base + "/login/", gunicorn)
            yield env, base, log, created
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)


@pytest.fixture(scope="module")
def busy_ticket(site):
    env, base, log, created = site
    record = Record()
    web = [Client(base, "alice", "pw-alice", record) for _ in range(WEB_CLIENTS)]
    api = [ApiClient(base, created["token"], record) for _ in range(API_CLIENTS)]
    ticket = created["ticket"]

    def work(client, number: int, step: int) -> None:
        mark = f"c{number}-{step}"
        if isinstance(client, ApiClient):
            client.note(ticket, f"note {mark}")
        elif step % 3 == 0:
            client.comment(ticket, f"comment {mark}")
        elif step % 3 == 1:
            client.edit(ticket, f"description {mark}", "Printer on fire")
        else:
            client.upload(ticket, f"upload-{mark}.txt")

    run_for(SECONDS, web + api, work)
    script = "import json\n" + STORED.replace("PK", str(ticket))
    stored = json.loads(manage(env, "shell", "--no-imports", "-c", script))
    return record, stored, log


def test_no_request_fails_with_a_server_error(busy_ticket):
    record, _, log = busy_ticket
    kinds = {kind: len(record.acknowledged(kind)) for kind in ("comment", "edit", "upload", "note")}
    assert all(count > 5 for count in kinds.values()), kinds  # the load really happened
    errors = record.server_errors()
    assert not errors, (
        f"{len(errors)} of {len(record.requests)}: {errors[:5]}\n{Path(log).read_text()[-3000:]}"
    )
    refused = [r for r in record.requests if r.status >= 400]
    assert not refused, refused[:5]


def test_every_acknowledged_comment_and_upload_is_stored_exactly_once(busy_ticket):
    record, stored, _ = busy_ticket
    assert sorted(stored["comments"]) == sorted(record.acknowledged("comment"))
    assert sorted(stored["attachments"]) == sorted(record.acknowledged("upload"))


def test_the_activity_log_has_an_entry_for_every_acknowledged_write(busy_ticket):
    record, stored, _ = busy_ticket
    actions = [action for action, _ in stored["activity"]]
    assert actions.count("commented") == len(record.acknowledged("comment"))
    assert actions.count("attachment_added") == len(record.acknowledged("upload"))
    changed = [changes for action, changes in stored["activity"] if action == "updated"]
    descriptions = [c["description"][1] for c in changed if "description" in c]
    notes = [c["resolution_notes"][1] for c in changed if "resolution_notes" in c]
    # An edit repeating the current value changes nothing; every edit here writes a new value.
    assert sorted(descriptions) == sorted(record.acknowledged("edit"))
    assert sorted(notes) == sorted(record.acknowledged("note"))


def test_the_site_answers_503_not_500_while_a_backup_is_restored(site, busy_ticket, tmp_path):
    """restore_database replaces every table; meanwhile the site is in maintenance mode (before, 24
    requests of one restore answered 500: "Table 'django_session' doesn't exist")."""
    env, base, log, created = site
    manage(env, "seed_demo", "--tickets", "1500", "--orgs", "3")  # a restore that takes a while
    record = Record()
    clients = [Client(base, "alice", "pw-alice", record) for _ in range(8)]  # sessions the backup keeps
    manage(env, "backup_database", "--output", str(tmp_path))
    backup = next(path for path in tmp_path.iterdir() if path.name.endswith(".sql.gz"))
    restore = subprocess.Popen(
        [sys.executable, "manage.py", "restore_database", str(backup), "--no-input"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def work(client, number: int, step: int) -> None:
        if restore.poll() is not None:
            time.sleep(0.05)  # the restore is over: a few more requests, then the time is up
        if number % 2:
            client.ticket_list()
        else:
            client.comment(created["ticket"], f"during the restore {number}-{step}")

    run_for(12, clients, work)
    _, stderr = restore.communicate(timeout=300)
    assert restore.returncode == 0, stderr
    statuses = Counter(request.status for request in record.requests)
    assert 503 in statuses, statuses  # maintenance was on while tables were replaced
    assert not {status for status in statuses if status >= 500 and status != 503} and 0 not in statuses, (
        statuses,
        Path(log).read_text()[-3000:],
    )
    clients[0].ticket_list()
    assert record.requests[-1].status == 200  # and the site is back
