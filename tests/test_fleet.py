"""A fleet of three app servers updated by deploy/ansible/ (real Ansible over a real sshd on
127.0.0.1, a real HAProxy, three gunicorns, one MariaDB), with clients on the balancer throughout.

The three "servers" are three deployment roots on this machine (created by init.yml), each served by
its own gunicorn on its own port and reached by Ansible over ssh with a key made here. The tags are
tests/test_update.py's: v2.0.0 adds a column that needs maintenance, v10.0.0 an optional one (online),
v11.0.0 another and drops v10.0.0's (contract).
"""

import contextlib
import json
import re
import time

import psutil
import pytest
import requests
from django.db import connection

from tests.support import fleet, traffic
from tests.test_update import (  # noqa: F401  (module-scoped fixtures shared with the update tests)
    CHANNEL,
    DROP_REFERENCE,
    PHONE,
    REFERENCE,
    _database_url,
    first_venv,
    run_manage,
    schema_and_rows,
    tagged_repo,
    wheelhouse,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "mysql", reason="a fleet shares one MariaDB server"),
]

HOSTS = ("app1", "app2", "app3")
V1, V2, V10, V11 = "v1.0.0", "v2.0.0", "v10.0.0", "v11.0.0"


@pytest.fixture(scope="module")
def three_servers(tagged_repo, wheelhouse, first_venv, tmp_path_factory, django_db_blocker):  # noqa: F811
    """Three deployment roots at v1.0.0 on one MariaDB database (demo data), created by init.yml
    over ssh, each served by gunicorn, behind HAProxy."""
    tmp = tmp_path_factory.mktemp("fleet")
    site = fleet.Fleet(tmp, HOSTS)
    with django_db_blocker.unblock():
        url = _database_url(tmp)
    env_file = tmp / "fleet.env"
    env_file.write_text(
        "ENVIRONMENT=staging\nSECRET_KEY=" + "f" * 60 + "\nALLOWED_HOSTS=localhost,127.0.0.1\n"
        f"DATABASE_URL={url}\nUPDATER_MIN_FREE_BYTES=1000000\nUPDATER_WHEELHOUSE={wheelhouse}\n"
        "UPDATE_WINDOW_IMPORTANT=always\nUPDATE_WINDOW_ROUTINE=always\nMONITORING_TOKEN=" + "m" * 40 + "\n"
        f"UPDATER_MAINTENANCE_FLAG={tmp / 'shared-store' / 'maintenance'}\n"
    )
    try:
        site.create(tagged_repo, V1, env_file, wheelhouse, (first_venv.key, first_venv.path))
        run_manage(site.roots["app1"] / "current", "seed_demo", "--tickets", "40", "--orgs", "3", check=True)
        site.serve_all(UPDATER_DRAIN_SECONDS="60", LOG_LEVEL="WARNING")
        yield site
    finally:
        site.stop()


def failed(samples: list[traffic.Sample]) -> list[str]:
    return [s.detail for s in samples if s.outcome == traffic.FAILED]


def applied(site: fleet.Fleet, migration: str) -> int:
    script = (
        "from django.db.migrations.recorder import MigrationRecorder\n"
        f"print(MigrationRecorder.Migration.objects.filter(app='crm', name={migration!r}).count())\n"
    )
    result = run_manage(site.roots["app1"] / "current", "shell", "--no-imports", "-c", script, check=True)
    return int(result.stdout.strip())


def step_names(journal: dict) -> list[str]:
    return [step["name"] for step in journal.get("steps", [])]


def test_a_release_failing_verification_on_the_second_server_leaves_every_server_on_the_old_one(
    three_servers,
):
    site = three_servers
    env2 = site.roots["app2"] / "shared" / ".env"
    original = env2.read_text()
    load = traffic.Load(site.balancer.base, readers=20)
    load.start()
    try:
        before = schema_and_rows(site.roots["app1"])
        # app2's health URL answers nothing: its verification fails, the other servers' passes
        env2.write_text(
            original + "UPDATER_HEALTH_URL=http://127.0.0.1:9/monitoring/health/\nUPDATER_HEALTH_TIMEOUT=3\n"
        )
        result = site.playbook("update.yml", version=V2, fleet_run="fail-on-app2")
    finally:
        env2.write_text(original)
        load.stop()
    assert result.returncode != 0
    assert "failed on app2 and was undone on every server" in result.stdout
    assert site.versions() == {name: V1 for name in HOSTS}
    assert schema_and_rows(site.roots["app1"]) == before  # restored from the primary's backup, once
    assert site.balancer.admin_states() == {name: 0 for name in HOSTS}  # every server back in the balancer
    site.balancer.wait_all_up()  # and answering its health checks
    maintenance = traffic.count(load.samples, traffic.MAINTENANCE)
    assert failed(load.samples) == [], f"{len(failed(load.samples))} failed ({maintenance} maintenance)"
    assert maintenance > 0  # v2.0.0's migration needs maintenance: on every server (one shared flag)
    journals = {name: site.journal(name, "fail-on-app2") for name in HOSTS}
    assert journals["app1"]["status"] == "rolled back"
    assert "backup" in step_names(journals["app1"]) and "backup" not in step_names(journals["app2"])
    assert "did not report v2.0.0 within 3s" in journals["app2"]["cause"]
    assert "switch" not in step_names(journals["app3"])  # its batch never came
    report = json.loads((site.ansible / "reports" / "fail-on-app2.json").read_text())
    assert {name: report[name]["outcome"] for name in HOSTS} == {
        "app1": "rolled back",
        "app2": "rolled back",
        "app3": "failed",  # it had only prepared: nothing live changed there
    }


def test_a_fleet_update_with_an_online_migration_fails_no_request_and_migrates_once(three_servers):
    site = three_servers
    load = traffic.Load(site.balancer.base, readers=14, writers=6)
    load.start()
    try:
        result = site.playbook("update.yml", version=V10, fleet_run="online-v10")
    finally:
        load.stop()
    assert result.returncode == 0, result.stdout[-4000:]
    assert site.versions() == {name: V10 for name in HOSTS}
    assert failed(load.samples) == []
    assert traffic.count(load.samples, traffic.MAINTENANCE) == 0
    assert traffic.count(load.samples, traffic.OK) > 100 and load.created
    assert applied(site, REFERENCE) == 1
    journals = {name: site.journal(name, "online-v10") for name in HOSTS}
    assert [name for name in HOSTS if "migrate online" in step_names(journals[name])] == ["app1"]
    assert {journal["status"] for journal in journals.values()} == {"succeeded"}
    report = json.loads((site.ansible / "reports" / "online-v10.json").read_text())
    assert {name: (report[name]["outcome"], report[name]["to_version"]) for name in HOSTS} == {
        name: ("succeeded", V10) for name in HOSTS
    }
    assert re.search(r"app2: v1\.0\.0 -> v10\.0\.0\s+succeeded", result.stdout)
    assert site.balancer.admin_states() == {name: 0 for name in HOSTS}
    site.balancer.wait_all_up()
    for name in HOSTS:  # each server reports its own version
        health = requests.get(
            site.bases[name] + "/monitoring/health/",
            headers={"Authorization": "Bearer " + "m" * 40},
            timeout=10,
        )
        assert health.json()["version"] == V10
    summary = site.playbook("status.yml")
    assert summary.returncode == 0, summary.stdout[-3000:]
    for name in HOSTS:
        assert re.search(
            rf"{name} serves {V10}; last run: \S+\s+update\s+v1.0.0 -> v10.0.0\s+succeeded", summary.stdout
        )


def test_a_killed_fleet_update_holds_the_fleet_and_is_resumed_by_running_it_again(three_servers):
    site = three_servers
    log = site.tmp / "killed-playbook.log"
    playbook = fleet.start_playbook(
        "update.yml", site.inventory, site.ansible, log, version=V11, fleet_run="killed"
    )
    try:
        deadline = time.monotonic() + 600
        while "switch" not in step_names(site.journal("app2", "killed")):
            assert playbook.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:  # the controller dies, and app2 with its stage and its gunicorn
        fleet.kill_group(playbook)
        for process in psutil.process_iter(["cmdline"]):
            if "--fleet-run" in (process.info["cmdline"] or []) and "killed" in process.info["cmdline"]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        site.kill_server("app2")
    assert site.journal("app1", "killed")["status"] == "paused"

    second = site.playbook("update.yml", version=V11, fleet_run="second")
    assert second.returncode != 0
    assert "the fleet update killed (v10.0.0 -> v11.0.0" in second.stdout
    assert all(site.journal(name, "second") == {} for name in HOSTS)  # it began nowhere

    site.serve("app2")  # systemd starts it again
    resumed = site.playbook("update.yml", version=V11, fleet_run="killed")
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert site.versions() == {name: V11 for name in HOSTS}
    assert applied(site, CHANNEL) == 1 and applied(site, DROP_REFERENCE) == 1
    assert {site.journal(name, "killed")["status"] for name in HOSTS} == {"succeeded"}
    assert site.balancer.admin_states() == {name: 0 for name in HOSTS}
    site.balancer.wait_all_up()


def test_rollback_playbook_undoes_a_fleet_run_that_holds_the_servers(three_servers):
    site = three_servers
    for name in HOSTS:  # a fleet run begun by hand on every server (a playbook that died early)
        primary = ["--primary"] if name == "app1" else []
        begun = run_manage(
            site.roots[name] / "current",
            "update",
            "--version",
            V1,
            "--fleet-run",
            "held",
            "--stage",
            "begin",
            *primary,
        )
        assert begun.returncode == 0, begun.stderr
    plain = run_manage(site.roots["app2"] / "current", "update", "--version", V1)
    assert plain.returncode == 3 and "the fleet update held (v11.0.0 -> v1.0.0" in plain.stderr
    undone = site.playbook("rollback.yml", fleet_run="held")
    assert undone.returncode == 0, undone.stdout[-3000:]
    assert {site.journal(name, "held")["status"] for name in HOSTS} == {"failed"}  # nothing live had changed
    assert site.versions() == {name: V11 for name in HOSTS}
    assert site.balancer.admin_states() == {name: 0 for name in HOSTS}
    report = json.loads((site.ansible / "reports" / "held.json").read_text())
    assert {report[name]["outcome"] for name in HOSTS} == {"failed"}
