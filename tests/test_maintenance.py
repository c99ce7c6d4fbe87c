"""Maintenance mode: everyone gets a 503 with Retry-After and a bilingual page, except health probes."""

import pytest

from updater.run import maintenance

pytestmark = pytest.mark.django_db


@pytest.fixture
def flag(state_dir):
    return state_dir.maintenance_flag


def test_pages_answer_503_with_retry_after_and_both_languages(flag, helpdesk, as_user, settings):
    client = as_user(helpdesk.alice)
    assert client.get("/tickets/").status_code == 200
    maintenance.enable("update to v1.4.0")
    response = client.get("/tickets/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.MAINTENANCE_RETRY_AFTER)
    page = response.content.decode()
    assert "The helpdesk is being updated" in page and "Trwa aktualizacja helpdesku" in page
    assert client.get("/login/").status_code == 503
    api = client.get("/api/tickets/")
    assert api.status_code == 503 and "being updated" in api.json()["detail"]
    maintenance.disable()
    assert client.get("/tickets/").status_code == 200


def test_writes_are_refused_during_maintenance(flag, helpdesk, as_user):
    maintenance.enable("migrating")
    response = as_user(helpdesk.alice).post("/tickets/create/", {"title": "x", "description": "y"})
    assert response.status_code == 503
    assert helpdesk.acme.tickets.count() == 1


def test_health_probes_get_through(flag, client):
    maintenance.enable("migrating")
    health = client.get("/monitoring/health/")
    assert health.status_code == 200 and health.json()["status"] == "pass"
    assert client.get("/monitoring/ready/").status_code == 200


def test_flag_records_reason(flag):
    maintenance.enable("update to v2")
    assert "update to v2" in flag.read_text()
    assert maintenance.is_on()
    maintenance.disable()
    maintenance.disable()  # idempotent
    assert not maintenance.is_on()
