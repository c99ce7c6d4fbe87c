"""/monitoring/status/, /monitoring/metrics and the dashboard: shape, thresholds, access, maintenance."""

import json
import time

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
    assert names == ["database", "migrations", "backup", "disk /", "memory", "load", "services"]
    disk = next(check for check in body["checks"] if check["name"] == "disk /")
    assert (disk["unit"], disk["warn"], disk["fail"]) == ("percent", 80.0, 90.0)
    assert body["disk_usage"] == disk["observed"]
    assert body["status"] == "warn" and response.status_code == 200  # no backup yet: a warning
    assert next(c for c in body["checks"] if c["name"] == "backup")["detail"] == "no backup yet"


@pytest.mark.django_db
def test_anyone_else_gets_only_the_overall_status(client, helpdesk, settings):
    anonymous = client.get("/monitoring/status/").json()
    assert set(anonymous) == {"status", "timestamp"}
    wrong = client.get("/monitoring/status/", HTTP_AUTHORIZATION="Bearer guess").json()
    assert set(wrong) == {"status", "timestamp"}
    client.force_login(helpdesk.alice)  # a customer
    assert set(client.get("/monitoring/status/").json()) == {"status", "timestamp"}
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


@pytest.mark.django_db
def test_last_update_comes_from_the_newest_journal(client, state_dir):
    updates = state_dir.updates
    updates.mkdir(parents=True)
    for stamp, version, outcome in (
        ("20261101T000000000000Z", "v1.1.0", "succeeded"),
        ("20261102T000000000000Z", "v1.2.0", "rolled back"),
    ):
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
