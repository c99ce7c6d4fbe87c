"""The helpdesk pages end to end: create, edit, status rules, comments, attachments, audit, list."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from crm import tickets
from crm.models import ActivityLog, Ticket

pytestmark = pytest.mark.django_db


def test_customer_creates_a_ticket_for_their_own_organization(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    response = client.post(
        "/tickets/create/",
        {
            "title": "Laptop will not boot",
            "description": "Black screen",
            "priority": "high",
            "organization": helpdesk.globex.pk,
        },  # ignored: customers cannot choose
    )
    ticket = Ticket.objects.get(title="Laptop will not boot")
    assert response.status_code == 302
    assert response["Location"] == f"/tickets/{ticket.pk}/"
    assert (ticket.organization, ticket.created_by, ticket.priority) == (
        helpdesk.acme,
        helpdesk.alice,
        "high",
    )
    created = ActivityLog.objects.get(ticket=ticket, action="created")
    assert created.actor == helpdesk.alice


def test_agent_must_choose_the_organization(helpdesk, as_user):
    client = as_user(helpdesk.agent)
    response = client.post("/tickets/create/", {"title": "t", "description": "d", "priority": "normal"})
    assert response.status_code == 400  # the form again, refused
    assert "This field is required." in response.content.decode()
    client.post(
        "/tickets/create/",
        {
            "title": "For Globex",
            "description": "d",
            "priority": "low",
            "organization": helpdesk.globex.pk,
            "assigned_to": helpdesk.agent.pk,
        },
    )
    ticket = Ticket.objects.get(title="For Globex")
    assert (ticket.organization, ticket.assigned_to) == (helpdesk.globex, helpdesk.agent)


def test_create_validation_keeps_what_was_typed(helpdesk, as_user):
    response = as_user(helpdesk.alice).post("/tickets/create/", {"title": "", "description": "Kept text"})
    assert response.status_code == 400  # the form again, refused
    assert "Kept text" in response.content.decode()
    assert Ticket.objects.count() == 2


def test_a_new_ticket_can_bring_its_files(helpdesk, as_user):
    files = [SimpleUploadedFile("log.txt", b"E-42\n"), SimpleUploadedFile("zdjęcie.jpg", b"\xff\xd8 jpeg")]
    response = as_user(helpdesk.alice).post(
        "/tickets/create/",
        {"title": "Scanner", "description": "See files", "priority": "normal", "attachments": files},
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    ticket = Ticket.objects.get(title="Scanner")
    assert sorted(a.filename for a in ticket.attachments.all()) == ["log.txt", "zdjęcie.jpg"]
    assert sorted(a.file.read() for a in ticket.attachments.all()) == [b"E-42\n", b"\xff\xd8 jpeg"]
    assert ActivityLog.objects.filter(ticket=ticket, action="attachment_added").count() == 2


def test_a_refused_file_creates_no_ticket_and_the_summary_says_why(helpdesk, as_user, settings):
    settings.ATTACHMENT_MAX_BYTES = 10
    files = [SimpleUploadedFile("ok.txt", b"small"), SimpleUploadedFile("big.bin", b"x" * 11)]
    response = as_user(helpdesk.alice).post(
        "/tickets/create/",
        {"title": "Scanner", "description": "", "priority": "normal", "attachments": files},
    )
    assert response.status_code == 400
    page = response.content.decode()
    summary = page[page.index('id="error-summary"') : page.index("</div>", page.index('id="error-summary"'))]
    assert "Please correct the 2 problems below." in summary  # two fields
    assert '<a href="#id_description">Description: This field is required.</a>' in summary
    assert (
        '<a href="#id_attachments">Attachments: big.bin is too large (11\xa0bytes); the limit is' in summary
    )
    assert not Ticket.objects.filter(title="Scanner").exists()
    assert not (settings.MEDIA_ROOT / "attachments").exists()


def test_an_edit_form_without_errors_has_no_summary(helpdesk, as_user):
    page = as_user(helpdesk.agent).get(f"/tickets/{helpdesk.acme_ticket.pk}/edit/").content.decode()
    assert "error-summary" not in page and 'enctype="multipart/form-data"' not in page


def _edit(client, ticket, **changes):
    data = {
        "title": ticket.title,
        "description": ticket.description,
        "priority": ticket.priority,
        "status": ticket.status,
        "assigned_to": ticket.assigned_to_id or "",
        "resolution_notes": ticket.resolution_notes,
    }
    data.update(changes)
    return client.post(f"/tickets/{ticket.pk}/edit/", data)


def test_resolving_requires_resolution_notes(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    response = _edit(client, ticket, status="resolved", resolution_notes="  ")
    assert response.status_code == 400  # the form again, refused
    assert "Describe how the ticket was resolved." in response.content.decode()
    ticket.refresh_from_db()
    assert (ticket.status, ticket.resolved_at) == ("new", None)


def test_resolving_with_notes_sets_resolved_at_and_writes_the_audit(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    response = _edit(client, ticket, status="resolved", resolution_notes="Cleared the paper jam")
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "resolved"
    assert ticket.resolved_at is not None
    entry = ActivityLog.objects.filter(ticket=ticket, action="updated").get()
    assert entry.actor == helpdesk.agent
    assert entry.changes == {"status": ["new", "resolved"], "resolution_notes": ["", "Cleared the paper jam"]}
    page = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "Cleared the paper jam" in page
    assert "<del>New</del> → <ins>Resolved</ins>" in page


def test_reopening_clears_resolved_at(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    _edit(client, ticket, status="resolved", resolution_notes="done")
    ticket.refresh_from_db()
    _edit(client, ticket, status="in_progress")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.resolved_at) == ("in_progress", None)


def test_closed_ticket_cannot_jump_back_to_new(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    _edit(client, ticket, status="closed")
    ticket.refresh_from_db()
    response = _edit(client, ticket, status="new")
    assert "A ticket cannot go from Closed to New." in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == "closed"


def test_customer_cannot_change_status_or_assignee(helpdesk, as_user):
    client, ticket = as_user(helpdesk.alice), helpdesk.acme_ticket
    form = client.get(f"/tickets/{ticket.pk}/edit/").content.decode()
    assert 'name="status"' not in form and 'name="assigned_to"' not in form
    _edit(client, ticket, title="Printer jammed again", status="closed", assigned_to=helpdesk.agent.pk)
    ticket.refresh_from_db()
    assert (ticket.title, ticket.status, ticket.assigned_to) == ("Printer jammed again", "new", None)
    assert ActivityLog.objects.get(ticket=ticket, action="updated").changes == {
        "title": ["Acme printer jammed", "Printer jammed again"]
    }


def test_assigning_to_a_customer_is_refused(helpdesk, as_user):
    response = _edit(as_user(helpdesk.agent), helpdesk.acme_ticket, assigned_to=helpdesk.bob.pk)
    assert response.status_code == 400  # the form again, refused
    helpdesk.acme_ticket.refresh_from_db()
    assert helpdesk.acme_ticket.assigned_to is None


def test_saving_without_changes_writes_no_audit_row(helpdesk, as_user):
    _edit(as_user(helpdesk.agent), helpdesk.acme_ticket)
    assert not ActivityLog.objects.filter(action="updated").exists()


def test_every_change_is_audited_with_old_and_new_values(helpdesk, as_user):
    client, ticket = as_user(helpdesk.agent), helpdesk.acme_ticket
    _edit(client, ticket, priority="urgent", assigned_to=helpdesk.agent.pk, status="in_progress")
    entry = ActivityLog.objects.get(ticket=ticket, action="updated")
    assert entry.changes == {
        "priority": ["normal", "urgent"],
        "assigned_to": [None, "agnes"],
        "status": ["new", "in_progress"],
    }
    assert entry.actor == helpdesk.agent and entry.created_at is not None


def test_comments_public_and_internal(helpdesk, as_user):
    ticket = helpdesk.acme_ticket
    customer = as_user(helpdesk.alice)
    response = customer.post(f"/tickets/{ticket.pk}/comments/", {"body": "Any news?", "is_internal": "on"})
    assert response.status_code == 302
    assert ticket.comments.get().is_internal is False  # customers cannot write internal notes
    agent = as_user(helpdesk.agent)
    agent.post(f"/tickets/{ticket.pk}/comments/", {"body": "Escalating", "is_internal": "on"})
    assert ticket.comments.filter(is_internal=True).count() == 1
    assert ActivityLog.objects.filter(ticket=ticket, action="commented").count() == 2
    empty = agent.post(f"/tickets/{ticket.pk}/comments/", {"body": "   "})
    assert empty.status_code == 400
    assert ticket.comments.count() == 2


def test_attachment_upload_and_download(helpdesk, as_user, settings):
    ticket = helpdesk.acme_ticket
    client = as_user(helpdesk.alice)
    upload = SimpleUploadedFile("error log.txt", b"Traceback: printer on fire\n", content_type="text/html")
    assert client.post(f"/tickets/{ticket.pk}/attachments/", {"file": upload}).status_code == 302
    attachment = ticket.attachments.get()
    assert (attachment.size, attachment.content_type, attachment.uploaded_by) == (
        27,
        "text/plain",
        helpdesk.alice,
    )
    stored = settings.MEDIA_ROOT / attachment.file.name
    assert stored.read_bytes() == b"Traceback: printer on fire\n"

    download = as_user(helpdesk.agent).get(f"/tickets/attachments/{attachment.pk}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"Traceback: printer on fire\n"
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["Content-Type"] == "application/octet-stream"
    assert ActivityLog.objects.filter(ticket=ticket, action="attachment_added").exists()


def test_attachment_over_the_limit_is_refused_and_nothing_is_stored(helpdesk, as_user, settings):
    settings.ATTACHMENT_MAX_BYTES = 1024
    ticket = helpdesk.acme_ticket
    response = as_user(helpdesk.alice).post(
        f"/tickets/{ticket.pk}/attachments/", {"file": SimpleUploadedFile("big.bin", b"x" * 1025)}
    )
    assert response.status_code == 400
    assert "big.bin is too large (1.0\xa0KB); the limit is 1.0\xa0KB." in response.content.decode()
    assert ticket.attachments.count() == 0
    assert not (settings.MEDIA_ROOT / "attachments").exists()


def test_oversized_upload_is_refused_before_it_is_read(helpdesk, as_user, settings):
    settings.ATTACHMENT_MAX_BYTES = 1024
    ticket = helpdesk.acme_ticket
    response = as_user(helpdesk.alice).post(
        f"/tickets/{ticket.pk}/attachments/",
        {"file": SimpleUploadedFile("huge.iso", b"x" * (2 * 1024 * 1024))},
    )
    assert response.status_code == 413
    assert "The file is too large; the limit is 1.0\xa0KB." in response.content.decode()
    assert ticket.attachments.count() == 0


def test_media_files_are_not_served_publicly(helpdesk, as_user):
    attachment = tickets.add_attachment(
        helpdesk.acme_ticket, helpdesk.alice, SimpleUploadedFile("a.txt", b"x")
    )
    assert as_user(helpdesk.alice).get("/media/" + attachment.file.name).status_code == 404


# MariaDB's FULLTEXT index sees only committed rows
@pytest.mark.django_db(transaction=True)
def test_list_search_filters_and_sorting(helpdesk, as_user):
    client = as_user(helpdesk.agent)
    for n in range(3):
        tickets.open_ticket(
            author=helpdesk.agent,
            title=f"Monitor flickers {n}",
            description="screen",
            priority="urgent" if n == 1 else "low",
            organization=helpdesk.acme,
        )

    def titles(query: str) -> list[str]:
        page = client.get("/tickets/" + query).context["page"]
        return [t.title for t in page.object_list]

    assert titles("?search=flickers") == ["Monitor flickers 2", "Monitor flickers 1", "Monitor flickers 0"]
    assert titles("?search=SECRET globex") == ["Globex VPN down"]  # description, case-insensitive
    assert titles("?priority=urgent") == ["Monitor flickers 1"]
    assert titles(f"?organization={helpdesk.globex.pk}") == ["Globex VPN down"]
    form = client.get(f"/tickets/?organization={helpdesk.globex.pk}&status=new").content.decode()
    assert f'<option value="{helpdesk.globex.pk}" selected>Globex</option>' in form
    assert '<option value="new" selected>New</option>' in form
    assert titles("?sort=priority")[0] == "Monitor flickers 1"
    assert titles("?sort=oldest")[0] == "Acme printer jammed"
    assert titles("?status=resolved") == []
    assert len(titles("?status=bogus&sort=nonsense&organization=x")) == 5  # bad values are ignored
    assert titles(f"?search=%23{helpdesk.globex_ticket.pk}") == ["Globex VPN down"]


# MariaDB's FULLTEXT index sees only committed rows
@pytest.mark.django_db(transaction=True)
def test_pagination_keeps_the_filters(helpdesk, as_user):
    for n in range(12):
        tickets.open_ticket(author=helpdesk.alice, title=f"Paged {n}", description="d")
    client = as_user(helpdesk.alice)
    first = client.get("/tickets/?search=Paged&per_page=10&sort=newest")
    assert len(first.context["page"].object_list) == 10
    last = first.context["page"].object_list[9]
    assert f"?search=Paged&amp;per_page=10&amp;sort=newest&amp;after={last.pk}" in first.content.decode()
    second = client.get(f"/tickets/?search=Paged&per_page=10&sort=newest&after={last.pk}")
    assert [t.title for t in second.context["page"].object_list] == ["Paged 1", "Paged 0"]
    by_number = client.get("/tickets/?search=Paged&per_page=10&sort=priority&page=2")
    assert len(by_number.context["page"].object_list) == 2  # old page-number links keep working
    assert client.get("/tickets/?page=999").status_code == 200


def test_sql_injection_probe_is_harmless(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    response = client.get("/tickets/", {"search": "1' OR 1=1--"})
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == []
    api = client.get("/api/tickets/", {"search": "1' OR 1=1--"})
    assert api.status_code == 200 and api.json()["count"] == 0
    assert Ticket.objects.count() == 2


def test_output_is_escaped(helpdesk, as_user):
    tickets.open_ticket(author=helpdesk.alice, title="<script>alert(1)</script>", description="<b>x</b>")
    client = as_user(helpdesk.alice)
    listing = client.get("/tickets/").content.decode()
    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing


def test_each_row_labels_its_cells_in_the_readers_language_and_escapes_what_people_typed(helpdesk, as_user):
    """The rows are built in Python (crm/templatetags/ticket_rows.py), not by the template language:
    the cells a phone shows under their labels, the organization for staff only, an empty assignee."""
    helpdesk.acme.name = 'Acme & <Sons> "Ltd"'
    helpdesk.acme.save()
    ticket = helpdesk.acme_ticket
    Ticket.objects.filter(pk=helpdesk.globex_ticket.pk).update(assigned_to=helpdesk.agent, priority="urgent")

    staff_page = as_user(helpdesk.agent).get("/tickets/", HTTP_ACCEPT_LANGUAGE="pl").content.decode()
    row = _row(staff_page, ticket.pk)
    assert f'<td data-label="Tytuł"><a href="/tickets/{ticket.pk}/">Acme printer jammed</a></td>' in row
    assert '<td data-label="Status"><span class="badge status-new">Nowe</span></td>' in row
    assert '<td data-label="Organizacja">Acme &amp; &lt;Sons&gt; &quot;Ltd&quot;</td>' in row
    assert '<td data-label="Przypisane do">—</td>' in row
    assert '<td data-label="Utworzono"><time datetime="' in row
    other = _row(staff_page, helpdesk.globex_ticket.pk)
    assert '<td data-label="Przypisane do">agnes</td>' in other
    assert '<span class="badge priority-urgent">Pilny</span>' in other
    assert staff_page.count("<tr>") == 3  # the header's and two tickets', neither overdue

    customer_page = as_user(helpdesk.alice).get("/tickets/").content.decode()
    assert f'<td data-label="Title"><a href="/tickets/{ticket.pk}/">' in customer_page
    assert 'data-label="Organization"' not in customer_page and "Organization</th>" not in customer_page
    assert "Globex VPN down" not in customer_page


def _row(page: str, ticket_id: int) -> str:
    """The list row of one ticket, from its number cell to the end of the row."""
    return page[page.index(f'<td class="num">{ticket_id}</td>') :].split("</tr>")[0]


def test_post_without_csrf_token_is_refused(helpdesk):
    client = Client(enforce_csrf_checks=True)
    client.force_login(helpdesk.alice)
    response = client.post("/tickets/create/", {"title": "No token", "description": "d", "priority": "low"})
    assert response.status_code == 403
    comment = client.post(f"/tickets/{helpdesk.acme_ticket.pk}/comments/", {"body": "No token"})
    assert comment.status_code == 403
    assert not Ticket.objects.filter(title="No token").exists()
    assert helpdesk.acme_ticket.comments.count() == 0


def test_login_is_throttled_after_repeated_failures(helpdesk, client, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        failed = client.post("/login/", {"username": "alice", "password": "wrong"})
        assert failed.status_code == 200
    assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 429
    locked = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out.
    assert client.post("/login/", {"username": "bob", "password": "pw-bob"}).status_code == 302


def test_login_and_logout(helpdesk, client):
    response = client.post(
        "/login/?next=/tickets/", {"username": "alice", "password": "pw-alice", "next": "/tickets/"}
    )
    assert response.status_code == 302 and response["Location"] == "/tickets/"
    assert client.get("/tickets/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/tickets/").status_code == 302


def test_pages_speak_polish_when_the_browser_asks(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    page = client.get("/tickets/", HTTP_ACCEPT_LANGUAGE="pl").content.decode()
    assert "Zgłoszenia" in page
    assert "Nowe zgłoszenie" in page
    assert client.get("/tickets/", HTTP_ACCEPT_LANGUAGE="en").content.decode().count("New ticket") >= 1


def test_the_list_names_each_status_and_priority_in_the_readers_language(helpdesk, as_user):
    Ticket.objects.filter(pk=helpdesk.acme_ticket.pk).update(status="in_progress", priority="high")
    client = as_user(helpdesk.alice)
    for language, status, priority in (("pl", "W toku", "Wysoki"), ("en", "In progress", "High")):
        page = client.get("/tickets/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert f'<span class="badge status-in_progress">{status}</span>' in page
        assert f'<span class="badge priority-high">{priority}</span>' in page


def test_user_can_switch_language(helpdesk, as_user):
    client = as_user(helpdesk.alice)
    client.post("/i18n/setlang/", {"language": "pl", "next": "/tickets/"})
    assert "Zgłoszenia" in client.get("/tickets/").content.decode()


def test_the_favicon_is_served_at_the_root_and_linked_from_every_page(client, helpdesk, as_user):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content).startswith(b"\x00\x00\x01\x00")  # an ICO file
    page = as_user(helpdesk.alice).get("/tickets/").content.decode()
    assert '<link rel="icon" href="/static/crm/favicon' in page
