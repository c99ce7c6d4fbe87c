"""Migrations without downtime, under load: a real gunicorn serving the deployment (HUP reloads),
readers on the ticket list and writers opening tickets through the API for the whole update, the
tags of tests/test_update.py and 20,000 tickets.

v1.0.0 -> v10.0.0 adds a nullable column and an index (online: before the switch, the site up);
v10.0.0 -> v11.0.0 adds another (online) and drops v10.0.0's column (contract: after verify, once no
v10.0.0 worker is left). A failure after the online migrations ran migrates them back and keeps every
ticket written meanwhile, and so does one failing half-way (v12.0.0), to the exact schema before; a
blocking migration (v2.0.0's) still runs under maintenance (test_update).
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import reports, traffic
from tests.support.processes import wait_until_serving
from tests.test_update import (  # noqa: F401  (module-scoped fixtures shared with the update tests)
    CHANNEL,
    DROP_REFERENCE,
    ONLINE_UPDATE_STEPS,
    REFERENCE,
    _deploy,
    first_venv,
    last_journal,
    run_manage,
    schema_and_rows,
    serve_current,
    tagged_repo,
    wheelhouse,
)

pytestmark = pytest.mark.slow

TICKETS = 20_000
V1, V10, V11, V12 = "v1.0.0", "v10.0.0", "v11.0.0", "v12.0.0"

TICKETS_WITH_TITLES = (
    "import json\n"
    "from crm.models import Ticket\n"
    "titles = json.load(open({path!r}))\n"
    "print(Ticket.objects.filter(title__in=titles).count())\n"
)
INDEXES = (
    "from django.db import connection\n"
    "with connection.cursor() as c:\n"
    "    print(sorted(connection.introspection.get_constraints(c, 'crm_ticket')))\n"
)


@pytest.fixture(scope="module")
def site(tagged_repo, wheelhouse, first_venv, tmp_path_factory, django_db_blocker):  # noqa: F811
    """A deployment at v1.0.0 with 20,000 tickets, served by gunicorn from `current`."""
    tmp = tmp_path_factory.mktemp("online")
    root = _deploy(tagged_repo, wheelhouse, first_venv, tmp, django_db_blocker, tickets=TICKETS)
    server, base = serve_current(root, UPDATER_DRAIN_SECONDS="60", LOG_LEVEL="WARNING")
    try:
        wait_until_serving(base + "/monitoring/health/", server)
        yield root, base
    finally:
        server.terminate()
        server.wait(timeout=60)


def update_under_load(root: Path, base: str, tag: str, failpoints: str = "", **settings: str) -> tuple:
    """`update --version tag` while 3 readers and 2 writers use the site: (result, samples, created).
    `settings` override shared/.env (real environment variables win over it)."""
    load = traffic.Load(base, readers=3, writers=2)
    load.start()
    try:
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
        env["ENV_FILE"] = str(root / "shared" / ".env")
        if failpoints:
            env["UPDATER_FAILPOINTS"] = failpoints
        env.update(settings)
        current = root / "current"
        result = subprocess.run(
            [str(current / ".venv" / "bin" / "python"), "manage.py", "update", "--version", tag],
            cwd=current,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        load.stop()
    return result, load.samples, load.created


def failures(samples: list[traffic.Sample]) -> list[str]:
    return [s.detail for s in samples if s.outcome != traffic.OK]


def tickets_kept(root: Path, titles: list[str]) -> int:
    listed = root / "shared" / "titles.json"
    listed.write_text(json.dumps(titles))
    script = TICKETS_WITH_TITLES.format(path=str(listed))
    found = run_manage(root / "current", "shell", "--no-imports", "-c", script)
    assert found.returncode == 0, found.stderr
    return int(found.stdout.strip())


def ticket_columns(root: Path) -> list[str]:
    return schema_and_rows(root)["crm_ticket"][0]


def step_names(journal: dict) -> list[str]:
    return [step["name"] for step in journal["steps"]]


def test_a_failure_after_the_online_migrations_migrates_them_back_and_keeps_every_write(site):
    root, base = site
    result, samples, created = update_under_load(root, base, V10, failpoints="verify:end=fail")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the update to {V10} failed and was rolled back to {V1}" in result.stderr
    assert (root / "current").resolve().name == V1
    assert "reference" not in ticket_columns(root)
    journal = last_journal(root)
    assert journal["status"] == "rolled back"
    assert journal["facts"]["migrated_back"] is True
    assert "database_restored_from" not in journal["facts"]  # no restore: it would lose the writes
    assert "maintenance" not in step_names(journal)
    assert created and tickets_kept(root, created) == len(created)  # every acknowledged ticket is there
    assert failures(samples) == [], failures(samples)[:10]
    migrate_check = run_manage(root / "current", "migrate", "--check")
    assert migrate_check.returncode == 0, migrate_check.stdout  # v1.0.0's schema, all applied
    (root / "releases" / V10 / ".helpdesk-bad").unlink()  # the failure was injected, not v10's fault
    reports.online_migrations.append(
        (f"{V1} -> {V10}, failing after the switch", len(samples), 0, len(created), "migrated back")
    )


def test_an_online_migration_failing_half_way_is_undone_to_the_exact_schema_before(site):
    """Not rehearsed (the data changed since, say): on MariaDB the failed migration's first operation
    stays behind, unrecorded, and migrating back alone would keep its column."""
    root, base = site
    before = schema_and_rows(root)
    result, samples, created = update_under_load(root, base, V12, UPDATER_REHEARSE="False")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "this online migration fails after adding its column" in result.stderr
    assert failures(samples) == [], failures(samples)[:10]
    assert (root / "current").resolve().name == V1
    after = schema_and_rows(root)
    assert {t: cols for t, (cols, *_) in after.items()} == {t: cols for t, (cols, *_) in before.items()}
    assert created and tickets_kept(root, created) == len(created)
    journal = last_journal(root)
    assert journal["status"] == "rolled back" and "database_restored_from" not in journal["facts"]
    left = journal["facts"]["dropped_leftovers"]
    assert left == (["column crm_ticket.reference"] if connection_is_mysql(root) else [])
    reports.online_migrations.append(
        (f"{V1} -> {V12}, failing half-way", len(samples), 0, len(created), f"dropped: {left or 'nothing'}")
    )


def connection_is_mysql(root: Path) -> bool:
    return "DATABASE_URL=mysql" in (root / "shared" / ".env").read_text()


def test_online_then_contract_migrations_under_load_fail_no_request(site):
    root, base = site
    before = schema_and_rows(root)["crm_ticket"][1]

    result, samples, created = update_under_load(root, base, V10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Migrated online: the site stayed up" in result.stdout
    journal = last_journal(root)
    assert step_names(journal) == [step for step in ONLINE_UPDATE_STEPS if step != "contract"]
    assert "maintenance_since" not in journal["facts"]  # never on
    assert journal["facts"]["migration_kinds"][f"crm.{REFERENCE}"]["kind"] == "online"
    assert "reference" in ticket_columns(root)
    indexes = run_manage(root / "current", "shell", "--no-imports", "-c", INDEXES, check=True).stdout
    assert "crm_ticket_reference_idx" in indexes
    assert failures(samples) == [], failures(samples)[:10]
    assert created and tickets_kept(root, created) == len(created)
    assert schema_and_rows(root)["crm_ticket"][1] == before + len(created)
    _report(f"{V1} -> {V10} (online)", samples, created, journal)

    plan = run_manage(root / "current", "update_plan", "--version", V11, "--format", "json", check=True)
    schedule = json.loads(plan.stdout)["migration_schedule"]
    assert schedule["mode"] == "online"
    assert (schedule["before_switch"], schedule["after_switch"]) == (
        [f"crm.{CHANNEL}"],
        [f"crm.{DROP_REFERENCE}"],
    )
    assert json.loads(plan.stdout)["estimated_downtime_seconds"] == 0

    result, samples, created = update_under_load(root, base, V11)
    assert result.returncode == 0, result.stdout + result.stderr
    assert failures(samples) == [], failures(samples)[:10]  # what users saw comes first
    journal = last_journal(root)
    steps = step_names(journal)
    assert steps == list(ONLINE_UPDATE_STEPS)
    # the column v10.0.0 reads goes only once v11.0.0 is verified (its workers alone serving)
    assert steps.index("contract") > steps.index("verify")
    columns = ticket_columns(root)
    assert "reference" not in columns and "channel" in columns
    assert failures(samples) == [], failures(samples)[:10]
    assert created and tickets_kept(root, created) == len(created)
    report = run_manage(root / "current", "update_report", check=True).stdout
    assert f"crm.{DROP_REFERENCE}: contract (RemoveField of a nullable column" in report
    assert (
        f"migrated online, the site up: crm.{CHANNEL} before the switch; crm.{DROP_REFERENCE} after verify"
        in report
    )
    assert re.search(r"migrations took [\d.]+ s; the rehearsal measured [\d.]+ s \(rehearsed ", report)
    _report(f"{V10} -> {V11} (online + contract)", samples, created, journal)


def _report(name: str, samples: list, created: list, journal: dict) -> None:
    facts = journal["facts"]
    rehearsed = sum(facts["rehearsal"]["migrations"].values())
    actual = sum(facts["migrated_seconds"].values())
    reports.online_migrations.append(
        (
            name,
            len(samples),
            len(failures(samples)),
            len(created),
            f"rehearsed {rehearsed:.2f}s, live {actual:.2f}s",
        )
    )
