"""The migration history: forward to the latest, backward to zero, and the handbook's data migration."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

AUTOMATIC_NOTE = "Zgłoszenie rozwiązane automatycznie"
BEFORE_FILL = ("crm", "0002_ticket_resolution_notes")
AFTER_FILL = ("crm", "0003_fill_resolution_notes")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def migrate_to():
    """Migrate crm to a given state; put the schema back to the latest afterwards whatever happens."""

    def run(target: tuple[str, str] | None):
        call_command("migrate", "crm", target[1] if target else "zero", verbosity=0)
        return MigrationExecutor(connection).loader.project_state(target).apps if target else None

    yield run
    call_command("migrate", verbosity=0)


def _crm_tables() -> set[str]:
    return {name for name in connection.introspection.table_names() if name.startswith("crm_")}


def test_migrations_go_back_to_zero_and_forward_again(migrate_to):
    assert "crm_ticket" in _crm_tables()
    migrate_to(None)
    assert _crm_tables() == set()
    call_command("migrate", verbosity=0)
    assert {"crm_ticket", "crm_organization", "crm_activitylog", "crm_userprofile"} <= _crm_tables()


def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _make_tickets(apps) -> dict[str, int]:
    User = apps.get_model("auth", "User")
    Organization = apps.get_model("crm", "Organization")
    Ticket = apps.get_model("crm", "Ticket")
    user = User.objects.create(username="migrator")
    org = Organization.objects.create(name="Migration Org")

    def make(status: str, notes: str = "") -> int:
        ticket = Ticket.objects.create(
            title=status,
            description="-",
            status=status,
            organization=org,
            created_by=user,
            resolution_notes=notes,
        )
        return ticket.pk

    return {
        "resolved": make("resolved"),
        "resolved_with_notes": make("resolved", "Replaced the toner."),
        "closed": make("closed"),
        "new": make("new"),
    }


def test_data_migration_fills_notes_of_resolved_tickets_and_reverse_empties_them(migrate_to):
    apps = migrate_to(BEFORE_FILL)
    ids = _make_tickets(apps)

    apps = migrate_to(AFTER_FILL)
    notes = dict(apps.get_model("crm", "Ticket").objects.values_list("pk", "resolution_notes"))
    assert notes[ids["resolved"]] == AUTOMATIC_NOTE
    assert notes[ids["resolved_with_notes"]] == "Replaced the toner."
    assert notes[ids["closed"]] == ""
    assert notes[ids["new"]] == ""

    apps = migrate_to(BEFORE_FILL)
    notes = dict(apps.get_model("crm", "Ticket").objects.values_list("pk", "resolution_notes"))
    assert notes[ids["resolved"]] == ""
    assert notes[ids["resolved_with_notes"]] == "Replaced the toner."


def test_resolution_notes_column_comes_and_goes_with_its_migration(migrate_to):
    migrate_to(("crm", "0001_initial"))
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "crm_ticket")}
    assert "resolution_notes" not in columns
    migrate_to(AFTER_FILL)
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "crm_ticket")}
    assert "resolution_notes" in columns


ORIGINAL_NAME = ("crm", "0004_ticketattachment_original_name")


def test_attachments_stored_before_names_were_kept_apart_get_their_name_from_the_path(migrate_to):
    apps = migrate_to(AFTER_FILL)
    ids = _make_tickets(apps)
    Attachment = apps.get_model("crm", "TicketAttachment")
    old = Attachment.objects.create(
        ticket_id=ids["new"],
        uploaded_by=apps.get_model("auth", "User").objects.get(),
        file="attachments/1/0a1b2c3d4e5f6a7b/raport_kwartalny.pdf",
        size=10,
        content_type="application/pdf",
    )
    apps = migrate_to(ORIGINAL_NAME)
    assert apps.get_model("crm", "TicketAttachment").objects.get(pk=old.pk).original_name == (
        "raport_kwartalny.pdf"
    )


def test_the_release_before_the_name_column_can_still_insert_attachments(migrate_to):
    """The column has a database default: code that does not know it keeps working while it exists."""
    apps = migrate_to(ORIGINAL_NAME)
    ids = _make_tickets(apps)
    with connection.cursor() as cursor:  # the INSERT the older code sends: no original_name
        cursor.execute(
            "INSERT INTO crm_ticketattachment"
            " (ticket_id, uploaded_by_id, file, size, content_type, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                ids["new"],
                apps.get_model("auth", "User").objects.get().pk,
                "attachments/x/a.txt",
                1,
                "text/plain",
                "2026-11-27 12:00:00",
            ],
        )
    assert apps.get_model("crm", "TicketAttachment").objects.get().original_name == ""
