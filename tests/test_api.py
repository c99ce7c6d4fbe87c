"""JSON API /api/tickets/: same visibility and rules as the pages, JSON errors, session and token auth."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from crm.models import ActivityLog, Ticket

pytestmark = pytest.mark.django_db


def patch(client, ticket, data):
    return client.patch(f"/api/tickets/{ticket.pk}/", data, content_type="application/json")


# MariaDB's FULLTEXT index sees only committed rows
@pytest.mark.django_db(transaction=True)
def test_list_is_paginated_and_filtered(helpdesk, as_user, settings):
    client = as_user(helpdesk.agent)
    body = client.get("/api/tickets/").json()
    assert body["count"] == 2
    assert {"next", "previous", "results"} <= body.keys()
    first = body["results"][0]
    assert first["title"] == "Globex VPN down"  # newest first
    assert first["organization_name"] == "Globex" and first["created_by"] == "bob"
    assert client.get("/api/tickets/", {"search": "printer"}).json()["count"] == 1
    assert client.get("/api/tickets/", {"organization": helpdesk.acme.pk}).json()["results"][0]["title"] == (
        "Acme printer jammed"
    )
    assert client.get("/api/tickets/", {"status": "closed"}).json()["count"] == 0


def test_customer_creates_through_the_api(helpdesk, as_user):
    response = as_user(helpdesk.alice).post(
        "/api/tickets/",
        {"title": "From the API", "description": "d", "priority": "urgent"},
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["organization"], body["status"], body["priority"]) == (helpdesk.acme.pk, "new", "urgent")
    assert ActivityLog.objects.filter(ticket_id=body["id"], action="created").exists()


def test_validation_errors_come_back_as_json_with_field_messages(helpdesk, as_user):
    client = as_user(helpdesk.agent)
    response = client.post("/api/tickets/", {"priority": "whenever"}, content_type="application/json")
    assert response.status_code == 400
    errors = response.json()
    assert errors["title"] == ["This field is required."]
    assert errors["description"] == ["This field is required."]
    assert "priority" in errors
    no_org = client.post("/api/tickets/", {"title": "t", "description": "d"}, content_type="application/json")
    assert no_org.json() == {"organization": ["Choose the organization this ticket is for."]}


def test_agent_changes_status_and_assignee(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    response = patch(client, ticket, {"status": "in_progress", "assigned_to": helpdesk.agent.pk})
    assert response.status_code == 200
    assert response.json()["status"] == "in_progress"
    assert response.json()["assigned_to_username"] == "agnes"
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assigned_to) == ("in_progress", helpdesk.agent)
    assert ActivityLog.objects.get(ticket=ticket, action="updated").changes["status"] == [
        "new",
        "in_progress",
    ]


def test_resolving_through_the_api_needs_notes(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    refused = patch(client, ticket, {"status": "resolved"})
    assert refused.status_code == 400
    assert refused.json() == {"resolution_notes": ["Describe how the ticket was resolved."]}
    done = patch(client, ticket, {"status": "resolved", "resolution_notes": "Rebooted"})
    assert done.status_code == 200 and done.json()["resolved_at"] is not None


def test_invalid_transition_and_bad_assignee_are_400(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    patch(client, ticket, {"status": "closed"})
    assert patch(client, ticket, {"status": "new"}).json() == {
        "status": ["A ticket cannot go from Closed to New."]
    }
    assert patch(client, ticket, {"assigned_to": helpdesk.bob.pk}).status_code == 400
    assert patch(client, ticket, {"assigned_to": 999999}).status_code == 400


def test_fields_outside_status_and_assignee_cannot_be_patched(helpdesk, as_user):
    response = patch(as_user(helpdesk.agent), helpdesk.acme_ticket, {"organization": helpdesk.globex.pk})
    assert response.status_code == 400
    assert "organization" in response.json()
    assert Ticket.objects.get(pk=helpdesk.acme_ticket.pk).organization == helpdesk.acme


def test_customer_cannot_change_status(helpdesk, as_user):
    response = patch(as_user(helpdesk.alice), helpdesk.acme_ticket, {"status": "closed"})
    assert response.status_code == 403
    assert Ticket.objects.get(pk=helpdesk.acme_ticket.pk).status == "new"


def test_put_and_delete_are_not_offered(helpdesk, as_user):
    client = as_user(helpdesk.admin)
    assert client.delete(f"/api/tickets/{helpdesk.acme_ticket.pk}/").status_code == 405
    assert (
        client.put(
            f"/api/tickets/{helpdesk.acme_ticket.pk}/", {}, content_type="application/json"
        ).status_code
        == 405
    )
    assert Ticket.objects.count() == 2


def test_token_authentication(helpdesk):
    token = Token.objects.create(user=helpdesk.bob)
    client = Client()
    body = client.get("/api/tickets/", HTTP_AUTHORIZATION=f"Token {token.key}").json()
    assert [t["title"] for t in body["results"]] == ["Globex VPN down"]
    assert client.get("/api/tickets/", HTTP_AUTHORIZATION="Token not-a-real-token").status_code == 401


def test_token_is_issued_for_a_username_and_password(helpdesk):
    response = Client().post("/api/token/", {"username": "bob", "password": "pw-bob"})
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=helpdesk.bob).key


def test_session_authenticated_unsafe_call_needs_csrf(helpdesk):
    client = Client(enforce_csrf_checks=True)
    client.force_login(helpdesk.agent)
    response = client.patch(
        f"/api/tickets/{helpdesk.acme_ticket.pk}/", {"status": "closed"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Ticket.objects.get(pk=helpdesk.acme_ticket.pk).status == "new"


def test_unknown_ticket_is_a_json_404(helpdesk, as_user):
    response = as_user(helpdesk.alice).get("/api/tickets/999999/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
