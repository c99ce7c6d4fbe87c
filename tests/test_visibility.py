"""Who sees what: customers see their own organization only; someone else's ticket does not exist."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from crm import tickets
from crm.models import Ticket

pytestmark = pytest.mark.django_db


def _foreign_urls(world) -> list[tuple[str, str, dict]]:
    t = world.globex_ticket
    attachment = tickets.add_attachment(t, world.bob, SimpleUploadedFile("secret.txt", b"globex secret"))
    return [
        ("get", f"/tickets/{t.pk}/", {}),
        ("get", f"/tickets/{t.pk}/edit/", {}),
        ("post", f"/tickets/{t.pk}/edit/", {"title": "pwned", "description": "x", "priority": "low"}),
        ("post", f"/tickets/{t.pk}/comments/", {"body": "hello"}),
        ("post", f"/tickets/{t.pk}/attachments/", {"file": SimpleUploadedFile("a.txt", b"x")}),
        ("get", f"/tickets/attachments/{attachment.pk}/", {}),
        ("get", f"/api/tickets/{t.pk}/", {}),
    ]


def test_customer_gets_404_for_another_organizations_ticket_everywhere(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    for method, url, data in _foreign_urls(helpdesk):
        response = getattr(client, method)(url, data)
        assert response.status_code == 404, (method, url, response.status_code)
        assert b"Secret Globex" not in response.content
    api_patch = client.patch(
        f"/api/tickets/{helpdesk.globex_ticket.pk}/", {"status": "closed"}, content_type="application/json"
    )
    assert api_patch.status_code == 404
    ticket = Ticket.objects.get(pk=helpdesk.globex_ticket.pk)
    assert (ticket.title, ticket.status, ticket.comments.count(), ticket.attachments.count()) == (
        "Globex VPN down",
        "new",
        0,
        1,
    )


def test_nonexistent_ticket_answers_the_same_404(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    foreign_url, missing_url = f"/tickets/{helpdesk.globex_ticket.pk}/", "/tickets/999999/"
    foreign, missing = client.get(foreign_url), client.get(missing_url)
    assert foreign.status_code == missing.status_code == 404
    # Identical pages, apart from the page's own address and the per-render CSRF token mask.
    assert _normalized(foreign.content, foreign_url) == _normalized(missing.content, missing_url)


def _normalized(content: bytes, url: str) -> bytes:
    content = content.replace(url.encode(), b"URL")
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", content)


# MariaDB's FULLTEXT index sees only committed rows
@pytest.mark.django_db(transaction=True)
def test_customer_list_shows_only_own_organization_even_when_asking_for_another(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    for query in ("", f"?organization={helpdesk.globex.pk}", "?search=Globex", "?assignee=none"):
        page = client.get("/tickets/" + query).content.decode()
        assert "Globex VPN down" not in page, query
    assert "Acme printer jammed" in client.get("/tickets/").content.decode()
    api = client.get("/api/tickets/", {"organization": helpdesk.globex.pk}).json()
    assert [t["title"] for t in api["results"]] == ["Acme printer jammed"]


@pytest.mark.parametrize("who", ["agent", "admin"])
def test_agents_and_admins_see_every_organization(helpdesk, as_user, who):
    client = as_user(getattr(helpdesk, who))
    page = client.get("/tickets/").content.decode()
    assert "Acme printer jammed" in page and "Globex VPN down" in page
    assert client.get(f"/tickets/{helpdesk.globex_ticket.pk}/").status_code == 200
    assert client.get("/api/tickets/").json()["count"] == 2


def test_user_without_profile_sees_nothing(helpdesk, client, django_user_model):
    stray = django_user_model.objects.create_user("stray", password="x")
    client.force_login(stray)
    assert client.get("/tickets/").status_code == 200
    assert "Acme printer jammed" not in client.get("/tickets/").content.decode()
    assert client.get(f"/tickets/{helpdesk.acme_ticket.pk}/").status_code == 404
    assert client.get("/tickets/create/").status_code == 403


PAGES = ["/tickets/", "/tickets/create/", "/tickets/1/", "/tickets/1/edit/", "/tickets/attachments/1/"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_require_login(client, helpdesk, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_api_requires_authentication(client, helpdesk):
    assert client.get("/api/tickets/").status_code in (401, 403)
    assert client.get(f"/api/tickets/{helpdesk.acme_ticket.pk}/").status_code in (401, 403)
    response = client.post(
        "/api/tickets/", {"title": "x", "description": "y"}, content_type="application/json"
    )
    assert response.status_code in (401, 403)
    assert Ticket.objects.count() == 2


def test_customers_do_not_see_internal_notes_or_their_history(helpdesk, as_user):
    ticket = helpdesk.acme_ticket
    tickets.add_comment(ticket, helpdesk.agent, "Customer is grumpy, handle with care", is_internal=True)
    tickets.add_comment(ticket, helpdesk.agent, "We are on it")
    customer_page = as_user(helpdesk.alice).get(f"/tickets/{ticket.pk}/").content.decode()
    assert "We are on it" in customer_page
    assert "grumpy" not in customer_page
    assert customer_page.count("commented") == 1  # the public comment's history entry only
    agent_page = as_user(helpdesk.agent).get(f"/tickets/{ticket.pk}/").content.decode()
    assert "grumpy" in agent_page
