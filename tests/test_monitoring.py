"""/monitoring/status/, /monitoring/metrics and the dashboard: shape, thresholds, access, maintenance."""

import json
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta

import pytest

from monitoring import checks, state

HANDBOOK_KEYS = {"system_available", "cpu_usage", "memory_usage", "disk_usage", "services", "timestamp"}


@pytest.fixture(autouse=True)
def monitoring_settings(settings, tmp_path):
    settings.MONITORING_TOKEN = "token-for-dashboards"
    settings.MONITORING_ALLOWED_IPS = []
    settings.MONITORED_SERVICES = []
    settings.MONITORED_DISKS = ["/"]
    checks.clear_cache()
    yield
    checks.clear_cache()


def detailed(client, **extra):
    return client.get("/monitoring/status/", HTTP_AUTHORIZATION="Bearer token-for-dashboards", **extra)


@pytest.mark.django_db
def test_status_keeps_the_handbooks_keys_and_adds_checks_with_units_and_thresholds(client):
    response = detailed(client)
    body = response.json()
    assert set(body) >= HANDBOOK_KEYS
    assert {"status", "version", "environment", "maintenance", "last_update", "checks"} <= set(body)
    names = [check["name"] for check in body["checks"]]
    assert names == [
        "database",
        "migrations",
        "backup",
        "mail outbox",
        "overdue tickets",
        "disk /",
        "memory",
        "load",
        "services",
    ]
    disk = next(check for check in body["checks"] if check["name"] == "disk /")
    assert (disk["unit"], disk["warn"], disk["fail"]) == ("percent", 80.0, 90.0)
    assert body["disk_usage"] == disk["observed"]
    assert body["status"] == "warn" and response.status_code == 200  # no backup yet: a warning
    assert next(c for c in body["checks"] if c["name"] == "backup")["detail"] == "no backup yet"


@pytest.mark.django_db
def test_anyone_else_gets_only_the_overall_status(client, helpdesk, settings):
    anonymous = client.get("/monitoring/status/").json()
    assert set(anonymous) == {"status", "timestamp", "timestamp_iso"}
    wrong = client.get("/monitoring/status/", HTTP_AUTHORIZATION="Bearer guess").json()
    assert set(wrong) == {"status", "timestamp", "timestamp_iso"}
    client.force_login(helpdesk.alice)  # a customer
    assert set(client.get("/monitoring/status/").json()) == {"status", "timestamp", "timestamp_iso"}
    client.force_login(helpdesk.admin)  # staff
    assert "checks" in client.get("/monitoring/status/").json()
    client.logout()
    settings.MONITORING_ALLOWED_IPS = ["10.0.0.0/8"]
    assert "checks" in client.get("/monitoring/status/", REMOTE_ADDR="10.1.2.3").json()
    assert "checks" not in client.get("/monitoring/status/", REMOTE_ADDR="192.0.2.1").json()


@pytest.mark.django_db
def test_a_failing_check_answers_503_and_a_full_disk_fails(client, settings):
    settings.DISK_WARN_PERCENT, settings.DISK_CRIT_PERCENT = 0.0, 0.001  # any used disk is "full"
    response = detailed(client)
    assert response.status_code == 503
    assert response.json()["status"] == "fail" and response.json()["system_available"] is False
    assert client.get("/monitoring/status/").status_code == 503  # the overall status is public


@pytest.mark.parametrize(
    ("observed", "status"), [(79.9, "pass"), (80.0, "warn"), (89.9, "warn"), (90.0, "fail"), (99.0, "fail")]
)
def test_thresholds_grade_warn_from_the_warning_mark_and_fail_from_the_critical_one(observed, status):
    assert checks.graded("disk /", observed, "percent", 80, 90).status == status


def test_services_come_from_check_systems_snapshot_and_go_stale(settings):
    settings.MONITORED_SERVICES = ["apache2", "mariadb"]
    fresh = {"checked_at": time.time(), "states": {"apache2": "active", "mariadb": "failed"}}
    check = checks.services(fresh)
    assert (check.status, check.observed, check.detail) == ("fail", 1, "mariadb: failed")
    old = {"checked_at": time.time() - 3600, "states": {"apache2": "active", "mariadb": "active"}}
    assert checks.services(old).stale and checks.services(old).status == "warn"
    assert checks.services({}).detail == "check_system has not run yet"


@pytest.mark.django_db
def test_status_reads_service_states_and_the_cpu_sample_from_the_state_file(client, settings):
    settings.MONITORED_SERVICES = ["apache2"]
    state.save(
        {
            "services": {"checked_at": time.time(), "states": {"apache2": "active"}},
            "cpu": {"at": time.time(), "percent": 12.5},
        }
    )
    body = detailed(client).json()
    assert body["services"] == {"apache2": True} and body["cpu_usage"] == 12.5


@pytest.mark.django_db
def test_without_a_fresh_cpu_sample_status_measures_the_cpu_not_the_load(client, monkeypatch, settings):
    """A load of 1.1 per core is not 100 % CPU: processes waiting on disk count in the load."""
    state.save({"cpu": {"at": time.time() - settings.MONITORING_STALE_SECONDS - 1, "percent": 99.0}})
    monkeypatch.setattr("os.getloadavg", lambda: (2.2, 2.2, 2.2))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    measured = []
    monkeypatch.setattr("psutil.cpu_percent", lambda interval: measured.append(interval) or 37.5)
    assert detailed(client).json()["cpu_usage"] == 37.5
    assert measured == [0.1]  # a short sample, not check_system's stale one


@pytest.mark.django_db
def test_status_time_is_epoch_seconds_and_the_same_instant_in_iso_8601(client):
    for body in (detailed(client).json(), client.get("/monitoring/status/").json()):
        iso = datetime.fromisoformat(body["timestamp_iso"])
        assert iso.utcoffset() == timedelta(0)
        assert iso.timestamp() == pytest.approx(body["timestamp"], abs=1e-5)


@pytest.mark.django_db
def test_status_and_metrics_answer_during_maintenance_and_say_so(client, state_dir):
    state_dir.path.mkdir()
    state_dir.maintenance_flag.write_text("{}")
    assert client.get("/tickets/").status_code == 503
    assert detailed(client).json()["maintenance"] is True
    metrics = client.get("/monitoring/metrics", HTTP_AUTHORIZATION="Bearer token-for-dashboards")
    assert metrics.status_code == 200 and "helpdesk_maintenance_mode 1.0" in metrics.content.decode()


@pytest.mark.django_db
def test_metrics_use_base_units_and_need_detail_access(client):
    assert client.get("/monitoring/metrics").status_code == 401
    text = client.get(
        "/monitoring/metrics", HTTP_AUTHORIZATION="Bearer token-for-dashboards"
    ).content.decode()
    assert 'helpdesk_check_status{check="disk /"}' in text
    assert "helpdesk_database_latency_seconds " in text and "helpdesk_memory_used_ratio " in text
    assert 'helpdesk_disk_used_ratio{mount="/"}' in text and "helpdesk_up " in text
    assert 'helpdesk_info{environment="' in text


def _journal_run(updates, stamp: str, version: str, outcome: str) -> None:
    run = {
        "id": stamp,
        "command": "update",
        "from_version": "v1.0.0",
        "to_version": version,
        "status": outcome,
        "started_at": "2026-11-02T00:00:00+00:00",
        "finished_at": "2026-11-02T00:01:00+00:00",
        "steps": [],
        "facts": {"maintenance_seconds": 2.5},
    }
    (updates / f"{stamp}-update.json").write_text(json.dumps(run))


@pytest.mark.django_db
def test_metrics_pass_promtool_and_hold_what_a_prometheus_user_expects(client, state_dir, settings):
    from updater.backup import backups

    state_dir.updates.mkdir(parents=True)
    _journal_run(state_dir.updates, "20261102T000000000000Z", "v1.2.0", "succeeded")
    backups.create_backup(output=None)
    checks.clear_cache()
    state_dir.maintenance_flag.write_text("{}")
    text = client.get("/monitoring/metrics", HTTP_AUTHORIZATION="Bearer token-for-dashboards").content
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/bootstrap.sh --test installs it (Debian's prometheus)"
    linted = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    values = dict(line.rsplit(" ", 1) for line in text.decode().splitlines() if not line.startswith("#"))
    assert float(values["helpdesk_last_update_success"]) == 1.0
    assert float(values["helpdesk_last_update_duration_seconds"]) == 60.0
    assert float(values["helpdesk_last_update_maintenance_seconds"]) == 2.5
    assert float(values["helpdesk_last_update_finished_timestamp_seconds"]) == 1793577660.0
    assert 0 <= float(values["helpdesk_backup_age_seconds"]) < 60
    assert float(values["helpdesk_maintenance_mode"]) == 1.0
    assert float(values["helpdesk_cpu_cores"]) >= 1 and 0 <= float(values["helpdesk_cpu_used_ratio"]) <= 1


@pytest.mark.django_db
def test_last_update_comes_from_the_newest_journal(client, state_dir):
    updates = state_dir.updates
    updates.mkdir(parents=True)
    for stamp, version, outcome in (
        ("20261101T000000000000Z", "v1.1.0", "succeeded"),
        ("20261102T000000000000Z", "v1.2.0", "rolled back"),
    ):
        _journal_run(updates, stamp, version, outcome)
    last = detailed(client).json()["last_update"]
    assert (last["to_version"], last["status"], last["maintenance_seconds"]) == ("v1.2.0", "rolled back", 2.5)


@pytest.mark.django_db
def test_backup_age_passes_after_a_backup_and_warns_when_it_gets_old(settings):
    from updater.backup import backups

    backups.create_backup(output=None)
    check = checks.backup_age()
    assert check.status == "pass" and check.observed < 0.1 and check.unit == "hours"
    checks.clear_cache()
    settings.BACKUP_WARN_HOURS, settings.BACKUP_CRIT_HOURS = 0.0, 1.0
    assert checks.backup_age().status == "warn"


@pytest.mark.django_db
def test_database_latency_is_measured_and_graded(settings):
    check = checks.database()
    assert check.status == "pass" and check.unit == "ms" and 0 <= check.observed < settings.DB_LATENCY_WARN_MS
    settings.DB_LATENCY_WARN_MS, settings.DB_LATENCY_CRIT_MS = 0.0, 1e9
    assert checks.database().status == "warn"


@pytest.mark.django_db
def test_health_and_ready_tell_anonymous_callers_only_pass_or_fail(client, settings):
    from helpdesk.version import app_version

    assert client.get("/monitoring/health/").json() == {"status": "pass"}
    assert client.get("/monitoring/ready/").json() == {"status": "pass"}
    assert client.get("/monitoring/health/", HTTP_AUTHORIZATION="Bearer guess").json() == {"status": "pass"}
    token = {"HTTP_AUTHORIZATION": "Bearer token-for-dashboards"}
    assert client.get("/monitoring/health/", **token).json() == {"status": "pass", "version": app_version()}
    ready = client.get("/monitoring/ready/", **token).json()
    assert ready == {"status": "pass", "version": app_version(), "pending_migrations": 0}
    settings.MONITORING_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/monitoring/health/", REMOTE_ADDR="10.0.0.1").json()["version"] == app_version()


@pytest.mark.django_db
def test_ready_fails_with_pending_migrations_and_says_how_many_only_to_monitoring(client, monkeypatch):
    monkeypatch.setattr("monitoring.views.pending_migrations", lambda: ["crm.0004_new"])
    anonymous = client.get("/monitoring/ready/")
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "fail"}
    detailed_ready = client.get("/monitoring/ready/", HTTP_AUTHORIZATION="Bearer token-for-dashboards")
    assert detailed_ready.status_code == 503 and detailed_ready.json()["pending_migrations"] == 1


DASHBOARD = "https://grafana.example.com"


@pytest.mark.django_db
def test_cross_origin_reads_are_off_until_an_origin_is_listed(client):
    response = detailed(client, HTTP_ORIGIN=DASHBOARD)
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/monitoring/status/", "/monitoring/metrics", "/monitoring/health/"])
def test_a_listed_dashboard_may_read_the_probes_with_its_token_across_origins(
    client, settings, state_dir, path
):
    settings.CORS_ALLOWED_ORIGINS = [DASHBOARD]
    state_dir.path.mkdir()
    state_dir.maintenance_flag.write_text("{}")  # answered during maintenance too
    preflight = client.options(
        path,
        HTTP_ORIGIN=DASHBOARD,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == DASHBOARD
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    assert "GET" in preflight["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in preflight  # no cookies: the token says who
    read = client.get(path, HTTP_ORIGIN=DASHBOARD, HTTP_AUTHORIZATION="Bearer token-for-dashboards")
    assert read.status_code == 200 and read["Access-Control-Allow-Origin"] == DASHBOARD
    stranger = client.get(path, HTTP_ORIGIN="https://evil.example", HTTP_AUTHORIZATION="Bearer x")
    assert "Access-Control-Allow-Origin" not in stranger


@pytest.mark.django_db
def test_the_rest_of_the_site_is_never_shared_across_origins(client, settings, helpdesk):
    settings.CORS_ALLOWED_ORIGINS = [DASHBOARD]
    for path in ("/tickets/", "/api/tickets/", "/monitoring/dashboard/", "/login/"):
        response = client.get(path, HTTP_ORIGIN=DASHBOARD)
        assert "Access-Control-Allow-Origin" not in response, path


@pytest.mark.django_db
def test_the_dashboard_in_polish_says_everything_in_polish_and_counts_in_whole_numbers(
    client, helpdesk, state_dir
):
    client.force_login(helpdesk.admin)
    page = client.get("/monitoring/dashboard/", HTTP_ACCEPT_LANGUAGE="pl").content.decode()
    gauges = page[page.index('<section class="gauges"') : page.index("</section>")]
    for polish in ("baza danych", "migracje", "kopia zapasowa", "dysk /", "pamięć", "obciążenie", "usługi"):
        assert f'<div class="gauge-name">{polish} ' in gauges
    assert "brak kopii zapasowej" in gauges and "żadne nie są skonfigurowane" in gauges
    assert '<span class="value">0</span> <small>oczekujących migracji</small>' in gauges
    text = re.sub(r"<[^>]+>", " ", gauges)  # what a reader sees, not attributes like data-check
    english = (
        "database",
        "memory",
        "no backup yet",
        "percent",
        "warn",
        "pass",
        "migrations",
        "hours",
        "disk ",
    )
    assert [word for word in english if word in text] == []


@pytest.mark.django_db
def test_the_dashboard_formats_measurements_with_one_decimal_in_the_readers_notation(
    client, helpdesk, settings
):
    settings.MONITORED_DISKS = ["/"]
    client.force_login(helpdesk.admin)
    polish = client.get("/monitoring/dashboard/", HTTP_ACCEPT_LANGUAGE="pl").content.decode()
    english = client.get("/monitoring/dashboard/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    disk = r'data-check="disk /".*?<span class="value">([^<]+)</span>'
    assert re.search(r"^\d+,\d$", re.search(disk, polish, re.S).group(1))
    assert re.search(r"^\d+\.\d$", re.search(disk, english, re.S).group(1))


@pytest.mark.django_db
def test_a_server_paused_in_a_fleet_update_says_so_with_the_fleet_run(client, state_dir):
    state_dir.updates.mkdir(parents=True)
    _journal_run(state_dir.updates, "20261103T000000000000Z", "v1.3.0", "paused")
    path = state_dir.updates / "20261103T000000000000Z-update.json"
    run = json.loads(path.read_text())
    run["facts"]["fleet_run"] = "20261103T000000-v1.3.0"
    path.write_text(json.dumps(run))
    last = detailed(client).json()["last_update"]
    assert (last["status"], last["fleet_run"]) == ("paused", "20261103T000000-v1.3.0")
